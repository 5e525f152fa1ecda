//! Extractors whose rejections are envelopes: [`ApiJson`], [`ApiPath`] and [`ApiQuery`].
//!
//! axum's own `Json`, `Path` and `Query` answer a bad request with plain text; these answer
//! with the envelope, and a JSON body that parses but does not fit names the field
//! (`title`, `tags[3]`, `allowedDomains`), so a developer can fix the request from the answer.
//! Request structs use `#[serde(deny_unknown_fields)]`: a misspelt field is an error, never
//! silently ignored.
//!
//! Text holds no NUL (see [`crate::text`]): a JSON string or key with `\u0000` is a 400 naming
//! its path, a query parameter with `%00` a 400 naming the parameter, and a path parameter with
//! `%00` (or any other control character) a 404, as no id contains one. Every route gets this
//! from the extractors, so none needs to check for itself.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::ApiError;
use crate::text::{NUL_REFUSED, Text, join};

/// A JSON body (`Content-Type: application/json` or `…+json`), deserialized into `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::InvalidJson("the body could not be read".to_owned())
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// Path parameters; a parameter that cannot be decoded is a 400 envelope naming `path`, one
/// with a control character (`%00`, `%0A`, …) is a 404: the ids in paths are ours or merchant
/// ids, and neither ever holds one.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Parameters that cannot be decoded at all are left to `Path`'s own rejection below.
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await
            && raw
                .iter()
                .any(|(_, value)| value.chars().any(char::is_control))
        {
            return Err(ApiError::NotFound(
                "Not found: ids never contain control characters such as %00".to_owned(),
            ));
        }
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::invalid("path", rejection.body_text())),
        }
    }
}

/// Query parameters; a query that cannot be decoded is a 400 envelope naming `query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(name) = query_parameter_with_nul(parts.uri.query()) {
            return Err(ApiError::invalid(name, NUL_REFUSED));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::invalid(
                "query",
                rejection_detail(&rejection.body_text()),
            )),
        }
    }
}

/// The first query parameter whose name or value decodes to text with NUL. A NUL can only be
/// sent as `%00` (a URI holds no raw control bytes), so a query without it is not decoded here.
fn query_parameter_with_nul(query: Option<&str>) -> Option<String> {
    let query = query.filter(|query| query.contains("%00"))?;
    let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri).ok()?;
    pairs
        .into_iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "%00"))
}

fn rejection_detail(text: &str) -> String {
    text.strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text)
        .to_owned()
}

/// `application/json` or `application/<something>+json`, parameters allowed.
fn declares_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Deserializes a whole JSON document into `T`: syntax errors are `INVALID_JSON`, a value of
/// the wrong shape is a `VALIDATION_ERROR` naming the field.
///
/// Bodies are JSON objects. serde would also read a struct from an array, by position
/// (`["title", "body"]`); that is refused here, so every value arrives under its field name.
///
/// A string or key holding NUL is refused first, naming its path (`query`,
/// `fieldMapping.title`, `products[3].title`).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid(
            "$",
            "must be a JSON object, not an array",
        ));
    }
    if let Some(path) = nul_path(bytes) {
        return Err(ApiError::invalid(path, NUL_REFUSED));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => field_error(&path, &without_position(&inner)),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::InvalidJson(without_position(&inner))
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::InvalidJson(without_position(&error)))?;
    Ok(value)
}

/// Where a JSON document holds a string or key with NUL, as a path (`$` for the document).
///
/// JSON can carry NUL only as the escape `\u0000` (a raw control byte in a string is a syntax
/// error), so a body without those six bytes is not parsed twice. With them (they may also be
/// an escaped backslash followed by `u0000`, which is no NUL), the document is read as a value
/// to find the path; one that does not parse is left to the typed parse, which says why.
fn nul_path(bytes: &[u8]) -> Option<String> {
    bytes.windows(6).position(|window| window == b"\\u0000")?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let path = join("", &value.nul_at()?);
    Some(if path.is_empty() {
        "$".to_owned()
    } else {
        path
    })
}

/// serde_json's message without its ` at line 1 column 7` suffix: the field says where.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// A shape error as `field: message`. Missing and duplicate fields are reported at the
/// enclosing object, so their name comes from the message; an unknown field's path ends with
/// the field itself.
fn field_error(path: &str, message: &str) -> ApiError {
    let parent = if path == "." { "" } else { path };
    let named = |name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    let quoted = |message: &str| {
        let start = message.find('`')? + 1;
        let end = start + message[start..].find('`')?;
        Some(message[start..end].to_owned())
    };
    if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
        return ApiError::invalid(named(&name), "is required");
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some(name) = quoted(rest)
    {
        let expected = rest.split_once(", expected ").map(|(_, e)| e);
        let message = match expected {
            Some(expected) => format!("is not a known field (expected {expected})"),
            None => "is not a known field".to_owned(),
        };
        // The path already ends with the unknown key itself.
        let field = if parent.is_empty() {
            name
        } else {
            parent.to_owned()
        };
        return ApiError::invalid(field, message);
    }
    if let Some(name) = message.strip_prefix("duplicate field ").and_then(quoted) {
        return ApiError::invalid(named(&name), "appears twice");
    }
    // A value of the wrong type; serde names Rust structs, the caller sees JSON objects.
    let message = match message.find("expected struct ") {
        Some(at) => format!("{}expected a JSON object", &message[..at]),
        None => message.to_owned(),
    };
    if parent.is_empty() {
        ApiError::invalid("$", message)
    } else {
        ApiError::invalid(parent, message)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Input {
        title: String,
        #[serde(default)]
        tags: Vec<String>,
        user_id: Option<String>,
    }

    fn refused(body: &str) -> (String, String) {
        match parse_json::<Input>(body.as_bytes()) {
            Ok(input) => panic!("{body} was accepted as {input:?}"),
            Err(ApiError::Validation { field, message }) => (field, message),
            Err(ApiError::InvalidJson(detail)) => ("<syntax>".to_owned(), detail),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(
            refused(r#"{"tags": []}"#),
            ("title".into(), "is required".into())
        );
        let (field, message) = refused(r#"{"title": "t", "colour": "red"}"#);
        assert_eq!(field, "colour");
        assert!(message.starts_with("is not a known field"), "{message}");
        assert!(message.contains("userId"), "{message}");
        let (field, message) = refused(r#"{"title": "t", "tags": ["a", 5]}"#);
        assert_eq!(field, "tags[1]");
        assert!(
            message.starts_with("invalid type: integer `5`"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");
        assert_eq!(refused(r#"{"title": 1}"#).0, "title");
        let (field, message) = refused("7");
        assert_eq!(field, "$");
        assert!(message.ends_with("expected a JSON object"), "{message}");
        assert!(!message.contains("Input"), "{message}");
        assert_eq!(refused(r#" ["t", ["a"]]"#).0, "$", "no positional structs");
        assert_eq!(refused(r#"{"title": "a", "title": "b"}"#).0, "title");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[test]
    fn nested_fields_are_named_by_their_path() {
        let field = |body: &str| match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field(r#"{"inner": [{"name": "a"}, {}]}"#), "inner[1].name");
        assert_eq!(
            field(r#"{"inner": [{"name": "a", "age": 3}]}"#),
            "inner[0].age"
        );
        assert_eq!(field(r#"{"inner": [{"name": 3}]}"#), "inner[0].name");
    }

    #[test]
    fn nul_in_any_string_or_key_is_refused_by_its_path() {
        let (field, message) = refused(r#"{"title": "a\u0000b"}"#);
        assert_eq!(field, "title");
        assert_eq!(message, NUL_REFUSED);
        assert_eq!(
            refused(r#"{"title": "t", "tags": ["a", "\u0000"]}"#).0,
            "tags[1]"
        );
        assert_eq!(
            refused(r#"{"title": "t", "userId": "\u0000"}"#).0,
            "userId",
            "checked before the fields are known"
        );
        let field = |body: &str| match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            field(r#"{"inner": [{"name": "a"}, {"name": "b\u0000"}]}"#),
            "inner[1].name"
        );
        assert_eq!(
            field(r#"{"inner": [{"na\u0000me": "a"}]}"#),
            "inner[0].na\\u0000me"
        );
        // An escaped backslash before `u0000` is text, not NUL.
        let input = parse_json::<Input>(br#"{"title": "C:\\u0000"}"#).expect("no NUL");
        assert_eq!(input.title, "C:\\u0000");
        // A body with the escape that is no JSON is still a syntax error.
        assert_eq!(refused(r#"{"title": "\u0000"#).0, "<syntax>");
    }

    #[test]
    fn nul_in_a_query_names_the_parameter() {
        assert_eq!(query_parameter_with_nul(None), None);
        assert_eq!(query_parameter_with_nul(Some("limit=5&cursor=ab")), None);
        assert_eq!(
            query_parameter_with_nul(Some("limit=5&cursor=ab%00")),
            Some("cursor".into())
        );
        assert_eq!(
            query_parameter_with_nul(Some("a%00b=1")),
            Some("a%00b".into())
        );
        // `%2500` is a percent sign followed by `00`.
        assert_eq!(query_parameter_with_nul(Some("cursor=%2500")), None);
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for body in ["", "{", r#"{"title": "t"} trailing"#, "nope"] {
            assert_eq!(refused(body).0, "<syntax>", "{body:?}");
        }
    }

    #[test]
    fn json_content_types() {
        let value = |v: &'static str| header::HeaderValue::from_static(v);
        assert!(declares_json(Some(&value("application/json"))));
        assert!(declares_json(Some(&value(
            "Application/JSON; charset=utf-8"
        ))));
        assert!(declares_json(Some(&value("application/merge-patch+json"))));
        assert!(!declares_json(Some(&value("text/plain"))));
        assert!(!declares_json(Some(&value("application/jsonx"))));
        assert!(!declares_json(None));
    }
}
