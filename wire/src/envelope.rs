//! The response envelope shared by the edge and the backend.
//!
//! ```json
//! {"success": true, "data": …, "timestamp": "2026-11-27T12:00:00.000Z", "requestId": "…"}
//! {"success": false, "error": "human sentence", "code": "MACHINE_CODE", "timestamp": …, "requestId": …}
//! ```
//! A failure may carry extra top-level fields that help the caller (`requiredPermissions`,
//! per-row `errors`, `checks`).

use serde::Serialize;
use serde_json::{Map, Value};

/// The current time as the envelope writes it: RFC 3339, UTC, milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Success<'a, T: Serialize> {
    success: bool,
    data: &'a T,
    timestamp: String,
    request_id: &'a str,
}

/// A failure as it appears on the wire. `extra` fields are flattened into the top level.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// A sentence a developer can act on; never internal error text.
    pub error: String,
    /// A stable machine-readable code, e.g. `ROUTE_NOT_FOUND`.
    pub code: &'static str,
    /// Fields that help: `requiredPermissions`, `errors`, `checks`, …
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Failure {
    pub fn new(code: &'static str, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code,
            extra: Map::new(),
        }
    }

    /// Adds a helpful top-level field (`requiredPermissions`, `checks`, …).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self, request_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            success: bool,
            #[serde(flatten)]
            failure: &'a Failure,
            timestamp: String,
            request_id: &'a str,
        }
        to_vec(&Wire {
            success: false,
            failure: self,
            timestamp: timestamp_now(),
            request_id,
        })
    }
}

/// A success envelope around `data`, as JSON bytes.
pub fn success_json<T: Serialize>(data: &T, request_id: &str) -> Vec<u8> {
    to_vec(&Success {
        success: true,
        data,
        timestamp: timestamp_now(),
        request_id,
    })
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: string keys, no non-finite floats we produce.
    serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"success":false,"error":"Internal error","code":"INTERNAL_ERROR"}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_has_data_timestamp_and_request_id() {
        let body: Value = serde_json::from_slice(&success_json(&json!({"a": 1}), "r1")).unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["a"], 1);
        assert_eq!(body["requestId"], "r1");
        assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn failure_flattens_extra_fields() {
        let failure = Failure::new("FORBIDDEN", "Insufficient permissions")
            .with("requiredPermissions", json!(["documents:write"]));
        let body: Value = serde_json::from_slice(&failure.to_json("r2")).unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["code"], "FORBIDDEN");
        assert_eq!(body["error"], "Insufficient permissions");
        assert_eq!(body["requiredPermissions"][0], "documents:write");
        assert_eq!(body["requestId"], "r2");
    }
}
