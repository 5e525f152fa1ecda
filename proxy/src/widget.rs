//! The widget's routes, answered by the edge itself after CORS (any origin) and the per-IP
//! rate limit:
//! - `GET|HEAD /v1/widget.js`: the script, built into the binary; an `ETag` (a validator that
//!   changes with the script), `Cache-Control: public, max-age=300`, gzip when accepted.
//! - `POST|GET /v1/widget/load?merchantId=…&outcome=loaded&ms=…` (or `outcome=failed&reason=…`):
//!   the widget's report of how long it took to become usable, or why it could not; recorded
//!   as `mindshop_widget_load_seconds` and `mindshop_widget_load_failures_total{reason}`, then
//!   204. The widget sends it with `navigator.sendBeacon`, which carries no custom headers.

use std::io::Write as _;
use std::sync::LazyLock;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderValue, Method, header};
use mindshop_wire::envelope::Failure;
use mindshop_wire::request_id;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use prometheus::{Histogram, IntCounterVec, register_histogram, register_int_counter_vec};
use sha2::{Digest, Sha256};

use crate::answer::{self, Extra};

/// The script as written in `proxy/assets/widget.js`.
const SCRIPT: &[u8] = include_bytes!("../assets/widget.js");
/// How long browsers and CDNs may use the script without asking again, in seconds.
const MAX_AGE_SECS: u32 = 300;
/// Load times above this are reported wrongly (a tab left in the background): not recorded.
const MAX_LOAD_MS: u64 = 120_000;
/// Reasons the widget reports for a failed load; any other counts as `other`.
const FAILURE_REASONS: [&str; 5] = [
    "invalid_key",
    "origin_refused",
    "network",
    "rate_limited",
    "other",
];

struct Asset {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

static ASSET: LazyLock<Asset> = LazyLock::new(|| {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let gzip = encoder
        .write_all(SCRIPT)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let digest = Sha256::digest(SCRIPT);
    let etag = format!("\"{}\"", hex(&digest[..12]));
    Asset {
        plain: Bytes::from_static(SCRIPT),
        gzip: Bytes::from(gzip),
        etag: HeaderValue::try_from(etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

struct WidgetMetrics {
    load: Histogram,
    failures: IntCounterVec,
}

static METRICS: LazyLock<WidgetMetrics> = LazyLock::new(|| WidgetMetrics {
    load: register_histogram!(
        "mindshop_widget_load_seconds",
        "Time from the widget script's request to a usable widget, as widgets report it.",
        vec![0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]
    )
    .expect("metric names are valid and registered once"),
    failures: register_int_counter_vec!(
        "mindshop_widget_load_failures_total",
        "Widgets that could not start, by reason (invalid_key, origin_refused, network, \
         rate_limited, other), as widgets report it.",
        &["reason"]
    )
    .expect("metric names are valid and registered once"),
});

/// Creates the load-failure series of every reason at 0.
pub(crate) fn init_metrics() {
    for reason in FAILURE_REASONS {
        METRICS.failures.with_label_values(&[reason]);
    }
}

/// Answers a request of the widget group.
pub(crate) async fn answer(
    session: &mut Session,
    request_id: &str,
    owed: Extra<'_>,
) -> pingora::Result<()> {
    let request = session.req_header();
    let path = request.uri.path().trim_end_matches('/');
    let method = request.method.clone();
    if path.ends_with("widget.js") {
        return match method {
            Method::GET | Method::HEAD => script(session, request_id, owed).await,
            _ => not_allowed(session, request_id, &method, "GET", owed).await,
        };
    }
    match method {
        Method::POST | Method::GET => {
            let query = request.uri.query().unwrap_or_default().to_owned();
            match record_load(&query) {
                Ok(()) => answer::empty(session, request_id, 204, owed).await,
                Err(failure) => answer::failure(session, request_id, 400, &failure, owed).await,
            }
        }
        _ => not_allowed(session, request_id, &method, "POST", owed).await,
    }
}

async fn not_allowed(
    session: &mut Session,
    request_id: &str,
    method: &Method,
    allowed: &str,
    owed: Extra<'_>,
) -> pingora::Result<()> {
    let failure = Failure::new(
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed here; use {allowed}"),
    );
    answer::failure(session, request_id, 405, &failure, owed).await
}

/// Records one report; a malformed one is refused, naming the parameter.
fn record_load(query: &str) -> Result<(), Failure> {
    let mut outcome = None;
    let mut millis = None;
    let mut reason = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "outcome" => outcome = Some(value.into_owned()),
            "ms" => millis = Some(value.into_owned()),
            "reason" => reason = Some(value.into_owned()),
            _ => {}
        }
    }
    let invalid = |field: &str, message: &str| {
        Failure::new("VALIDATION_ERROR", format!("{field}: {message}"))
            .with("field", serde_json::Value::from(field))
    };
    match outcome.as_deref() {
        Some("loaded") => {
            let millis: u64 = millis
                .as_deref()
                .and_then(|ms| ms.parse().ok())
                .ok_or_else(|| invalid("ms", "must be a whole number of milliseconds"))?;
            if millis <= MAX_LOAD_MS {
                METRICS.load.observe(millis as f64 / 1000.0);
            }
            Ok(())
        }
        Some("failed") => {
            let reason = reason.as_deref().unwrap_or("other");
            let reason = FAILURE_REASONS
                .iter()
                .find(|known| **known == reason)
                .unwrap_or(&"other");
            METRICS.failures.with_label_values(&[reason]).inc();
            Ok(())
        }
        _ => Err(invalid("outcome", "must be loaded or failed")),
    }
}

async fn script(session: &mut Session, request_id: &str, owed: Extra<'_>) -> pingora::Result<()> {
    let asset = &*ASSET;
    let request = session.req_header();
    let head = request.method == Method::HEAD;
    let unchanged = request
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| matches_etag(tags, &asset.etag));
    let gzip = request
        .headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        });

    let status = if unchanged { 304 } else { 200 };
    let mut response = ResponseHeader::build(status, Some(8 + owed.len()))?;
    response.insert_header(header::ETAG, asset.etag.clone())?;
    response.insert_header(
        header::CACHE_CONTROL,
        format!("public, max-age={MAX_AGE_SECS}"),
    )?;
    response.insert_header(header::VARY, "Accept-Encoding")?;
    response.insert_header(request_id::HEADER, request_id)?;
    for (name, value) in owed {
        response.append_header(name.clone(), value.clone())?;
    }
    if let Some(hsts) = answer::hsts_for(session) {
        response.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    if unchanged {
        session
            .write_response_header(Box::new(response), true)
            .await?;
        return Ok(());
    }
    let body = if gzip {
        response.insert_header(header::CONTENT_ENCODING, "gzip")?;
        asset.gzip.clone()
    } else {
        asset.plain.clone()
    };
    response.insert_header(
        header::CONTENT_TYPE,
        "application/javascript; charset=utf-8",
    )?;
    response.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    session
        .write_response_header(Box::new(response), head)
        .await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Whether an `If-None-Match` list names `etag` (weak or strong) or is `*`.
fn matches_etag(tags: &str, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().unwrap_or_default();
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_compresses_and_has_a_strong_validator() {
        let asset = &*ASSET;
        assert!(asset.gzip.len() < asset.plain.len() / 2, "gzip shrinks it");
        let etag = asset.etag.to_str().unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 26);
        assert!(matches_etag(etag, &asset.etag));
        assert!(matches_etag(&format!("\"x\", W/{etag}"), &asset.etag));
        assert!(matches_etag("*", &asset.etag));
        assert!(!matches_etag("\"other\"", &asset.etag));
    }

    #[test]
    fn load_reports_are_checked_and_reasons_bounded() {
        assert!(record_load("merchantId=m&outcome=loaded&ms=420").is_ok());
        assert!(record_load("outcome=failed&reason=origin_refused").is_ok());
        // An unknown reason is counted as `other`, never as a new series.
        assert!(record_load("outcome=failed&reason=made-up").is_ok());
        let other = METRICS.failures.with_label_values(&["other"]).get();
        assert!(other >= 1);
        let refused = record_load("outcome=loaded&ms=soon").unwrap_err();
        assert_eq!(refused.code, "VALIDATION_ERROR");
        assert!(refused.error.starts_with("ms:"), "{}", refused.error);
        assert!(record_load("outcome=maybe").is_err());
        assert!(record_load("").is_err());
    }
}
