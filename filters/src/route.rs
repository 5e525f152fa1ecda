//! Route policies: the route table, one row per group, and which row a request path falls in.
//!
//! A row says everything the edge decides about a group: the paths it covers, how its callers
//! authenticate and which permission each method needs, its CORS rule, the budgets it counts
//! against and, from `[routes.<group>]`, whether it is switched on. The rows are [`ROWS`], in
//! matching order; [`RouteTable::new`] fills in what comes from the configuration (limits,
//! switches, the widget routes' CORS mode) and a reload builds a new one.
//!
//! Matching works on path segments, ignoring empty ones, so `/api/chat` and `/api/chat/`
//! are the same route (and share a rate-limit budget later). A path that matches no row
//! is answered 404 by the edge and never reaches the backend.

use std::time::Duration;

use mindshop_config::{Config, LimitsConfig, RouteSwitch, WidgetOrigins};
use mindshop_wire::{api_key, merchant};

use crate::cors::CorsPolicy;
use crate::rate_limit::Quota;

/// The route groups of the route table; also the `route_group` metric label. In the order of
/// [`ROWS`], which is the matching order: a more specific row comes before the row it narrows.
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
    /// `/api/merchants/:id/sync/webhook`: the merchant's platform, authenticated by signature.
    SyncWebhook,
    /// `/api/merchants/:id/sync/**`: product sync from the developer portal, by JWT.
    Sync,
    /// `/api/merchants/:id/**`: the developer portal, authenticated by JWT.
    Portal,
}

impl RouteGroup {
    /// Every group, in the order of [`ROWS`].
    pub const ALL: [RouteGroup; 10] = [
        Self::Health,
        Self::Ready,
        Self::Widget,
        Self::Chat,
        Self::Sessions,
        Self::Documents,
        Self::Products,
        Self::SyncWebhook,
        Self::Sync,
        Self::Portal,
    ];

    /// The metric label of the group, which is also its `[routes.<label>]` table.
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
            Self::Sync => "sync",
            Self::Portal => "portal",
        }
    }

    /// The group's row of the route table.
    pub fn row(self) -> &'static Row {
        &ROWS[self as usize]
    }

    /// How the group's callers prove who they are.
    pub fn auth(self) -> AuthKind {
        self.row().auth
    }

    /// `[routes.<group>]`, or `None` for the groups that cannot be switched off (the probes).
    fn switch(self, config: &Config) -> Option<&RouteSwitch> {
        let routes = &config.routes;
        Some(match self {
            Self::Health | Self::Ready => return None,
            Self::Widget => &routes.widget,
            Self::Chat => &routes.chat,
            Self::Sessions => &routes.sessions,
            Self::Documents => &routes.documents,
            Self::Products => &routes.products,
            Self::SyncWebhook => &routes.sync_webhook,
            Self::Sync => &routes.sync,
            Self::Portal => &routes.portal,
        })
    }
}

/// How a route's caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Nobody needs to.
    None,
    /// An API key of the merchant, holding the permission the method needs: a group cannot
    /// take keys without naming a permission for every method.
    ApiKey(Permissions),
    /// A portal JWT with access to the merchant in the path.
    Jwt,
    /// The merchant's platform: a signature over the raw body, verified by the backend, which
    /// holds the sync secret and reads the body.
    BodySignature,
}

/// The API-key permissions of a group: one for reads (GET, HEAD), one for every other method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub read: &'static str,
    pub write: &'static str,
}

impl Permissions {
    /// The permission a request with `method` needs.
    pub fn for_method(&self, method: &http::Method) -> &'static str {
        match *method {
            http::Method::GET | http::Method::HEAD => self.read,
            _ => self.write,
        }
    }
}

/// One step of a path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// This text exactly.
    Literal(&'static str),
    /// A merchant id the backend reads the same way ([`merchant::is_valid_id`]).
    MerchantId,
}

/// A path pattern: its segments, then either nothing more or anything (`rest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPattern {
    pub segments: &'static [Segment],
    /// Whether any further segments may follow (`/api/chat/**`).
    pub rest: bool,
}

/// What a budget counts a request by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedBy {
    /// The caller's credential: the API key, or the portal user.
    Credential,
    /// The client's address.
    ClientIp,
    /// The merchant in the path.
    Merchant,
}

/// Which of a group's requests a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    All,
    /// Sync writes only (see [`is_sync_write`]).
    SyncWrites,
    /// All but sync writes.
    OtherThanSyncWrites,
}

/// A budget of a row: its policy name (`RateLimit-Policy`, and the prefix of its counter's
/// key), what it counts by, which requests, and the `[limits]` key that sizes it.
#[derive(Debug, Clone, Copy)]
pub struct BudgetRule {
    pub name: &'static str,
    pub by: CountedBy,
    pub counted: Counted,
    pub limit: fn(&LimitsConfig) -> u32,
    /// Whether `limits.plan_multipliers` scales it by the merchant's plan.
    pub plan_scaled: bool,
}

/// One row of the route table, as the code defines it.
#[derive(Debug)]
pub struct Row {
    pub group: RouteGroup,
    pub paths: &'static [PathPattern],
    pub auth: AuthKind,
    /// The CORS rule; [`CorsPolicy::Merchant`] becomes [`CorsPolicy::Allowlist`] under
    /// `cors.widget_origins = "allowlist"`.
    pub cors: CorsPolicy,
    pub budgets: &'static [BudgetRule],
}

use Segment::{Literal, MerchantId};

const fn exact(segments: &'static [Segment]) -> PathPattern {
    PathPattern {
        segments,
        rest: false,
    }
}

const fn under(segments: &'static [Segment]) -> PathPattern {
    PathPattern {
        segments,
        rest: true,
    }
}

/// A budget per credential, scaled by plan.
const fn per_credential(name: &'static str, limit: fn(&LimitsConfig) -> u32) -> BudgetRule {
    BudgetRule {
        name,
        by: CountedBy::Credential,
        counted: Counted::All,
        limit,
        plan_scaled: true,
    }
}

/// A budget per client address (not scaled: one shopper is one shopper on any plan).
const fn per_address(name: &'static str) -> BudgetRule {
    BudgetRule {
        name,
        by: CountedBy::ClientIp,
        counted: Counted::All,
        limit: |limits| limits.widget_per_ip,
        plan_scaled: false,
    }
}

/// Portal users' budgets: sync writes apart (20 per minute by default), the rest together.
const PORTAL_BUDGETS: &[BudgetRule] = &[
    BudgetRule {
        name: "sync_writes",
        by: CountedBy::Credential,
        counted: Counted::SyncWrites,
        limit: |limits| limits.sync_writes,
        plan_scaled: false,
    },
    BudgetRule {
        name: "portal",
        by: CountedBy::Credential,
        counted: Counted::OtherThanSyncWrites,
        limit: |limits| limits.portal,
        plan_scaled: false,
    },
];

/// The route table, in matching order; row `i` is the group `RouteGroup::ALL[i]`.
pub const ROWS: [Row; 10] = [
    Row {
        group: RouteGroup::Health,
        paths: &[exact(&[Literal("health")])],
        auth: AuthKind::None,
        cors: CorsPolicy::None,
        budgets: &[],
    },
    Row {
        group: RouteGroup::Ready,
        paths: &[exact(&[Literal("ready")])],
        auth: AuthKind::None,
        cors: CorsPolicy::None,
        budgets: &[],
    },
    Row {
        group: RouteGroup::Widget,
        paths: &[
            exact(&[Literal("v1"), Literal("widget.js")]),
            exact(&[Literal("v1"), Literal("widget"), Literal("load")]),
        ],
        auth: AuthKind::None,
        cors: CorsPolicy::AnyOrigin,
        budgets: &[per_address("widget")],
    },
    Row {
        group: RouteGroup::Chat,
        paths: &[under(&[Literal("api"), Literal("chat")])],
        // Every chat request writes: a message, a session's history.
        auth: AuthKind::ApiKey(Permissions {
            read: "chat:write",
            write: "chat:write",
        }),
        cors: CorsPolicy::Merchant,
        budgets: &[per_credential("chat", |l| l.chat), per_address("chat_ip")],
    },
    Row {
        group: RouteGroup::Sessions,
        paths: &[under(&[Literal("api"), Literal("sessions")])],
        auth: AuthKind::ApiKey(Permissions {
            read: "sessions:read",
            write: "sessions:write",
        }),
        cors: CorsPolicy::Merchant,
        budgets: &[
            per_credential("sessions", |l| l.sessions),
            per_address("sessions_ip"),
        ],
    },
    Row {
        group: RouteGroup::Documents,
        paths: &[under(&[Literal("api"), Literal("documents")])],
        auth: AuthKind::ApiKey(Permissions {
            read: "documents:read",
            write: "documents:write",
        }),
        cors: CorsPolicy::Merchant,
        budgets: &[per_credential("documents", |l| l.documents)],
    },
    Row {
        group: RouteGroup::Products,
        paths: &[under(&[Literal("api"), Literal("products")])],
        auth: AuthKind::ApiKey(Permissions {
            read: "products:read",
            write: "products:write",
        }),
        cors: CorsPolicy::Merchant,
        budgets: &[per_credential("products", |l| l.products)],
    },
    Row {
        group: RouteGroup::SyncWebhook,
        paths: &[exact(&[
            Literal("api"),
            Literal("merchants"),
            MerchantId,
            Literal("sync"),
            Literal("webhook"),
        ])],
        auth: AuthKind::BodySignature,
        cors: CorsPolicy::None,
        // Counted once the backend has checked the signature; refused pushes count against
        // `limits.refused_per_ip` of their sender instead.
        budgets: &[BudgetRule {
            name: "sync_webhook",
            by: CountedBy::Merchant,
            counted: Counted::All,
            limit: |limits| limits.sync_webhook,
            plan_scaled: false,
        }],
    },
    Row {
        group: RouteGroup::Sync,
        paths: &[under(&[
            Literal("api"),
            Literal("merchants"),
            MerchantId,
            Literal("sync"),
        ])],
        auth: AuthKind::Jwt,
        cors: CorsPolicy::Portal,
        budgets: PORTAL_BUDGETS,
    },
    Row {
        group: RouteGroup::Portal,
        paths: &[under(&[Literal("api"), Literal("merchants"), MerchantId])],
        auth: AuthKind::Jwt,
        cors: CorsPolicy::Portal,
        budgets: PORTAL_BUDGETS,
    },
];

// Row `i` is group `i`, so a group finds its row by index.
const _: () = {
    let mut i = 0;
    while i < ROWS.len() {
        assert!(
            ROWS[i].group as usize == i,
            "ROWS is out of RouteGroup order"
        );
        assert!(
            RouteGroup::ALL[i] as usize == i,
            "RouteGroup::ALL is out of order"
        );
        i += 1;
    }
};

/// A budget of a group, sized from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub name: &'static str,
    pub by: CountedBy,
    pub counted: Counted,
    /// Before any plan multiplier.
    pub quota: Quota,
    pub plan_scaled: bool,
}

impl Budget {
    /// Whether a request with `method` to `path` counts against this budget.
    pub fn counts(&self, method: &http::Method, path: &str) -> bool {
        match self.counted {
            Counted::All => true,
            Counted::SyncWrites => is_sync_write(method, path),
            Counted::OtherThanSyncWrites => !is_sync_write(method, path),
        }
    }
}

/// A row with what the configuration says about it: the policy the gate applies.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    pub group: RouteGroup,
    pub auth: AuthKind,
    pub cors: CorsPolicy,
    pub budgets: Vec<Budget>,
    /// `routes.<group>.enabled`.
    pub enabled: bool,
    /// `routes.<group>.retry_after_secs`, for the answers while the group is disabled.
    pub retry_after_secs: u64,
}

/// The route table as the configuration fills it in: one [`RoutePolicy`] per group.
#[derive(Debug, Clone)]
pub struct RouteTable {
    policies: Vec<RoutePolicy>,
}

impl RouteTable {
    /// The table for `config`. A row whose permissions are not in the key permission
    /// vocabulary ([`api_key::PERMISSIONS`]) is an error, so no key could ever be refused or
    /// admitted by a typo.
    pub fn new(config: &Config) -> Result<Self, String> {
        let window = Duration::from_secs(config.limits.window_secs);
        let policies = ROWS
            .iter()
            .map(|row| {
                let auth = match row.auth {
                    AuthKind::ApiKey(permissions) => {
                        AuthKind::ApiKey(checked(row.group, permissions)?)
                    }
                    other => other,
                };
                let cors = match (row.cors, config.cors.widget_origins) {
                    (CorsPolicy::Merchant, WidgetOrigins::Allowlist) => CorsPolicy::Allowlist,
                    (cors, _) => cors,
                };
                let switch = row.group.switch(config);
                Ok(RoutePolicy {
                    group: row.group,
                    auth,
                    cors,
                    budgets: row
                        .budgets
                        .iter()
                        .map(|rule| Budget {
                            name: rule.name,
                            by: rule.by,
                            counted: rule.counted,
                            quota: Quota::new((rule.limit)(&config.limits), window),
                            plan_scaled: rule.plan_scaled,
                        })
                        .collect(),
                    enabled: switch.is_none_or(|s| s.enabled),
                    retry_after_secs: switch.map_or(0, |s| s.retry_after_secs),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { policies })
    }

    /// The policy of `group`.
    pub fn policy(&self, group: RouteGroup) -> &RoutePolicy {
        &self.policies[group as usize]
    }

    /// The groups switched off.
    pub fn disabled(&self) -> impl Iterator<Item = RouteGroup> + '_ {
        self.policies.iter().filter(|p| !p.enabled).map(|p| p.group)
    }
}

/// `permissions` with `<resource>` shorthands expanded, each one known.
fn checked(group: RouteGroup, permissions: Permissions) -> Result<Permissions, String> {
    let known = |permission: &'static str| {
        api_key::PERMISSIONS
            .iter()
            .find(|p| **p == permission)
            .copied()
            .ok_or_else(|| {
                format!(
                    "route group {}: permission {permission:?} is not one a key can hold",
                    group.label()
                )
            })
    };
    Ok(Permissions {
        read: known(permissions.read)?,
        write: known(permissions.write)?,
    })
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
    // Without collecting: every portal and sync request asks, once per budget of its row.
    let mut tail = path.split('/').filter(|s| !s.is_empty()).skip(3);
    let tail = (tail.next(), tail.next(), tail.next());
    let is_post = *method == http::Method::POST;
    match tail {
        (Some("sync"), Some("configure"), None) => is_post || *method == http::Method::PUT,
        (Some("sync"), Some("trigger" | "upload"), None) => is_post,
        _ => false,
    }
}

/// A matched route: its group and, for merchant routes, the merchant id in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'p> {
    pub group: RouteGroup,
    pub merchant_id: Option<&'p str>,
}

/// Longest path, in segments, any pattern names; the rest only matters to `rest` patterns.
const MAX_PATTERN_SEGMENTS: usize = 5;

/// The row `path` (without the query) falls in, or `None` when no route exists.
pub fn classify(path: &str) -> Option<Route<'_>> {
    // One more segment than any pattern has tells "exactly" from "and more".
    let mut segments = [""; MAX_PATTERN_SEGMENTS + 1];
    let mut count = 0;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if count == segments.len() {
            break;
        }
        segments[count] = segment;
        count += 1;
    }
    let segments = &segments[..count];
    ROWS.iter().find_map(|row| {
        row.paths.iter().find_map(|pattern| {
            matches(pattern, segments).map(|merchant_id| Route {
                group: row.group,
                merchant_id,
            })
        })
    })
}

/// Whether `segments` match `pattern`: `Some` with the merchant id it names, if any.
fn matches<'p>(pattern: &PathPattern, segments: &[&'p str]) -> Option<Option<&'p str>> {
    let wanted = pattern.segments;
    let fits = if pattern.rest {
        segments.len() >= wanted.len()
    } else {
        segments.len() == wanted.len()
    };
    if !fits {
        return None;
    }
    let mut merchant_id = None;
    for (want, &got) in wanted.iter().zip(segments) {
        match want {
            Literal(text) if *text == got => {}
            // An id that could be escaped or mean something else to the backend has no route.
            MerchantId if merchant::is_valid_id(got) => merchant_id = Some(got),
            _ => return None,
        }
    }
    Some(merchant_id)
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
        assert_eq!(RouteGroup::Widget.row().cors, CorsPolicy::AnyOrigin);
        assert_eq!(group("/api/chat"), Some(RouteGroup::Chat));
        assert_eq!(group("/api/chat/sessions"), Some(RouteGroup::Chat));
        assert_eq!(group("/api/sessions/s1/end"), Some(RouteGroup::Sessions));
        assert_eq!(group("/api/documents/d1"), Some(RouteGroup::Documents));
        assert_eq!(group("/api/products"), Some(RouteGroup::Products));
        assert_eq!(
            group("/api/merchants/m1/sync/status"),
            Some(RouteGroup::Sync)
        );
        assert_eq!(group("/api/merchants/m1/sync"), Some(RouteGroup::Sync));
        assert_eq!(group("/api/merchants/m1"), Some(RouteGroup::Portal));
        assert_eq!(group("/api/merchants/m1/keys"), Some(RouteGroup::Portal));
        assert_eq!(
            group("/api/merchants/m1/sync/webhook"),
            Some(RouteGroup::SyncWebhook)
        );
        assert_eq!(
            group("/api/merchants/m1/sync/webhook/extra"),
            Some(RouteGroup::Sync)
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
        let needs = |group: RouteGroup, method: Method| match group.auth() {
            AuthKind::ApiKey(permissions) => Some(permissions.for_method(&method)),
            _ => None,
        };
        assert_eq!(
            needs(RouteGroup::Documents, Method::GET),
            Some("documents:read")
        );
        assert_eq!(
            needs(RouteGroup::Documents, Method::DELETE),
            Some("documents:write")
        );
        assert_eq!(needs(RouteGroup::Chat, Method::POST), Some("chat:write"));
        assert_eq!(needs(RouteGroup::Chat, Method::GET), Some("chat:write"));
        assert_eq!(needs(RouteGroup::Portal, Method::GET), None);
    }

    #[test]
    fn every_key_permission_of_the_table_is_one_a_key_can_hold() {
        let table = RouteTable::new(&Config::default()).expect("the default table");
        for group in RouteGroup::ALL {
            if let AuthKind::ApiKey(permissions) = table.policy(group).auth {
                for permission in [permissions.read, permissions.write] {
                    assert!(api_key::PERMISSIONS.contains(&permission), "{permission}");
                }
            }
        }
        let unknown = Permissions {
            read: "documents:read",
            write: "documents:writ",
        };
        let error = checked(RouteGroup::Documents, unknown).unwrap_err();
        assert!(error.contains("\"documents:writ\""), "{error}");
    }

    #[test]
    fn the_configuration_fills_in_limits_switches_and_the_widget_cors_mode() {
        let mut config = Config::default();
        config.limits.documents = 7;
        config.limits.window_secs = 10;
        config.routes.sync.enabled = false;
        config.routes.sync.retry_after_secs = 120;
        config.cors.widget_origins = WidgetOrigins::Allowlist;
        let table = RouteTable::new(&config).expect("a table");

        let documents = table.policy(RouteGroup::Documents);
        assert_eq!(
            documents.budgets[0].quota,
            Quota::new(7, Duration::from_secs(10))
        );
        assert_eq!(documents.cors, CorsPolicy::Allowlist);
        assert_eq!(table.policy(RouteGroup::Portal).cors, CorsPolicy::Portal);
        assert_eq!(table.policy(RouteGroup::Widget).cors, CorsPolicy::AnyOrigin);

        let sync = table.policy(RouteGroup::Sync);
        assert!(!sync.enabled);
        assert_eq!(sync.retry_after_secs, 120);
        assert_eq!(table.disabled().collect::<Vec<_>>(), [RouteGroup::Sync]);
        assert!(table.policy(RouteGroup::Health).enabled);
    }

    #[test]
    fn portal_users_count_sync_writes_apart_from_the_rest() {
        use http::Method;
        let table = RouteTable::new(&Config::default()).expect("a table");
        let counted = |method: Method, path: &str| -> Vec<&str> {
            let group = classify(path).expect("a route").group;
            table
                .policy(group)
                .budgets
                .iter()
                .filter(|b| b.counts(&method, path))
                .map(|b| b.name)
                .collect()
        };
        assert_eq!(
            counted(Method::POST, "/api/merchants/m1/sync/trigger"),
            ["sync_writes"]
        );
        assert_eq!(
            counted(Method::GET, "/api/merchants/m1/sync/status"),
            ["portal"]
        );
        assert_eq!(counted(Method::GET, "/api/merchants/m1/keys"), ["portal"]);
        assert_eq!(counted(Method::POST, "/api/chat"), ["chat", "chat_ip"]);
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
        /// exactly `…/sync/webhook`, product sync (JWT) for the rest of `…/sync/**`, the portal
        /// (JWT) for everything else.
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
            let (group, auth) = match tail.first().map(String::as_str) {
                _ if tail == ["sync", "webhook"] => {
                    (RouteGroup::SyncWebhook, AuthKind::BodySignature)
                }
                Some("sync") => (RouteGroup::Sync, AuthKind::Jwt),
                _ => (RouteGroup::Portal, AuthKind::Jwt),
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
            let AuthKind::ApiKey(permissions) = group.auth() else {
                return Err(TestCaseError::fail(format!("{group:?} takes no API key")));
            };
            let permission = permissions.for_method(&method);
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
