//! `MINDSHOP_<SECTION>_<KEY>` environment overrides.
//!
//! A variable maps to `section.key` (`MINDSHOP_EDGE_METRICS_LISTEN` → `edge.metrics_listen`).
//! Its text is coerced to the TOML type the key has in the serialized config (the key guide,
//! see [`crate::load::key_guide`]), so `MINDSHOP_EDGE_THREADS=4` becomes an integer and
//! `MINDSHOP_EDGE_BACKENDS=a,b` an array. `MINDSHOP_CONFIG` (the file, read by the CLI) and
//! `MINDSHOP_TEST_*` (the test suites' services) are not configuration keys and are skipped;
//! any other `MINDSHOP_*` variable that names no key is an error, so a typo such as
//! `MINDSHOP_DATABSE_URL` cannot silently leave the default in place.

use toml::{Table, Value};

use crate::ConfigError;

const PREFIX: &str = "MINDSHOP_";

/// `MINDSHOP_*` variables that are not configuration keys.
fn belongs_to_another_tool(rest: &str) -> bool {
    rest == "CONFIG" || rest.starts_with("TEST_")
}

/// One variable that sets one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvOverride {
    /// The variable's name, for error messages.
    pub(crate) var: String,
    /// Section name as in the TOML file, e.g. `edge`.
    pub(crate) section: String,
    /// Key within the section, e.g. `metrics_listen`.
    pub(crate) key: String,
    /// The coerced value.
    pub(crate) value: Value,
}

impl EnvOverride {
    /// Dotted key path, e.g. `edge.metrics_listen`.
    pub(crate) fn path(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// The overrides in `env`, in the order given; errors on a known section with an unknown key
/// or a value that does not fit its key's type.
pub(crate) fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
    guide: &Table,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut found = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if belongs_to_another_tool(rest) {
            continue;
        }
        let (section, key) = rest.split_once('_').unwrap_or((rest, ""));
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        let path = format!("{section}.{key}");
        let Some(Value::Table(fields)) = guide.get(&section) else {
            return Err(ConfigError::UnknownEnvKey { var, key: path });
        };
        let Some(expected) = fields.get(&key) else {
            return Err(ConfigError::UnknownEnvKey { var, key: path });
        };
        let value = match coerce(&raw, expected) {
            Ok(value) => value,
            Err(message) => {
                return Err(ConfigError::InvalidEnv {
                    var,
                    key: path,
                    message,
                });
            }
        };
        found.push(EnvOverride {
            var,
            section,
            key,
            value,
        });
    }
    Ok(found)
}

/// `raw` as a value of `expected`'s type; arrays take comma-separated items or a TOML literal.
fn coerce(raw: &str, expected: &Value) -> Result<Value, String> {
    let trimmed = raw.trim();
    match expected {
        Value::String(_) => Ok(Value::String(raw.to_owned())),
        Value::Integer(_) => trimmed
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        Value::Float(_) => trimmed
            .parse()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        Value::Boolean(_) => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Boolean(true)),
            "false" | "0" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Array(_) if trimmed.starts_with('[') => literal(trimmed),
        Value::Array(items) => {
            // An empty default array gives no element type; strings are what addresses and
            // names need, and serde reports a mismatch with the key's path.
            let item = items
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new()));
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(|part| coerce(part, &item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Value::Table(_) | Value::Datetime(_) => literal(trimmed),
    }
}

/// Parses `text` as a TOML value literal (`["a", "b"]`, `{ x = 1 }`).
fn literal(text: &str) -> Result<Value, String> {
    let mut doc: Table = toml::from_str(&format!("value = {text}"))
        .map_err(|err| format!("not a TOML value {text:?}: {}", err.message()))?;
    doc.remove("value")
        .ok_or_else(|| format!("not a TOML value {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guide() -> Table {
        crate::load::key_guide()
    }

    fn one(var: &str, value: &str) -> Result<Vec<EnvOverride>, ConfigError> {
        overrides([(var.to_owned(), value.to_owned())], &guide())
    }

    fn value_of(var: &str, raw: &str) -> Value {
        match one(var, raw) {
            Ok(found) if found.len() == 1 => found[0].value.clone(),
            other => panic!("expected one override from {var}, got {other:?}"),
        }
    }

    #[test]
    fn names_map_to_lowercase_section_and_key() {
        let found = one("MINDSHOP_EDGE_METRICS_LISTEN", "0.0.0.0:9000").expect("known key");
        assert_eq!(found[0].path(), "edge.metrics_listen");
        assert_eq!(found[0].value, Value::String("0.0.0.0:9000".to_owned()));
    }

    #[test]
    fn integers_are_coerced_and_bad_ones_name_variable_and_key() {
        assert_eq!(value_of("MINDSHOP_EDGE_THREADS", " 8 "), Value::Integer(8));
        let err = one("MINDSHOP_EDGE_THREADS", "abc").expect_err("not an integer");
        assert_eq!(
            err.to_string(),
            "MINDSHOP_EDGE_THREADS: edge.threads: expected an integer, got \"abc\""
        );
    }

    #[test]
    fn optional_integers_are_coerced_too() {
        assert_eq!(
            value_of("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS", "3600"),
            Value::Integer(3600)
        );
        let err = one("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS", "1h").expect_err("not an integer");
        assert!(
            err.to_string()
                .starts_with("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS: auth.jwt_max_lifetime_secs:"),
            "{err}"
        );
    }

    #[test]
    fn arrays_accept_commas_or_a_toml_literal() {
        let expected = Value::Array(vec![
            Value::String("127.0.0.1:8081".to_owned()),
            Value::String("127.0.0.1:8082".to_owned()),
        ]);
        let commas = value_of("MINDSHOP_EDGE_BACKENDS", "127.0.0.1:8081, 127.0.0.1:8082");
        assert_eq!(commas, expected);
        let literal = value_of(
            "MINDSHOP_EDGE_BACKENDS",
            r#"["127.0.0.1:8081","127.0.0.1:8082"]"#,
        );
        assert_eq!(literal, expected);
        assert_eq!(value_of("MINDSHOP_EDGE_BACKENDS", ""), Value::Array(vec![]));
        let err = one("MINDSHOP_EDGE_BACKENDS", "[\"a\"").expect_err("unclosed array");
        assert!(
            err.to_string()
                .starts_with("MINDSHOP_EDGE_BACKENDS: edge.backends: not a TOML value")
        );
    }

    #[test]
    fn option_secrets_take_the_text_as_is() {
        let secret = "s".repeat(40);
        assert_eq!(
            value_of("MINDSHOP_INTERNAL_SECRET", &secret),
            Value::String(secret)
        );
        assert_eq!(
            value_of("MINDSHOP_AUTH_JWT_SECRET", "123"),
            Value::String("123".to_owned())
        );
    }

    #[test]
    fn unknown_key_in_known_section_names_the_variable() {
        let err = one("MINDSHOP_EDGE_LISTN", "127.0.0.1:1").expect_err("typo");
        assert_eq!(
            err.to_string(),
            "MINDSHOP_EDGE_LISTN: unknown key edge.listn"
        );
    }

    #[test]
    fn other_tools_variables_are_ignored() {
        let env = [
            ("MINDSHOP_TEST_POSTGRES_URL", "postgres://x"),
            ("MINDSHOP_CONFIG", "/etc/mindshop.toml"),
            ("PATH", "/usr/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(overrides(env, &guide()).expect("nothing to reject"), vec![]);
    }

    #[test]
    fn a_mistyped_section_is_an_error_not_a_silent_default() {
        for var in ["MINDSHOP_DATABSE_URL", "MINDSHOP_REDSI_URL"] {
            let env = [(var.to_owned(), "postgres://x".to_owned())];
            let error = overrides(env, &guide()).expect_err(var).to_string();
            assert!(error.starts_with(var), "{error}");
        }
    }
}
