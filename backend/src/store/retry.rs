//! A transaction cut off by a lost connection is tried again.
//!
//! When PostgreSQL restarts (or fails over), the server ends every session, and a transaction
//! that was running is rolled back: nothing of it is stored, so running it again on a fresh
//! connection is safe and is what the client asked for. Only the commit itself is ambiguous
//! (the server may have committed before the connection dropped): on PostgreSQL the store asks
//! the server what became of the transaction (`txid_status`, see `postgres.rs`) and runs it
//! again only if it was rolled back; when that cannot be told, the failure becomes
//! [`StoreError::CommitInterrupted`] and the client is told to check.

use std::time::Duration;

use super::{StoreError, StoreResult};

/// Tries after the first: a restart ends sessions once, and the pool's acquire then waits for
/// the server to accept connections again (`database.connect_timeout_secs`).
pub(crate) const RETRIES: u32 = 3;

/// Whether `error` means the connection to the database went away, or none was to be had in
/// time: I/O errors, pool timeouts, and PostgreSQL's connection-exception class (08) and
/// shutdown codes (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl StoreError {
    /// The database could not be reached or the connection was lost: nothing is known to
    /// be wrong with the request, and trying again shortly should succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) => connection_lost(error),
            Self::CommitInterrupted(_) => true,
            _ => false,
        }
    }

    /// Lost before the commit was sent: the transaction was rolled back.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(error) if connection_lost(error))
    }
}

/// Commits `tx`; a connection lost here leaves the outcome unknown, so it is not retried.
pub(crate) async fn commit<DB: sqlx::Database>(tx: sqlx::Transaction<'_, DB>) -> StoreResult<()> {
    tx.commit().await.map_err(|error| {
        if connection_lost(&error) {
            StoreError::CommitInterrupted(error)
        } else {
            StoreError::Database(error)
        }
    })
}

/// Gives an async block the store's result type, so `?` inside it converts errors.
pub(crate) fn typed<T, F: Future<Output = StoreResult<T>>>(attempt: F) -> F {
    attempt
}

/// Waits before try `retry` (1-based): 50 ms, 200 ms, 800 ms.
pub(crate) async fn pause(retry: u32, error: &StoreError) {
    tracing::warn!(retry, %error, "database connection lost before commit; trying the transaction again");
    tokio::time::sleep(Duration::from_millis(50 * 4u64.pow(retry - 1))).await;
}

/// Runs a method body that writes in one transaction, again from the start when the connection
/// was lost before its commit (see the module docs). The body may `return` and use `?` as a
/// method body does; what it moves out of its environment it must take by reference instead.
macro_rules! retry_before_commit {
    ($($body:tt)*) => {{
        let mut retry = 0u32;
        loop {
            match $crate::store::retry::typed(async { $($body)* }).await {
                Err(error) if retry < $crate::store::retry::RETRIES && error.is_retryable() => {
                    retry += 1;
                    $crate::store::retry::pause(retry, &error).await;
                }
                outcome => break outcome,
            }
        }
    }};
}
pub(crate) use retry_before_commit;
