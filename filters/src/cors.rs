//! CORS: which origins may read which routes' answers, and the headers that say so.
//!
//! - Widget routes admit the origins within the allowed domains of the merchant that owns the
//!   API key, plus `cors.allowed_origins`. The key's merchant is only known after the key is
//!   resolved, so [`CorsPolicy::Merchant`] is decided in two steps: preflights and answers to
//!   unauthenticated requests admit an origin that *some* merchant allows (the browser must be
//!   able to read a 401); the actual request is held to the key's own merchant.
//! - Under `cors.widget_origins = "allowlist"` the widget routes admit `cors.allowed_origins`
//!   and nothing else ([`CorsPolicy::Allowlist`]): the original design's global whitelist.
//! - Portal routes admit `cors.portal_origins`; `/v1/widget.js` admits any origin.
//! - A request without `Origin` is not a CORS request and passes.

use http::HeaderValue;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use mindshop_wire::origin::Origin;

use crate::{HeaderList, Rejection};

/// Methods a preflight may ask for.
pub const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a preflight may ask for.
pub const ALLOW_HEADERS: &str = "Content-Type, Authorization, X-Request-ID, X-Merchant-ID, \
     X-User-ID, X-Impersonation-Token, X-API-Key";
/// Response headers a page's script may read.
pub const EXPOSE_HEADERS: &str = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, \
     X-Request-ID, X-Impersonating, X-Impersonated-By, RateLimit, RateLimit-Policy, Retry-After";

/// The CORS rule of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Not meant for browsers: no CORS headers, origins not checked.
    None,
    /// Any origin, without credentials (`/v1/widget.js`).
    AnyOrigin,
    /// `cors.portal_origins`.
    Portal,
    /// The key's merchant's domains plus `cors.allowed_origins`.
    Merchant,
    /// `cors.allowed_origins` only, whatever the merchants list: the widget routes under
    /// `cors.widget_origins = "allowlist"`.
    Allowlist,
}

/// Why an origin was refused; the `reason` label of `mindshop_cors_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsRefusal {
    /// Not `scheme://host[:port]` (`null`, a path, …).
    Malformed,
    /// Well formed, but not admitted by the route's rule.
    NotAllowed,
}

impl CorsRefusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_origin",
            Self::NotAllowed => "origin_not_allowed",
        }
    }

    pub fn rejection(self, origin: &str) -> Rejection {
        Rejection::new(
            403,
            "CORS_ORIGIN_NOT_ALLOWED",
            format!(
                "Origin {origin:?} is not allowed; add its domain to the merchant's allowed \
                 domains"
            ),
        )
    }
}

/// The origins configured globally, parsed once.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins {
    widget: Vec<Origin>,
    portal: Vec<Origin>,
}

impl CorsOrigins {
    /// From `cors.allowed_origins` and `cors.portal_origins` (validated by the config).
    pub fn new(allowed: &[String], portal: &[String]) -> Self {
        let parse = |list: &[String]| list.iter().filter_map(|o| Origin::parse(o)).collect();
        Self {
            widget: parse(allowed),
            portal: parse(portal),
        }
    }

    /// Whether the global list admits `origin` on widget routes.
    pub fn widget_admits(&self, origin: &Origin) -> bool {
        self.widget.contains(origin)
    }

    /// Whether `cors.portal_origins` admits `origin`.
    pub fn portal_admits(&self, origin: &Origin) -> bool {
        self.portal.contains(origin)
    }
}

/// Whether `origin` is within one of `domains` (a merchant's allowed domains, normalized).
/// Any scheme and port of an allowed host is admitted: merchants list host names.
pub fn domains_admit(domains: &[String], origin: &Origin) -> bool {
    domains.iter().any(|domain| origin.host_within(domain))
}

/// Parses an `Origin` header value.
pub fn parse_origin(value: &[u8]) -> Result<Origin, CorsRefusal> {
    std::str::from_utf8(value)
        .ok()
        .and_then(Origin::parse)
        .ok_or(CorsRefusal::Malformed)
}

/// The headers of an admitted answer (the actual request or an early answer); `origin` is
/// echoed in `Access-Control-Allow-Origin` except under [`CorsPolicy::AnyOrigin`].
pub fn allow_headers(policy: CorsPolicy, origin: &HeaderValue) -> HeaderList {
    let mut headers = Vec::with_capacity(4);
    append_allow_headers(policy, origin, &mut headers);
    headers
}

/// [`allow_headers`], appended to `out` (the edge adds them to every admitted request's list).
pub fn append_allow_headers(policy: CorsPolicy, origin: &HeaderValue, out: &mut HeaderList) {
    let expose = HeaderValue::from_static(EXPOSE_HEADERS);
    match policy {
        CorsPolicy::None => {}
        CorsPolicy::AnyOrigin => out.extend([
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (ACCESS_CONTROL_EXPOSE_HEADERS, expose),
        ]),
        CorsPolicy::Portal | CorsPolicy::Merchant | CorsPolicy::Allowlist => out.extend([
            (ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
            (
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ),
            (ACCESS_CONTROL_EXPOSE_HEADERS, expose),
            (VARY, HeaderValue::from_static("Origin")),
        ]),
    }
}

/// The headers of a 204 preflight answer for an admitted origin.
pub fn preflight_headers(
    policy: CorsPolicy,
    origin: &HeaderValue,
    max_age_secs: u64,
) -> HeaderList {
    let mut headers = allow_headers(policy, origin);
    headers.retain(|(name, _)| *name != ACCESS_CONTROL_EXPOSE_HEADERS);
    headers.extend([
        (
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        ),
        (
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        ),
        (ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age_secs)),
    ]);
    if !headers.iter().any(|(name, _)| *name == VARY) {
        headers.push((VARY, HeaderValue::from_static("Origin")));
    }
    headers
}

/// Whether a request is a preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &http::Method, origin: bool, request_method: bool) -> bool {
    method == http::Method::OPTIONS && origin && request_method
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(value: &str) -> Origin {
        parse_origin(value.as_bytes()).unwrap()
    }

    #[test]
    fn merchant_domains_admit_their_hosts_and_subdomains_only() {
        let domains = vec!["merchant-store.com".to_owned()];
        assert!(domains_admit(
            &domains,
            &origin("https://merchant-store.com")
        ));
        assert!(domains_admit(
            &domains,
            &origin("https://shop.merchant-store.com")
        ));
        assert!(!domains_admit(
            &domains,
            &origin("https://merchant-store.com.evil.io")
        ));
        assert!(!domains_admit(
            &domains,
            &origin("https://evilmerchant-store.com")
        ));
        assert_eq!(parse_origin(b"null"), Err(CorsRefusal::Malformed));
    }

    #[test]
    fn global_origins_match_scheme_host_and_port_exactly() {
        let origins = CorsOrigins::new(&["https://staging.example:8443".to_owned()], &[]);
        assert!(origins.widget_admits(&origin("https://staging.example:8443")));
        assert!(!origins.widget_admits(&origin("http://staging.example:8443")));
        assert!(!origins.widget_admits(&origin("https://staging.example")));
        assert!(!origins.portal_admits(&origin("https://staging.example:8443")));
    }

    #[test]
    fn preflight_headers_name_methods_headers_and_age() {
        let a_com = HeaderValue::from_static("https://a.com");
        let headers = preflight_headers(CorsPolicy::Merchant, &a_com, 600);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(get("access-control-allow-origin"), Some("https://a.com"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("vary"), Some("Origin"));
        assert_eq!(get("access-control-expose-headers"), None);
        for header in [
            "X-API-Key",
            "X-Impersonation-Token",
            "Authorization",
            "X-Request-ID",
        ] {
            assert!(
                get("access-control-allow-headers")
                    .unwrap()
                    .contains(header)
            );
        }
        let any = allow_headers(CorsPolicy::AnyOrigin, &a_com);
        assert_eq!(
            any[0],
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"))
        );
        assert!(
            !any.iter()
                .any(|(n, _)| n == ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );
    }
}
