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

    /// The `[sync]` settings this runner was made with.
    pub fn settings(&self) -> &SyncSettings {
        &self.settings
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
                    mapping: Some(config.field_mapping.clone()),
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

#[cfg(test)]
mod tests {
    use std::time::Duration as StdDuration;

    use super::*;
    use crate::store::{FieldMapping, SyncConfigFields};
    use crate::test_support;

    /// A feed on loopback answering `GET /feed.csv` with two products.
    async fn feed() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/feed.csv",
            axum::routing::get(|| async { "sku,title\nS1,Sofa\nS2,Stool\n" }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/feed.csv")
    }

    fn runner(store: &Arc<dyn Store>) -> Arc<Runner> {
        let settings = SyncSettings {
            allow_private_sources: true,
            ..SyncSettings::default()
        };
        Arc::new(Runner::new(Arc::clone(store), settings))
    }

    async fn runs_settled(store: &dyn Store, merchant: &str) -> Vec<SyncRun> {
        for _ in 0..100 {
            let runs = store.list_sync_runs(merchant, None, 10).await.unwrap();
            if runs.iter().all(|run| run.status != "processing") {
                return runs;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("runs still processing after 5 s");
    }

    #[tokio::test]
    async fn a_due_schedule_runs_once_however_many_backends_tick() {
        let (state, _dir) = test_support::state().await;
        test_support::with_merchants(&state).await;
        let store = &state.store;
        let due = "2026-11-27T03:00:00Z".parse::<DateTime<Utc>>().unwrap();
        store
            .put_sync_config(
                "acme",
                &SyncConfigFields {
                    sync_type: "scheduled".to_owned(),
                    schedule: Some("0 3 * * *".to_owned()),
                    source_type: "api".to_owned(),
                    source_url: Some(feed().await),
                    field_mapping: FieldMapping {
                        sku: "sku".to_owned(),
                        title: "title".to_owned(),
                        description: None,
                        price: None,
                        image_url: None,
                        category: None,
                        in_stock: None,
                    },
                    status: "active".to_owned(),
                    source_auth: None,
                    next_run_at: Some(due),
                },
                "whsec_test",
            )
            .await
            .unwrap();
        let (first, second) = (runner(store), runner(store));

        first.tick(due - chrono::Duration::seconds(1)).await;
        assert!(
            runs_settled(store.as_ref(), "acme").await.is_empty(),
            "not due yet"
        );

        let after = due + chrono::Duration::seconds(20);
        tokio::join!(first.tick(after), second.tick(after));
        let runs = runs_settled(store.as_ref(), "acme").await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(
            (runs[0].trigger.as_str(), runs[0].status.as_str()),
            ("schedule", "completed")
        );
        assert_eq!(runs[0].products_created, 2);
        let config = store.get_sync_config("acme").await.unwrap().unwrap();
        assert_eq!(
            config.next_run_at,
            Some("2026-11-28T03:00:00Z".parse().unwrap())
        );

        // Ticking again before the next occurrence starts nothing.
        first.tick(after + chrono::Duration::hours(1)).await;
        assert_eq!(runs_settled(store.as_ref(), "acme").await.len(), 1);
    }

    #[tokio::test]
    async fn a_run_whose_backend_died_is_failed_not_left_processing() {
        let (state, _dir) = test_support::state().await;
        test_support::with_merchants(&state).await;
        let store = &state.store;
        let run = import::start(store.as_ref(), "acme", "upload", "csv", Mode::Upsert)
            .await
            .unwrap();
        let runner = runner(store);

        // Within the heartbeat window it is left alone.
        runner.tick(Utc::now()).await;
        assert_eq!(
            store.active_sync_run("acme").await.unwrap().map(|r| r.id),
            Some(run.id.clone())
        );

        let later = Utc::now() + chrono::Duration::seconds(121);
        runner.tick(later).await;
        let runs = store.list_sync_runs("acme", None, 10).await.unwrap();
        assert_eq!(runs[0].id, run.id);
        assert_eq!(runs[0].status, "failed");
        assert!(runs[0].failure.as_deref().unwrap().contains("stopped"));
        assert!(store.active_sync_run("acme").await.unwrap().is_none());
        // The merchant can sync again.
        import::start(store.as_ref(), "acme", "upload", "csv", Mode::Upsert)
            .await
            .unwrap();
    }
}
