//! `s3` sources: one object from AWS S3 or an S3-compatible store.
//!
//! The endpoint is the operator's (`sync.s3_endpoint`), not the merchant's, so it is trusted:
//! unlike `api` and `ftp` hosts, it is not checked by [`super::guard`].

use std::error::Error as _;
use std::pin::Pin;

use axum::body::{Body, HttpBody};
use mindshop_config::SyncSettings;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::HttpError;
use object_store::path::Path;
use object_store::{
    Attribute, BackoffConfig, ClientConfigKey, GetResult, ObjectStoreExt, RetryConfig,
};

use super::{Download, FetchError, Limits, append_capped};

/// Fetches the object `url` names (`s3://bucket/key`). Credentials: `auth`
/// (`access_key_id:secret_access_key`) when given, else the usual AWS environment; region and
/// endpoint from `settings` (`sync.s3_region`, `sync.s3_endpoint`).
pub(super) async fn fetch(
    url: &str,
    auth: Option<&str>,
    settings: &SyncSettings,
    limits: &Limits,
) -> Result<Download, FetchError> {
    let object = S3Object::parse(url)?;
    let store = store(&object.bucket, auth, settings, limits)?;
    let result = store
        .get(&object.key)
        .await
        .map_err(|error| failure(&error, &object))?;
    // The size S3 declares: refused before any of the body is read.
    if result.meta.size > limits.max_bytes {
        return Err(FetchError::TooLarge(limits.max_bytes));
    }
    let content_type = result
        .attributes
        .get(&Attribute::ContentType)
        .map(|value| value.to_string());
    let bytes = read_capped(result, limits.max_bytes, &object).await?;
    Ok(Download {
        bytes,
        content_type,
    })
}

/// The bucket and key an `s3://` URL names.
#[derive(Debug, PartialEq, Eq)]
struct S3Object {
    bucket: String,
    key: Path,
}

impl S3Object {
    /// The key is kept as written after the bucket; it is not %-decoded.
    fn parse(url: &str) -> Result<Self, FetchError> {
        let no_object = || {
            FetchError::NotPullable(format!(
                "sourceUrl {url:?} does not name an object: write s3://bucket/key"
            ))
        };
        let (bucket, key) = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty() && !key.ends_with('/'))
            .ok_or_else(no_object)?;
        let key = Path::parse(key).map_err(|_| {
            FetchError::NotPullable(format!(
                "the object key {key:?} has an empty, `.` or `..` segment, which S3 sources \
                 cannot fetch"
            ))
        })?;
        Ok(Self {
            bucket: bucket.to_owned(),
            key,
        })
    }
}

/// A client for `bucket`, with the merchant's keys or else the environment's.
fn store(
    bucket: &str,
    auth: Option<&str>,
    settings: &SyncSettings,
    limits: &Limits,
) -> Result<AmazonS3, FetchError> {
    let builder = match auth {
        Some(auth) => {
            let (key_id, secret) = auth.split_once(':').ok_or_else(|| {
                FetchError::NotPullable(
                    "sourceAuth of an s3 source must be ACCESS_KEY_ID:SECRET_ACCESS_KEY".to_owned(),
                )
            })?;
            AmazonS3Builder::new()
                .with_access_key_id(key_id)
                .with_secret_access_key(secret)
        }
        None if settings.s3_environment_credentials => AmazonS3Builder::from_env(),
        None => {
            return Err(FetchError::NotPullable(
                "an s3 source needs sourceAuth: ACCESS_KEY_ID:SECRET_ACCESS_KEY of a key that \
                 may read the object"
                    .to_owned(),
            ));
        }
    };
    let mut builder = builder
        .with_bucket_name(bucket)
        .with_region(&settings.s3_region)
        // object_store's own timeout (30 s) covers the body too and would cut off a large
        // object the pull's timeout allows.
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", limits.timeout.as_millis()),
        )
        // A few quick retries, so an endpoint that does not answer is reported as unreachable
        // before the pull's timeout (the default retries for minutes).
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: limits.timeout,
        });
    if let Some(endpoint) = &settings.s3_endpoint {
        // S3-compatible stores answer on one host, the bucket in the path.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder.build().map_err(|_| {
        FetchError::NotPullable(format!(
            "the S3 client for bucket {bucket} could not be configured (sync.s3_region, \
             sync.s3_endpoint)"
        ))
    })
}

/// Reads the object's body, at most `max` bytes. object_store hands out a `futures` stream;
/// axum's body adapts it, so the backend needs no `futures` crate of its own.
async fn read_capped(
    result: GetResult,
    max: u64,
    object: &S3Object,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Body::from_stream(result.into_stream());
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        // axum wraps the stream's error; object_store's is inside.
        let frame = frame.map_err(|error| {
            error
                .into_inner()
                .downcast::<object_store::Error>()
                .map_or_else(|_| broke_off(), |error| failure(&error, object))
        })?;
        if let Ok(data) = frame.into_data() {
            append_capped(&mut bytes, &data, max)?;
        }
    }
    Ok(bytes)
}

/// The merchant's message for an S3 error.
fn failure(error: &object_store::Error, object: &S3Object) -> FetchError {
    match error {
        object_store::Error::NotFound { .. } => FetchError::Source(format!(
            "the bucket {} has no object at {}",
            object.bucket, object.key
        )),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => FetchError::Source(format!(
            "S3 refused the credentials, or they may not read {} in bucket {}",
            object.key, object.bucket
        )),
        _ if is_transport(error) => broke_off(),
        _ => FetchError::Source("S3 answered with an error".to_owned()),
    }
}

/// Whether the request never got an answer: connect, timeout or a broken transfer.
fn is_transport(error: &object_store::Error) -> bool {
    let mut cause = error.source();
    while let Some(error) = cause {
        if error.is::<HttpError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn broke_off() -> FetchError {
    FetchError::Unreachable(
        "the S3 endpoint could not be reached, or the transfer from it broke off".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use object_store::client::HttpErrorKind;
    use object_store::{Attributes, ObjectStore, PutOptions, PutPayload};

    use super::super::ftp::tests::PythonServer;
    use super::*;

    const BUCKET: &str = "mindshop-feeds";
    const AUTH: &str = "testing:testing";
    const CATALOG: &[u8] = b"sku,title\nA-1,Tea\n";

    fn settings(endpoint: String) -> SyncSettings {
        SyncSettings {
            s3_region: "us-east-1".to_owned(),
            s3_endpoint: Some(endpoint),
            ..SyncSettings::default()
        }
    }

    fn limits(max_bytes: u64) -> Limits {
        Limits {
            timeout: Duration::from_secs(30),
            max_bytes,
            allow_private: false,
        }
    }

    /// moto's S3 server; with `MOTO_AUTH` it checks credentials (and knows none).
    async fn moto(env: &[(&str, &str)]) -> (PythonServer, SyncSettings) {
        crate::install_crypto_provider();
        let server = PythonServer::start(env, |port| {
            ["-m", "moto.server", "-H", "127.0.0.1", "-p", port]
                .map(str::to_owned)
                .to_vec()
        })
        .await;
        let endpoint = format!("http://127.0.0.1:{}", server.port);
        (server, settings(endpoint))
    }

    /// Checks credentials from the first request on.
    const MOTO_AUTH: (&str, &str) = ("INITIAL_NO_AUTH_ACTION_COUNT", "0");

    /// moto with `BUCKET` created.
    async fn moto_with_bucket() -> (PythonServer, SyncSettings) {
        let (server, settings) = moto(&[]).await;
        let endpoint = settings.s3_endpoint.as_deref().unwrap_or_default();
        // moto does not check signatures by default, so a plain PUT creates the bucket.
        let created = reqwest::Client::new()
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
        (server, settings)
    }

    async fn put(settings: &SyncSettings, key: &str, bytes: Vec<u8>, content_type: &'static str) {
        let store = store(BUCKET, Some(AUTH), settings, &limits(0)).unwrap();
        let options = PutOptions {
            attributes: Attributes::from_iter([(Attribute::ContentType, content_type)]),
            ..PutOptions::default()
        };
        store
            .put_opts(&Path::parse(key).unwrap(), PutPayload::from(bytes), options)
            .await
            .unwrap();
    }

    #[tokio::test]
    #[ignore = "needs python3 with moto[server] (pip install 'moto[server]')"]
    async fn an_object_is_fetched_with_its_content_type() {
        let (_server, settings) = moto_with_bucket().await;
        put(
            &settings,
            "exports/2024/products",
            CATALOG.to_vec(),
            "text/csv",
        )
        .await;
        let url = format!("s3://{BUCKET}/exports/2024/products");
        let download = fetch(&url, Some(AUTH), &settings, &limits(1 << 20))
            .await
            .unwrap();
        assert_eq!(download.bytes, CATALOG);
        assert_eq!(download.content_type.as_deref(), Some("text/csv"));
    }

    #[tokio::test]
    #[ignore = "needs python3 with moto[server] (pip install 'moto[server]')"]
    async fn a_missing_key_is_named_in_the_error() {
        let (_server, settings) = moto_with_bucket().await;
        let url = format!("s3://{BUCKET}/exports/missing.csv");
        let error = fetch(&url, Some(AUTH), &settings, &limits(1 << 20))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            FetchError::Source(format!(
                "the bucket {BUCKET} has no object at exports/missing.csv"
            ))
        );
    }

    #[tokio::test]
    #[ignore = "needs python3 with moto[server] (pip install 'moto[server]')"]
    async fn an_object_over_the_cap_is_too_large() {
        let (_server, settings) = moto_with_bucket().await;
        put(&settings, "big.csv", vec![b'x'; 200_000], "text/csv").await;
        let url = format!("s3://{BUCKET}/big.csv");
        let error = fetch(&url, Some(AUTH), &settings, &limits(100_000))
            .await
            .unwrap_err();
        assert_eq!(error, FetchError::TooLarge(100_000));
    }

    #[tokio::test]
    #[ignore = "needs python3 with moto[server] (pip install 'moto[server]')"]
    async fn unknown_credentials_are_refused() {
        let (_server, settings) = moto(&[MOTO_AUTH]).await;
        let url = format!("s3://{BUCKET}/products.csv");
        let error = fetch(&url, Some(AUTH), &settings, &limits(1 << 20))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            FetchError::Source(format!(
                "S3 refused the credentials, or they may not read products.csv in bucket {BUCKET}"
            ))
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_answer_is_unreachable() {
        crate::install_crypto_provider();
        // Bound and let go: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let settings = settings(format!("http://127.0.0.1:{port}"));
        let error = fetch("s3://b/k.csv", Some(AUTH), &settings, &limits(1 << 20))
            .await
            .unwrap_err();
        assert!(matches!(error, FetchError::Unreachable(_)), "{error:?}");
    }

    #[test]
    fn the_url_names_a_bucket_and_a_key_kept_as_written() {
        let object = S3Object::parse("s3://feeds/exports/2024/my%20products.csv").unwrap();
        assert_eq!(object.bucket, "feeds");
        assert_eq!(object.key.as_ref(), "exports/2024/my%20products.csv");
        for url in [
            "s3://feeds",
            "s3://feeds/",
            "s3:///k.csv",
            "s3://feeds/dir/",
            "s3://f/a//b",
            "https://f/k",
        ] {
            let error = S3Object::parse(url).unwrap_err();
            assert!(
                matches!(error, FetchError::NotPullable(_)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn auth_without_a_colon_is_not_pullable() {
        let error = store(
            "b",
            Some("just-a-key"),
            &SyncSettings::default(),
            &limits(1),
        )
        .unwrap_err();
        assert!(matches!(error, FetchError::NotPullable(_)), "{error:?}");
    }

    #[test]
    fn s3_errors_say_what_the_merchant_can_fix() {
        let object = S3Object::parse("s3://feeds/products.csv").unwrap();
        let cause = || {
            Box::new(std::io::Error::other("detail")) as Box<dyn std::error::Error + Send + Sync>
        };
        let path = "products.csv".to_owned();
        let denied = object_store::Error::PermissionDenied {
            path: path.clone(),
            source: cause(),
        };
        assert_eq!(
            failure(&denied, &object),
            FetchError::Source(
                "S3 refused the credentials, or they may not read products.csv in bucket feeds"
                    .to_owned()
            )
        );
        let unauthenticated = object_store::Error::Unauthenticated {
            path,
            source: cause(),
        };
        assert_eq!(
            failure(&unauthenticated, &object),
            failure(&denied, &object)
        );
        let connect = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                HttpErrorKind::Connect,
                std::io::Error::other("refused"),
            )),
        };
        assert!(matches!(
            failure(&connect, &object),
            FetchError::Unreachable(_)
        ));
        let other = object_store::Error::Generic {
            store: "S3",
            source: cause(),
        };
        assert_eq!(
            failure(&other, &object),
            FetchError::Source("S3 answered with an error".to_owned())
        );
    }
}
