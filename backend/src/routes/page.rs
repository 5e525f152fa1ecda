//! Paginated lists: `?limit=` and the opaque `?cursor=` that continues a newest-first list.
//!
//! A cursor is the hex of `v1`, the last item's creation time and its id. Clients treat it as
//! opaque; the version lets its content change without misreading old cursors. A cursor is
//! decoded from hex, so it could carry any byte: one whose text holds NUL is refused like any
//! other foreign cursor (no id or SKU holds NUL; see [`crate::text`]).

use chrono::{DateTime, SecondsFormat, Utc};

use crate::ApiError;
use crate::store::PageKey;

/// Items per page when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: u32 = 20;
/// Most items per page.
pub(crate) const MAX_LIMIT: u32 = 100;

const VERSION: &str = "v1";

/// `limit` as asked: a whole number from 1 to [`MAX_LIMIT`].
pub(crate) fn parse_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    limit
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )
        })
}

/// A page from `items` fetched with `limit + 1`: at most `limit` items, and the cursor of the
/// next page (`cursor_of` the last item kept) when the extra item shows that one follows.
pub(crate) fn split<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(cursor_of);
    (items, next)
}

pub(crate) fn encode_cursor(key: &PageKey) -> String {
    let created_at = key.created_at.to_rfc3339_opts(SecondsFormat::Nanos, true);
    hex::encode(format!("{VERSION}\n{created_at}\n{}", key.id))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<PageKey, ApiError> {
    let invalid = || ApiError::invalid("cursor", "is not a cursor from a previous page");
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.contains('\0'))
        .ok_or_else(invalid)?;
    let mut parts = text.splitn(3, '\n');
    let (Some(VERSION), Some(created_at), Some(id)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let created_at = DateTime::parse_from_rfc3339(created_at).map_err(|_| invalid())?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok(PageKey {
        created_at: created_at.with_timezone(&Utc),
        id: id.to_owned(),
    })
}

/// A cursor for lists ordered by SKU: the hex of `s1` and the last item's SKU.
pub(crate) fn encode_sku_cursor(sku: &str) -> String {
    hex::encode(format!("s1\n{sku}"))
}

pub(crate) fn decode_sku_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::invalid("cursor", "is not a cursor from a previous page");
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.contains('\0'))
        .ok_or_else(invalid)?;
    match text.split_once('\n') {
        Some(("s1", sku)) if !sku.is_empty() => Ok(sku.to_owned()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(
                matches!(parse_limit(Some(bad)), Err(ApiError::Validation { field, .. }) if field == "limit"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cursors_round_trip_to_the_nanosecond() {
        let key = PageKey {
            created_at: DateTime::parse_from_rfc3339("2026-03-01T10:11:12.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            id: "doc_0192".to_owned(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&key)).unwrap(), key);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in [
            "",
            "zz",
            &hex::encode("v2\n2026-03-01T10:11:12Z\ndoc_1"),
            &hex::encode("v1\nyesterday\ndoc_1"),
            &hex::encode("v1\n2026-03-01T10:11:12Z\n"),
            &hex::encode("v1\n2026-03-01T10:11:12Z"),
            &hex::encode("v1\n2026-03-01T10:11:12Z\ndoc_1\0"),
            &hex::encode("v1\n2026-03-01T10:11:12Z\n\0"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(ApiError::Validation { field, .. }) if field == "cursor"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sku_cursors_round_trip_and_refuse_nul() {
        assert_eq!(
            decode_sku_cursor(&encode_sku_cursor("MUG-1")).unwrap(),
            "MUG-1"
        );
        for bad in [
            hex::encode("s1\nMUG\0"),
            hex::encode("s1\n\0"),
            hex::encode("s1\n"),
            "zz".to_owned(),
        ] {
            assert!(
                matches!(decode_sku_cursor(&bad), Err(ApiError::Validation { field, .. }) if field == "cursor"),
                "{bad:?}"
            );
        }
    }
}

#[cfg(test)]
mod properties {
    use axum::http::StatusCode;
    use proptest::prelude::*;

    use super::*;

    /// 0000-01-01 to 9999-12-31: every instant RFC 3339 writes with a four-digit year.
    const FIRST_SECOND: i64 = -62_167_219_200;
    const LAST_SECOND: i64 = 253_402_300_799;

    fn page_key() -> impl Strategy<Value = PageKey> {
        (
            FIRST_SECOND..=LAST_SECOND,
            0u32..1_000_000_000,
            prop_oneof!["[a-z]{3}_[0-9a-f]{8}", "[^\\x00]{1,40}"],
        )
            .prop_map(|(secs, nanos, id)| PageKey {
                created_at: DateTime::from_timestamp(secs, nanos).expect("in range"),
                id,
            })
    }

    /// What a client might put in `?cursor=`: anything, hex of anything, or hex of text that
    /// starts like one of ours.
    fn cursor_like() -> impl Strategy<Value = String> {
        let bytes = prop::collection::vec(any::<u8>(), 0..48);
        // Our own shape around any bytes: a real time, then an id that may hold NUL or not
        // be UTF-8.
        let id = prop_oneof![
            "[a-z_\\x00\\n]{0,8}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..16),
        ];
        let ours = (page_key(), "(v1|s1)\n", id).prop_map(|(key, version, id)| {
            let time = key
                .created_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, key.id.len() % 2 == 0);
            let mut text = if version == "s1\n" {
                version
            } else {
                format!("v1\n{time}\n")
            }
            .into_bytes();
            text.extend(id);
            hex::encode(text)
        });
        prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{0,64}",
            bytes.clone().prop_map(hex::encode),
            ours,
            ("(v1|s1|v2)?\n?", "[0-9T:.+Z-]{0,32}", "\n?", bytes).prop_map(
                |(version, time, newline, rest)| {
                    let mut text = format!("{version}{time}{newline}").into_bytes();
                    text.extend(rest);
                    hex::encode(text)
                }
            ),
        ]
    }

    /// The error is the 400 that names `field`.
    fn is_refusal_of(error: &ApiError, name: &str) -> bool {
        matches!(error, ApiError::Validation { field, .. } if field == name)
            && error.to_failure().0 == StatusCode::BAD_REQUEST
    }

    proptest! {
        /// The next page continues exactly where the last one ended, to the nanosecond.
        #[test]
        fn cursors_round_trip(key in page_key()) {
            prop_assert_eq!(decode_cursor(&encode_cursor(&key)).ok(), Some(key));
        }

        #[test]
        fn sku_cursors_round_trip(sku in "[^\\x00]{1,128}") {
            prop_assert_eq!(decode_sku_cursor(&encode_sku_cursor(&sku)).ok(), Some(sku));
        }

        /// A cursor the client made up is either one that continues a page (no NUL, an id) or
        /// the 400 naming `cursor`; never a panic, never a 500.
        #[test]
        fn made_up_cursors_decode_or_are_refused(cursor in cursor_like()) {
            match decode_cursor(&cursor) {
                Ok(key) => {
                    prop_assert!(!key.id.is_empty() && !key.id.contains('\0'));
                    prop_assert_eq!(decode_cursor(&encode_cursor(&key)).ok(), Some(key));
                }
                Err(error) => prop_assert!(is_refusal_of(&error, "cursor"), "{:?}", error),
            }
            match decode_sku_cursor(&cursor) {
                Ok(sku) => {
                    prop_assert!(!sku.is_empty() && !sku.contains('\0'));
                    prop_assert_eq!(decode_sku_cursor(&encode_sku_cursor(&sku)).ok(), Some(sku));
                }
                Err(error) => prop_assert!(is_refusal_of(&error, "cursor"), "{:?}", error),
            }
        }

        /// `limit` is taken exactly when it is a whole number from 1 to 100.
        #[test]
        fn numeric_limits_are_taken_within_bounds(n in prop_oneof![0u64..200, any::<u64>()]) {
            let parsed = parse_limit(Some(&n.to_string()));
            if (1..=u64::from(MAX_LIMIT)).contains(&n) {
                prop_assert_eq!(parsed.ok(), u32::try_from(n).ok());
            } else {
                prop_assert!(parsed.is_err_and(|e| is_refusal_of(&e, "limit")));
            }
        }

        /// Any other `limit` text is a number in bounds or the 400 naming `limit`.
        #[test]
        fn made_up_limits_are_bounded_or_refused(
            limit in prop_oneof![any::<String>(), "[ +-]?[0-9]{1,4}[ .]?[0-9]?"],
        ) {
            match parse_limit(Some(&limit)) {
                Ok(n) => prop_assert!((1..=MAX_LIMIT).contains(&n)),
                Err(error) => prop_assert!(is_refusal_of(&error, "limit"), "{:?}", error),
            }
        }
    }
}
