//! Sync metrics in the default Prometheus registry (served on the edge's `/metrics` when
//! `mindshop serve` runs everything in one process).

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

use crate::store::SyncRun;

struct SyncMetrics {
    runs: IntCounterVec,
    rows: IntCounterVec,
    duration: HistogramVec,
}

static METRICS: LazyLock<SyncMetrics> = LazyLock::new(|| SyncMetrics {
    runs: register_int_counter_vec!(
        "mindshop_sync_runs_total",
        "Finished product sync runs, by status (completed, failed) and source type.",
        &["status", "source"]
    )
    .expect("metric names are valid and registered once"),
    rows: register_int_counter_vec!(
        "mindshop_sync_rows_total",
        "Catalog rows handled by sync runs, by outcome (created, updated, unchanged, deleted, \
         failed).",
        &["outcome"]
    )
    .expect("metric names are valid and registered once"),
    duration: register_histogram_vec!(
        "mindshop_sync_run_duration_seconds",
        "Time from a sync run's start to its end, by source type.",
        &["source"],
        vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0
        ]
    )
    .expect("metric names are valid and registered once"),
});

/// Source types as runs record them, for series that start at 0.
const SOURCES: [&str; 5] = ["csv", "api", "ftp", "s3", "webhook"];

/// Creates the series whose labels are known at 0, so `rate()` sees a restart's first runs.
pub(crate) fn init() {
    let metrics = &*METRICS;
    for status in ["completed", "failed"] {
        for source in SOURCES {
            metrics.runs.with_label_values(&[status, source]);
        }
    }
    for outcome in ["created", "updated", "unchanged", "deleted", "failed"] {
        metrics.rows.with_label_values(&[outcome]);
    }
}

/// Counts a run that has just finished.
pub(crate) fn finished(run: &SyncRun) {
    let metrics = &*METRICS;
    metrics
        .runs
        .with_label_values(&[run.status.as_str(), run.source_type.as_str()])
        .inc();
    for (outcome, count) in [
        ("created", run.products_created),
        ("updated", run.products_updated),
        ("unchanged", run.products_unchanged),
        ("deleted", run.products_deleted),
        ("failed", run.products_failed),
    ] {
        metrics
            .rows
            .with_label_values(&[outcome])
            .inc_by(u64::try_from(count).unwrap_or(0));
    }
    if let Some(completed_at) = run.completed_at {
        let took = (completed_at - run.started_at).to_std().unwrap_or_default();
        metrics
            .duration
            .with_label_values(&[run.source_type.as_str()])
            .observe(took.as_secs_f64());
    }
}
