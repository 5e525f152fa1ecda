//! The admission steps of the pipeline, after the route is known: CORS, authentication,
//! authorization and rate limits, in the architecture's order. [`Gate::admit`] takes a plain
//! view of the request and returns either the identity to forward (with the headers every
//! answer owes) or the early answer to send.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::{HeaderValue, Method};
use mindshop_config::{Config, LimitStore, LimitsConfig, OnLimitStoreError};
use mindshop_filters::cors::{self, CorsOrigins, CorsPolicy, CorsRefusal};
use mindshop_filters::credential::{self, Credential};
use mindshop_filters::jwt::{JwtSettings, JwtVerifier};
use mindshop_filters::rate_limit::{
    LimiterError, MemoryLimiter, Quota, RateDecision, RateLimiter, RedisLimiter,
};
use mindshop_filters::route::{self, AuthKind, Route, RouteGroup};
use mindshop_wire::api_key;
use mindshop_wire::envelope::Failure;
use mindshop_wire::identity::{EncodedIdentity, Identity};
use mindshop_wire::merchant;
use mindshop_wire::origin::Origin;
use serde_json::json;
use smallvec::{SmallVec, smallvec};

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
        /// ([`Gate::charge_push`]).
        push: Option<PushCharge>,
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

/// Everything the admission steps are configured with.
pub(crate) struct Gate {
    directory: CachedDirectory,
    jwt: JwtVerifier,
    origins: CorsOrigins,
    max_age_secs: u64,
    limiter: Limiter,
    limits: LimitsConfig,
    window: Duration,
}

impl Gate {
    /// `jwt_key`: the HS256 secret, or the PEM public key for RS256/ES256.
    pub fn new(
        config: &Config,
        directory: Arc<dyn Directory>,
        jwt_key: &[u8],
    ) -> Result<Self, String> {
        let jwt = JwtVerifier::new(JwtSettings {
            algorithm: config.auth.jwt_algorithm,
            key: jwt_key,
            issuer: config.auth.jwt_issuer.as_deref(),
            audience: config.auth.jwt_audience.as_deref(),
            leeway_secs: config.auth.jwt_leeway_secs,
            max_lifetime_secs: config.auth.jwt_max_lifetime_secs,
        })?;
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
            jwt,
            origins: CorsOrigins::new(&config.cors.allowed_origins, &config.cors.portal_origins),
            max_age_secs: config.cors.max_age_secs,
            limiter,
            window: Duration::from_secs(config.limits.window_secs),
            limits: config.limits.clone(),
        })
    }

    pub async fn admit(&self, request: &RequestView<'_>) -> Verdict {
        let group = request.route.group;
        let policy = group.cors();

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
                CorsPolicy::Portal => {
                    return cors_refused(CorsRefusal::NotAllowed, origin.sent.as_bytes());
                }
                // Held to the key's own merchant below.
                CorsPolicy::Merchant | CorsPolicy::None => {}
            }
        }

        // 2-3. Authentication and authorization.
        let authenticated = match group.auth() {
            AuthKind::None | AuthKind::BodySignature => Ok((anonymous(), None)),
            AuthKind::ApiKey => self
                .api_key(request, origin.as_ref(), &mut owed)
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
        if group == RouteGroup::SyncWebhook {
            return self.admit_push(request, identity, owed).await;
        }

        // 4. Rate limits.
        let plan = key.as_ref().map(|known| known.key.plan.as_str());
        if let Err(verdict) = self
            .rate_limit(request, identity.identity(), plan, &mut owed)
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
        identity: Arc<EncodedIdentity>,
        owed: OwedHeaders,
    ) -> Verdict {
        let merchant = request.route.merchant_id.unwrap_or("unknown");
        let charge = PushCharge {
            merchant: ["sync_webhook:merchant:", merchant].concat(),
            refused: refused_key(request),
        };
        let (refused_quota, merchant_quota) = self.push_quotas();
        let peeked = self
            .limiter
            .peek_all(&[
                (&charge.refused, refused_quota),
                (&charge.merchant, merchant_quota),
            ])
            .await;
        match peeked.as_deref() {
            Ok([refused, _]) if !refused.allowed => {
                return too_many(
                    request.route.group,
                    "refused",
                    refused,
                    refused_quota,
                    &owed,
                    "Too many refused requests",
                );
            }
            Ok([_, budget]) if !budget.allowed => {
                return too_many(
                    request.route.group,
                    "sync_webhook",
                    budget,
                    merchant_quota,
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
            push: Some(charge),
        }
    }

    /// Counts a push once the backend answered `status`: a refused signature (401) against
    /// its sender's address, any other answer of the backend's own (2xx, 4xx) against its
    /// merchant, whose rate-limit headers then go on the answer. A push the backend never
    /// judged (5xx, no answer) counts against neither.
    pub async fn charge_push(&self, charge: &PushCharge, status: u16, owed: &mut OwedHeaders) {
        let (refused_quota, merchant_quota) = self.push_quotas();
        let (key, quota, policy) = match status {
            401 => (&charge.refused, refused_quota, "refused"),
            200..=499 => (&charge.merchant, merchant_quota, "sync_webhook"),
            _ => return,
        };
        match self.limiter.hit_all(&[(key, quota)]).await.as_deref() {
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

    /// The quotas of a push's two budgets: its sender's refusals, its merchant's pushes.
    fn push_quotas(&self) -> (Quota, Quota) {
        (
            Quota::new(self.limits.refused_per_ip, self.window),
            Quota::new(self.limits.sync_webhook, self.window),
        )
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
        let quota = Quota::new(self.limits.refused_per_ip, self.window);
        let key = refused_key(request);
        match self.limiter.hit_all(&[(&key, quota)]).await.as_deref() {
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
        self.directory
            .any_merchant_allows_host(&origin.parsed.host)
            .await
            .map_err(|error| unavailable(&error.to_string(), Some(origin)))
    }

    /// Resolves and checks the API key; returns it with its identity and merchant's plan.
    async fn api_key(
        &self,
        request: &RequestView<'_>,
        origin: Option<&CallerOrigin<'_>>,
        owed: &mut OwedHeaders,
    ) -> Result<Arc<KnownKey>, Verdict> {
        // Answers to unauthenticated requests carry CORS headers when anyone admits the origin.
        let early_cors = async |owed: &OwedHeaders| -> OwedHeaders {
            let mut headers = owed.clone();
            if let Some(origin) = origin
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
        let known = match self.directory.api_key(key).await {
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
        if let Some(origin) = origin {
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

        if let Some(required) = request.route.group.required_permission(request.method)
            && !api_key::permission_grants(&resolved.permissions, required)
        {
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
        identity: &Identity,
        plan: Option<&str>,
        owed: &mut OwedHeaders,
    ) -> Result<(), Verdict> {
        let group = request.route.group;
        let budgets = self.budgets(request, identity, plan);
        let keys: SmallVec<[(&str, Quota); 2]> = budgets
            .iter()
            .map(|(_, key, quota)| (key.as_str(), *quota))
            .collect();
        // Every budget is counted in one step (at most one round trip to Redis).
        let decisions = match self.limiter.hit_all(&keys).await {
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

    /// The budgets a request counts against: (policy name, key, quota). Keys are by credential
    /// and route group, never by raw path.
    fn budgets(
        &self,
        request: &RequestView<'_>,
        identity: &Identity,
        plan: Option<&str>,
    ) -> Budgets {
        let limits = &self.limits;
        let scaled = |limit: u32| {
            let multiplier = plan
                .and_then(|plan| limits.plan_multipliers.get(plan))
                .copied()
                .unwrap_or(1.0);
            ((f64::from(limit) * multiplier).round() as u32).max(1)
        };
        let quota = |limit| Quota::new(limit, self.window);
        // Only the widget's, chat's and sessions' budgets count by address too.
        let ip = || client_key(request);
        let who = identity.principal.as_str();
        match request.route.group {
            RouteGroup::Health | RouteGroup::Ready => Budgets::new(),
            RouteGroup::Widget => smallvec![(
                "widget",
                ["widget:", ip().as_str()].concat(),
                quota(limits.widget_per_ip),
            )],
            RouteGroup::Chat => smallvec![
                ("chat", ["chat:", who].concat(), quota(scaled(limits.chat))),
                (
                    "chat_ip",
                    ["chat_ip:", ip().as_str()].concat(),
                    quota(limits.widget_per_ip),
                ),
            ],
            RouteGroup::Sessions => smallvec![
                (
                    "sessions",
                    ["sessions:", who].concat(),
                    quota(scaled(limits.sessions)),
                ),
                (
                    "sessions_ip",
                    ["sessions_ip:", ip().as_str()].concat(),
                    quota(limits.widget_per_ip),
                ),
            ],
            RouteGroup::Documents => smallvec![(
                "documents",
                ["documents:", who].concat(),
                quota(scaled(limits.documents)),
            )],
            RouteGroup::Products => smallvec![(
                "products",
                ["products:", who].concat(),
                quota(scaled(limits.products)),
            )],
            RouteGroup::Portal if route::is_sync_write(request.method, request.path) => {
                smallvec![(
                    "sync_writes",
                    ["sync_writes:", who].concat(),
                    quota(limits.sync_writes),
                )]
            }
            RouteGroup::Portal => {
                smallvec![("portal", ["portal:", who].concat(), quota(limits.portal))]
            }
            // Counted once the backend has checked the signature (`admit_push`).
            RouteGroup::SyncWebhook => Budgets::new(),
        }
    }
}

/// What a push is counted against once the backend has answered: the budget keys of its
/// merchant and of its sender's refusals.
#[derive(Debug)]
pub(crate) struct PushCharge {
    merchant: String,
    refused: String,
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

    #[tokio::test]
    async fn an_outage_is_readable_by_the_page_so_it_is_not_taken_for_a_refused_origin() {
        let gate = Gate::new(
            &Config::default(),
            Arc::new(Down),
            b"0123456789abcdef0123456789abcdef",
        )
        .expect("a gate");
        let route = route::classify("/api/chat").expect("a route");
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
