//! `GET|PUT /api/merchants/{merchant_id}/settings` (portal): the merchant's allowed domains,
//! which decide the origins its widget keys work from, and its plan.
//!
//! An allowed domain is a host name that is not a public suffix (`co.uk`, `myshopify.com`:
//! the sites under one belong to different owners), and one merchant's: a domain the merchant
//! adds may not be, be under, or be above another merchant's (409 `DOMAIN_TAKEN`), unless an
//! admin sends the change.

use axum::extract::State;
use chrono::{DateTime, Utc};
use mindshop_wire::merchant::allowed_domain;
use serde::{Deserialize, Serialize};

use crate::access::PortalAccess;
use crate::extract::ApiJson;
use crate::routes::Routes;
use crate::store::{Merchant, MerchantSettings, StoreError};
use crate::{ApiError, AppState, Envelope};

/// Most allowed domains a merchant may list.
pub(crate) const MAX_DOMAINS: usize = 100;
/// Longest plan name.
const MAX_PLAN_LEN: usize = 32;

pub(super) fn routes(routes: Routes) -> Routes {
    let path = "/api/merchants/{merchant_id}/settings";
    routes.get(path, show).put(path, replace)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    merchant_id: String,
    allowed_domains: Vec<String>,
    plan: String,
    updated_at: DateTime<Utc>,
}

impl From<Merchant> for Settings {
    fn from(merchant: Merchant) -> Self {
        Self {
            merchant_id: merchant.id,
            allowed_domains: merchant.allowed_domains,
            plan: merchant.plan,
            updated_at: merchant.updated_at,
        }
    }
}

/// `allowedDomains` replaces the list; `plan`, when present, must be the current plan unless
/// an admin sends it (plans set rate limits, so merchants do not upgrade themselves).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsInput {
    allowed_domains: Vec<String>,
    plan: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<Settings>, ApiError> {
    let merchant = find_merchant(&state, &access.merchant_id).await?;
    Ok(Envelope::new(&access.context, merchant.into()))
}

async fn replace(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiJson(input): ApiJson<SettingsInput>,
) -> Result<Envelope<Settings>, ApiError> {
    let allowed_domains = normalize_domains(&input.allowed_domains)?;
    let may_share_domains = access.is_admin();
    let plan = input.plan.as_deref().map(validate_plan).transpose()?;
    let current = find_merchant(&state, &access.merchant_id).await?;
    if plan.as_ref().is_some_and(|plan| *plan != current.plan) && !access.is_admin() {
        return Err(ApiError::Forbidden {
            code: "FORBIDDEN",
            message: "Only an administrator may change the plan".to_owned(),
        });
    }
    let updated = state
        .store
        .update_merchant_settings(
            &access.merchant_id,
            &MerchantSettings {
                allowed_domains,
                plan,
                may_share_domains,
            },
        )
        .await
        .map_err(|error| match error {
            StoreError::DomainTaken { domain, overlap } => ApiError::Conflict {
                code: "DOMAIN_TAKEN",
                message: format!(
                    "allowedDomains[{}]: {domain:?} is taken: {overlap}",
                    position(&input.allowed_domains, &domain)
                ),
            },
            other => other.into(),
        })?;
    Ok(Envelope::new(&access.context, updated.into()))
}

async fn find_merchant(state: &AppState, id: &str) -> Result<Merchant, ApiError> {
    state
        .store
        .get_merchant(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("merchant {id} not found")))
}

/// Where `domain` (normalised) was in the body's list.
fn position(domains: &[String], domain: &str) -> usize {
    domains
        .iter()
        .position(|given| allowed_domain(given).is_ok_and(|given| given == domain))
        .unwrap_or_default()
}

/// Each entry a bare host name (lowercased, no trailing dot) that is not a public suffix, each
/// once, in the order given.
fn normalize_domains(domains: &[String]) -> Result<Vec<String>, ApiError> {
    if domains.len() > MAX_DOMAINS {
        return Err(ApiError::invalid(
            "allowedDomains",
            format!("at most {MAX_DOMAINS} domains"),
        ));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(domains.len());
    for (index, domain) in domains.iter().enumerate() {
        let domain = allowed_domain(domain).map_err(|error| {
            ApiError::invalid(format!("allowedDomains[{index}]"), error.to_string())
        })?;
        if !normalized.contains(&domain) {
            normalized.push(domain);
        }
    }
    Ok(normalized)
}

/// The admin CLI's rule: letters, digits or `_` (e.g. `free`, `pro`), here at most 32.
fn validate_plan(plan: &str) -> Result<String, ApiError> {
    let valid = !plan.is_empty()
        && plan.len() <= MAX_PLAN_LEN
        && plan.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(plan.to_owned())
    } else {
        Err(ApiError::invalid(
            "plan",
            format!("use 1 to {MAX_PLAN_LEN} letters, digits or '_' (e.g. free, pro)"),
        ))
    }
}

#[cfg(test)]
mod tests;
