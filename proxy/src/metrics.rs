//! Edge metrics in the default Prometheus registry, and the `/metrics` listener.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode, header};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{
    Encoder, HistogramVec, IntCounterVec, IntGauge, TextEncoder, register_histogram_vec,
    register_int_counter_vec, register_int_gauge,
};

/// Metrics every edge request updates in the logging phase, early answers included.
#[derive(Debug)]
pub struct EdgeMetrics {
    /// `mindshop_http_requests_total{route_group, method, status}`
    requests: IntCounterVec,
    /// `mindshop_http_request_duration_seconds{route_group, status}`
    duration: HistogramVec,
    /// `mindshop_auth_failures_total{reason}`
    pub auth_failures: IntCounterVec,
    /// `mindshop_cors_rejections_total{reason}`
    pub cors_rejections: IntCounterVec,
    /// `mindshop_ratelimit_limited_total{route_group}`
    pub rate_limited: IntCounterVec,
    /// `mindshop_ratelimit_backend_errors_total{reason}`
    pub rate_limit_errors: IntCounterVec,
    /// `mindshop_route_disabled_total{route_group}`
    route_disabled: IntCounterVec,
}

/// Registered once per process, on first use.
pub static EDGE_METRICS: LazyLock<EdgeMetrics> = LazyLock::new(|| EdgeMetrics {
    requests: register_int_counter_vec!(
        "mindshop_http_requests_total",
        "Requests answered by the edge, by route group, method and status.",
        &["route_group", "method", "status"]
    )
    .expect("metric names are valid and registered once"),
    duration: register_histogram_vec!(
        "mindshop_http_request_duration_seconds",
        "Time from the request's arrival at the edge to the end of its response.",
        &["route_group", "status"],
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
        ]
    )
    .expect("metric names are valid and registered once"),
    auth_failures: counter(
        "mindshop_auth_failures_total",
        "Requests refused by authentication or authorization at the edge, by reason.",
        &["reason"],
    ),
    cors_rejections: counter(
        "mindshop_cors_rejections_total",
        "Requests refused because of their Origin, by reason.",
        &["reason"],
    ),
    rate_limited: counter(
        "mindshop_ratelimit_limited_total",
        "Requests refused with 429, by route group.",
        &["route_group"],
    ),
    rate_limit_errors: counter(
        "mindshop_ratelimit_backend_errors_total",
        "Rate-limit store failures (e.g. Redis unreachable), by reason.",
        &["reason"],
    ),
    route_disabled: counter(
        "mindshop_route_disabled_total",
        "Requests answered 503 ROUTE_DISABLED because their route group is switched off, by route group.",
        &["route_group"],
    ),
});

/// The outcome of configuration reloads (SIGHUP, `mindshop reload`).
#[derive(Debug)]
pub struct ReloadMetrics {
    /// `mindshop_config_reloads_total{result}`: `success` or `failure`.
    reloads: IntCounterVec,
    /// `mindshop_config_last_reload_success_timestamp_seconds`
    last_success: IntGauge,
    /// `mindshop_config_last_reload_successful`: 1 while the file last read is the one in use.
    last_successful: IntGauge,
}

/// Registered once per process, on first use.
pub static RELOAD_METRICS: LazyLock<ReloadMetrics> = LazyLock::new(|| {
    ReloadMetrics {
    reloads: counter(
        "mindshop_config_reloads_total",
        "Configuration reloads, by result (success: swapped in; failure: invalid, nothing changed).",
        &["result"],
    ),
    last_success: register_int_gauge!(
        "mindshop_config_last_reload_success_timestamp_seconds",
        "When the configuration in use was loaded (start-up or the last successful reload), Unix seconds."
    )
    .expect("metric names are valid and registered once"),
    last_successful: register_int_gauge!(
        "mindshop_config_last_reload_successful",
        "1 if the last reload (or the start-up) applied its configuration, 0 if it was refused."
    )
    .expect("metric names are valid and registered once"),
}
});

impl ReloadMetrics {
    /// The configuration loaded at start-up: both results at 0, the timestamp now.
    pub fn started(&self) {
        for result in ["success", "failure"] {
            self.reloads.with_label_values(&[result]);
        }
        self.last_successful.set(1);
        self.last_success.set(unix_now());
    }

    /// A reload's outcome.
    pub fn record(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.with_label_values(&[result]).inc();
        self.last_successful.set(i64::from(success));
        if success {
            self.last_success.set(unix_now());
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(name, help, labels)
        .expect("metric names are valid and registered once")
}

impl EdgeMetrics {
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Creates the series whose labels are known in advance at 0, so `rate()` and `increase()`
    /// see the first events after a start.
    pub fn init(&self) {
        for reason in ["origin_not_allowed", "malformed_origin"] {
            self.cors_rejections.with_label_values(&[reason]);
        }
        for reason in mindshop_filters::rate_limit::LimiterError::REASONS {
            self.rate_limit_errors.with_label_values(&[reason]);
        }
        for group in mindshop_filters::route::RouteGroup::ALL {
            if !group.row().budgets.is_empty() {
                self.rate_limited.with_label_values(&[group.label()]);
            }
        }
        crate::widget::init_metrics();
        for group in mindshop_filters::route::RouteGroup::ALL {
            if !matches!(
                group,
                mindshop_filters::route::RouteGroup::Health
                    | mindshop_filters::route::RouteGroup::Ready
            ) {
                self.route_disabled.with_label_values(&[group.label()]);
            }
        }
    }

    pub fn route_disabled(&self, route_group: &str) {
        self.route_disabled.with_label_values(&[route_group]).inc();
    }

    pub fn cors_rejection(&self, reason: &str) {
        self.cors_rejections.with_label_values(&[reason]).inc();
    }

    pub fn observe(&self, route_group: &str, method: &http::Method, status: u16, took: Duration) {
        // StatusCode::as_str reads a static table: no allocation per request.
        let code = http::StatusCode::from_u16(status).ok();
        let status = code.as_ref().map_or("none", http::StatusCode::as_str);
        self.requests
            .with_label_values(&[route_group, method_label(method), status])
            .inc();
        self.duration
            .with_label_values(&[route_group, status])
            .observe(took.as_secs_f64());
    }
}

/// Methods outside the standard set share one label, so clients cannot grow the series.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Serves the default registry in the Prometheus text format at `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsEndpoint;

#[async_trait]
impl ServeHttp for MetricsEndpoint {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().uri.path() != "/metrics" {
            return plain(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"see /metrics\n".to_vec(),
            );
        }
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        if let Err(error) = encoder.encode(&prometheus::gather(), &mut body) {
            tracing::error!(%error, "cannot encode metrics");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", Vec::new());
        }
        plain(StatusCode::OK, encoder.format_type(), body)
    }
}

fn plain(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    let length = response.body().len();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length.into());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        let custom = http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_label(&custom), "OTHER");
    }
}
