//! [`Edge`]: the `ProxyHttp` implementation. Each hook is one phase of the pipeline:
//!
//! 0. `early_request_filter`: the head is in (its deadline stops), keep-alive and body
//!    timeouts for this request.
//! 1. `request_filter`: request id, the client's address, head size, the redirect to HTTPS,
//!    route policy (unknown route → 404), `/health`, body limit,
//!    then the [`Gate`]: CORS, authentication, authorization, rate limits; the widget's routes
//!    are answered here after the gate (`widget`).
//! 2. `upstream_peer` / `fail_to_connect`: round robin over `edge.backends`, trying the next
//!    backend when one refuses the connection.
//! 3. `upstream_request_filter`: strip client-sent `X-Mindshop-*` and the credentials the gate
//!    checked (`X-API-Key`, `Authorization`), add the request id and the signed identity.
//! 4. `request_body_filter`: count streamed body bytes against the limit.
//! 5. `response_filter`: count a platform push by the backend's verdict on its signature
//!    ([`Gate::charge_push`]), echo the request id, add the CORS and rate-limit headers owed.
//! 6. `fail_to_proxy`: the edge's 502/503/504/413 envelopes.
//! 7. `logging`: metrics and the access log, for every request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};
use mindshop_filters::Rejection;
use mindshop_filters::body_limit::{self, BodyBudget};
use mindshop_filters::route::{self, RouteGroup};
use mindshop_wire::envelope::Failure;
use mindshop_wire::identity::{self, EncodedIdentity, IdentitySigner, SignedRequest};
use mindshop_wire::request_id;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use serde_json::json;

use crate::answer;
use crate::client::TrustedProxies;
use crate::connections::{self, Watched};
use crate::gate::{OwedHeaders, PushCharge, RequestView, Verdict};
use crate::live::Settings;
use crate::metrics::EDGE_METRICS;

/// An API key, as clients may send it.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The client's address, for the backend's logs.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether a trusted load balancer received the request over HTTPS.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Largest request head (names and values of all headers) the edge reads, bytes. Pingora
/// reads up to 1 MB; nothing our API takes needs more than a few KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields a request may have. The backend's HTTP server takes 100 and the edge
/// adds up to ten of its own (identity, request id, `X-Forwarded-For`), so more are refused
/// here with the envelope rather than there without it. Browsers send about twenty.
const MAX_HEAD_FIELDS: usize = 80;

/// A body's average rate is judged only after this long, so a first slow packet is no fault.
const BODY_RATE_GRACE: Duration = Duration::from_secs(1);

/// Longest wait for a backend's answer to `/ready`.
const READY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The edge proxy. Holds only configuration and a round-robin cursor: no per-merchant state,
/// so any number of edges can run side by side.
pub struct Edge {
    /// What a reload replaces (see `live.rs`); each request keeps the settings it arrived under.
    settings: Arc<ArcSwap<Settings>>,
    next_backend: AtomicUsize,
    signer: IdentitySigner,
    /// `edge.trusted_proxies`: who may name the client in `X-Forwarded-For`.
    trusted: TrustedProxies,
    /// Set once the process hands its sockets to a successor or is told to stop: every answer
    /// from then on says `Connection: close`, so clients move to a fresh connection (the
    /// successor's) after their current request instead of finding the connection dropped.
    draining: Arc<AtomicBool>,
}

impl Edge {
    pub(crate) fn new(
        settings: Arc<ArcSwap<Settings>>,
        internal_secret: &str,
        trusted: TrustedProxies,
        draining: Arc<AtomicBool>,
    ) -> Self {
        Self {
            draining,
            settings,
            next_backend: AtomicUsize::new(0),
            signer: IdentitySigner::new(internal_secret.as_bytes()),
            trusted,
        }
    }
}

/// Per-request state shared by the hooks.
pub struct RequestCtx {
    /// The configuration current when the request arrived, kept to its end.
    settings: Arc<Settings>,
    request_id: String,
    /// The same, as the header value sent to the backend and back to the client.
    request_id_value: HeaderValue,
    /// `None` until matched, and for paths without a route.
    group: Option<RouteGroup>,
    started: Instant,
    body: BodyBudget,
    /// Set when a hook after `request_filter` refuses the request (e.g. a streamed body over
    /// the limit), so `fail_to_proxy` answers with it.
    rejection: Option<Rejection>,
    /// Index of the first backend tried, and how many have been tried.
    first_backend: usize,
    attempts: usize,
    /// Who is calling, as the gate resolved it; signed for the backend.
    identity: Arc<EncodedIdentity>,
    /// CORS and rate-limit headers every answer to this request carries.
    owed: OwedHeaders,
    /// A platform push, counted when the backend's answer says whether its signature held.
    push: Option<Box<PushCharge>>,
    /// The client's address (see `client.rs`); `None` for a Unix socket.
    client_ip: Option<IpAddr>,
    /// When the first body bytes arrived, and how many have.
    body_started: Option<Instant>,
    body_bytes: u64,
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let settings = self.settings.load_full();
        RequestCtx {
            body: BodyBudget::new(settings.max_body_bytes),
            settings,
            request_id: String::new(),
            request_id_value: HeaderValue::from_static(""),
            group: None,
            started: Instant::now(),
            rejection: None,
            first_backend: 0,
            attempts: 0,
            identity: crate::gate::anonymous(),
            owed: OwedHeaders::new(),
            push: None,
            client_ip: None,
            body_started: None,
            body_bytes: 0,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let downstream = session.as_downstream_mut();
        if let Some(clock) = downstream.stream().and_then(Watched::clock_of) {
            clock.head_received();
        }
        let keepalive =
            (!self.draining.load(Ordering::Relaxed)).then_some(ctx.settings.keepalive_secs);
        downstream.set_keepalive(keepalive);
        // Pingora's wait for each piece of the body; the average rate is checked as it comes.
        downstream.set_read_timeout(Some(ctx.settings.body_read_timeout));
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let request = session.req_header();
        ctx.request_id = request_id::accept_or_generate(
            request
                .headers
                .get(request_id::HEADER)
                .map(|v| v.as_bytes()),
        );
        ctx.request_id_value = answer::request_id_value(&ctx.request_id);
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|peer| {
            self.trusted
                .client(peer.ip(), request.headers.get_all(X_FORWARDED_FOR).iter())
        });

        if let Some(problem) = oversized_head(&request.headers) {
            let rejection = Rejection::new(431, "HEADERS_TOO_LARGE", problem);
            session.set_keepalive(None);
            answer::reject(session, &ctx.request_id, &rejection).await?;
            return Ok(true);
        }

        let Some(route) = route::classify(request.uri.path()) else {
            let rejection = Rejection::new(
                404,
                "ROUTE_NOT_FOUND",
                format!("No route for {} {}", request.method, request.uri.path()),
            );
            answer::reject(session, &ctx.request_id, &rejection).await?;
            return Ok(true);
        };
        ctx.group = Some(route.group);

        if route.group == RouteGroup::Health {
            answer::success(session, &ctx.request_id, &json!({"status": "ok"})).await?;
            return Ok(true);
        }
        if let Some(port) = ctx.settings.redirect_to_port
            && route.group != RouteGroup::Ready
            && !answer::is_https(session)
            && !self.forwarded_https(session)
        {
            let request = session.req_header();
            if let Some(location) = answer::https_location(request, port) {
                answer::redirect(session, &ctx.request_id, location).await?;
                return Ok(true);
            }
        }
        let request = session.req_header();

        let declared = request
            .headers
            .get(header::CONTENT_LENGTH)
            .map(|v| v.as_bytes());
        if let Err(rejection) = body_limit::check_declared(declared, ctx.settings.max_body_bytes) {
            answer::reject(session, &ctx.request_id, &rejection).await?;
            return Ok(true);
        }

        let header = |name: http::HeaderName| request.headers.get(name).map(|v| v.as_bytes());
        let view = RequestView {
            method: &request.method,
            path: request.uri.path(),
            route,
            origin: request.headers.get(header::ORIGIN),
            asks_preflight: request
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD),
            api_key: header(X_API_KEY),
            authorization: header(header::AUTHORIZATION),
            client_ip: ctx.client_ip,
        };
        match ctx.settings.gate.admit(&view).await {
            Verdict::Admit {
                identity,
                headers,
                push,
            } => {
                ctx.identity = identity;
                ctx.owed = headers;
                ctx.push = push;
                if route.group == RouteGroup::Widget {
                    crate::widget::answer(session, &ctx.request_id, &ctx.owed).await?;
                    return Ok(true);
                }
                Ok(false)
            }
            Verdict::Answer {
                status,
                failure: Some(failure),
                headers,
            } => {
                answer::failure(session, &ctx.request_id, status, &failure, &headers).await?;
                Ok(true)
            }
            Verdict::Answer {
                status,
                failure: None,
                headers,
            } => {
                answer::empty(session, &ctx.request_id, status, &headers).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let settings = &ctx.settings;
        if ctx.attempts == 0 {
            ctx.first_backend = self.next_backend.fetch_add(1, Ordering::Relaxed);
        } else {
            // A retry replays the buffered body through `request_body_filter`: count it afresh.
            ctx.body = BodyBudget::new(settings.max_body_bytes);
        }
        let backends = &settings.backends;
        let address = backends[(ctx.first_backend + ctx.attempts) % backends.len()];
        ctx.attempts += 1;
        let mut peer = HttpPeer::new(address, false, String::new());
        peer.options.connection_timeout = Some(settings.connect_timeout);
        peer.options.total_connection_timeout = Some(settings.connect_timeout);
        peer.options.read_timeout = Some(match ctx.group {
            // A readiness probe wants an answer soon, not after a minute.
            Some(RouteGroup::Ready) => settings.read_timeout.min(READY_READ_TIMEOUT),
            _ => settings.read_timeout,
        });
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the backend yet, so any method may go to the next one.
        if ctx.attempts < ctx.settings.backends.len() {
            tracing::warn!(request_id = %ctx.request_id, backend = %peer, error = %e, "backend refused; trying the next");
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // Rebuilt as plain `http` parts, as answers are (see `answer::head`): the eight headers
        // the edge adds go straight into a map with room for them, without Pingora parsing
        // each name and keeping its case. A request target the URI does not carry byte for
        // byte (not UTF-8, or not a path) is kept as it came.
        let mut raw_target = (!upstream.raw_path_is_utf8()
            || !upstream.raw_path().starts_with(b"/"))
        .then(|| upstream.raw_path().to_vec());
        let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
        let mut parts = http::request::Parts::from(std::mem::replace(upstream, placeholder));
        let spoofed: Vec<_> = parts
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with(identity::HEADER_PREFIX))
            .cloned()
            .collect();
        for name in spoofed {
            parts.headers.remove(&name);
        }
        // The credentials stop here: the backend trusts the signed identity alone, so a raw
        // key or token never reaches its logs, its handlers or anything it calls.
        parts.headers.remove(X_API_KEY);
        parts.headers.remove(header::AUTHORIZATION);
        if let Some(path) = route::canonical_path(parts.uri.path()) {
            let target = match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            parts.uri = target
                .parse::<http::Uri>()
                .map_err(|e| answer::internal("canonical path", e))?;
            raw_target = None;
        }

        let signed = self.signer.sign(
            &ctx.identity,
            SignedRequest {
                method: parts.method.as_str(),
                path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                request_id: &ctx.request_id,
            },
            unix_now(),
        );
        let headers = &mut parts.headers;
        headers
            .try_reserve(2 + signed.len())
            .map_err(|e| answer::internal("upstream headers", e))?;
        headers.insert(answer::X_REQUEST_ID, ctx.request_id_value.clone());
        if let Some(client) = ctx.client_ip
            && let Ok(address) = HeaderValue::try_from(client.to_string())
        {
            headers.insert(X_FORWARDED_FOR, address);
        }
        for (name, value) in signed {
            headers.insert(HeaderName::from_static(name), value);
        }
        let mut rebuilt = RequestHeader::from(parts);
        if let Some(raw) = raw_target {
            rebuilt.set_raw_path(&raw)?;
        }
        *upstream = rebuilt;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(chunk) = body {
            if let Err(rejection) = ctx.body.consume(chunk.len()) {
                ctx.rejection = Some(rejection);
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over edge.max_body_bytes",
                );
            }
            ctx.body_bytes += chunk.len() as u64;
            let started = *ctx.body_started.get_or_insert_with(Instant::now);
            let elapsed = started.elapsed();
            let min_rate = ctx.settings.body_min_bytes_per_sec;
            if min_rate > 0
                && elapsed > BODY_RATE_GRACE
                && (ctx.body_bytes as f64) < min_rate as f64 * elapsed.as_secs_f64()
            {
                connections::count_body_timeout();
                ctx.rejection = Some(Rejection::new(
                    408,
                    "REQUEST_TIMEOUT",
                    format!("The request body arrived at under {min_rate} bytes per second"),
                ));
                return Error::e_explain(ErrorType::HTTPStatus(408), "request body too slow");
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if response.remove_header(identity::REJECTED).is_some() {
            tracing::error!(
                request_id = %ctx.request_id,
                "a backend refused this edge's identity signature: internal.secret differs \
                 between edge and backend, or their clocks are further apart than \
                 internal.max_clock_skew_secs"
            );
        }
        if let Some(push) = ctx.push.take() {
            ctx.settings
                .gate
                .charge_push(&push, response.status.as_u16(), &mut ctx.owed)
                .await;
        }
        // The head is rebuilt as plain `http` parts (see `answer::head`): the owed headers go
        // straight into the header map, which has room for them.
        let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
        let mut head = http::response::Parts::from(std::mem::replace(response, placeholder));
        answer::reserve(&mut head, 2 + ctx.owed.len())?;
        head.headers
            .insert(answer::X_REQUEST_ID, ctx.request_id_value.clone());
        answer::add_hsts(session, &mut head.headers);
        // Moved, not cloned: once the backend's answer is being sent, the edge sends no answer
        // of its own that would need them.
        answer::append(&mut head, std::mem::take(&mut ctx.owed))?;
        *response = ResponseHeader::from(head);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if e.esource() == &ErrorSource::Downstream && e.etype() == &ErrorType::ReadTimedout {
            connections::count_body_timeout();
        }
        let (status, failure) = match ctx.rejection.take() {
            Some(rejection) => (rejection.status, rejection.failure),
            None => match failure_for(e, ctx.group) {
                Some(answer) => answer,
                // The client is gone: nobody to answer.
                None => {
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    };
                }
            },
        };
        if session.response_written().is_none() {
            session.set_keepalive(None);
            if let Err(write_error) =
                answer::failure(session, &ctx.request_id, status, &failure, &ctx.owed).await
            {
                tracing::debug!(request_id = %ctx.request_id, error = %write_error, "could not send the error answer");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let group = ctx.group.map_or("unmatched", RouteGroup::label);
        let took = ctx.started.elapsed();
        if let Some(clock) = session.as_downstream().stream().and_then(Watched::clock_of) {
            clock.await_head(Duration::from_secs(ctx.settings.keepalive_secs));
        }
        let request = session.req_header();
        EDGE_METRICS.observe(group, &request.method, status, took);
        tracing::info!(
            target: "mindshop::access",
            request_id = %ctx.request_id,
            client = ctx.client_ip.map(|ip| ip.to_string()),
            version = ?request.version,
            method = %request.method,
            path = %request.uri.path(),
            route_group = group,
            status,
            latency_ms = took.as_secs_f64() * 1000.0,
            error = error.map(|e| e.to_string()),
            "edge request"
        );
    }
}

/// The status and envelope for a proxying error, or `None` when the client went away.
fn failure_for(e: &Error, group: Option<RouteGroup>) -> Option<(u16, Failure)> {
    let answer = match (e.esource(), e.etype()) {
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => return None,
        (_, ErrorType::HTTPStatus(code)) if *code < 500 => {
            let (code_name, message) = match *code {
                408 => ("REQUEST_TIMEOUT", "The request was not received in time"),
                413 => ("PAYLOAD_TOO_LARGE", "The request body is too large"),
                431 => ("HEADERS_TOO_LARGE", "The request headers are too large"),
                _ => ("BAD_REQUEST", "The request could not be processed"),
            };
            (*code, Failure::new(code_name, message))
        }
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => (
            408,
            Failure::new(
                "REQUEST_TIMEOUT",
                "The request body was not received in time",
            ),
        ),
        (ErrorSource::Downstream, _) => (
            400,
            Failure::new("BAD_REQUEST", "The request could not be read"),
        ),
        (ErrorSource::Upstream, _) if group == Some(RouteGroup::Ready) => (
            503,
            Failure::new("NOT_READY", "The backend is down")
                .with("checks", json!({"backend": "down", "database": "unknown"})),
        ),
        (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => (
            504,
            Failure::new("BACKEND_TIMEOUT", "The backend did not answer in time"),
        ),
        (ErrorSource::Upstream, _) => (
            502,
            Failure::new(
                "BACKEND_UNAVAILABLE",
                "The backend is unavailable; try again shortly",
            ),
        ),
        _ => (
            500,
            Failure::new(
                "INTERNAL_ERROR",
                "Internal error; quote the request id to support",
            ),
        ),
    };
    Some(answer)
}

impl Edge {
    /// A trusted load balancer that terminated TLS says so in `X-Forwarded-Proto`.
    fn forwarded_https(&self, session: &Session) -> bool {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|peer| self.trusted.contains(peer.ip()))
            && session
                .req_header()
                .headers
                .get(X_FORWARDED_PROTO)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    }
}

/// What is too large about a request head (`MAX_HEAD_FIELDS`, `MAX_HEAD_BYTES`), if anything.
fn oversized_head(headers: &http::HeaderMap) -> Option<String> {
    let fields = headers.len();
    if fields > MAX_HEAD_FIELDS {
        return Some(format!(
            "The request has {fields} header fields; at most {MAX_HEAD_FIELDS} are accepted"
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (bytes > MAX_HEAD_BYTES).then(|| {
        format!("The request headers are {bytes} bytes; at most {MAX_HEAD_BYTES} are accepted")
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(kind: ErrorType) -> Box<Error> {
        let mut e = Error::new(kind);
        e.esource = ErrorSource::Upstream;
        e
    }

    #[test]
    fn an_unreachable_backend_is_a_502_or_a_503_on_ready() {
        let refused = upstream(ErrorType::ConnectRefused);
        let (status, failure) = failure_for(&refused, Some(RouteGroup::Portal)).unwrap();
        assert_eq!((status, failure.code), (502, "BACKEND_UNAVAILABLE"));

        let (status, failure) = failure_for(&refused, Some(RouteGroup::Ready)).unwrap();
        assert_eq!((status, failure.code), (503, "NOT_READY"));
        assert_eq!(failure.extra["checks"]["backend"], "down");
    }

    #[test]
    fn a_slow_backend_is_a_504() {
        let (status, failure) =
            failure_for(&upstream(ErrorType::ReadTimedout), Some(RouteGroup::Chat)).unwrap();
        assert_eq!((status, failure.code), (504, "BACKEND_TIMEOUT"));
    }

    #[test]
    fn a_departed_client_gets_no_answer() {
        let mut gone = Error::new(ErrorType::ConnectionClosed);
        gone.esource = ErrorSource::Downstream;
        assert!(failure_for(&gone, Some(RouteGroup::Chat)).is_none());
    }
}
