//! The one rule for text that comes from outside: it holds no NUL (U+0000).
//!
//! PostgreSQL cannot store U+0000 in `text` or `jsonb` (it fails the statement: SQLSTATE
//! 22021 / 22P05); SQLite stores it. Nothing a shopper or a merchant means contains it, so it is
//! refused everywhere text arrives, the same on both databases:
//! - a JSON body string or key, at any depth: 400 `VALIDATION_ERROR` naming its path
//!   (`extract::ApiJson`);
//! - a path parameter: 404, an id that cannot exist (`extract::ApiPath`);
//! - a query parameter or a decoded cursor: 400 naming it (`extract::ApiQuery`, `routes::page`);
//! - a cell of a catalog file: that row's error (`sync::parse`);
//! - and, whatever the caller, by the store itself ([`crate::store::StoreError::InvalidText`]).
//!
//! [`Text::nul_at`] says where a value holds NUL, as a path below the value (`""` for the
//! value itself, `[2]`, `.title`), so each of those places can name it.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What a refusal says about the value it names.
pub(crate) const NUL_REFUSED: &str = "must not contain the NUL character (U+0000)";

/// A value that may hold text.
pub(crate) trait Text {
    /// Where the first NUL is, as a path below this value: `""` for the value itself, `[2]`
    /// for an element, `.title` for a field; `None` when there is none.
    fn nul_at(&self) -> Option<String>;
}

/// `name` followed by the path `below` it, without a leading dot at the top: `("", ".a")` is
/// `a`, `("tags", "[1]")` is `tags[1]`.
pub(crate) fn join(name: &str, below: &str) -> String {
    if name.is_empty() {
        below.strip_prefix('.').unwrap_or(below).to_owned()
    } else {
        format!("{name}{below}")
    }
}

/// A key as a path segment: readable, with NUL written as the JSON escape that sent it.
fn segment(key: &str) -> String {
    format!(".{}", key.replace('\0', "\\u0000"))
}

impl Text for str {
    fn nul_at(&self) -> Option<String> {
        self.contains('\0').then(String::new)
    }
}

impl Text for String {
    fn nul_at(&self) -> Option<String> {
        self.as_str().nul_at()
    }
}

impl<T: Text + ?Sized> Text for &T {
    fn nul_at(&self) -> Option<String> {
        (**self).nul_at()
    }
}

impl<T: Text> Text for Option<T> {
    fn nul_at(&self) -> Option<String> {
        self.as_ref().and_then(Text::nul_at)
    }
}

impl<T: Text> Text for [T] {
    fn nul_at(&self) -> Option<String> {
        self.iter()
            .enumerate()
            .find_map(|(index, item)| Some(format!("[{index}]{}", item.nul_at()?)))
    }
}

impl<T: Text> Text for Vec<T> {
    fn nul_at(&self) -> Option<String> {
        self.as_slice().nul_at()
    }
}

impl<S> Text for HashSet<String, S> {
    fn nul_at(&self) -> Option<String> {
        // A set has no positions: the element itself names the place well enough.
        self.iter()
            .any(|item| item.contains('\0'))
            .then(String::new)
    }
}

impl<T: Text, S> Text for HashMap<String, T, S> {
    fn nul_at(&self) -> Option<String> {
        map_nul_at(self.iter())
    }
}

impl<T: Text> Text for BTreeMap<String, T> {
    fn nul_at(&self) -> Option<String> {
        map_nul_at(self.iter())
    }
}

impl Text for serde_json::Value {
    fn nul_at(&self) -> Option<String> {
        use serde_json::Value;
        match self {
            Value::String(text) => text.nul_at(),
            Value::Array(items) => items.nul_at(),
            Value::Object(object) => map_nul_at(object.iter()),
            Value::Null | Value::Bool(_) | Value::Number(_) => None,
        }
    }
}

fn map_nul_at<'a, T: Text + 'a>(
    mut entries: impl Iterator<Item = (&'a String, &'a T)>,
) -> Option<String> {
    entries.find_map(|(key, value)| match (key.contains('\0'), value.nul_at()) {
        (true, _) => Some(segment(key)),
        (false, Some(below)) => Some(format!("{}{below}", segment(key))),
        (false, None) => None,
    })
}

/// The first of `fields` that holds NUL, as `name` joined with the path below it.
pub(crate) fn first_nul(fields: &[(&str, &dyn Text)]) -> Option<String> {
    fields
        .iter()
        .find_map(|(name, value)| Some(join(name, &value.nul_at()?)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_found_at_any_depth_and_named_by_its_path() {
        let at = |value: serde_json::Value| value.nul_at().map(|path| join("", &path));
        assert_eq!(at(json!({"query": "a\u{0}b"})), Some("query".into()));
        assert_eq!(
            at(json!({"fieldMapping": {"sku": "sku", "title": "t\u{0}"}})),
            Some("fieldMapping.title".into())
        );
        assert_eq!(
            at(json!({"products": [{}, {}, {}, {"title": "\u{0}"}]})),
            Some("products[3].title".into())
        );
        assert_eq!(
            at(json!({"fieldMapping": {"ti\u{0}tle": "x"}})),
            Some("fieldMapping.ti\\u0000tle".into()),
            "a key is named with the escape that sent it"
        );
        assert_eq!(at(json!(["\u{0}"])), Some("[0]".into()));
        assert_eq!(at(json!("\u{0}")), Some(String::new()));
        // Other control characters are text like any other.
        assert_eq!(
            at(json!({"a": "\t\u{1}\u{7f}", "b": [1, null, true]})),
            None
        );
        assert_eq!(at(json!({"a": "\\u0000 written out"})), None);
    }

    #[test]
    fn fields_are_checked_in_order() {
        let tags = vec!["ok".to_owned(), "n\0".to_owned()];
        let url: Option<String> = Some("\0".to_owned());
        assert_eq!(
            first_nul(&[("title", &"fine"), ("tags", &tags), ("url", &url)]),
            Some("tags[1]".into())
        );
        assert_eq!(
            first_nul(&[("title", &"fine"), ("url", &None::<String>)]),
            None
        );
    }
}
