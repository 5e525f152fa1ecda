//! Which credential a request carries: an API key (`X-API-Key: pk_…`, or
//! `Authorization: Bearer pk_…|sk_…`) or a portal JWT (`Authorization: Bearer <jwt>`).

/// The credential found in a request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'h> {
    ApiKey(&'h str),
    Jwt(&'h str),
    None,
}

/// Looks at `X-API-Key` first, then `Authorization: Bearer …`.
pub fn extract<'h>(api_key: Option<&'h [u8]>, authorization: Option<&'h [u8]>) -> Credential<'h> {
    if let Some(key) = api_key.and_then(|v| std::str::from_utf8(v).ok()) {
        return Credential::ApiKey(key.trim());
    }
    let bearer = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match bearer {
        Some(token) if looks_like_api_key(token) => Credential::ApiKey(token),
        Some(token) if !token.is_empty() => Credential::Jwt(token),
        _ => Credential::None,
    }
}

fn looks_like_api_key(token: &str) -> bool {
    ["pk_test_", "pk_live_", "sk_test_", "sk_live_"]
        .iter()
        .any(|prefix| token.starts_with(prefix))
}

/// A key fit for logs: its first 12 characters (`pk_test_AbCd`), never the whole key.
pub fn redacted(key: &str) -> &str {
    key.get(..12).unwrap_or("[short key]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_either_header_and_jwts_in_bearer() {
        assert_eq!(
            extract(Some(b"pk_test_abc"), None),
            Credential::ApiKey("pk_test_abc")
        );
        assert_eq!(
            extract(None, Some(b"Bearer sk_live_abc")),
            Credential::ApiKey("sk_live_abc")
        );
        assert_eq!(
            extract(None, Some(b"bearer eyJ.x.y")),
            Credential::Jwt("eyJ.x.y")
        );
        assert_eq!(extract(None, Some(b"Basic abc")), Credential::None);
        assert_eq!(extract(None, Some(b"Bearer ")), Credential::None);
        assert_eq!(extract(None, None), Credential::None);
        assert_eq!(redacted("pk_test_0123456789"), "pk_test_0123");
    }
}
