//! Operator commands: they open the store named by the configuration, act, and print JSON.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use jsonwebtoken::{EncodingKey, Header};
use mindshop_backend::store::{self, NewApiKey, NewMerchant, Store, StoreError};
use mindshop_config::Config;
use mindshop_wire::api_key::{self, KeyEnv, KeyKind};
use serde::Serialize;
use serde_json::json;

use crate::cli::{AdminCommand, KeyCommand, KeyEnvArg, KeyKindArg, MerchantCommand, TokenArgs};

/// Runs an async command on a small runtime of its own.
pub fn run_blocking(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    open_store(config).await?;
    print_json(&json!({"migrated": true}))
}

pub async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        AdminCommand::Merchant { command } => merchant(store.as_ref(), command).await,
        AdminCommand::Key { command } => key(store.as_ref(), command).await,
        AdminCommand::Token(args) => token(config, store.as_ref(), args).await,
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(&config.database)
        .await
        .context("cannot open the database")
}

async fn merchant(store: &dyn Store, command: MerchantCommand) -> anyhow::Result<()> {
    match command {
        MerchantCommand::Create {
            id,
            name,
            domains,
            plan,
        } => {
            check_merchant_id(&id)?;
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let allowed_domains = domains
                .iter()
                .map(|d| normalize_domain(d))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let merchant = store
                .create_merchant(&NewMerchant {
                    id,
                    name: name.trim().to_owned(),
                    allowed_domains,
                    plan,
                })
                .await
                .map_err(explain)?;
            print_json(&merchant)
        }
        MerchantCommand::List => print_json(&store.list_merchants().await?),
    }
}

async fn key(store: &dyn Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            merchant,
            kind,
            env,
            permissions,
            name,
        } => {
            let kind = match kind {
                KeyKindArg::Publishable => KeyKind::Publishable,
                KeyKindArg::Secret => KeyKind::Secret,
            };
            let env = match env {
                KeyEnvArg::Test => KeyEnv::Test,
                KeyEnvArg::Live => KeyEnv::Live,
            };
            let requested = if permissions.is_empty() {
                kind.default_permissions()
            } else {
                permissions
            };
            let permissions = api_key::validate_permissions(kind, &requested)?;
            let generated = api_key::generate(kind, env);
            let stored = store
                .create_api_key(&NewApiKey {
                    id: mindshop_wire::ids::new_id("key"),
                    merchant_id: merchant,
                    kind: kind.as_str().to_owned(),
                    env: env.as_str().to_owned(),
                    prefix: generated.prefix,
                    key_hash: generated.hash,
                    permissions,
                    name,
                })
                .await
                .map_err(explain)?;
            #[derive(Serialize)]
            struct Created<'a> {
                #[serde(flatten)]
                stored: &'a store::ApiKey,
                /// The only time the key is shown.
                key: &'a str,
            }
            print_json(&Created {
                stored: &stored,
                key: &generated.plaintext,
            })
        }
        KeyCommand::List { merchant } => {
            require_merchant(store, &merchant).await?;
            print_json(&store.list_api_keys(&merchant).await?)
        }
        KeyCommand::Revoke { id } => print_json(&store.revoke_api_key(&id).await.map_err(explain)?),
    }
}

#[derive(Serialize)]
struct PortalClaims<'a> {
    sub: String,
    #[serde(rename = "merchantId")]
    merchant_id: &'a str,
    roles: &'a [String],
    iat: i64,
    exp: i64,
}

async fn token(config: &Config, store: &dyn Store, args: TokenArgs) -> anyhow::Result<()> {
    require_merchant(store, &args.merchant).await?;
    if args.ttl == 0 {
        bail!("--ttl must be at least 1 second");
    }
    let ttl = i64::try_from(args.ttl).map_err(|_| anyhow!("--ttl is too large"))?;
    let secret = config.resolve_jwt_secret()?;
    let now = chrono::Utc::now().timestamp();
    let claims = PortalClaims {
        sub: args.sub.unwrap_or_else(|| format!("cli:{}", args.merchant)),
        merchant_id: &args.merchant,
        roles: &args.roles,
        iat: now,
        exp: now.saturating_add(ttl),
    };
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .context("cannot sign the token")?;
    print_json(&json!({"token": token, "expiresAt": claims.exp}))
}

async fn require_merchant(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    match store.get_merchant(id).await? {
        Some(_) => Ok(()),
        None => bail!("merchant {id} not found"),
    }
}

/// Merchant ids appear in paths and headers: letters, digits, `-`, `_`; 1 to 64 characters.
fn check_merchant_id(id: &str) -> anyhow::Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        bail!("--id {id:?}: use 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// An allowed domain is a bare host name (`acme.com`): no scheme, port, path or wildcard.
fn normalize_domain(domain: &str) -> anyhow::Result<String> {
    let host = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        bail!(
            "--domain {domain:?}: give a host name such as acme.com (no scheme, port, path or wildcard)"
        );
    }
    Ok(host)
}

/// Store errors as sentences for an operator.
fn explain(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::Conflict(what) => anyhow!("{what} already exists"),
        StoreError::NotFound(what) => anyhow!("{what} not found"),
        other => anyhow::Error::new(other),
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_bare_host_names() {
        assert_eq!(normalize_domain("Shop.Acme.com").unwrap(), "shop.acme.com");
        for bad in [
            "https://acme.com",
            "acme.com:443",
            "acme.com/x",
            "*.acme.com",
            "",
            "-a.com",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merchant_ids_are_path_safe() {
        assert!(check_merchant_id("acme_store-1").is_ok());
        for bad in ["", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(check_merchant_id(bad).is_err(), "{bad}");
        }
    }
}
