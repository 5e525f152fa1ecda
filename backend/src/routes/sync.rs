//! Product sync, behind the portal (JWT with access to the merchant, or an admin):
//! - `POST|PUT /api/merchants/{merchant_id}/sync/configure`: 201 when created (with the
//!   webhook secret, shown this once), 200 when updated; `GET` returns it (404 if none).
//! - `POST …/sync/upload` (multipart field `file`, CSV or JSON, at most 10 MB;
//!   `?dryRun=true`, `?mode=replace`): one run, its counts and row errors.
//! - `POST …/sync/trigger`: pull the configured source now, in the background: 202 and the
//!   run; 409 naming the active run while one is in progress.
//! - `POST …/sync/webhook`: the merchant's platform pushes upserts and deletions; not a portal
//!   route, signed with Standard Webhooks and the configuration's webhook secret; a push id is
//!   applied once (see `webhook`).
//! - `GET …/sync/status`: the active run with its progress, else the last run.
//! - `GET …/sync/history?limit=&cursor=`: runs, newest first.
//! - `POST …/sync/webhook-secret`: a new webhook secret, shown this once.
//! - `GET …/products?limit=&cursor=` (portal) and `GET /api/products` (API key,
//!   `products:read`): the catalog by SKU.

mod input;
mod webhook;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{KeyAccess, PortalAccess, ProductsRead};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::Routes;
use crate::routes::page;
use crate::store::{FieldMapping, NewPush, Product, PushStart, SyncConfig, SyncRun};
use crate::sync::import::{self, Import, ImportError, ImportReport, Mode};
use crate::sync::parse::{FileError, Format};
use crate::{ApiError, AppState, Envelope, RequestContext};
use input::ConfigInput;

/// Largest catalog file an upload may carry.
pub(crate) const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

pub(super) fn routes(routes: Routes) -> Routes {
    let base = "/api/merchants/{merchant_id}";
    let configure = format!("{base}/sync/configure");
    routes
        .get(&configure, show_config)
        .post(&configure, put_config)
        .put(&configure, put_config)
        .post(&format!("{base}/sync/upload"), upload)
        .post(&format!("{base}/sync/trigger"), trigger)
        .post(&format!("{base}/sync/webhook"), push)
        .get(&format!("{base}/sync/status"), status)
        .get(&format!("{base}/sync/history"), history)
        .post(&format!("{base}/sync/webhook-secret"), rotate_secret)
        .get(&format!("{base}/products"), portal_products)
        .get("/api/products", key_products)
}

/// A configuration as shown; `webhookSecret` only when it was just made.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigView {
    merchant_id: String,
    sync_type: String,
    schedule: Option<String>,
    /// When a `scheduled` sync runs next (UTC).
    next_run_at: Option<DateTime<Utc>>,
    source_type: String,
    /// As configured, with any password in it masked.
    source_url: Option<String>,
    /// Whether pull credentials (`sourceAuth`) are stored; they are never shown.
    source_auth_set: bool,
    field_mapping: FieldMapping,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ConfigView {
    fn new(config: SyncConfig, show_secret: bool) -> Self {
        Self {
            merchant_id: config.merchant_id,
            sync_type: config.sync_type,
            schedule: config.schedule,
            next_run_at: config.next_run_at,
            source_type: config.source_type,
            source_url: config.source_url.as_deref().map(mask_password),
            source_auth_set: config.source_auth.is_some(),
            field_mapping: config.field_mapping,
            status: config.status,
            webhook_secret: show_secret.then_some(config.webhook_secret),
            created_at: config.created_at,
            updated_at: config.updated_at,
        }
    }
}

async fn show_config(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<ConfigView>, ApiError> {
    let config = state
        .store
        .get_sync_config(&access.merchant_id)
        .await?
        .ok_or_else(no_config)?;
    Ok(Envelope::new(
        &access.context,
        ConfigView::new(config, false),
    ))
}

async fn put_config(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiJson(input): ApiJson<ConfigInput>,
) -> Result<Envelope<ConfigView>, ApiError> {
    let fields = input.validate()?;
    let (config, created) = state
        .store
        .put_sync_config(&access.merchant_id, &fields, &new_webhook_secret())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Envelope::new(&access.context, ConfigView::new(config, created)).status(status))
}

async fn rotate_secret(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<ConfigView>, ApiError> {
    let config = state
        .store
        .rotate_sync_webhook_secret(&access.merchant_id, &new_webhook_secret())
        .await
        .map_err(|_| no_config())?;
    Ok(Envelope::new(
        &access.context,
        ConfigView::new(config, true),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadQuery {
    dry_run: Option<String>,
    mode: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiQuery(query): ApiQuery<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Envelope<ImportReport>, ApiError> {
    let dry_run = match query.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("dryRun", "use true or false")),
    };
    let mode = match query.mode.as_deref() {
        None | Some("upsert") => Mode::Upsert,
        Some("replace") => Mode::Replace,
        Some(_) => return Err(ApiError::invalid("mode", "use upsert or replace")),
    };
    let multipart = multipart.map_err(|_| ApiError::BadRequest {
        code: "INVALID_UPLOAD",
        message: "Send the file as multipart/form-data in a field named \"file\"".to_owned(),
    })?;
    let (format, bytes) = read_file_field(multipart).await?;

    let config = state.store.get_sync_config(&access.merchant_id).await?;
    let import = Import {
        merchant_id: &access.merchant_id,
        format,
        bytes: &bytes,
        mapping: config.as_ref().map(|config| config.field_mapping.clone()),
        mode,
        trigger: "upload",
        source_type: "csv",
    };
    let report = if dry_run {
        import::dry_run(&import)
    } else {
        import::run(state.store.as_ref(), &import).await
    };
    Ok(Envelope::new(
        &access.context,
        report.map_err(import_error)?,
    ))
}

/// The `file` field: its format (by file name, else content type) and its bytes.
async fn read_file_field(mut multipart: Multipart) -> Result<(Format, Vec<u8>), ApiError> {
    let unreadable = |error: MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest {
                code: "INVALID_UPLOAD",
                message: format!(
                    "The multipart body could not be read: {}",
                    error.body_text()
                ),
            }
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        let format = file_format(field.file_name(), field.content_type()).ok_or_else(|| {
            ApiError::BadRequest {
                code: "UNSUPPORTED_FILE_TYPE",
                message: "Unsupported file type. Please upload CSV or JSON.".to_owned(),
            }
        })?;
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok((format, bytes));
    }
    Err(ApiError::BadRequest {
        code: "INVALID_UPLOAD",
        message: "No file: send it in a multipart field named \"file\"".to_owned(),
    })
}

/// CSV or JSON, by the file name's extension, else by the declared content type.
fn file_format(file_name: Option<&str>, content_type: Option<&str>) -> Option<Format> {
    let extension = file_name
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("csv") => return Some(Format::Csv),
        Some("json") => return Some(Format::Json),
        _ => {}
    }
    let essence = content_type?
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" | "application/csv" => Some(Format::Csv),
        "application/json" | "text/json" => Some(Format::Json),
        _ => None,
    }
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "The file is larger than {} MB",
        MAX_UPLOAD_BYTES / (1024 * 1024)
    ))
}

fn import_error(error: ImportError) -> ApiError {
    match error {
        ImportError::File(FileError::Empty) => ApiError::BadRequest {
            code: "EMPTY_FILE",
            message: "The file is empty".to_owned(),
        },
        ImportError::File(FileError::Malformed(message)) => ApiError::BadRequest {
            code: "INVALID_FILE",
            message,
        },
        ImportError::Busy(run_id) => ApiError::Conflict {
            code: "SYNC_IN_PROGRESS",
            message: format!("Sync run {run_id} is in progress; try again when it has finished"),
        },
        ImportError::Store(error) => error.into(),
    }
}

async fn trigger(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<SyncRun>, ApiError> {
    let config = state
        .store
        .get_sync_config(&access.merchant_id)
        .await?
        .ok_or_else(no_config)?;
    if config.status != "active" {
        return Err(disabled());
    }
    if config.source_type == "csv" {
        return Err(ApiError::BadRequest {
            code: "NOTHING_TO_PULL",
            message: "sourceType csv has nothing to pull: upload files with POST \
                      /api/merchants/{merchantId}/sync/upload"
                .to_owned(),
        });
    }
    let run = state
        .sync
        .start_pull(config, "trigger")
        .await
        .map_err(import_error)?;
    Ok(Envelope::new(&access.context, run).status(StatusCode::ACCEPTED))
}

/// A platform's push: products to upsert (through the field mapping) and SKUs to delete.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    #[serde(default)]
    products: Vec<serde_json::Value>,
    #[serde(default)]
    deleted: Vec<String>,
}

/// Most SKUs one push may delete.
const MAX_PUSH_DELETIONS: usize = 10_000;

async fn push(
    State(state): State<AppState>,
    context: RequestContext,
    ApiPath(merchant_id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Envelope<ImportReport>, ApiError> {
    let config = state.store.get_sync_config(&merchant_id).await?;
    // An unknown merchant and a wrong signature look alike to the caller.
    let secret = config.as_ref().map(|c| c.webhook_secret.as_str());
    let now = Utc::now();
    let verified = webhook::verify(
        secret,
        &headers,
        &body,
        now.timestamp(),
        state.sync.settings().legacy_push_signatures,
    )?;
    let config =
        config.ok_or_else(|| ApiError::Internal("verified without a secret".to_owned()))?;
    if config.status != "active" {
        return Err(disabled());
    }
    // The extractors' parser: text with NUL is refused here, naming it, before a run starts.
    let push: Push = crate::extract::parse_json(&body)?;
    if push.deleted.len() > MAX_PUSH_DELETIONS {
        return Err(ApiError::invalid(
            "deleted",
            format!("at most {MAX_PUSH_DELETIONS} SKUs per push"),
        ));
    }
    let products = serde_json::to_vec(&push.products)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let import = Import {
        merchant_id: &merchant_id,
        format: Format::Json,
        bytes: &products,
        mapping: Some(config.field_mapping.clone()),
        mode: Mode::Upsert,
        trigger: "webhook",
        source_type: "webhook",
    };
    let run = match verified {
        webhook::Verified::Standard { id } => {
            // An id is remembered for twice the tolerance: a timestamp is accepted that far
            // either side of now, so any replay still accepted finds it.
            let remember = chrono::Duration::seconds(2 * webhook::TOLERANCE_SECS + 60);
            let push = NewPush {
                push_id: id,
                forget_before: now - remember,
            };
            match import::start_push(state.store.as_ref(), &merchant_id, &push).await {
                Ok(PushStart::Started(run)) => run,
                // Acknowledged: the platform may stop retrying; nothing changes.
                Ok(PushStart::Repeated(earlier)) => {
                    return Ok(Envelope::new(&context, ImportReport::repeated(earlier)));
                }
                Err(error) => return Err(import_error(error)),
            }
        }
        webhook::Verified::Legacy => import::start(
            state.store.as_ref(),
            &merchant_id,
            "webhook",
            "webhook",
            Mode::Upsert,
        )
        .await
        .map_err(import_error)?,
    };
    let report = import::apply(state.store.as_ref(), &run, &import, push.deleted)
        .await
        .map_err(import_error)?;
    Ok(Envelope::new(&context, report))
}

fn disabled() -> ApiError {
    ApiError::Conflict {
        code: "SYNC_DISABLED",
        message: "The sync configuration is disabled; set its status to active".to_owned(),
    }
}

async fn status(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<SyncRun>, ApiError> {
    // One run per merchant at a time, so the newest run is the active one if any.
    let latest = state
        .store
        .list_sync_runs(&access.merchant_id, None, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("no sync has run yet".to_owned()))?;
    Ok(Envelope::new(&access.context, latest))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<SyncRun>>, ApiError> {
    let limit = page::parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(page::decode_cursor)
        .transpose()?;
    let items = state
        .store
        .list_sync_runs(&access.merchant_id, after.as_ref(), limit + 1)
        .await?;
    let (items, next_cursor) =
        page::split(items, limit, |last| page::encode_cursor(&last.page_key()));
    Ok(Envelope::new(&access.context, Page { items, next_cursor }))
}

async fn portal_products(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<Product>>, ApiError> {
    products(&state, &access.context, &access.merchant_id, &query).await
}

async fn key_products(
    State(state): State<AppState>,
    access: KeyAccess<ProductsRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<Product>>, ApiError> {
    products(&state, &access.context, &access.merchant_id, &query).await
}

async fn products(
    state: &AppState,
    context: &RequestContext,
    merchant_id: &str,
    query: &ListQuery,
) -> Result<Envelope<Page<Product>>, ApiError> {
    let limit = page::parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(page::decode_sku_cursor)
        .transpose()?;
    let items = state
        .store
        .list_products(merchant_id, after.as_deref(), limit + 1)
        .await?;
    let (items, next_cursor) = page::split(items, limit, |last| page::encode_sku_cursor(&last.sku));
    Ok(Envelope::new(context, Page { items, next_cursor }))
}

/// `scheme://user:password@host/…` with the password replaced by `***`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

fn no_config() -> ApiError {
    ApiError::NotFound(
        "No sync configuration yet: POST /api/merchants/{merchantId}/sync/configure".to_owned(),
    )
}

/// A secret for `/sync/webhook` signatures: `whsec_` and 32 random bytes in base64, the form
/// the Standard Webhooks libraries read.
fn new_webhook_secret() -> String {
    crate::webhooks::sign::new_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_source_urls_are_masked() {
        assert_eq!(
            mask_password("ftp://shop:hunter2@files.example/p.csv"),
            "ftp://shop:***@files.example/p.csv"
        );
        assert_eq!(
            mask_password("ftp://shop@files.example/p.csv"),
            "ftp://shop@files.example/p.csv"
        );
        assert_eq!(
            mask_password("https://files.example/a@b.csv"),
            "https://files.example/a@b.csv"
        );
    }

    #[test]
    fn the_format_comes_from_the_name_then_the_content_type() {
        assert_eq!(file_format(Some("p.CSV"), None), Some(Format::Csv));
        assert_eq!(
            file_format(Some("p.json"), Some("text/plain")),
            Some(Format::Json)
        );
        assert_eq!(
            file_format(Some("export"), Some("text/csv; charset=utf-8")),
            Some(Format::Csv)
        );
        assert_eq!(file_format(Some("p.xlsx"), Some("application/zip")), None);
        assert_eq!(file_format(None, None), None);
    }
}
