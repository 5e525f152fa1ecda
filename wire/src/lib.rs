//! What crosses the wire between clients, the edge and the backend.
//!
//! Both halves of mindshop speak the same small protocol, so it lives here once:
//!
//! # Layout
//! - [`envelope`]: the JSON envelope every answer uses (`success`, `data` or `error` + `code`,
//!   `timestamp`, `requestId`).
//! - [`request_id`]: accepting a client's `X-Request-ID` or generating one.
//! - [`identity`]: the identity the edge asserts to the backend, signed with HMAC-SHA256 over
//!   the request line, the request id and a timestamp.
//! - [`ids`]: prefixed resource ids (`key_…`, `evt_…`).
//! - [`merchant`]: merchant ids and allowed domains.
//! - [`origin`]: browser origins and which allowed domain admits them.
//! - [`api_key`]: the shape of API keys (`pk_test_…`, `sk_live_…`), their SHA-256 hash and the
//!   permission catalogue.

pub mod api_key;
pub mod envelope;
pub mod identity;
pub mod ids;
pub mod merchant;
pub mod origin;
pub mod request_id;
