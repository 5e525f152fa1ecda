//! The edge's own answers. Pingora does not run `response_filter` for them, so everything a
//! response owes (request id, content type and length, CORS and rate-limit headers) is added
//! here.

use bytes::Bytes;
use http::header;
use mindshop_filters::Rejection;
use mindshop_wire::envelope::{self, Failure};
use mindshop_wire::request_id;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;

/// Extra headers an answer owes (CORS, rate limits).
pub(crate) type Extra<'a> = &'a [(&'static str, http::HeaderValue)];

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
    let mut response = ResponseHeader::build(status, Some(5 + extra.len()))?;
    if body.is_some() {
        response.insert_header(header::CONTENT_TYPE, "application/json")?;
    }
    let length = body.as_ref().map_or(0, Vec::len);
    response.insert_header(header::CONTENT_LENGTH, length.to_string())?;
    response.insert_header(header::CACHE_CONTROL, "no-store")?;
    response.insert_header(request_id::HEADER, request_id)?;
    for (name, value) in extra {
        response.append_header(*name, value.clone())?;
    }
    session
        .write_response_header(Box::new(response), body.is_none())
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
