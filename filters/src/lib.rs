//! The edge's request filters as plain logic: inputs are a method, a path, header values and
//! config; outputs are decisions. The Pingora adapter in `mindshop-proxy` is thin, so these
//! are tested without sockets.
//!
//! # Layout
//! - [`route`]: which policy a path falls under: its group, the merchant in the path, how the
//!   caller authenticates, its CORS rule and the permission it needs.
//! - [`cors`]: origin rules and CORS headers.
//! - [`credential`]: finding the API key or JWT in a request.
//! - [`jwt`]: verifying portal JWTs with one pinned algorithm.
//! - [`body_limit`]: refusing bodies over `edge.max_body_bytes`.
//! - [`rate_limit`]: counting requests per credential and route group, in memory or in Redis,
//!   and the rate-limit headers.
//! - [`Rejection`]: an early answer (status + envelope failure) any filter may return.

pub mod body_limit;
pub mod cors;
pub mod credential;
pub mod jwt;
pub mod rate_limit;
pub mod route;

use http::{HeaderName, HeaderValue};
use mindshop_wire::envelope::Failure;

/// Headers a filter adds to an answer, ready to go into a header map as they are: names are
/// constants (nothing to parse per request) and constant values are static (nothing to
/// allocate).
pub type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// A filter's early answer: the status and the envelope failure to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub failure: Failure,
}

impl Rejection {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            failure: Failure::new(code, message),
        }
    }
}
