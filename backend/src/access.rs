//! Who may do what, checked again in the backend (the edge checks first).
//!
//! These run in every handler, so that a misrouted or misconfigured edge still cannot hand one
//! merchant another merchant's data: API-key routes act only on the key's merchant, portal
//! routes only on a merchant the user belongs to (or any, for an admin).
//!
//! Handlers take [`KeyAccess`] or [`PortalAccess`] as their first extractors, so the checks
//! run before the body is read: a caller without access hears 401/403, never how its body
//! would have been judged.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use mindshop_wire::api_key::permission_grants;

use crate::extract::ApiPath;
use crate::{ApiError, RequestContext};

/// The role that may manage every merchant from the portal.
pub const ADMIN_ROLE: &str = "admin";

/// 403 `Insufficient permissions` (with `requiredPermissions`) unless the caller's
/// permissions grant `required` (`*` grants everything, `documents:*` every documents one).
pub fn require_permission(context: &RequestContext, required: &str) -> Result<(), ApiError> {
    if permission_grants(&context.identity.permissions, required) {
        Ok(())
    } else {
        Err(ApiError::InsufficientPermissions {
            required: vec![required.to_owned()],
        })
    }
}

/// The merchant of the calling API key; 401 when the identity names none.
pub fn key_merchant(context: &RequestContext) -> Result<&str, ApiError> {
    context
        .identity
        .merchant
        .as_deref()
        .filter(|merchant| !merchant.is_empty())
        .ok_or_else(|| ApiError::Unauthorized {
            code: "API_KEY_REQUIRED",
            message: "This route needs an API key of a merchant".to_owned(),
        })
}

/// Portal routes act for a signed-in user (`user:<sub>`); anything else is 401, whatever
/// merchant it names, so that an API key can never manage keys or settings.
pub fn require_user(context: &RequestContext) -> Result<(), ApiError> {
    if context.identity.principal.starts_with("user:") {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            code: "UNAUTHORIZED",
            message: "This route needs a signed-in portal user".to_owned(),
        })
    }
}

/// Whether the caller holds the `admin` role.
pub fn is_admin(context: &RequestContext) -> bool {
    context.identity.roles.iter().any(|role| role == ADMIN_ROLE)
}

/// 403 `Access denied` unless the caller belongs to `merchant_id` or is an admin.
pub fn require_merchant_access(
    context: &RequestContext,
    merchant_id: &str,
) -> Result<(), ApiError> {
    if context.identity.merchant.as_deref() == Some(merchant_id) || is_admin(context) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "FORBIDDEN",
            message: "Access denied".to_owned(),
        })
    }
}

/// A permission a route requires, as a type, so a handler's signature states it.
pub trait Permission {
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $marker:ident = $name:literal;)+) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $marker;
            impl Permission for $marker {
                const NAME: &'static str = $name;
            }
        )+
    };
}

permissions! {
    DocumentsRead = "documents:read";
    DocumentsWrite = "documents:write";
    ChatWrite = "chat:write";
    SessionsRead = "sessions:read";
    SessionsWrite = "sessions:write";
    ProductsRead = "products:read";
}

/// An API-key caller whose key holds `P`: its merchant, which is the only one it may touch.
#[derive(Debug)]
pub struct KeyAccess<P> {
    pub context: RequestContext,
    pub merchant_id: String,
    permission: PhantomData<P>,
}

impl<S, P> FromRequestParts<S> for KeyAccess<P>
where
    S: Send + Sync,
    P: Permission,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        let merchant_id = key_merchant(&context)?.to_owned();
        require_permission(&context, P::NAME)?;
        Ok(Self {
            context,
            merchant_id,
            permission: PhantomData,
        })
    }
}

/// A portal user with access to the path's `{merchant_id}`.
#[derive(Debug)]
pub struct PortalAccess {
    pub context: RequestContext,
    pub merchant_id: String,
}

impl PortalAccess {
    pub fn is_admin(&self) -> bool {
        is_admin(&self.context)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PortalAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        require_user(&context)?;
        let ApiPath(mut params) =
            ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let merchant_id = params.remove("merchant_id").ok_or_else(|| {
            ApiError::Internal("PortalAccess on a route without {merchant_id}".to_owned())
        })?;
        require_merchant_access(&context, &merchant_id)?;
        Ok(Self {
            context,
            merchant_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use mindshop_wire::identity::Identity;

    use super::*;

    fn context(merchant: Option<&str>, permissions: &[&str], roles: &[&str]) -> RequestContext {
        RequestContext {
            request_id: "req-test".to_owned(),
            identity: Identity {
                merchant: merchant.map(str::to_owned),
                principal: "user:someone".to_owned(),
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            },
        }
    }

    fn status(result: Result<impl Sized, ApiError>) -> StatusCode {
        match result {
            Ok(_) => StatusCode::OK,
            Err(error) => error.into_response().status(),
        }
    }

    #[test]
    fn permissions_follow_the_shared_wildcard_rule() {
        let read = context(Some("acme"), &["documents:read"], &[]);
        assert_eq!(
            status(require_permission(&read, "documents:read")),
            StatusCode::OK
        );
        assert_eq!(
            status(require_permission(&read, "documents:write")),
            StatusCode::FORBIDDEN
        );
        let all = context(Some("acme"), &["documents:*"], &[]);
        assert_eq!(
            status(require_permission(&all, "documents:write")),
            StatusCode::OK
        );
        assert_eq!(
            status(require_permission(&all, "chat:write")),
            StatusCode::FORBIDDEN
        );
        let star = context(Some("acme"), &["*"], &[]);
        assert_eq!(
            status(require_permission(&star, "sessions:write")),
            StatusCode::OK
        );
    }

    #[test]
    fn a_key_without_a_merchant_is_401() {
        assert_eq!(
            key_merchant(&context(Some("acme"), &[], &[])).unwrap(),
            "acme"
        );
        assert_eq!(
            status(key_merchant(&context(None, &["*"], &[]))),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(key_merchant(&context(Some(""), &["*"], &[]))),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn merchant_access_needs_the_same_merchant_or_admin() {
        let acme = context(Some("acme"), &[], &[]);
        assert_eq!(
            status(require_merchant_access(&acme, "acme")),
            StatusCode::OK
        );
        assert_eq!(
            status(require_merchant_access(&acme, "globex")),
            StatusCode::FORBIDDEN
        );
        let admin = context(None, &[], &["admin"]);
        assert_eq!(
            status(require_merchant_access(&admin, "globex")),
            StatusCode::OK
        );
        let nobody = context(None, &[], &["viewer"]);
        assert_eq!(
            status(require_merchant_access(&nobody, "acme")),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn portal_routes_need_a_user() {
        assert_eq!(
            status(require_user(&context(None, &[], &[]))),
            StatusCode::OK
        );
        let mut key = context(Some("acme"), &["*"], &[]);
        key.identity.principal = "key:key_1".to_owned();
        assert_eq!(status(require_user(&key)), StatusCode::UNAUTHORIZED);
    }
}
