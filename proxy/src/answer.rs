//! The edge's own answers. Pingora does not run `response_filter` for them, so everything a
//! response owes (request id, content type and length) is added here.

use bytes::Bytes;
use http::header;
use mindshop_filters::Rejection;
use mindshop_wire::envelope::{self, Failure};
use mindshop_wire::request_id;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;

/// Writes a success envelope around `data`.
pub(crate) async fn success<T: Serialize>(
    session: &mut Session,
    request_id: &str,
    data: &T,
) -> pingora::Result<()> {
    write(
        session,
        request_id,
        200,
        envelope::success_json(data, request_id),
    )
    .await
}

/// Writes a filter's rejection.
pub(crate) async fn reject(
    session: &mut Session,
    request_id: &str,
    rejection: &Rejection,
) -> pingora::Result<()> {
    failure(session, request_id, rejection.status, &rejection.failure).await
}

pub(crate) async fn failure(
    session: &mut Session,
    request_id: &str,
    status: u16,
    failure: &Failure,
) -> pingora::Result<()> {
    write(session, request_id, status, failure.to_json(request_id)).await
}

async fn write(
    session: &mut Session,
    request_id: &str,
    status: u16,
    body: Vec<u8>,
) -> pingora::Result<()> {
    // An unread request body would be drained, uncapped, to reuse the connection: close it.
    if !session.is_body_empty() {
        session.set_keepalive(None);
    }
    let mut response = ResponseHeader::build(status, Some(4))?;
    response.insert_header(header::CONTENT_TYPE, "application/json")?;
    response.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    response.insert_header(header::CACHE_CONTROL, "no-store")?;
    response.insert_header(request_id::HEADER, request_id)?;
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}
