//! `api` sources: one HTTP(S) GET, with the configured `Authorization` header.

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::redirect::Policy;

use super::{Download, FetchError, Limits, append_capped, guard};

pub(super) async fn fetch(
    url: &str,
    auth: Option<&str>,
    limits: &Limits,
) -> Result<Download, FetchError> {
    let url: reqwest::Url = url
        .parse()
        .map_err(|_| FetchError::NotPullable(format!("sourceUrl {url:?} is not a URL")))?;
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::NotPullable("sourceUrl has no host".to_owned()))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = guard::resolve(&host, port, limits.allow_private).await?;
    let client = reqwest::Client::builder()
        // A redirect could lead anywhere, past the address check: not followed.
        .redirect(Policy::none())
        .connect_timeout(limits.timeout)
        .timeout(limits.timeout)
        .resolve_to_addrs(&host, &addresses)
        .user_agent(concat!("mindshop-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| FetchError::Unreachable("the HTTP client could not be built".to_owned()))?;
    let mut request = client.get(url);
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth);
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| transport(&error, limits))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(FetchError::Source(format!(
            "the source answered HTTP {status} (a redirect); redirects are not followed: \
             configure the final URL"
        )));
    }
    if !status.is_success() {
        return Err(FetchError::Source(format!(
            "the source answered HTTP {status}"
        )));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE);
    if let Some(length) = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
        && length > limits.max_bytes
    {
        return Err(FetchError::TooLarge(limits.max_bytes));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport(&error, limits))?
    {
        append_capped(&mut bytes, &chunk, limits.max_bytes)?;
    }
    Ok(Download {
        bytes,
        content_type,
    })
}

fn transport(error: &reqwest::Error, limits: &Limits) -> FetchError {
    if error.is_timeout() {
        FetchError::Timeout(limits.timeout.as_secs())
    } else if error.is_connect() {
        FetchError::Unreachable(
            "the source refused the connection or could not be reached".to_owned(),
        )
    } else {
        FetchError::Unreachable("the transfer from the source broke off".to_owned())
    }
}
