//! Request ids: accept a sane client value, otherwise generate one.

/// The header that carries the request id, in both directions and to the backend.
pub const HEADER: &str = "x-request-id";

/// Longest client-sent request id we keep; longer ones are replaced, not truncated.
pub const MAX_LEN: usize = 128;

/// Returns the client's request id when it is usable in headers, logs and JSON as it is:
/// 1 to [`MAX_LEN`] visible ASCII characters (no spaces, no control characters).
pub fn accept(client_value: Option<&[u8]>) -> Option<&str> {
    let value = client_value?;
    if value.is_empty() || value.len() > MAX_LEN || !value.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// A new request id: a UUIDv7, so ids sort by time in logs.
pub fn generate() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The client's id when sane, else a new one.
pub fn accept_or_generate(client_value: Option<&[u8]>) -> String {
    accept(client_value).map_or_else(generate, str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_client_id() {
        assert_eq!(accept_or_generate(Some(b"abc-123")), "abc-123");
    }

    #[test]
    fn replaces_empty_long_or_unprintable_ids() {
        let long = [b'a'; MAX_LEN + 1];
        for bad in [
            &b""[..],
            &long,
            b"a b",
            b"tab\there",
            b"new\nline",
            "caf\u{e9}".as_bytes(),
        ] {
            let id = accept_or_generate(Some(bad));
            assert_ne!(id.as_bytes(), bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated id {id:?}");
        }
        assert!(accept(Some(&[b'a'; MAX_LEN])).is_some());
    }

    #[test]
    fn generates_distinct_ids() {
        assert_ne!(generate(), generate());
    }
}
