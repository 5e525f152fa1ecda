//! The edge's own answers. Pingora does not run `response_filter` for them, so everything a
//! response owes (request id, content type and length, CORS and rate-limit headers) is added
//! here.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use mindshop_filters::Rejection;
use mindshop_wire::envelope::{self, Failure};
use mindshop_wire::request_id;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use serde::Serialize;

/// Extra headers an answer owes (CORS, rate limits).
pub(crate) type Extra<'a> = &'a [(HeaderName, HeaderValue)];

/// `X-Request-ID` as a header name.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static(request_id::HEADER);

/// An empty response head for `status`, with room for `capacity` headers, filled through its
/// `http` header map.
///
/// Pingora's own `ResponseHeader` builders keep a second map with each name's original case
/// and parse every name they are given, which made adding a proxied answer's ten CORS and
/// rate-limit headers the largest cost of the edge's pipeline. The edge's names are
/// constants, so it builds heads as plain `http` parts and hands them to Pingora as they are.
/// Names then go out in lowercase (a few common ones titled), which HTTP/1.1 treats alike
/// and HTTP/2 requires.
pub(crate) fn head(status: u16, capacity: usize) -> pingora::Result<http::response::Parts> {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(status).map_err(|e| internal("answer status", e))?;
    reserve(&mut parts, capacity)?;
    Ok(parts)
}

/// Room for `additional` more headers in `parts`.
pub(crate) fn reserve(parts: &mut http::response::Parts, additional: usize) -> pingora::Result<()> {
    parts
        .headers
        .try_reserve(additional)
        .map_err(|e| internal("answer headers", e))
}

/// Appends `headers` to `parts`.
pub(crate) fn append(
    parts: &mut http::response::Parts,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> pingora::Result<()> {
    for (name, value) in headers {
        parts
            .headers
            .try_append(name, value)
            .map_err(|e| internal("answer headers", e))?;
    }
    Ok(())
}

/// An error of the edge's own making (a header map over `http`'s size limit, …).
pub(crate) fn internal(
    context: &'static str,
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Box<pingora::Error> {
    pingora::Error::because(pingora::ErrorType::InternalError, context, cause)
}

/// `request_id` as a header value (accepted or generated ids are always valid ones).
pub(crate) fn request_id_value(request_id: &str) -> HeaderValue {
    HeaderValue::from_str(request_id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Writes a success envelope around `data`.
pub(crate) async fn success<T: Serialize>(
    session: &mut Session,
    request_id: &str,
    data: &T,
) -> pingora::Result<()> {
    let body = envelope::success_json(data, request_id);
    write(session, request_id, 200, Some(body), &[]).await
}

/// Writes a filter's rejection.
pub(crate) async fn reject(
    session: &mut Session,
    request_id: &str,
    rejection: &Rejection,
) -> pingora::Result<()> {
    failure(
        session,
        request_id,
        rejection.status,
        &rejection.failure,
        &[],
    )
    .await
}

/// Writes a failure envelope with the headers the request is owed.
pub(crate) async fn failure(
    session: &mut Session,
    request_id: &str,
    status: u16,
    failure: &Failure,
    extra: Extra<'_>,
) -> pingora::Result<()> {
    let body = failure.to_json(request_id);
    write(session, request_id, status, Some(body), extra).await
}

/// An answer without a body, e.g. the 204 of a preflight.
pub(crate) async fn empty(
    session: &mut Session,
    request_id: &str,
    status: u16,
    extra: Extra<'_>,
) -> pingora::Result<()> {
    write(session, request_id, status, None, extra).await
}

async fn write(
    session: &mut Session,
    request_id: &str,
    status: u16,
    body: Option<Vec<u8>>,
    extra: Extra<'_>,
) -> pingora::Result<()> {
    // An unread request body would be drained, uncapped, to reuse the connection: close it.
    if !session.is_body_empty() {
        session.set_keepalive(None);
    }
    let mut response = head(status, 5 + extra.len())?;
    let headers = &mut response.headers;
    if body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let length = body.as_ref().map_or(0, Vec::len);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID, request_id_value(request_id));
    add_hsts(session, headers);
    append(&mut response, extra.iter().cloned())?;
    session
        .write_response_header(Box::new(ResponseHeader::from(response)), body.is_none())
        .await?;
    match body {
        Some(body) => {
            session
                .write_response_body(Some(Bytes::from(body)), true)
                .await
        }
        None => Ok(()),
    }
}

/// `Strict-Transport-Security` for HTTPS answers, from `edge.hsts_max_age_secs` (one edge per
/// process; unset or 0 sends none).
static HSTS: OnceLock<Option<HeaderValue>> = OnceLock::new();

pub(crate) fn set_hsts(max_age_secs: u64) {
    let value = (max_age_secs > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={max_age_secs}")).ok())
        .flatten();
    let _ = HSTS.set(value);
}

/// Whether the client's connection is TLS (the HTTPS listener).
pub(crate) fn is_https(session: &Session) -> bool {
    session
        .digest()
        .is_some_and(|digest| digest.ssl_digest.is_some())
}

/// The `Strict-Transport-Security` value an answer on `session` carries, if any: only over
/// HTTPS, and only when configured.
pub(crate) fn hsts_for(session: &Session) -> Option<HeaderValue> {
    HSTS.get()?.clone().filter(|_| is_https(session))
}

/// Adds `Strict-Transport-Security` to an answer sent over HTTPS, when configured.
pub(crate) fn add_hsts(session: &Session, headers: &mut http::HeaderMap) {
    if let Some(value) = hsts_for(session) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
}

/// The `https://` URL of `request` on `port` (443 left out), or `None` without a usable host.
pub(crate) fn https_location(request: &RequestHeader, port: u16) -> Option<HeaderValue> {
    let host = request.uri.host().map(str::to_owned).or_else(|| {
        let value = request.headers.get(header::HOST)?.to_str().ok()?;
        let authority = value.parse::<http::uri::Authority>().ok()?;
        Some(authority.host().to_owned())
    })?;
    let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = match port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    };
    HeaderValue::from_str(&location).ok()
}

/// `308 Permanent Redirect` to `location`: the method and body are kept by the client.
pub(crate) async fn redirect(
    session: &mut Session,
    request_id: &str,
    location: HeaderValue,
) -> pingora::Result<()> {
    write(
        session,
        request_id,
        308,
        None,
        &[(header::LOCATION, location)],
    )
    .await
}
