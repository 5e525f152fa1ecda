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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A key as `mindshop_wire::api_key::generate` makes them: `pk|sk`, `test|live`, then 32
    /// base62 characters.
    fn real_key() -> impl Strategy<Value = String> {
        "(pk|sk)_(test|live)_[A-Za-z0-9]{32}"
    }

    /// Header bytes: anything, or text around a scheme and a token, so both branches run.
    fn header() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            (
                "[ \t]{0,2}",
                "(?i:bearer|basic|token)?",
                "[ \t]{0,3}",
                any::<String>()
            )
                .prop_map(
                    |(lead, scheme, gap, token)| format!("{lead}{scheme}{gap}{token}").into_bytes()
                ),
        ]
    }

    proptest! {
        /// Any bytes in either header are read without panicking, and what comes out is the
        /// header's text trimmed, from `X-API-Key` first.
        #[test]
        fn any_header_bytes_give_a_trimmed_credential_or_none(
            api_key in prop::option::of(header()),
            authorization in prop::option::of(header()),
        ) {
            let found = extract(api_key.as_deref(), authorization.as_deref());
            let key_text = api_key.as_deref().and_then(|v| std::str::from_utf8(v).ok());
            match found {
                Credential::ApiKey(key) if key_text.is_some() => {
                    prop_assert_eq!(Some(key), key_text.map(str::trim));
                }
                Credential::ApiKey(token) | Credential::Jwt(token) => {
                    prop_assert!(key_text.is_none(), "X-API-Key was text but not used");
                    let auth = authorization.as_deref().and_then(|v| std::str::from_utf8(v).ok());
                    prop_assert!(auth.is_some_and(|auth| auth.contains(token)));
                    prop_assert!(!token.is_empty());
                    prop_assert_eq!(token, token.trim());
                    prop_assert_eq!(
                        matches!(found, Credential::ApiKey(_)),
                        looks_like_api_key(token)
                    );
                }
                Credential::None => prop_assert!(key_text.is_none()),
            }
        }

        /// `Authorization: Bearer <key>` (any case of `Bearer`, any spacing) is that key, a
        /// bearer of any other shape is a JWT, and another scheme is no credential.
        #[test]
        fn bearer_tokens_are_keys_or_jwts_by_their_shape(
            scheme in "(?i:bearer|basic|digest)",
            spaces in "[ ]{1,3}",
            (token, is_key) in prop_oneof![
                real_key().prop_map(|key| (key, true)),
                "[A-Za-z0-9_.-]{1,40}"
                    .prop_filter("a key prefix", |t| !t.starts_with("pk_") && !t.starts_with("sk_"))
                    .prop_map(|jwt| (jwt, false)),
            ],
        ) {
            let header = format!("{scheme}{spaces}{token} ");
            let expected = match (scheme.eq_ignore_ascii_case("bearer"), is_key) {
                (false, _) => Credential::None,
                (true, true) => Credential::ApiKey(&token),
                (true, false) => Credential::Jwt(&token),
            };
            prop_assert_eq!(extract(None, Some(header.as_bytes())), expected);
        }

        /// A real key in logs is its 12-character display prefix (`pk_test_` and four of its
        /// 32 random characters), never the rest of its secret.
        #[test]
        fn redacted_real_keys_show_only_their_display_prefix(key in real_key()) {
            let shown = redacted(&key);
            prop_assert_eq!(shown, &key[..12]);
            prop_assert!(!shown.contains(&key[8..16]), "more than four secret characters");
        }

        /// Whatever a client sends as a key, what is logged is a prefix of at most 12 bytes of
        /// it (or a placeholder), so a long key is never logged whole.
        #[test]
        fn redacted_anything_is_a_short_prefix(key in any::<String>()) {
            let shown = redacted(&key);
            if shown != "[short key]" {
                prop_assert!(key.starts_with(shown));
                prop_assert!(shown.len() <= 12);
            }
            if key.len() > 12 {
                prop_assert_ne!(shown, key.as_str());
            }
        }
    }
}
