//! Pulling a merchant's catalog file from its source: `api` (HTTP(S) GET), `ftp` (one file,
//! passive mode) or `s3` (one object, AWS or an S3-compatible store). Every pull is bounded by
//! `sync.fetch_timeout_secs` and `sync.max_fetch_bytes`; `api` and `ftp` hosts that resolve to
//! loopback, private, link-local or cloud-metadata addresses are refused unless
//! `sync.allow_private_sources` is set ([`guard`]).
//!
//! The errors are about the merchant's own source and are shown to them in the run's
//! `failure`, so they say what went wrong without internal detail.

mod ftp;
pub(crate) mod guard;
mod http;
mod s3;

use std::time::Duration;

use mindshop_config::SyncSettings;

use super::parse::Format;
use crate::store::SyncConfig;

/// What a pull brought back.
#[derive(Debug)]
pub(crate) struct Download {
    pub bytes: Vec<u8>,
    /// The content type the source declared, if any.
    pub content_type: Option<String>,
}

/// The bounds of one pull.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_bytes: u64,
    pub allow_private: bool,
}

impl Limits {
    pub(crate) fn from_settings(settings: &SyncSettings) -> Self {
        Self {
            timeout: Duration::from_secs(settings.fetch_timeout_secs),
            max_bytes: settings.max_fetch_bytes,
            allow_private: settings.allow_private_sources,
        }
    }
}

/// Why a pull failed; the message is shown to the merchant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// The configuration has nothing to pull (a `csv` source) or is incomplete.
    #[error("{0}")]
    NotPullable(String),
    /// The host resolves to an address the backend may not reach.
    #[error("{0}")]
    Refused(String),
    /// The host could not be resolved or reached, or the transfer broke.
    #[error("{0}")]
    Unreachable(String),
    /// The source answered, but with an error (HTTP status, FTP reply, S3 error).
    #[error("{0}")]
    Source(String),
    #[error("the source did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the file is larger than {0} bytes (sync.max_fetch_bytes)")]
    TooLarge(u64),
    #[error("the file is neither CSV nor JSON ({0})")]
    UnknownFormat(String),
}

/// Pulls the configured source and says which format it is in.
pub(crate) async fn fetch(
    config: &SyncConfig,
    settings: &SyncSettings,
) -> Result<(Format, Vec<u8>), FetchError> {
    // reqwest (api, s3) needs the process's TLS provider; idempotent.
    crate::install_crypto_provider();
    let limits = Limits::from_settings(settings);
    let url = config.source_url.as_deref().ok_or_else(|| {
        FetchError::NotPullable("the sync configuration has no sourceUrl".to_owned())
    })?;
    let auth = config.source_auth.as_deref();
    let work = async {
        match config.source_type.as_str() {
            "api" => http::fetch(url, auth, &limits).await,
            "ftp" => ftp::fetch(url, auth, &limits).await,
            "s3" => s3::fetch(url, auth, settings, &limits).await,
            other => Err(FetchError::NotPullable(format!(
                "sourceType {other} has nothing to pull; upload files to /sync/upload"
            ))),
        }
    };
    let download = tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| FetchError::Timeout(limits.timeout.as_secs()))??;
    let format = detect_format(url, download.content_type.as_deref(), &download.bytes)?;
    Ok((format, download.bytes))
}

/// By the declared content type, else the file name's extension, else the first byte (`[` or
/// `{` is JSON; anything printable is read as CSV).
fn detect_format(
    url: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Format, FetchError> {
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("text/csv" | "application/csv") => return Ok(Format::Csv),
        Some("application/json" | "text/json") => return Ok(Format::Json),
        _ => {}
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".csv") {
        return Ok(Format::Csv);
    }
    if path.ends_with(".json") {
        return Ok(Format::Json);
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[' | b'{') => Ok(Format::Json),
        Some(b) if b.is_ascii_graphic() || !b.is_ascii() => Ok(Format::Csv),
        None => Ok(Format::Csv),
        Some(_) => Err(FetchError::UnknownFormat(
            essence.unwrap_or_else(|| "no content type".to_owned()),
        )),
    }
}

/// Appends `chunk` to `bytes` unless that passes `max`.
pub(crate) fn append_capped(bytes: &mut Vec<u8>, chunk: &[u8], max: u64) -> Result<(), FetchError> {
    if bytes.len() as u64 + chunk.len() as u64 > max {
        return Err(FetchError::TooLarge(max));
    }
    bytes.extend_from_slice(chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_comes_from_the_type_then_the_name_then_the_content() {
        let csv = Ok(Format::Csv);
        let json = Ok(Format::Json);
        assert_eq!(
            detect_format(
                "https://a/x",
                Some("application/json; charset=utf-8"),
                b"sku"
            ),
            json
        );
        assert_eq!(
            detect_format("https://a/feed.CSV?token=1", None, b"[]"),
            csv
        );
        assert_eq!(
            detect_format("s3://b/k.json", Some("binary/octet-stream"), b"sku"),
            json
        );
        assert_eq!(
            detect_format("ftp://h/export", None, b"\xEF\xBB\xBF [{}]"),
            json
        );
        assert_eq!(detect_format("ftp://h/export", None, b"sku,title\n"), csv);
        assert!(detect_format("ftp://h/export", None, b"\x00\x01").is_err());
    }
}
