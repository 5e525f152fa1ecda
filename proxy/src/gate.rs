//! The admission steps of the pipeline, after the route is known: the route's switch, CORS,
//! authentication, authorization and rate limits, in the architecture's order.
//! [`Gate::admit`] takes a plain view of the request and returns either the identity to
//! forward (with the headers every answer owes) or the early answer to send.
//!
//! A [`Gate`] is built from one configuration and never changes; a reload builds another. What
//! must outlive a reload — the key cache and the rate-limit counters — is in [`Stores`],
//! which every gate shares.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::{HeaderValue, Method};
use mindshop_config::{Config, JwtAlgorithm, LimitStore, LimitsConfig, OnLimitStoreError};
use mindshop_filters::cors::{self, CorsOrigins, CorsPolicy, CorsRefusal};
use mindshop_filters::credential::{self, Credential};
use mindshop_filters::jwt::{JwtSettings, JwtVerifier};
use mindshop_filters::rate_limit::{
    LimiterError, MemoryLimiter, Quota, RateDecision, RateLimiter, RedisLimiter,
};
use mindshop_filters::route::{
    AuthKind, CountedBy, Permissions, Route, RouteGroup, RoutePolicy, RouteTable,
};
use mindshop_wire::api_key;
use mindshop_wire::envelope::Failure;
use mindshop_wire::identity::{EncodedIdentity, Identity};
use mindshop_wire::merchant;
use mindshop_wire::origin::Origin;
use serde_json::json;
use smallvec::SmallVec;

use crate::directory::{CachedDirectory, Directory, KnownKey};
use crate::metrics::EDGE_METRICS;

/// Headers an answer owes the client (CORS, rate limits).
pub(crate) type OwedHeaders = mindshop_filters::HeaderList;

/// What the gate needs to know about a request.
#[derive(Debug)]
pub(crate) struct RequestView<'r> {
    pub method: &'r Method,
    pub path: &'r str,
    pub route: Route<'r>,
    pub origin: Option<&'r HeaderValue>,
    /// Whether `Access-Control-Request-Method` is present (a preflight, with `OPTIONS`).
    pub asks_preflight: bool,
    pub api_key: Option<&'r [u8]>,
    pub authorization: Option<&'r [u8]>,
    pub client_ip: Option<IpAddr>,
}

/// The gate's verdict.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Forward with this identity; add these headers to the backend's answer.
    Admit {
        identity: Arc<EncodedIdentity>,
        headers: OwedHeaders,
        /// A platform push: counted once the backend has said whether its signature held
        /// ([`Gate::charge_push`]); boxed, as only pushes carry one.
        push: Option<Box<PushCharge>>,
    },
    /// Answer now: a status, an envelope (none for a 204 preflight) and headers.
    Answer {
        status: u16,
        failure: Option<Failure>,
        headers: OwedHeaders,
    },
}

impl Verdict {
    fn refuse(status: u16, failure: Failure, headers: OwedHeaders) -> Self {
        Self::Answer {
            status,
            failure: Some(failure),
            headers,
        }
    }
}

/// What every gate of a process shares, across reloads: the key cache and the rate-limit
/// counters.
pub(crate) struct Stores {
    directory: CachedDirectory,
    limiter: Limiter,
}

impl Stores {
    /// The key cache in front of `directory`, and the limit store `limits.store` names (its
    /// choice, and Redis's address, are fixed until the process restarts).
    pub fn new(config: &Config, directory: Arc<dyn Directory>) -> Result<Self, String> {
        let limiter = match (config.limits.store, &config.redis.url) {
            (LimitStore::Redis, Some(url)) => Limiter::Redis(
                // Connects on first use, on the edge's own runtime.
                RedisLimiter::connect_lazy(url.expose(), &config.redis.key_prefix)
                    .map_err(|e| format!("redis.url: {e}"))?
                    .with_lease_max(config.limits.redis_lease_max),
            ),
            _ => Limiter::Memory(MemoryLimiter::new()),
        };
        Ok(Self {
            directory: CachedDirectory::new(
                directory,
                Duration::from_secs(config.auth.key_cache_ttl_secs),
            ),
            limiter,
        })
    }

    /// Applies `auth.key_cache_ttl_secs` of a new configuration.
    pub fn set_key_cache_ttl(&self, config: &Config) {
        self.directory
            .set_ttl(Duration::from_secs(config.auth.key_cache_ttl_secs));
    }
}

/// Everything the admission steps are configured with.
pub(crate) struct Gate {
    stores: Arc<Stores>,
    routes: RouteTable,
    jwt: JwtVerifier,
    origins: CorsOrigins,
    max_age_secs: u64,
    limits: LimitsConfig,
    window: Duration,
}

impl Gate {
    /// The gate of `config` over `stores`. Reads the JWT verification key (`auth.jwt_secret`
    /// or the secret file in `data.dir`, or `auth.jwt_public_key_file`).
    pub fn new(config: &Config, stores: Arc<Stores>) -> Result<Self, String> {
        let jwt_key = jwt_key(config)?;
        let jwt = JwtVerifier::new(JwtSettings {
            algorithm: config.auth.jwt_algorithm,
            key: &jwt_key,
            issuer: config.auth.jwt_issuer.as_deref(),
            audience: config.auth.jwt_audience.as_deref(),
            leeway_secs: config.auth.jwt_leeway_secs,
            max_lifetime_secs: config.auth.jwt_max_lifetime_secs,
        })?;
        Ok(Self {
            stores,
            routes: RouteTable::new(config)?,
            jwt,
            origins: CorsOrigins::new(&config.cors.allowed_origins, &config.cors.portal_origins),
            max_age_secs: config.cors.max_age_secs,
            window: Duration::from_secs(config.limits.window_secs),
            limits: config.limits.clone(),
        })
    }

    /// The route table this gate applies.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub async fn admit(&self, request: &RequestView<'_>) -> Verdict {
        let group = request.route.group;
        let route = self.routes.policy(group);
        // 0. The route's switch (`[routes.<group>] enabled`).
        if !route.enabled {
            return disabled(route, request.origin);
        }
        let policy = route.cors;

        // 1. CORS. A request without Origin is not a CORS request.
        let origin = match request.origin {
            Some(sent) if policy != CorsPolicy::None => match cors::parse_origin(sent.as_bytes()) {
                Ok(parsed) => Some(CallerOrigin { parsed, sent }),
                Err(refusal) => return cors_refused(refusal, sent.as_bytes()),
            },
            _ => None,
        };
        let mut owed = OwedHeaders::new();
        if let Some(origin) = &origin {
            if *request.method == Method::OPTIONS && request.asks_preflight {
                return self.preflight(policy, origin).await;
            }
            match policy {
                CorsPolicy::AnyOrigin => cors::append_allow_headers(policy, origin.sent, &mut owed),
                CorsPolicy::Portal if self.origins.portal_admits(&origin.parsed) => {
                    cors::append_allow_headers(policy, origin.sent, &mut owed);
                }
                CorsPolicy::Allowlist if self.origins.widget_admits(&origin.parsed) => {
                    cors::append_allow_headers(policy, origin.sent, &mut owed);
                }
                CorsPolicy::Portal | CorsPolicy::Allowlist => {
                    return cors_refused(CorsRefusal::NotAllowed, origin.sent.as_bytes());
                }
                // Held to the key's own merchant below.
                CorsPolicy::Merchant | CorsPolicy::None => {}
            }
        }

        // 2-3. Authentication and authorization.
        let authenticated = match route.auth {
            AuthKind::None | AuthKind::BodySignature => Ok((anonymous(), None)),
            AuthKind::ApiKey(permissions) => self
                .api_key(request, policy, permissions, origin.as_ref(), &mut owed)
                .await
                .map(|known| (known.identity.clone(), Some(known))),
            AuthKind::Jwt => self
                .portal_user(request, &owed)
                .map(|identity| (identity, None)),
        };
        let (identity, key) = match authenticated {
            Ok(admitted) => admitted,
            Err(verdict) => return self.count_refusal(request, verdict).await,
        };

        // A push's signature is the backend's to check: it is counted once it has.
        if route.auth == AuthKind::BodySignature {
            return self.admit_push(request, route, identity, owed).await;
        }

        // 4. Rate limits.
        let plan = key.as_ref().map(|known| known.key.plan.as_str());
        if let Err(verdict) = self
            .rate_limit(request, route, identity.identity(), plan, &mut owed)
            .await
        {
            return verdict;
        }
        Verdict::Admit {
            identity,
            headers: owed,
            push: None,
        }
    }

    /// A platform push, before its signature is known: refused while its sender's address has
    /// used up `limits.refused_per_ip` or its merchant `limits.sync_webhook`, and counted
    /// against neither yet. So pushes that anyone can send unsigned never spend the merchant's
    /// budget, and a flood of them is throttled by its own address.
    async fn admit_push(
        &self,
        request: &RequestView<'_>,
        route: &RoutePolicy,
        identity: Arc<EncodedIdentity>,
        owed: OwedHeaders,
    ) -> Verdict {
        let merchant = request.route.merchant_id.unwrap_or("unknown");
        let merchant_quota = route
            .budgets
            .iter()
            .find(|budget| budget.by == CountedBy::Merchant)
            .map_or(Quota::new(self.limits.sync_webhook, self.window), |b| {
                b.quota
            });
        let charge = PushCharge {
            merchant: ["sync_webhook:merchant:", merchant].concat(),
            merchant_quota,
            refused: refused_key(request),
            refused_quota: self.refused_quota(),
        };
        let peeked = self
            .stores
            .limiter
            .peek_all(&[
                (&charge.refused, charge.refused_quota),
                (&charge.merchant, charge.merchant_quota),
            ])
            .await;
        match peeked.as_deref() {
            Ok([refused, _]) if !refused.allowed => {
                return too_many(
                    request.route.group,
                    "refused",
                    refused,
                    charge.refused_quota,
                    &owed,
                    "Too many refused requests",
                );
            }
            Ok([_, budget]) if !budget.allowed => {
                return too_many(
                    request.route.group,
                    "sync_webhook",
                    budget,
                    charge.merchant_quota,
                    &owed,
                    "Too many requests",
                );
            }
            Ok(_) => {}
            Err(error) => {
                if let Some(verdict) = self.limit_store_failed(error, &owed) {
                    return verdict;
                }
            }
        }
        Verdict::Admit {
            identity,
            headers: owed,
            push: Some(Box::new(charge)),
        }
    }

    /// Counts a push once the backend answered `status`: a refused signature (401) against
    /// its sender's address, any other answer of the backend's own (2xx, 4xx) against its
    /// merchant, whose rate-limit headers then go on the answer. A push the backend never
    /// judged (5xx, no answer) counts against neither.
    pub async fn charge_push(&self, charge: &PushCharge, status: u16, owed: &mut OwedHeaders) {
        let (key, quota, policy) = match status {
            401 => (&charge.refused, charge.refused_quota, "refused"),
            200..=499 => (&charge.merchant, charge.merchant_quota, "sync_webhook"),
            _ => return,
        };
        match self
            .stores
            .limiter
            .hit_all(&[(key, quota)])
            .await
            .as_deref()
        {
            Ok([decision]) if status != 401 => decision.append_headers(policy, quota.window, owed),
            Ok(_) => {}
            Err(error) => {
                EDGE_METRICS
                    .rate_limit_errors
                    .with_label_values(&[error.reason()])
                    .inc();
                tracing::warn!(%error, "rate-limit store failed counting a push");
            }
        }
    }

    /// The budget of refused requests per client address (`limits.refused_per_ip`).
    fn refused_quota(&self) -> Quota {
        Quota::new(self.limits.refused_per_ip, self.window)
    }

    /// The rate-limit store failed: counted, logged, and the answer when
    /// `limits.on_store_error = "deny"` (`None`: the request passes).
    fn limit_store_failed(&self, error: &LimiterError, owed: &OwedHeaders) -> Option<Verdict> {
        EDGE_METRICS
            .rate_limit_errors
            .with_label_values(&[error.reason()])
            .inc();
        tracing::warn!(%error, "rate-limit store failed");
        (self.limits.on_store_error == OnLimitStoreError::Deny).then(|| {
            Verdict::refuse(
                503,
                Failure::new(
                    "RATE_LIMIT_UNAVAILABLE",
                    "Rate limiting is unavailable; try again shortly",
                ),
                owed.clone(),
            )
        })
    }

    /// Refused credentials count against `limits.refused_per_ip` for the client's address,
    /// so guessing keys or tokens from one address is throttled like any other traffic.
    async fn count_refusal(&self, request: &RequestView<'_>, refusal: Verdict) -> Verdict {
        let Verdict::Answer {
            status: 401,
            headers,
            ..
        } = &refusal
        else {
            return refusal;
        };
        let quota = self.refused_quota();
        let key = refused_key(request);
        match self
            .stores
            .limiter
            .hit_all(&[(&key, quota)])
            .await
            .as_deref()
        {
            Ok([decision]) if !decision.allowed => too_many(
                request.route.group,
                "refused",
                decision,
                quota,
                headers,
                "Too many refused requests",
            ),
            _ => refusal,
        }
    }

    async fn preflight(&self, policy: CorsPolicy, origin: &CallerOrigin<'_>) -> Verdict {
        let admitted = match policy {
            CorsPolicy::AnyOrigin => true,
            CorsPolicy::Portal => self.origins.portal_admits(&origin.parsed),
            CorsPolicy::Allowlist => self.origins.widget_admits(&origin.parsed),
            CorsPolicy::Merchant => match self.admitted_by_anyone(origin).await {
                Ok(admitted) => admitted,
                Err(verdict) => return verdict,
            },
            CorsPolicy::None => false,
        };
        if !admitted {
            return cors_refused(CorsRefusal::NotAllowed, origin.sent.as_bytes());
        }
        Verdict::Answer {
            status: 204,
            failure: None,
            headers: cors::preflight_headers(policy, origin.sent, self.max_age_secs),
        }
    }

    /// Whether the global list or some merchant admits `origin` (preflights, and the answers to
    /// requests whose key could not be resolved, so the widget can read them).
    async fn admitted_by_anyone(&self, origin: &CallerOrigin<'_>) -> Result<bool, Verdict> {
        if self.origins.widget_admits(&origin.parsed) {
            return Ok(true);
        }
        // The store checks the host and each of its parent domains.
        self.stores
            .directory
            .any_merchant_allows_host(&origin.parsed.host)
            .await
            .map_err(|error| unavailable(&error.to_string(), Some(origin)))
    }

    /// Resolves and checks the API key against the route's `permissions`; returns it with its
    /// identity and merchant's plan. Under [`CorsPolicy::Merchant`] the origin is held to the
    /// key's merchant here (an allowlisted origin was admitted before).
    async fn api_key(
        &self,
        request: &RequestView<'_>,
        policy: CorsPolicy,
        permissions: Permissions,
        origin: Option<&CallerOrigin<'_>>,
        owed: &mut OwedHeaders,
    ) -> Result<Arc<KnownKey>, Verdict> {
        let merchant_cors = policy == CorsPolicy::Merchant;
        // Answers to unauthenticated requests carry CORS headers when anyone admits the origin.
        let early_cors = async |owed: &OwedHeaders| -> OwedHeaders {
            let mut headers = owed.clone();
            if let Some(origin) = origin
                && merchant_cors
                && matches!(self.admitted_by_anyone(origin).await, Ok(true))
            {
                cors::append_allow_headers(CorsPolicy::Merchant, origin.sent, &mut headers);
            }
            headers
        };
        let key = match credential::extract(request.api_key, request.authorization) {
            Credential::ApiKey(key) => key,
            Credential::Jwt(_) | Credential::None => {
                EDGE_METRICS.auth_failure("missing_api_key");
                return Err(Verdict::refuse(
                    401,
                    Failure::new("API_KEY_REQUIRED", "API key required"),
                    early_cors(owed).await,
                ));
            }
        };
        let known = match self.stores.directory.api_key(key).await {
            Ok(Some(known)) if !known.key.revoked => known,
            Ok(found) => {
                let reason = if found.is_some() {
                    "revoked_api_key"
                } else {
                    "unknown_api_key"
                };
                EDGE_METRICS.auth_failure(reason);
                tracing::info!(key = credential::redacted(key), reason, "API key refused");
                return Err(Verdict::refuse(
                    401,
                    Failure::new("INVALID_API_KEY", "Invalid or revoked API key"),
                    early_cors(owed).await,
                ));
            }
            Err(error) => return Err(unavailable(&error.to_string(), origin)),
        };

        let resolved = &known.key;
        if let Some(origin) = origin.filter(|_| merchant_cors) {
            let admitted = cors::domains_admit(&resolved.allowed_domains, &origin.parsed)
                || self.origins.widget_admits(&origin.parsed);
            if !admitted {
                return Err(cors_refused(
                    CorsRefusal::NotAllowed,
                    origin.sent.as_bytes(),
                ));
            }
            // Room for the rate-limit headers that follow.
            owed.reserve(10);
            cors::append_allow_headers(CorsPolicy::Merchant, origin.sent, owed);
        }

        let required = permissions.for_method(request.method);
        if !api_key::permission_grants(&resolved.permissions, required) {
            EDGE_METRICS.auth_failure("insufficient_permissions");
            return Err(Verdict::refuse(
                403,
                Failure::new("FORBIDDEN", "Insufficient permissions")
                    .with("requiredPermissions", json!([required])),
                owed.clone(),
            ));
        }
        Ok(known)
    }

    /// Verifies the portal JWT and the merchant in the path.
    fn portal_user(
        &self,
        request: &RequestView<'_>,
        owed: &OwedHeaders,
    ) -> Result<Arc<EncodedIdentity>, Verdict> {
        let token = match credential::extract(None, request.authorization) {
            Credential::Jwt(token) => token,
            Credential::ApiKey(_) | Credential::None => {
                EDGE_METRICS.auth_failure("missing_token");
                return Err(Verdict::refuse(
                    401,
                    Failure::new(
                        "TOKEN_REQUIRED",
                        "A portal token is required: Authorization: Bearer <jwt>",
                    ),
                    owed.clone(),
                ));
            }
        };
        let claims = self.jwt.verify(token).map_err(|refusal| {
            EDGE_METRICS.auth_failure(refusal.label());
            let rejection = refusal.rejection();
            Verdict::refuse(rejection.status, rejection.failure, owed.clone())
        })?;
        // The subject travels in a header: keep it to characters that need no escaping.
        let subject_ok = !claims.sub.is_empty()
            && claims.sub.len() <= 256
            && claims
                .sub
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',');
        if !subject_ok {
            EDGE_METRICS.auth_failure("jwt_bad_subject");
            return Err(Verdict::refuse(
                401,
                Failure::new("INVALID_TOKEN", "The token's subject is not usable"),
                owed.clone(),
            ));
        }
        if let Some(merchant_id) = request.route.merchant_id
            && !claims.may_access(merchant_id)
        {
            EDGE_METRICS.auth_failure("merchant_access_denied");
            return Err(Verdict::refuse(
                403,
                Failure::new("FORBIDDEN", "Access denied"),
                owed.clone(),
            ));
        }
        let identity = EncodedIdentity::new(Identity {
            merchant: claims.merchant_id.filter(|id| merchant::is_valid_id(id)),
            principal: format!("user:{}", claims.sub),
            permissions: Vec::new(),
            roles: claims.roles,
        });
        // The subject and merchant were checked above; roles that cannot travel are dropped.
        identity.map(Arc::new).map_err(|_| {
            EDGE_METRICS.auth_failure("jwt_bad_subject");
            Verdict::refuse(
                401,
                Failure::new("INVALID_TOKEN", "The token's claims are not usable"),
                owed.clone(),
            )
        })
    }

    /// Counts the request against each budget of its route; the tightest sets the headers.
    async fn rate_limit(
        &self,
        request: &RequestView<'_>,
        route: &RoutePolicy,
        identity: &Identity,
        plan: Option<&str>,
        owed: &mut OwedHeaders,
    ) -> Result<(), Verdict> {
        let group = request.route.group;
        let budgets = self.budgets(request, route, identity, plan);
        if budgets.is_empty() {
            return Ok(());
        }
        let keys: SmallVec<[(&str, Quota); 2]> = budgets
            .iter()
            .map(|(_, key, quota)| (key.as_str(), *quota))
            .collect();
        // Every budget is counted in one step (at most one round trip to Redis).
        let decisions = match self.stores.limiter.hit_all(&keys).await {
            Ok(decisions) => decisions,
            Err(error) => {
                return match self.limit_store_failed(&error, owed) {
                    Some(verdict) => Err(verdict),
                    None => Ok(()),
                };
            }
        };
        let mut tightest: Option<(&str, RateDecision, Quota)> = None;
        for ((policy, _, quota), decision) in budgets.iter().zip(decisions) {
            let (policy, quota) = (*policy, *quota);
            if !decision.allowed {
                return Err(too_many(
                    group,
                    policy,
                    &decision,
                    quota,
                    owed,
                    "Too many requests",
                ));
            }
            if tightest
                .as_ref()
                .is_none_or(|(_, tight, _)| decision.remaining < tight.remaining)
            {
                tightest = Some((policy, decision, quota));
            }
        }
        if let Some((policy, decision, quota)) = tightest {
            decision.append_headers(policy, quota.window, owed);
        }
        Ok(())
    }

    /// The budgets of the route's row a request counts against: (policy name, key, quota).
    /// Keys are by credential, address or merchant and the budget's name, never by raw path.
    fn budgets(
        &self,
        request: &RequestView<'_>,
        route: &RoutePolicy,
        identity: &Identity,
        plan: Option<&str>,
    ) -> Budgets {
        let multiplier = plan
            .and_then(|plan| self.limits.plan_multipliers.get(plan))
            .copied()
            .unwrap_or(1.0);
        route
            .budgets
            .iter()
            .filter(|budget| budget.counts(request.method, request.path))
            .map(|budget| {
                let mut quota = budget.quota;
                if budget.plan_scaled {
                    quota.limit = ((f64::from(quota.limit) * multiplier).round() as u32).max(1);
                }
                let key = match budget.by {
                    CountedBy::Credential => [budget.name, ":", &identity.principal].concat(),
                    CountedBy::ClientIp => [budget.name, ":", &client_key(request)].concat(),
                    CountedBy::Merchant => {
                        let merchant = request.route.merchant_id.unwrap_or("unknown");
                        [budget.name, ":merchant:", merchant].concat()
                    }
                };
                (budget.name, key, quota)
            })
            .collect()
    }
}

/// What a push is counted against once the backend has answered: the budget keys of its
/// merchant and of its sender's refusals.
#[derive(Debug)]
pub(crate) struct PushCharge {
    merchant: String,
    merchant_quota: Quota,
    refused: String,
    refused_quota: Quota,
}

/// The 429 for a request over `policy`'s budget, with its rate-limit headers.
fn too_many(
    group: RouteGroup,
    policy: &str,
    decision: &RateDecision,
    quota: Quota,
    owed: &OwedHeaders,
    what: &str,
) -> Verdict {
    EDGE_METRICS
        .rate_limited
        .with_label_values(&[group.label()])
        .inc();
    let mut headers = owed.clone();
    decision.append_headers(policy, quota.window, &mut headers);
    Verdict::refuse(
        429,
        Failure::new(
            "RATE_LIMIT_EXCEEDED",
            format!("{what}; retry in {} seconds", decision.reset_after_secs),
        ),
        headers,
    )
}

/// The answer of a route group switched off by `[routes.<group>] enabled = false`: 503 with
/// `Retry-After`, readable by a page of any origin (it holds nothing but the outage, as
/// [`unavailable`]'s does), and counted.
fn disabled(route: &RoutePolicy, origin: Option<&HeaderValue>) -> Verdict {
    EDGE_METRICS.route_disabled(route.group.label());
    let mut headers = match origin {
        Some(origin) => cors::allow_headers(CorsPolicy::AnyOrigin, origin),
        None => OwedHeaders::new(),
    };
    headers.push((
        http::header::RETRY_AFTER,
        HeaderValue::from(route.retry_after_secs),
    ));
    Verdict::refuse(
        503,
        Failure::new(
            "ROUTE_DISABLED",
            format!(
                "{} is switched off by the operator for now; try again in {} seconds",
                describe(route.group),
                route.retry_after_secs
            ),
        )
        .with("routeGroup", json!(route.group.label())),
        headers,
    )
}

/// What a route group is, in a sentence.
fn describe(group: RouteGroup) -> &'static str {
    match group {
        RouteGroup::Health | RouteGroup::Ready => "This probe",
        RouteGroup::Widget => "The widget",
        RouteGroup::Chat => "Chat",
        RouteGroup::Sessions => "The sessions API",
        RouteGroup::Documents => "The documents API",
        RouteGroup::Products => "The products API",
        RouteGroup::SyncWebhook => "Receiving catalog pushes",
        RouteGroup::Sync => "Product sync",
        RouteGroup::Portal => "The developer portal's API",
    }
}

/// The budget of refused requests from the client's address.
fn refused_key(request: &RequestView<'_>) -> String {
    ["refused:", client_key(request).as_str()].concat()
}

/// The budgets a request counts against (at most two): (policy name, key, quota).
type Budgets = SmallVec<[(&'static str, String, Quota); 2]>;

/// The rate-limit store. An enum rather than a `dyn RateLimiter`, so that the in-process
/// store, which every request of the embedded mode passes, counts without a boxed future or a
/// vector of decisions.
enum Limiter {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl Limiter {
    /// [`RateLimiter::hit_all`]: a decision per budget, in order.
    async fn hit_all(
        &self,
        budgets: &[(&str, Quota)],
    ) -> Result<SmallVec<[RateDecision; 2]>, LimiterError> {
        match self {
            Self::Memory(memory) => Ok(budgets
                .iter()
                .map(|(key, quota)| memory.record_hit(key, *quota))
                .collect()),
            Self::Redis(redis) => redis.hit_all(budgets).await.map(SmallVec::from_vec),
        }
    }

    /// [`RateLimiter::peek_all`]: a decision per budget, in order, counting nothing.
    async fn peek_all(
        &self,
        budgets: &[(&str, Quota)],
    ) -> Result<SmallVec<[RateDecision; 2]>, LimiterError> {
        match self {
            Self::Memory(memory) => Ok(budgets
                .iter()
                .map(|(key, quota)| memory.peek(key, *quota))
                .collect()),
            Self::Redis(redis) => redis.peek_all(budgets).await.map(SmallVec::from_vec),
        }
    }
}

/// The key portal JWTs are verified with: the HS256 secret (`auth.jwt_secret`, or the secret
/// file in `data.dir`), or the PEM public key in `auth.jwt_public_key_file` for RS256/ES256.
fn jwt_key(config: &Config) -> Result<Vec<u8>, String> {
    match config.auth.jwt_algorithm {
        JwtAlgorithm::Hs256 => config
            .resolve_jwt_secret()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .map_err(|e| e.to_string()),
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
            let path = config.auth.jwt_public_key_file.as_ref().ok_or(
                "auth.jwt_public_key_file: is required when auth.jwt_algorithm is RS256 or ES256",
            )?;
            std::fs::read(path).map_err(|e| {
                format!(
                    "auth.jwt_public_key_file: cannot read {}: {e}",
                    path.display()
                )
            })
        }
    }
}

/// The identity of a request without a credential (one for all of them).
pub(crate) fn anonymous() -> Arc<EncodedIdentity> {
    static ANONYMOUS: LazyLock<Arc<EncodedIdentity>> = LazyLock::new(|| {
        Arc::new(
            EncodedIdentity::new(Identity::anonymous())
                .unwrap_or_else(|_| unreachable!("the anonymous identity is plain text")),
        )
    });
    ANONYMOUS.clone()
}

/// The client's address as a rate-limit credential.
fn client_key(request: &RequestView<'_>) -> String {
    request
        .client_ip
        .map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"))
}

/// A request's `Origin`: parsed for the checks, and as sent, which
/// `Access-Control-Allow-Origin` echoes byte for byte (the browser compares the two exactly).
struct CallerOrigin<'r> {
    parsed: Origin,
    sent: &'r HeaderValue,
}

fn cors_refused(refusal: CorsRefusal, origin: &[u8]) -> Verdict {
    EDGE_METRICS.cors_rejection(refusal.label());
    let rejection = refusal.rejection(&String::from_utf8_lossy(origin));
    Verdict::refuse(rejection.status, rejection.failure, OwedHeaders::new())
}

/// The credential store cannot be reached. A browser may read this answer from any origin
/// (`Access-Control-Allow-Origin: *`, no credentials): it holds nothing but the outage, and
/// the widget can then show "try again" instead of mistaking it for a refused origin.
fn unavailable(cause: &str, origin: Option<&CallerOrigin<'_>>) -> Verdict {
    tracing::error!(cause, "credential lookup failed");
    let headers = match origin {
        Some(origin) => cors::allow_headers(CorsPolicy::AnyOrigin, origin.sent),
        None => OwedHeaders::new(),
    };
    Verdict::refuse(
        503,
        Failure::new(
            "SERVICE_UNAVAILABLE",
            "Credentials cannot be checked right now; try again shortly",
        ),
        headers,
    )
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::directory::{DirectoryError, ResolvedKey};

    /// A credential store that cannot be reached.
    struct Down;

    #[async_trait]
    impl Directory for Down {
        async fn api_key(&self, _: &str) -> Result<Option<ResolvedKey>, DirectoryError> {
            Err(DirectoryError("database down".into()))
        }

        async fn any_merchant_allows_host(&self, _: &str) -> Result<bool, DirectoryError> {
            Err(DirectoryError("database down".into()))
        }
    }

    fn gate_over_down(config: &mut Config) -> Gate {
        config.auth.jwt_secret = Some(mindshop_config::Secret::new(
            "0123456789abcdef0123456789abcdef".to_owned(),
        ));
        let stores = Stores::new(config, Arc::new(Down)).expect("stores");
        Gate::new(config, Arc::new(stores)).expect("a gate")
    }

    fn chat_request<'r>(origin: &'r HeaderValue) -> RequestView<'r> {
        RequestView {
            method: &Method::POST,
            path: "/api/chat",
            route: mindshop_filters::route::classify("/api/chat").expect("a route"),
            origin: Some(origin),
            asks_preflight: false,
            api_key: Some(b"pk_test_0123456789abcdef0123456789abcdef"),
            authorization: None,
            client_ip: None,
        }
    }

    fn header(headers: &OwedHeaders, name: http::HeaderName) -> Option<&str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn a_disabled_group_is_answered_before_any_lookup() {
        let mut config = Config::default();
        config.routes.chat.enabled = false;
        config.routes.chat.retry_after_secs = 30;
        // The directory is down: any lookup would answer SERVICE_UNAVAILABLE instead.
        let gate = gate_over_down(&mut config);
        let origin = HeaderValue::from_static("https://shop.example");
        let Verdict::Answer {
            status,
            failure: Some(failure),
            headers,
        } = gate.admit(&chat_request(&origin)).await
        else {
            panic!("an early answer");
        };
        assert_eq!((status, failure.code), (503, "ROUTE_DISABLED"));
        assert_eq!(failure.extra["routeGroup"], "chat");
        assert_eq!(header(&headers, http::header::RETRY_AFTER), Some("30"));
        assert_eq!(
            header(&headers, http::header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("*")
        );
    }

    #[tokio::test]
    async fn the_allowlist_refuses_other_origins_before_any_lookup() {
        let mut config = Config::default();
        config.cors.widget_origins = mindshop_config::WidgetOrigins::Allowlist;
        config.cors.allowed_origins = vec!["https://staging.example".into()];
        let gate = gate_over_down(&mut config);
        let other = HeaderValue::from_static("https://shop.example");
        let Verdict::Answer {
            status,
            failure: Some(failure),
            ..
        } = gate.admit(&chat_request(&other)).await
        else {
            panic!("an early answer");
        };
        assert_eq!((status, failure.code), (403, "CORS_ORIGIN_NOT_ALLOWED"));
        // A listed origin goes on to the key lookup (which fails here: the directory is down).
        let listed = HeaderValue::from_static("https://staging.example");
        let Verdict::Answer {
            failure: Some(failure),
            ..
        } = gate.admit(&chat_request(&listed)).await
        else {
            panic!("an early answer");
        };
        assert_eq!(failure.code, "SERVICE_UNAVAILABLE");
    }

    #[tokio::test]
    async fn an_outage_is_readable_by_the_page_so_it_is_not_taken_for_a_refused_origin() {
        let mut config = Config::default();
        config.auth.jwt_secret = Some(mindshop_config::Secret::new(
            "0123456789abcdef0123456789abcdef".to_owned(),
        ));
        let stores = Stores::new(&config, Arc::new(Down)).expect("stores");
        let gate = Gate::new(&config, Arc::new(stores)).expect("a gate");
        let route = mindshop_filters::route::classify("/api/chat").expect("a route");
        let request = RequestView {
            method: &Method::POST,
            path: "/api/chat",
            route,
            origin: Some(&HeaderValue::from_static("https://shop.example")),
            asks_preflight: false,
            api_key: Some(b"pk_test_0123456789abcdef0123456789abcdef"),
            authorization: None,
            client_ip: None,
        };
        let Verdict::Answer {
            status,
            failure: Some(failure),
            headers,
        } = gate.admit(&request).await
        else {
            panic!("an early answer");
        };
        assert_eq!((status, failure.code), (503, "SERVICE_UNAVAILABLE"));
        let allow_origin = headers
            .iter()
            .find(|(name, _)| name == http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|(_, value)| value.to_str().unwrap());
        assert_eq!(allow_origin, Some("*"));
        assert!(
            !headers
                .iter()
                .any(|(name, _)| name == http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
            "no credentials with a wildcard"
        );
    }
}
