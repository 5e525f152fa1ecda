//! Route policies: which group a request path belongs to.
//!
//! Matching works on path segments, ignoring empty ones, so `/api/chat` and `/api/chat/`
//! are the same route (and share a rate-limit budget later). A path that matches no policy
//! is answered 404 by the edge and never reaches the backend.

use mindshop_wire::merchant;

use crate::cors::CorsPolicy;

/// The route groups of the architecture's policy table; also the `route_group` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    /// `/health`: liveness, answered by the edge.
    Health,
    /// `/ready`: readiness of the backend and database, forwarded to the backend.
    Ready,
    /// `/v1/widget.js` and the widget's load reports (`/v1/widget/load`), answered by the edge.
    Widget,
    /// `/api/chat/**`
    Chat,
    /// `/api/sessions/**`
    Sessions,
    /// `/api/documents/**`
    Documents,
    /// `/api/products/**`
    Products,
    /// `/api/merchants/:id/sync/webhook`: the merchant's platform, authenticated by HMAC.
    SyncWebhook,
    /// `/api/merchants/:id/**`: the developer portal, authenticated by JWT.
    Portal,
}

impl RouteGroup {
    /// The metric label of the group.
    pub fn label(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Ready => "ready",
            Self::Widget => "widget",
            Self::Chat => "chat",
            Self::Sessions => "sessions",
            Self::Documents => "documents",
            Self::Products => "products",
            Self::SyncWebhook => "sync_webhook",
            Self::Portal => "portal",
        }
    }
}

/// How a route's caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Nobody needs to.
    None,
    /// An API key of the merchant.
    ApiKey,
    /// A portal JWT with access to the merchant in the path.
    Jwt,
    /// The merchant's platform: an HMAC of the raw body, verified by the backend, which holds
    /// the sync secret and reads the body.
    BodySignature,
}

impl RouteGroup {
    pub fn auth(self) -> AuthKind {
        match self {
            Self::Health | Self::Ready | Self::Widget => AuthKind::None,
            Self::Chat | Self::Sessions | Self::Documents | Self::Products => AuthKind::ApiKey,
            Self::SyncWebhook => AuthKind::BodySignature,
            Self::Portal => AuthKind::Jwt,
        }
    }

    pub fn cors(self) -> CorsPolicy {
        match self {
            Self::Health | Self::Ready | Self::SyncWebhook => CorsPolicy::None,
            Self::Chat | Self::Sessions | Self::Documents | Self::Products => CorsPolicy::Merchant,
            Self::Portal => CorsPolicy::Portal,
            Self::Widget => CorsPolicy::AnyOrigin,
        }
    }

    /// The API-key permission a request needs: reads need `<resource>:read`, other methods
    /// `<resource>:write`; chat needs `chat:write`.
    pub fn required_permission(self, method: &http::Method) -> Option<&'static str> {
        let read = matches!(*method, http::Method::GET | http::Method::HEAD);
        Some(match (self, read) {
            (Self::Chat, _) => "chat:write",
            (Self::Sessions, true) => "sessions:read",
            (Self::Sessions, false) => "sessions:write",
            (Self::Documents, true) => "documents:read",
            (Self::Documents, false) => "documents:write",
            (Self::Products, true) => "products:read",
            (Self::Products, false) => "products:write",
            _ => return None,
        })
    }
}

/// The path with empty segments removed (`//api//chat/` → `/api/chat`), or `None` when it is
/// already so. The edge forwards this form, so the backend routes exactly what the edge
/// classified.
pub fn canonical_path(path: &str) -> Option<String> {
    let canonical = path.len() == 1 || (!path.contains("//") && !path.ends_with('/'));
    if canonical {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    Some(format!("/{}", segments.join("/")))
}

/// Sync writes, limited apart (20 per minute per user by default) whether or not the backend
/// route exists yet: `POST|PUT …/sync/configure`, `POST …/sync/trigger`, `POST …/sync/upload`.
pub fn is_sync_write(method: &http::Method, path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let tail: Vec<&str> = segments.by_ref().skip(3).collect();
    let is_post = *method == http::Method::POST;
    match tail.as_slice() {
        ["sync", "configure"] => is_post || *method == http::Method::PUT,
        ["sync", "trigger"] | ["sync", "upload"] => is_post,
        _ => false,
    }
}

/// A matched route: its group and, for merchant routes, the merchant id in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'p> {
    pub group: RouteGroup,
    pub merchant_id: Option<&'p str>,
}

/// The policy for `path` (without the query), or `None` when no route exists.
pub fn classify(path: &str) -> Option<Route<'_>> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let group = |group| {
        Some(Route {
            group,
            merchant_id: None,
        })
    };
    match (segments.next(), segments.next()) {
        (Some("health"), None) => group(RouteGroup::Health),
        (Some("ready"), None) => group(RouteGroup::Ready),
        (Some("v1"), Some("widget.js")) if segments.next().is_none() => group(RouteGroup::Widget),
        (Some("v1"), Some("widget")) => match (segments.next(), segments.next()) {
            (Some("load"), None) => group(RouteGroup::Widget),
            _ => None,
        },
        (Some("api"), Some("chat")) => group(RouteGroup::Chat),
        (Some("api"), Some("sessions")) => group(RouteGroup::Sessions),
        (Some("api"), Some("documents")) => group(RouteGroup::Documents),
        (Some("api"), Some("products")) => group(RouteGroup::Products),
        (Some("api"), Some("merchants")) => {
            // An id that could be escaped or mean something else to the backend has no route.
            let merchant_id = segments.next().filter(|id| merchant::is_valid_id(id))?;
            let rest: [Option<&str>; 3] = [segments.next(), segments.next(), segments.next()];
            let group = match rest {
                [Some("sync"), Some("webhook"), None] => RouteGroup::SyncWebhook,
                _ => RouteGroup::Portal,
            };
            Some(Route {
                group,
                merchant_id: Some(merchant_id),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(path: &str) -> Option<RouteGroup> {
        classify(path).map(|r| r.group)
    }

    #[test]
    fn groups_follow_the_policy_table() {
        assert_eq!(group("/health"), Some(RouteGroup::Health));
        assert_eq!(group("/ready"), Some(RouteGroup::Ready));
        assert_eq!(group("/v1/widget.js"), Some(RouteGroup::Widget));
        assert_eq!(group("/v1/widget/load"), Some(RouteGroup::Widget));
        assert_eq!(RouteGroup::Widget.cors(), CorsPolicy::AnyOrigin);
        assert_eq!(group("/api/chat"), Some(RouteGroup::Chat));
        assert_eq!(group("/api/chat/sessions"), Some(RouteGroup::Chat));
        assert_eq!(group("/api/sessions/s1/end"), Some(RouteGroup::Sessions));
        assert_eq!(group("/api/documents/d1"), Some(RouteGroup::Documents));
        assert_eq!(group("/api/products"), Some(RouteGroup::Products));
        assert_eq!(
            group("/api/merchants/m1/sync/status"),
            Some(RouteGroup::Portal)
        );
        assert_eq!(group("/api/merchants/m1"), Some(RouteGroup::Portal));
        assert_eq!(
            group("/api/merchants/m1/sync/webhook"),
            Some(RouteGroup::SyncWebhook)
        );
        assert_eq!(
            group("/api/merchants/m1/sync/webhook/extra"),
            Some(RouteGroup::Portal)
        );
    }

    #[test]
    fn trailing_and_doubled_slashes_do_not_change_the_route() {
        assert_eq!(classify("/api/chat"), classify("/api/chat/"));
        assert_eq!(classify("/api/chat"), classify("//api//chat"));
        assert_eq!(
            classify("/api/merchants/m1/sync/webhook/").map(|r| r.merchant_id),
            Some(Some("m1"))
        );
    }

    #[test]
    fn canonical_paths_drop_empty_segments() {
        assert_eq!(canonical_path("/api/documents"), None);
        assert_eq!(canonical_path("/"), None);
        assert_eq!(
            canonical_path("/api/documents/").as_deref(),
            Some("/api/documents")
        );
        assert_eq!(canonical_path("//api//chat/").as_deref(), Some("/api/chat"));
    }

    #[test]
    fn sync_writes_are_recognised_by_method_and_path() {
        use http::Method;
        let path = "/api/merchants/m1/sync/configure";
        assert!(is_sync_write(&Method::POST, path));
        assert!(is_sync_write(
            &Method::PUT,
            "/api/merchants/m1/sync/configure/"
        ));
        assert!(!is_sync_write(&Method::GET, path));
        assert!(is_sync_write(
            &Method::POST,
            "/api/merchants/m1/sync/trigger"
        ));
        assert!(is_sync_write(
            &Method::POST,
            "/api/merchants/m1/sync/upload"
        ));
        assert!(!is_sync_write(
            &Method::POST,
            "/api/merchants/m1/sync/webhook"
        ));
        assert!(!is_sync_write(
            &Method::GET,
            "/api/merchants/m1/sync/status"
        ));
    }

    #[test]
    fn permissions_follow_the_method() {
        use http::Method;
        assert_eq!(
            RouteGroup::Documents.required_permission(&Method::GET),
            Some("documents:read")
        );
        assert_eq!(
            RouteGroup::Documents.required_permission(&Method::DELETE),
            Some("documents:write")
        );
        assert_eq!(
            RouteGroup::Chat.required_permission(&Method::POST),
            Some("chat:write")
        );
        assert_eq!(RouteGroup::Portal.required_permission(&Method::GET), None);
    }

    #[test]
    fn unknown_paths_have_no_route() {
        for path in [
            "/",
            "/nope",
            "/api",
            "/api/unknown",
            "/api/merchants",
            "/healthz",
            "/health/x",
            "/v1",
            "/v1/widget.js/x",
            "/v1/widget",
            "/v1/widget/load/x",
        ] {
            assert_eq!(classify(path), None, "{path}");
        }
    }
}

#[cfg(test)]
mod properties {
    use http::Method;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    const METHODS: [Method; 6] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];

    /// A path segment: mostly words the policy table knows, sometimes anything without `/`.
    fn segment() -> impl Strategy<Value = String> {
        let known = select(vec![
            "health",
            "ready",
            "v1",
            "widget.js",
            "widget",
            "load",
            "api",
            "chat",
            "sessions",
            "documents",
            "products",
            "merchants",
            "m1",
            "acme_shop-2",
            "sync",
            "webhook",
            "configure",
            "trigger",
            "upload",
            "status",
        ]);
        prop_oneof![3 => known.prop_map(str::to_owned), 1 => "[^/]{1,8}"]
    }

    /// `segments` joined the way a sloppy client might: one to three slashes before each,
    /// up to two after the last.
    fn sloppy(segments: &[(String, usize)], trailing: usize) -> String {
        let mut path = String::new();
        for (segment, slashes) in segments {
            path.push_str(&"/".repeat(*slashes));
            path.push_str(segment);
        }
        path.push_str(&"/".repeat(trailing));
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    fn tidy(segments: &[(String, usize)]) -> String {
        let names: Vec<&str> = segments.iter().map(|(s, _)| s.as_str()).collect();
        format!("/{}", names.join("/"))
    }

    fn sloppy_segments() -> impl Strategy<Value = Vec<(String, usize)>> {
        prop::collection::vec((segment(), 1usize..=3), 0..7)
    }

    proptest! {
        /// Whatever a client sends as a path, the edge decides without panicking, and the path
        /// it forwards is canonical and routes where the original did.
        #[test]
        fn any_path_is_classified_like_its_canonical_form(path in any::<String>()) {
            let canonical = canonical_path(&path).unwrap_or_else(|| path.clone());
            prop_assert_eq!(canonical_path(&canonical), None, "not idempotent: {:?}", canonical);
            prop_assert_eq!(classify(&canonical), classify(&path));
            for method in &METHODS {
                prop_assert_eq!(is_sync_write(method, &canonical), is_sync_write(method, &path));
            }
        }

        /// Doubled and trailing slashes change neither the route, nor the merchant, nor the
        /// sync-write budget; the forwarded path is the segments joined by single slashes.
        #[test]
        fn doubled_and_trailing_slashes_do_not_change_the_route(
            segments in sloppy_segments(),
            trailing in 0usize..=2,
        ) {
            let path = sloppy(&segments, trailing);
            let tidy = tidy(&segments);
            let forwarded = canonical_path(&path).unwrap_or_else(|| path.clone());
            prop_assert_eq!(&forwarded, &tidy);
            prop_assert_eq!(classify(&path), classify(&tidy));
            for method in &METHODS {
                prop_assert_eq!(is_sync_write(method, &path), is_sync_write(method, &tidy));
            }
        }

        /// `/api/merchants/<id>/…` belongs to the merchant `<id>`: the platform's webhook for
        /// exactly `…/sync/webhook`, the portal (JWT) for everything else.
        #[test]
        fn merchant_paths_carry_their_merchant_id(
            id in "[A-Za-z0-9_-]{1,64}",
            tail in prop::collection::vec(segment(), 0..4),
        ) {
            let path = format!("/api/merchants/{id}/{}", tail.join("/"));
            let route = classify(&path);
            prop_assert!(route.is_some(), "{} has no route", path);
            let route = route.unwrap();
            prop_assert_eq!(route.merchant_id, Some(id.as_str()));
            let webhook = tail == ["sync", "webhook"];
            let (group, auth) = if webhook {
                (RouteGroup::SyncWebhook, AuthKind::BodySignature)
            } else {
                (RouteGroup::Portal, AuthKind::Jwt)
            };
            prop_assert_eq!(route.group, group);
            prop_assert_eq!(route.group.auth(), auth);
        }

        /// An id the backend could read differently (escapes, dots, spaces, too long) has no
        /// route at all, so it never reaches the backend.
        #[test]
        fn merchant_paths_with_unusable_ids_have_no_route(
            id in prop_oneof![
                "[^/]{1,12}".prop_filter("a valid id", |id| !merchant::is_valid_id(id)),
                "[A-Za-z0-9_-]{65,80}",
            ],
            tail in prop::collection::vec(segment(), 0..3),
        ) {
            let path = format!("/api/merchants/{id}/{}", tail.join("/"));
            prop_assert_eq!(classify(&path), None);
        }

        /// The key-authenticated groups cover everything under their prefix, with no merchant
        /// in the path, and ask for the read permission only for GET and HEAD.
        #[test]
        fn key_routes_cover_their_whole_prefix(
            (prefix, group) in select(vec![
                ("chat", RouteGroup::Chat),
                ("sessions", RouteGroup::Sessions),
                ("documents", RouteGroup::Documents),
                ("products", RouteGroup::Products),
            ]),
            tail in prop::collection::vec(segment(), 0..4),
            method in select(METHODS.to_vec()),
        ) {
            let path = format!("/api/{prefix}/{}", tail.join("/"));
            prop_assert_eq!(classify(&path), Some(Route { group, merchant_id: None }));
            prop_assert_eq!(group.auth(), AuthKind::ApiKey);
            let permission = group.required_permission(&method).unwrap_or_default();
            let reads = method == Method::GET || method == Method::HEAD;
            let expected = match (group, reads) {
                (RouteGroup::Chat, _) => "chat:write".to_owned(),
                (_, true) => format!("{prefix}:read"),
                (_, false) => format!("{prefix}:write"),
            };
            prop_assert_eq!(permission, expected);
        }

        /// A path whose first segment is not one of the table's has no route (the edge's 404).
        #[test]
        fn unknown_first_segments_have_no_route(
            first in segment().prop_filter("a known prefix", |s| {
                !matches!(s.as_str(), "health" | "ready" | "v1" | "api")
            }),
            rest in prop::collection::vec(segment(), 0..4),
        ) {
            let path = format!("/{first}/{}", rest.join("/"));
            prop_assert_eq!(classify(&path), None);
        }

        /// The sync-write budget applies to exactly `POST|PUT …/sync/configure` and
        /// `POST …/sync/trigger|upload`, however the slashes are written.
        #[test]
        fn sync_writes_are_exactly_the_documented_ones(
            id in "[a-z0-9]{1,8}",
            action in segment(),
            extra in prop::option::of(segment()),
            slashes in prop::collection::vec(1usize..=3, 6),
            trailing in 0usize..=2,
            method in select(METHODS.to_vec()),
        ) {
            let mut names: Vec<String> = vec!["api".into(), "merchants".into(), id, "sync".into()];
            names.push(action.clone());
            names.extend(extra.clone());
            let segments: Vec<(String, usize)> = names.into_iter().zip(slashes).collect();
            let path = sloppy(&segments, trailing);
            let expected = extra.is_none()
                && match action.as_str() {
                    "configure" => method == Method::POST || method == Method::PUT,
                    "trigger" | "upload" => method == Method::POST,
                    _ => false,
                };
            prop_assert_eq!(is_sync_write(&method, &path), expected, "{} {}", method, path);
        }
    }
}
