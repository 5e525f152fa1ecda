//! Building a [`Config`] from TOML text and environment overrides.
//!
//! Both sources are merged into one `toml::Table` and deserialized once, so every value meets
//! the same serde types and checks. Errors are then attributed to where the value came from:
//! the variable that set the key, else the file.

use std::path::Path;

use toml::{Table, Value};

use crate::env::{self, EnvOverride};
use crate::{Config, ConfigError, Secret};

/// Every key the config accepts, with a value of its TOML type: the default config, serialized.
///
/// `Option` fields are `None` by default and would be missing from the serialization, so they
/// are filled here; a new `Option` field must be added too, or it is reported as unknown.
pub(crate) fn key_guide() -> Table {
    let mut sample = Config::default();
    sample.auth.jwt_secret = Some(Secret::new(String::new()));
    sample.internal.secret = Some(Secret::new(String::new()));
    sample.auth.jwt_public_key_file = Some(std::path::PathBuf::new());
    sample.auth.jwt_issuer = Some(String::new());
    sample.auth.jwt_audience = Some(String::new());
    sample.auth.jwt_max_lifetime_secs = Some(0);
    sample.redis.url = Some(Secret::new(String::new()));
    sample.edge.pid_file = Some(std::path::PathBuf::new());
    sample.edge.upgrade_socket = Some(std::path::PathBuf::new());
    sample.sync.s3_endpoint = Some(String::new());
    sample.chat.llm_base_url = Some(String::new());
    sample.chat.llm_api_key = Some(Secret::new(String::new()));
    Table::try_from(&sample).expect("the default config serializes to a TOML table")
}

/// Parses `text` (from `file`, if any), applies `env`, deserializes and validates.
pub(crate) fn build(
    text: Option<&str>,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let guide = key_guide();
    let from_file = match text {
        Some(text) => text.parse::<Table>().map_err(|err| ConfigError::Syntax {
            file: file.map(Path::to_path_buf),
            message: err.to_string().trim_end().to_owned(),
        })?,
        None => Table::new(),
    };
    check_known(&from_file, &guide, "", file)?;
    let overrides = env::overrides(env, &guide)?;

    let mut merged = from_file.clone();
    for found in &overrides {
        let section = merged
            .entry(found.section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        // A section the file set to a non-table stays as it is, so the error names the file.
        if let Value::Table(section) = section {
            section.insert(found.key.clone(), found.value.clone());
        }
    }

    let origin = Origin {
        from_file: &from_file,
        file,
        overrides: &overrides,
    };
    let config: Config = serde_path_to_error::deserialize(Value::Table(merged))
        .map_err(|err| origin.attribute(&err.path().to_string(), err.inner().message()))?;
    config.validate().map_err(|err| match err {
        ConfigError::Invalid { key, message, .. } => origin.attribute(&key, &message),
        other => other,
    })?;
    Ok(config)
}

/// Rejects keys of `table` that `guide` does not have, naming the first by its dotted path.
fn check_known(
    table: &Table,
    guide: &Table,
    prefix: &str,
    file: Option<&Path>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match (guide.get(key), value) {
            (None, _) => {
                return Err(ConfigError::UnknownKey {
                    key: path,
                    file: file.map(Path::to_path_buf),
                });
            }
            (Some(Value::Table(inner_guide)), Value::Table(inner)) => {
                check_known(inner, inner_guide, &format!("{path}."), file)?;
            }
            // A wrong type is left to serde, which says what it expected.
            (Some(_), _) => {}
        }
    }
    Ok(())
}

/// Where each value came from, to say so in errors.
struct Origin<'a> {
    from_file: &'a Table,
    file: Option<&'a Path>,
    overrides: &'a [EnvOverride],
}

impl Origin<'_> {
    /// An error about `key` (a dotted path, maybe with `[index]`), naming its source.
    fn attribute(&self, key: &str, message: &str) -> ConfigError {
        let set_by_env = self.overrides.iter().rev().find(|found| {
            let path = found.path();
            key.strip_prefix(path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        });
        if let Some(found) = set_by_env {
            return ConfigError::InvalidEnv {
                var: found.var.clone(),
                key: key.to_owned(),
                message: message.to_owned(),
            };
        }
        let in_file = contains(self.from_file, key);
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
            file: self.file.filter(|_| in_file).map(Path::to_path_buf),
        }
    }
}

/// Whether the dotted `key` (indexes ignored) is set in `table`.
fn contains(table: &Table, key: &str) -> bool {
    let mut current = table;
    let mut parts = key
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .peekable();
    while let Some(part) = parts.next() {
        match current.get(part) {
            None => return false,
            Some(Value::Table(inner)) if parts.peek().is_some() => current = inner,
            Some(_) => return parts.peek().is_none(),
        }
    }
    false
}
