//! [`ConfigError`]: every way loading or resolving configuration fails.
//!
//! Each message names the key (`edge.listen`), and the file or environment variable the bad
//! value came from, so an operator can fix it without reading code.

use std::io;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded, validated or resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (an explicit `--config` path must exist).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// The config text is not valid TOML.
    #[error("invalid TOML{}: {message}", in_file(file.as_deref()))]
    Syntax {
        /// The file, if the text came from one.
        file: Option<PathBuf>,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// The config text has a key no section defines (typically a typo).
    #[error("unknown key {key}{}", in_file(file.as_deref()))]
    UnknownKey {
        /// Dotted path of the key, e.g. `edge.lisen`.
        key: String,
        /// The file, if the text came from one.
        file: Option<PathBuf>,
    },
    /// A value in the config text (or a default combined with it) is not acceptable.
    #[error("{key}: {message}{}", in_file_paren(file.as_deref()))]
    Invalid {
        /// Dotted path of the key, e.g. `database.url`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
        /// The file holding the value, when it came from one.
        file: Option<PathBuf>,
    },
    /// A `MINDSHOP_<SECTION>_<KEY>` variable names a known section but a key it does not have.
    #[error("{var}: unknown key {key}")]
    UnknownEnvKey {
        /// The environment variable, e.g. `MINDSHOP_EDGE_LISTN`.
        var: String,
        /// The key it maps to, e.g. `edge.listn`.
        key: String,
    },
    /// A `MINDSHOP_<SECTION>_<KEY>` variable holds a value its key does not accept.
    #[error("{var}: {key}: {message}")]
    InvalidEnv {
        /// The environment variable, e.g. `MINDSHOP_EDGE_THREADS`.
        var: String,
        /// The key it sets, e.g. `edge.threads`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The generated JWT secret file could not be created or read.
    #[error("auth.jwt_secret: unset, and cannot use {}: {source}", path.display())]
    JwtSecretFile {
        /// `<data.dir>/jwt_secret` (or the directory, when it could not be created).
        path: PathBuf,
        /// The I/O failure, or `InvalidData` when the file holds too short a secret.
        #[source]
        source: io::Error,
    },
}

impl ConfigError {
    /// A validation failure, before the loader attributes it to a file or variable.
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
            file: None,
        }
    }
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|path| format!(" in {}", path.display()))
        .unwrap_or_default()
}

fn in_file_paren(file: Option<&Path>) -> String {
    file.map(|path| format!(" (in {})", path.display()))
        .unwrap_or_default()
}
