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
