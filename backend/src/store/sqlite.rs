//! [`Store`] on SQLite: the embedded default, one file under `./data`.

use std::str::FromStr;
use std::time::Duration;

use mindshop_config::DatabaseConfig;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{StoreError, StoreResult};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite:` URL, and its directory.
    pub async fn connect(config: &DatabaseConfig) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&config.url)?
            .create_if_missing(true)
            // WAL lets readers proceed while one writer commits; several processes
            // (serve plus an admin command) share the file safely.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(config.connect_timeout_secs))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::portable::portable_store_impl!(SqliteStore);
