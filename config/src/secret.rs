//! [`Secret`]: a string that never reaches a log or a printed config.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as, wherever it is formatted or serialized.
pub(crate) const REDACTED: &str = "[redacted]";

/// A secret key (JWT signing key, internal HMAC key).
///
/// `Debug`, `Display` and `Serialize` all give `[redacted]`, so a secret inside a config can be
/// logged or dumped safely; only [`Secret::expose`] gives the value, for the code that signs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value, for the code that signs or verifies with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_and_serializing_never_show_the_value() {
        let secret = Secret::new("hunter2-hunter2-hunter2-hunter2-x".to_owned());
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        let rendered = toml::Value::try_from(&secret).map(|v| v.to_string());
        assert_eq!(rendered.ok().as_deref(), Some("\"[redacted]\""));
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2-hunter2-x");
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        #[derive(Deserialize)]
        struct Holder {
            key: Secret,
        }
        let holder: Holder = toml::from_str("key = \"abc\"").expect("valid TOML");
        assert_eq!(holder.key.expose(), "abc");
    }
}
