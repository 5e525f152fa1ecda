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

/// `bytes` as lowercase hex. `hex::encode` builds its string a character at a time; this runs
/// on every request (key hashes, identity signatures), so it encodes into a buffer at once.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    // The buffer is exactly twice the input, which is all encode_to_slice asks.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
