//! Operator commands: they open the store named by the configuration, act, and print JSON.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use jsonwebtoken::{EncodingKey, Header};
use mindshop_backend::keys::{self, KeyRequest};
use mindshop_backend::store::{self, NewMerchant, Store};
use mindshop_config::Config;
use mindshop_wire::api_key::{KeyEnv, KeyKind};
use mindshop_wire::merchant;
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
        AdminCommand::Tls { .. } => bail!("`admin tls` runs without the store (see main.rs)"),
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
            if plan.is_empty() || !plan.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("--plan {plan:?}: use letters, digits or '_' (e.g. free, pro)");
            }
            let mut allowed_domains = Vec::with_capacity(domains.len());
            for domain in &domains {
                // The portal's rule (no public suffix). An operator may list a domain another
                // merchant lists, as an admin may in the portal.
                let domain =
                    merchant::allowed_domain(domain).with_context(|| "--domain".to_owned())?;
                if !allowed_domains.contains(&domain) {
                    allowed_domains.push(domain);
                }
            }
            let merchant = store
                .create_merchant(&NewMerchant {
                    id,
                    name: name.trim().to_owned(),
                    allowed_domains,
                    plan,
                })
                .await?;
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
            let created = keys::create(
                store,
                KeyRequest {
                    merchant_id: merchant,
                    kind,
                    env,
                    // No --permission: the kind's defaults.
                    permissions: (!permissions.is_empty()).then_some(permissions),
                    name,
                },
            )
            .await?;
            print_json(&created)
        }
        KeyCommand::List { merchant } => {
            require_merchant(store, &merchant).await?;
            print_json(&store.list_api_keys(&merchant).await?)
        }
        KeyCommand::Revoke { id } => print_json(&store.revoke_api_key(&id).await?),
    }
}

#[derive(Serialize)]
struct PortalClaims<'a> {
    sub: String,
    #[serde(rename = "merchantId")]
    merchant_id: &'a str,
    roles: &'a [String],
    /// `auth.jwt_issuer` / `auth.jwt_audience`: the edge requires them when they are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    iat: i64,
    exp: i64,
}

/// A token's lifetime when `--ttl` is not given.
const DEFAULT_TTL_SECS: u64 = 3600;

/// The lifetime to issue: `--ttl`, else the default shortened to `auth.jwt_max_lifetime_secs`;
/// an explicit `--ttl` beyond that maximum is an error, as the edge would refuse the token.
fn token_ttl(requested: Option<u64>, max: Option<u64>) -> anyhow::Result<i64> {
    let ttl = match (requested, max) {
        (Some(0), _) => bail!("--ttl must be at least 1 second"),
        (Some(ttl), Some(max)) if ttl > max => bail!(
            "--ttl {ttl} is longer than auth.jwt_max_lifetime_secs ({max}); the edge would              refuse the token"
        ),
        (Some(ttl), _) => ttl,
        (None, max) => max.map_or(DEFAULT_TTL_SECS, |max| DEFAULT_TTL_SECS.min(max)),
    };
    i64::try_from(ttl).map_err(|_| anyhow!("--ttl is too large"))
}

async fn token(config: &Config, store: &dyn Store, args: TokenArgs) -> anyhow::Result<()> {
    require_merchant(store, &args.merchant).await?;
    let ttl = token_ttl(args.ttl, config.auth.jwt_max_lifetime_secs)?;
    let secret = config.resolve_jwt_secret()?;
    let now = chrono::Utc::now().timestamp();
    let claims = PortalClaims {
        sub: args.sub.unwrap_or_else(|| format!("cli:{}", args.merchant)),
        merchant_id: &args.merchant,
        roles: &args.roles,
        iss: config.auth.jwt_issuer.as_deref(),
        aud: config.auth.jwt_audience.as_deref(),
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
    if !merchant::is_valid_id(id) {
        bail!("--id {id:?}: use 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// Writes JSON to stdout; a closed pipe (`| head`) is an error, not a panic.
fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_ids_are_path_safe() {
        assert!(check_merchant_id("acme_store-1").is_ok());
        for bad in ["", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(check_merchant_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_lifetimes_respect_the_configured_maximum() {
        assert_eq!(token_ttl(None, None).unwrap(), 3600);
        assert_eq!(token_ttl(Some(86400), None).unwrap(), 86400);
        // The default shrinks to fit; an explicit longer one is refused, naming the setting.
        assert_eq!(token_ttl(None, Some(600)).unwrap(), 600);
        assert_eq!(token_ttl(None, Some(7200)).unwrap(), 3600);
        assert_eq!(token_ttl(Some(600), Some(600)).unwrap(), 600);
        let too_long = token_ttl(Some(601), Some(600)).unwrap_err().to_string();
        assert!(
            too_long.contains("auth.jwt_max_lifetime_secs"),
            "{too_long}"
        );
        assert!(token_ttl(Some(0), None).is_err());
    }
}
