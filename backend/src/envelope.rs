//! [`Envelope`]: a handler's successful answer in the shared envelope.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::RequestContext;

/// `{"success": true, "data": …, "timestamp": …, "requestId": …}` with a status (200 unless
/// changed with [`Envelope::status`]).
#[derive(Debug)]
pub struct Envelope<T> {
    status: StatusCode,
    data: T,
    request_id: String,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(context: &RequestContext, data: T) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            request_id: context.request_id.clone(),
        }
    }

    /// Answers with another success status, e.g. 201 Created.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            mindshop_wire::envelope::success_json(&self.data, &self.request_id),
        )
    }
}

/// A JSON body with the envelope's content type.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
