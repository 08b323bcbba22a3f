//! `Store::write`: one client write committed on its own (one fsync), with its changes
//! captured. It is a `WriteGroup` of one; use the group directly for group commit.
//!
//! Not here: acknowledgements and sync/async waiting; the writer driver builds those on top.

use sqlx::SqliteConnection;

use super::context::CaptureContext;
use super::error::StoreError;
use super::handle::Store;

/// What `Store::write` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    /// What the caller's statements returned.
    pub value: T,
    /// The first and last log index the write appended; `None` when it changed no replicated
    /// row (there is then nothing to ship or wait for).
    pub log_range: Option<(u64, u64)>,
}

impl Store {
    /// Runs `statements` in one transaction on the writer connection, stamped with `context`,
    /// and commits. If `statements` fails, nothing is written and its error is returned.
    /// `statements` must not BEGIN, COMMIT, ROLLBACK or touch `_tandem_*` tables (the Data
    /// API's authorizer refuses those). Refused until capture is installed, and when
    /// `context.term_epoch` is older than the log's last entry.
    pub async fn write<T, E, F>(
        &self,
        context: &CaptureContext,
        statements: F,
    ) -> Result<Written<T>, E>
    where
        F: AsyncFnOnce(&mut SqliteConnection) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut group = self.begin_sqlx_write_group().await?;
        let mut write = group.begin_write(context).await?;
        match statements(write.connection()).await {
            Ok(value) => {
                let log_range = write.finish().await?;
                group.commit().await?;
                Ok(Written { value, log_range })
            }
            Err(error) => {
                // The caller needs its own error; if undoing fails, dropping the group closes
                // the connection, which rolls back all the same.
                if let Err(undo_error) = write.undo().await {
                    tracing::warn!(error = %undo_error, "undoing a failed write failed");
                } else if let Err(rollback_error) = group.rollback().await {
                    tracing::warn!(error = %rollback_error, "rollback after a failed write failed");
                }
                Err(error)
            }
        }
    }
}
