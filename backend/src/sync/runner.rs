//! Pulls in the background: `POST …/sync/trigger` and cron schedules start a run, answer at
//! once, and the pull continues here. Each backend also runs a scheduler loop that
//! - fails runs whose backend died (no heartbeat for `sync.stale_run_secs`), so none stays
//!   `processing` forever, and
//! - starts scheduled syncs that are due. Advancing a schedule is a conditional update that
//!   one backend wins, so with several backends each scheduled run happens once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mindshop_config::SyncSettings;
use tokio::task::JoinHandle;

use super::fetch;
use super::import::{self, Import, ImportError, Mode};
use super::parse::FieldMapping;
use crate::store::{Store, SyncConfig, SyncRun};

#[derive(Debug)]
pub struct Runner {
    store: Arc<dyn Store>,
    settings: SyncSettings,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, settings: SyncSettings) -> Self {
        Self { store, settings }
    }

    /// Starts a run that pulls `config`'s source; returns it at once (`processing`) while the
    /// pull goes on in the background. [`ImportError::Busy`] when a run is active.
    pub async fn start_pull(
        self: &Arc<Self>,
        config: SyncConfig,
        trigger: &'static str,
    ) -> Result<SyncRun, ImportError> {
        let run = import::start(
            self.store.as_ref(),
            &config.merchant_id,
            trigger,
            &config.source_type,
            Mode::Upsert,
        )
        .await?;
        let runner = Arc::clone(self);
        let pulled = run.clone();
        tokio::spawn(async move { runner.pull(config, pulled).await });
        Ok(run)
    }

    async fn pull(&self, config: SyncConfig, run: SyncRun) {
        let store = self.store.as_ref();
        let finished = match fetch::fetch(&config, &self.settings).await {
            Err(error) => {
                tracing::info!(run_id = %run.id, merchant_id = %run.merchant_id, %error, "sync pull failed");
                import::fail(store, &run, format!("Pulling the source failed: {error}"))
                    .await
                    .map(Some)
            }
            Ok((format, bytes)) => {
                let import = Import {
                    merchant_id: &config.merchant_id,
                    format,
                    bytes: &bytes,
                    mapping: Some(FieldMapping::from(&config.field_mapping)),
                    mode: Mode::Upsert,
                    trigger: "pull",
                    source_type: &config.source_type,
                };
                match import::apply(store, &run, &import, Vec::new()).await {
                    Ok(_) | Err(ImportError::File(_)) => Ok(None),
                    Err(ImportError::Store(error)) => Err(error),
                    Err(ImportError::Busy(_)) => Ok(None),
                }
            }
        };
        if let Err(error) = finished {
            // The run stays `processing`; the stale-run sweep fails it later.
            tracing::error!(run_id = %run.id, %error, "could not record the end of a sync run");
        }
    }

    /// One pass of the scheduler at `now`: fail dead runs, start due scheduled syncs.
    pub async fn tick(self: &Arc<Self>, now: DateTime<Utc>) {
        let stale = chrono::Duration::seconds(
            i64::try_from(self.settings.stale_run_secs).unwrap_or(i64::MAX / 1000),
        );
        match self.store.fail_stale_sync_runs(now - stale).await {
            Ok(failed) => {
                for run in &failed {
                    tracing::warn!(run_id = %run.id, merchant_id = %run.merchant_id, "failed a sync run whose backend stopped");
                    super::metrics::finished(run);
                }
            }
            Err(error) => tracing::error!(%error, "could not sweep stale sync runs"),
        }
        let due = match self.store.due_sync_configs(now).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "could not read due sync schedules");
                return;
            }
        };
        for config in due {
            let (Some(due_at), Some(schedule)) = (config.next_run_at, config.schedule.clone())
            else {
                continue;
            };
            let next = super::schedule::next_occurrence(&schedule, now);
            match self
                .store
                .claim_scheduled_sync(&config.merchant_id, due_at, next)
                .await
            {
                Ok(true) => {
                    let merchant_id = config.merchant_id.clone();
                    match self.start_pull(config, "schedule").await {
                        Ok(run) => {
                            tracing::info!(run_id = %run.id, %merchant_id, "scheduled sync started");
                        }
                        Err(ImportError::Busy(active)) => {
                            tracing::info!(%merchant_id, active, "scheduled sync skipped: a run is active");
                        }
                        Err(error) => {
                            tracing::error!(%merchant_id, %error, "scheduled sync could not start");
                        }
                    }
                }
                // Another backend took it.
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "could not claim a sync schedule"),
            }
        }
    }

    /// Runs [`Runner::tick`] every `sync.scheduler_interval_secs` until the handle is aborted.
    pub fn spawn_scheduler(self: Arc<Self>) -> JoinHandle<()> {
        let interval = Duration::from_secs(self.settings.scheduler_interval_secs);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.tick(Utc::now()).await;
            }
        })
    }
}
