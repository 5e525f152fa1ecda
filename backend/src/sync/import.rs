//! One sync run over a catalog file: parse, validate each row, upsert the good ones in
//! batches (each batch its own transaction), record the run and its events.

use std::collections::HashSet;

use serde::Serialize;

use super::parse::{self, FieldMapping, FileError, Format};
use crate::store::{
    NewPush, NewSyncRun, PushStart, RunError, RunOutcome, Store, StoreError, SyncRun, catalog,
};

/// Rows written per transaction: large enough to amortise the round trips, small enough that a
/// batch commits in milliseconds and a crash loses at most one.
pub const BATCH_ROWS: usize = 1000;

/// How a run treats products that the file does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Upsert what the file holds; leave the rest.
    Upsert,
    /// A full-catalog feed: also delete the merchant's products absent from the file.
    Replace,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Replace => "replace",
        }
    }
}

/// What to import.
#[derive(Debug)]
pub struct Import<'a> {
    pub merchant_id: &'a str,
    pub format: Format,
    pub bytes: &'a [u8],
    /// `None`: columns named like the targets.
    pub mapping: Option<FieldMapping>,
    pub mode: Mode,
    /// `upload`, `trigger`, `schedule`, `webhook`.
    pub trigger: &'static str,
    pub source_type: &'a str,
}

/// The answer to an upload: the run's counts, or what a dry run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub run_id: Option<String>,
    pub status: String,
    pub dry_run: bool,
    pub mode: &'static str,
    pub products_processed: i64,
    pub products_created: i64,
    pub products_updated: i64,
    pub products_unchanged: i64,
    pub products_deleted: i64,
    pub products_failed: i64,
    pub errors: Vec<RunError>,
    pub error_count: i64,
    /// A platform push whose id was applied already: this is that run, and nothing changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
}

impl ImportReport {
    /// The answer to a push sent again: the run that applied it the first time.
    pub fn repeated(run: SyncRun) -> Self {
        let mode = if run.mode == Mode::Replace.label() {
            Mode::Replace
        } else {
            Mode::Upsert
        };
        Self {
            repeated: true,
            ..Self::from_run(run, mode)
        }
    }

    fn from_run(run: SyncRun, mode: Mode) -> Self {
        Self {
            run_id: Some(run.id),
            status: run.status,
            dry_run: false,
            mode: mode.label(),
            products_processed: run.products_processed,
            products_created: run.products_created,
            products_updated: run.products_updated,
            products_unchanged: run.products_unchanged,
            products_deleted: run.products_deleted,
            products_failed: run.products_failed,
            errors: run.errors,
            error_count: run.error_count,
            repeated: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole cannot be read; nothing was written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The merchant has a run in progress (its id).
    #[error("sync run {0} is in progress")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Row errors as a run keeps them: the first [`catalog::MAX_RUN_ERRORS`] and the total.
#[derive(Debug, Default)]
struct Errors {
    kept: Vec<RunError>,
    count: i64,
}

impl Errors {
    fn push(&mut self, error: &parse::RowError) {
        self.count += 1;
        if self.kept.len() < catalog::MAX_RUN_ERRORS {
            self.kept.push(error.into());
        }
    }
}

/// Validates every row without writing anything.
pub fn dry_run(import: &Import<'_>) -> Result<ImportReport, ImportError> {
    let mut processed = 0;
    let mut errors = Errors::default();
    for row in parse::records(import.format, import.bytes, import.mapping.as_ref())? {
        processed += 1;
        if let Err(error) = row {
            errors.push(&error);
        }
    }
    Ok(ImportReport {
        run_id: None,
        status: "validated".to_owned(),
        dry_run: true,
        mode: import.mode.label(),
        products_processed: processed,
        products_created: 0,
        products_updated: 0,
        products_unchanged: 0,
        products_deleted: 0,
        products_failed: errors.count,
        errors: errors.kept,
        error_count: errors.count,
        repeated: false,
    })
}

/// Runs the import as a sync run in the history: a file that cannot be read at all is
/// refused before any run exists.
pub async fn run(store: &dyn Store, import: &Import<'_>) -> Result<ImportReport, ImportError> {
    let rows = parse::records(import.format, import.bytes, import.mapping.as_ref())?;
    let run = start(
        store,
        import.merchant_id,
        import.trigger,
        import.source_type,
        import.mode,
    )
    .await?;
    apply_rows(store, &run, import, rows, Vec::new()).await
}

/// Starts a run (`processing`); [`ImportError::Busy`] names the merchant's active run.
pub async fn start(
    store: &dyn Store,
    merchant_id: &str,
    trigger: &str,
    source_type: &str,
    mode: Mode,
) -> Result<SyncRun, ImportError> {
    let run = new_run(merchant_id, trigger, source_type, mode);
    match store.start_sync_run(&run).await {
        Err(StoreError::Conflict(_)) => Err(busy(store, merchant_id).await),
        started => Ok(started?),
    }
}

/// Starts the run of a verified platform push (`webhook`, upsert), unless its id was applied
/// already; [`ImportError::Busy`] as [`start`].
pub async fn start_push(
    store: &dyn Store,
    merchant_id: &str,
    push: &NewPush,
) -> Result<PushStart, ImportError> {
    let run = new_run(merchant_id, "webhook", "webhook", Mode::Upsert);
    match store.start_push_run(&run, push).await {
        Err(StoreError::Conflict(_)) => Err(busy(store, merchant_id).await),
        started => Ok(started?),
    }
}

fn new_run(merchant_id: &str, trigger: &str, source_type: &str, mode: Mode) -> NewSyncRun {
    NewSyncRun {
        id: mindshop_wire::ids::new_id("run"),
        merchant_id: merchant_id.to_owned(),
        trigger: trigger.to_owned(),
        source_type: source_type.to_owned(),
        mode: mode.label().to_owned(),
    }
}

/// [`ImportError::Busy`] with the merchant's active run.
async fn busy(store: &dyn Store, merchant_id: &str) -> ImportError {
    match store.active_sync_run(merchant_id).await {
        Ok(active) => ImportError::Busy(active.map_or_else(|| "unknown".to_owned(), |run| run.id)),
        Err(error) => error.into(),
    }
}

/// Ends `run` as failed with `reason` (shown to the merchant in the history).
pub async fn fail(store: &dyn Store, run: &SyncRun, reason: String) -> Result<SyncRun, StoreError> {
    let failed = store
        .finish_sync_run(
            &run.merchant_id,
            &run.id,
            &RunOutcome {
                failure: Some(reason),
                processed: 0,
                failed: 0,
                errors: Vec::new(),
                error_count: 0,
                keep_only: None,
                delete: Vec::new(),
            },
        )
        .await?;
    super::metrics::finished(&failed);
    Ok(failed)
}

/// Applies the file of `import` to the started `run` and finishes it; `delete` names SKUs to
/// remove as well (a platform push). A file that cannot be read fails the run with the reason.
pub async fn apply(
    store: &dyn Store,
    run: &SyncRun,
    import: &Import<'_>,
    delete: Vec<String>,
) -> Result<ImportReport, ImportError> {
    match parse::records(import.format, import.bytes, import.mapping.as_ref()) {
        Ok(rows) => apply_rows(store, run, import, rows, delete).await,
        Err(error) => {
            fail(store, run, format!("The file could not be read: {error}")).await?;
            Err(error.into())
        }
    }
}

/// Writes `rows` (read from `import`) to the started `run` in batches and finishes it.
async fn apply_rows(
    store: &dyn Store,
    run: &SyncRun,
    import: &Import<'_>,
    rows: parse::Records<'_>,
    delete: Vec<String>,
) -> Result<ImportReport, ImportError> {
    let mut processed = 0;
    let mut errors = Errors::default();
    let mut seen = (import.mode == Mode::Replace).then(HashSet::new);
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut written = Ok(());
    for row in rows {
        processed += 1;
        match row {
            Ok(record) => {
                if let Some(seen) = &mut seen {
                    seen.insert(record.sku.clone());
                }
                batch.push(record);
            }
            Err(error) => errors.push(&error),
        }
        if batch.len() == BATCH_ROWS {
            written = store
                .apply_product_batch(import.merchant_id, &run.id, &batch)
                .await
                .map(drop);
            batch.clear();
            crate::search::note_import_write();
            if written.is_err() {
                break;
            }
        }
    }
    if written.is_ok() && !batch.is_empty() {
        written = store
            .apply_product_batch(import.merchant_id, &run.id, &batch)
            .await
            .map(drop);
    }

    // In replace mode a product whose row was refused is not "absent": delete nothing then.
    if errors.count > 0 && seen.take().is_some() {
        errors.kept.insert(
            0,
            RunError {
                row: 0,
                field: String::new(),
                message: format!(
                    "replace mode removed no products because {} rows were refused; fix them \
                     and upload again",
                    errors.count
                ),
            },
        );
    }
    let failure = written.as_ref().err().map(|error| {
        tracing::error!(run_id = %run.id, %error, "sync batch failed");
        "Writing the products failed; the products of the batches before were kept".to_owned()
    });
    let outcome = RunOutcome {
        failure,
        processed,
        failed: errors.count,
        errors: errors.kept,
        error_count: errors.count,
        keep_only: seen,
        delete,
    };
    let finished = store
        .finish_sync_run(import.merchant_id, &run.id, &outcome)
        .await?;
    crate::search::note_import_finished();
    super::metrics::finished(&finished);
    written?;
    Ok(ImportReport::from_run(finished, import.mode))
}
