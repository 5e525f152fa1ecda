//! A sync configuration as a merchant writes it, and its rules. Every field is checked and
//! every bad one is named in the one answer, so a form can show them all at once.

use axum::http::Uri;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ApiError;
use crate::store::{FieldMapping, SyncConfigFields};
use crate::sync::schedule::{next_occurrence, parse_schedule};

const SYNC_TYPES: [&str; 3] = ["scheduled", "webhook", "manual"];
const SOURCE_TYPES: [&str; 4] = ["api", "ftp", "s3", "csv"];
const STATUSES: [&str; 2] = ["active", "disabled"];
const TARGETS: [&str; 7] = [
    "sku",
    "title",
    "description",
    "price",
    "imageUrl",
    "category",
    "inStock",
];
const MAX_URL_BYTES: usize = 2048;
const MAX_COLUMN_CHARS: usize = 200;
const MAX_AUTH_BYTES: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConfigInput {
    sync_type: Option<String>,
    schedule: Option<String>,
    source_type: Option<String>,
    source_url: Option<String>,
    field_mapping: Option<Map<String, Value>>,
    status: Option<String>,
    /// Write-only credentials for pulls; absent keeps the stored ones, `""` removes them.
    source_auth: Option<String>,
}

impl ConfigInput {
    pub(crate) fn validate(self) -> Result<SyncConfigFields, ApiError> {
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut refuse = |field: &str, message: String| errors.push((field.to_owned(), message));

        let sync_type = one_of("syncType", self.sync_type, &SYNC_TYPES, None, &mut refuse);
        let source_type = one_of(
            "sourceType",
            self.source_type,
            &SOURCE_TYPES,
            None,
            &mut refuse,
        );
        let status = one_of(
            "status",
            self.status,
            &STATUSES,
            Some("active"),
            &mut refuse,
        );

        let schedule = self.schedule.map(|s| s.trim().to_owned());
        match (sync_type.as_deref(), schedule.as_deref()) {
            (Some("scheduled"), None) => refuse(
                "schedule",
                "is required when syncType is scheduled (e.g. \"0 3 * * *\")".to_owned(),
            ),
            (Some("scheduled"), Some(schedule)) => {
                if let Err(message) = parse_schedule(schedule) {
                    refuse("schedule", message);
                }
            }
            (Some(_), Some(_)) => refuse(
                "schedule",
                "is only used when syncType is scheduled; leave it out".to_owned(),
            ),
            _ => {}
        }

        let source_url = self.source_url.map(|s| s.trim().to_owned());
        match (source_type.as_deref(), source_url.as_deref()) {
            (Some("csv"), Some(_)) => refuse(
                "sourceUrl",
                "is not used with sourceType csv (files are uploaded); leave it out".to_owned(),
            ),
            (Some(kind @ ("api" | "ftp" | "s3")), None) => {
                refuse("sourceUrl", format!("is required with sourceType {kind}"));
            }
            (Some(kind @ ("api" | "ftp" | "s3")), Some(url)) => {
                if let Err(message) = check_source_url(kind, url) {
                    refuse("sourceUrl", message);
                }
            }
            _ => {}
        }

        let field_mapping = match self.field_mapping {
            None => {
                refuse(
                    "fieldMapping",
                    "is required, e.g. {\"sku\": \"sku\", \"title\": \"name\"}".to_owned(),
                );
                None
            }
            Some(mapping) => check_mapping(mapping, &mut refuse),
        };

        let source_auth = self.source_auth.map(|auth| auth.trim().to_owned());
        if let Some(auth) = &source_auth
            && (auth.len() > MAX_AUTH_BYTES || auth.chars().any(char::is_control))
        {
            refuse(
                "sourceAuth",
                format!("must be at most {MAX_AUTH_BYTES} bytes without control characters"),
            );
        }

        match (sync_type, source_type, status, field_mapping) {
            (Some(sync_type), Some(source_type), Some(status), Some(field_mapping))
                if errors.is_empty() =>
            {
                let next_run_at = match (sync_type.as_str(), status.as_str(), &schedule) {
                    ("scheduled", "active", Some(schedule)) => {
                        next_occurrence(schedule, Utc::now())
                    }
                    _ => None,
                };
                Ok(SyncConfigFields {
                    sync_type,
                    schedule,
                    source_type,
                    source_url,
                    field_mapping,
                    status,
                    source_auth,
                    next_run_at,
                })
            }
            _ => Err(ApiError::Invalid(errors)),
        }
    }
}

/// `value` if it is one of `allowed` (or `default` when absent).
fn one_of(
    field: &str,
    value: Option<String>,
    allowed: &[&str],
    default: Option<&str>,
    refuse: &mut impl FnMut(&str, String),
) -> Option<String> {
    match value.or_else(|| default.map(str::to_owned)) {
        Some(value) if allowed.contains(&value.as_str()) => Some(value),
        Some(value) => {
            refuse(
                field,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            );
            None
        }
        None => {
            refuse(field, format!("is required: one of {}", allowed.join(", ")));
            None
        }
    }
}

/// The scheme must match the source: `http(s)://host/…` for api, `ftp://host/file` for ftp,
/// `s3://bucket/key` for s3.
fn check_source_url(kind: &str, url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("must be at most {MAX_URL_BYTES} bytes"));
    }
    let expected = match kind {
        "api" => "http:// or https://",
        "ftp" => "ftp://",
        _ => "s3://",
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("is not a URL; expected {expected}…"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    let scheme_ok = match kind {
        "api" => matches!(scheme, "http" | "https"),
        other => scheme == other,
    };
    if !scheme_ok {
        return Err(format!("must start with {expected} for sourceType {kind}"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("must name a host (for s3, the bucket)".to_owned());
    }
    if kind != "api" && uri.path().trim_matches('/').is_empty() {
        return Err(match kind {
            "s3" => "must name an object: s3://bucket/key".to_owned(),
            _ => "must name a file: ftp://host/path/file.csv".to_owned(),
        });
    }
    Ok(())
}

/// Each key a known target, each value a column name; `sku` and `title` present.
fn check_mapping(
    mapping: Map<String, Value>,
    refuse: &mut impl FnMut(&str, String),
) -> Option<FieldMapping> {
    let mut columns: Vec<(String, String)> = Vec::new();
    let mut ok = true;
    for (target, column) in mapping {
        let field = format!("fieldMapping.{target}");
        if !TARGETS.contains(&target.as_str()) {
            refuse(
                &field,
                format!("unknown target field; use {}", TARGETS.join(", ")),
            );
            ok = false;
            continue;
        }
        match column {
            Value::String(column)
                if !column.trim().is_empty()
                    && column.trim().chars().count() <= MAX_COLUMN_CHARS =>
            {
                columns.push((target, column.trim().to_owned()));
            }
            _ => {
                refuse(
                    &field,
                    format!("must be a column name of 1 to {MAX_COLUMN_CHARS} characters"),
                );
                ok = false;
            }
        }
    }
    let take = |target: &str| {
        columns
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, column)| column.clone())
    };
    let (sku, title) = (take("sku"), take("title"));
    for (target, column) in [("sku", &sku), ("title", &title)] {
        if column.is_none() {
            refuse(
                &format!("fieldMapping.{target}"),
                "is required: the column that holds it".to_owned(),
            );
            ok = false;
        }
    }
    match (ok, sku, title) {
        (true, Some(sku), Some(title)) => Some(FieldMapping {
            sku,
            title,
            description: take("description"),
            price: take("price"),
            image_url: take("imageUrl"),
            category: take("category"),
            in_stock: take("inStock"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validate(body: Value) -> Result<SyncConfigFields, Vec<(String, String)>> {
        let input: ConfigInput = serde_json::from_value(body).expect("shape");
        input.validate().map_err(|error| match error {
            ApiError::Invalid(errors) => errors,
            other => panic!("unexpected {other:?}"),
        })
    }

    fn fields(errors: &[(String, String)]) -> Vec<&str> {
        errors.iter().map(|(field, _)| field.as_str()).collect()
    }

    #[test]
    fn the_original_designs_configuration_is_accepted() {
        let config = validate(json!({
            "syncType": "manual",
            "sourceType": "csv",
            "fieldMapping": {"sku": "sku", "title": "name"}
        }))
        .unwrap();
        assert_eq!(config.status, "active");
        assert_eq!(config.field_mapping.title, "name");
        assert_eq!(config.field_mapping.price, None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = validate(json!({
            "syncType": "hourly",
            "sourceType": "api",
            "schedule": "0 3 * * *",
            "fieldMapping": {"sku": "id", "colour": "c", "price": ""},
            "status": "paused"
        }))
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "syncType",
                "status",
                "sourceUrl",
                "fieldMapping.colour",
                "fieldMapping.price",
                "fieldMapping.title"
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn schedules_are_five_field_cron_and_only_for_scheduled_syncs() {
        let base = |sync_type: &str, schedule: Option<&str>| {
            json!({
                "syncType": sync_type, "schedule": schedule, "sourceType": "api",
                "sourceUrl": "https://shop.example/feed.csv",
                "fieldMapping": {"sku": "sku", "title": "title"}
            })
        };
        assert!(validate(base("scheduled", Some("*/15 * * * *"))).is_ok());
        for bad in [
            "61 * * * *",
            "* * * *",
            "0 0 * * * *",
            "every day",
            "0 0 30 2 *",
        ] {
            let errors = validate(base("scheduled", Some(bad))).unwrap_err();
            assert_eq!(fields(&errors), ["schedule"], "{bad}: {errors:?}");
        }
        assert_eq!(
            fields(&validate(base("scheduled", None)).unwrap_err()),
            ["schedule"]
        );
        assert_eq!(
            fields(&validate(base("manual", Some("0 3 * * *"))).unwrap_err()),
            ["schedule"]
        );
        let next = next_occurrence("0 3 * * *", "2026-11-27T10:00:00Z".parse().unwrap());
        assert_eq!(next, Some("2026-11-28T03:00:00Z".parse().unwrap()));
    }

    #[test]
    fn source_urls_match_their_source_type() {
        let with = |kind: &str, url: &str| {
            validate(json!({
                "syncType": "manual", "sourceType": kind, "sourceUrl": url,
                "fieldMapping": {"sku": "sku", "title": "title"}
            }))
        };
        assert!(with("api", "https://shop.example/products.json").is_ok());
        assert!(with("ftp", "ftp://files.example/export/products.csv").is_ok());
        assert!(with("s3", "s3://catalog-bucket/daily/products.csv").is_ok());
        for (kind, url) in [
            ("api", "ftp://files.example/p.csv"),
            ("ftp", "https://files.example/p.csv"),
            ("s3", "s3://bucket-only"),
            ("ftp", "ftp://files.example/"),
            ("api", "not a url"),
            ("csv", "https://shop.example/p.csv"),
        ] {
            let errors = with(kind, url).unwrap_err();
            assert_eq!(fields(&errors), ["sourceUrl"], "{kind} {url}: {errors:?}");
        }
    }
}
