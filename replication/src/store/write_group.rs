//! `WriteGroup`: client writes committed together, sharing one fsync (group commit,
//! DESIGN.md §4).
//!
//! The group is one `WriterTransaction` on the writer connection; each client write inside it is
//! a `PendingWrite`, a savepoint that fails or succeeds alone. When a write finds that a
//! statement rolled back the whole transaction, the group is given up: its connection is closed
//! and every later call is refused, so nothing runs outside a transaction. Not here: deciding how
//! many writes to group or when to commit (the writer driver does).

use sqlx::SqliteConnection;

use super::context::CaptureContext;
use super::entry::RollingHash;
use super::error::StoreError;
use super::handle::Store;
use super::log_table::{LAST_POSITION_SQL, LogPosition, position_from_row};
use super::pending_write::PendingWrite;
use super::writer_transaction::WriterTransaction;

/// An open group of writes. Dropping it without `commit` rolls every write back.
pub struct WriteGroup {
    /// The writer connection inside the group's transaction; holding it keeps every other write
    /// waiting. `None` once the group was given up (its transaction lost, or a write dropped
    /// half-way), after which every call is refused.
    connection: Option<WriterTransaction>,
    /// Chains the hashes of the group's entries.
    pub(super) rolling_hash: RollingHash,
    /// The log position after the finished writes: the next write chains from it.
    pub(super) last: LogPosition,
}

impl Store {
    /// Opens a group of writes on the writer connection, waiting for it if another group holds
    /// it. Refused until capture is installed.
    pub async fn begin_write_group(&self) -> Result<WriteGroup, StoreError> {
        self.ensure_capture_installed()?;
        let (transaction, row) =
            WriterTransaction::begin_and_fetch(&self.writer, LAST_POSITION_SQL).await?;
        let last = position_from_row(row.as_ref())?;
        Ok(WriteGroup {
            connection: Some(transaction),
            rolling_hash: self.rolling_hash,
            last,
        })
    }
}

impl WriteGroup {
    /// Starts one client write, stamped with `context`: run its statements on
    /// `PendingWrite::connection`, then `finish` or `undo` it. Refused when `context` is from an
    /// older epoch than the log's last entry.
    pub async fn begin_write(
        &mut self,
        context: &CaptureContext,
    ) -> Result<PendingWrite<'_>, StoreError> {
        self.check_epoch(context)?;
        PendingWrite::begin(self, context).await
    }

    /// Refuses a write stamped with an older epoch than the log's last entry.
    pub(super) fn check_epoch(&self, context: &CaptureContext) -> Result<(), StoreError> {
        if context.term_epoch < self.last.term_epoch {
            return Err(StoreError::StaleTerm {
                idx: self.last.idx + 1,
                epoch: context.term_epoch,
                last_epoch: self.last.term_epoch,
            });
        }
        Ok(())
    }

    /// Commits every finished write of the group at once; returns the log position after them.
    pub async fn commit(mut self) -> Result<LogPosition, StoreError> {
        let transaction = self.connection.take();
        transaction
            .ok_or(StoreError::WriteGroupAborted)?
            .commit()
            .await?;
        Ok(self.last)
    }

    /// Rolls back every write of the group.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        let transaction = self.connection.take();
        transaction
            .ok_or(StoreError::WriteGroupAborted)?
            .rollback()
            .await?;
        Ok(())
    }

    /// The log position after the finished writes (durable only after `commit`).
    pub fn last_position(&self) -> &LogPosition {
        &self.last
    }

    pub(super) fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        match self.connection.as_mut() {
            Some(connection) => Ok(&mut **connection),
            None => Err(StoreError::WriteGroupAborted),
        }
    }

    /// Closes the connection: SQLite rolls back the whole group; every later call is refused.
    pub(super) fn give_up(&mut self) {
        if self.connection.take().is_some() {
            tracing::warn!("a write group was given up; its writes are rolled back");
        }
    }
}
