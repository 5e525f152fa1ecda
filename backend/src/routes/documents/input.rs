//! A document as a caller writes it, and the rules it must meet. The same rules hold for
//! `POST` (create) and `PUT` (replace).

use axum::http::Uri;
use serde::Deserialize;

use crate::ApiError;
use crate::store::DocumentFields;

pub(crate) const MAX_TITLE_CHARS: usize = 200;
/// Largest body, in bytes of UTF-8.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
pub(crate) const MAX_TAGS: usize = 20;
pub(crate) const MAX_TAG_CHARS: usize = 50;
pub(crate) const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentInput {
    title: String,
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    url: Option<String>,
}

impl DocumentInput {
    /// The fields to store: the title and tags trimmed, each tag once, the body as sent.
    pub(crate) fn validate(self) -> Result<DocumentFields, ApiError> {
        let title = self.title.trim();
        if !(1..=MAX_TITLE_CHARS).contains(&title.chars().count()) {
            return Err(ApiError::invalid(
                "title",
                format!("must be 1 to {MAX_TITLE_CHARS} characters"),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "title",
                "must not contain control characters",
            ));
        }
        if self.body.trim().is_empty() {
            return Err(ApiError::invalid("body", "must not be empty"));
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::invalid(
                "body",
                format!("must be at most {MAX_BODY_BYTES} bytes (1 MB)"),
            ));
        }
        Ok(DocumentFields {
            title: title.to_owned(),
            tags: validate_tags(&self.tags)?,
            url: self.url.as_deref().map(validate_url).transpose()?,
            body: self.body,
        })
    }
}

fn validate_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    let mut valid: Vec<String> = Vec::with_capacity(tags.len());
    for (index, tag) in tags.iter().enumerate() {
        let tag = tag.trim();
        let chars = tag.chars().count();
        if !(1..=MAX_TAG_CHARS).contains(&chars) || tag.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("tags[{index}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters, without control characters"),
            ));
        }
        if !valid.iter().any(|seen| seen == tag) {
            valid.push(tag.to_owned());
        }
    }
    Ok(valid)
}

/// An absolute `http` or `https` URL with a host.
fn validate_url(url: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "url",
            "must be an http or https URL, e.g. https://acme.com/faq",
        )
    };
    let url = url.trim();
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::invalid(
            "url",
            format!("must be at most {MAX_URL_BYTES} bytes"),
        ));
    }
    let parsed: Uri = url.parse().map_err(|_| invalid())?;
    let http = parsed.scheme_str().is_some_and(|scheme| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    });
    let has_host = parsed.host().is_some_and(|host| !host.is_empty());
    if !http || !has_host {
        return Err(invalid());
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str, tags: &[&str], url: Option<&str>) -> DocumentInput {
        DocumentInput {
            title: title.to_owned(),
            body: body.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            url: url.map(str::to_owned),
        }
    }

    fn refused_field(input: DocumentInput) -> String {
        match input.validate() {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_document_is_trimmed_and_deduplicated() {
        let fields = input(
            "  Returns policy ",
            "  Thirty days.  ",
            &[" policy", "returns", "policy"],
            Some("https://acme.com/returns?x=1"),
        )
        .validate()
        .unwrap();
        assert_eq!(fields.title, "Returns policy");
        assert_eq!(fields.body, "  Thirty days.  ", "the body is kept as sent");
        assert_eq!(fields.tags, ["policy", "returns"]);
        assert_eq!(fields.url.as_deref(), Some("https://acme.com/returns?x=1"));
    }

    #[test]
    fn titles_are_1_to_200_characters() {
        assert!(input(&"é".repeat(200), "b", &[], None).validate().is_ok());
        assert_eq!(
            refused_field(input(&"a".repeat(201), "b", &[], None)),
            "title"
        );
        assert_eq!(refused_field(input("   ", "b", &[], None)), "title");
        assert_eq!(refused_field(input("a\u{7}b", "b", &[], None)), "title");
    }

    #[test]
    fn bodies_are_required_and_at_most_a_megabyte() {
        assert!(
            input("t", &"x".repeat(MAX_BODY_BYTES), &[], None)
                .validate()
                .is_ok()
        );
        assert_eq!(
            refused_field(input("t", &"x".repeat(MAX_BODY_BYTES + 1), &[], None)),
            "body"
        );
        assert_eq!(refused_field(input("t", " \n", &[], None)), "body");
    }

    #[test]
    fn tags_are_bounded_in_number_and_length() {
        let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let twenty: Vec<&str> = twenty.iter().map(String::as_str).collect();
        assert!(input("t", "b", &twenty, None).validate().is_ok());
        let mut twenty_one = twenty.clone();
        twenty_one.push("extra");
        assert_eq!(refused_field(input("t", "b", &twenty_one, None)), "tags");
        assert_eq!(refused_field(input("t", "b", &["ok", ""], None)), "tags[1]");
        assert_eq!(
            refused_field(input("t", "b", &[&"a".repeat(51)], None)),
            "tags[0]"
        );
        assert!(input("t", "b", &[&"ü".repeat(50)], None).validate().is_ok());
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        for good in ["http://acme.com", "HTTPS://shop.acme.com:8443/faq#top"] {
            assert!(
                input("t", "b", &[], Some(good)).validate().is_ok(),
                "{good}"
            );
        }
        for bad in [
            "acme.com",
            "/faq",
            "ftp://acme.com/file",
            "javascript:alert(1)",
            "https://",
            "https://acme.com/a b",
            "",
        ] {
            assert_eq!(
                refused_field(input("t", "b", &[], Some(bad))),
                "url",
                "{bad:?}"
            );
        }
        let long = format!("https://acme.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(refused_field(input("t", "b", &[], Some(&long))), "url");
    }
}
