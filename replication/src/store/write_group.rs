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
use super::log_table::{LogPosition, last_position, last_position_raw};
use super::pending_write::PendingWrite;
use super::writer_transaction::WriterTransaction;
use crate::raw_sqlite::RawDb;

/// An open group of writes. Dropping it without `commit` rolls every write back.
pub struct WriteGroup {
    /// The writer connection inside the group's transaction; holding it keeps every other write
    /// waiting. `None` once the group was given up (its transaction lost, or a write dropped
    /// half-way), after which every call is refused.
    connection: Option<WriterTransaction>,
    /// Chains the hashes of the group's entries.
    pub(super) rolling_hash: RollingHash,
    /// The log position after the finished writes: the next write chains from it. Read in the
    /// group's first stretch, which also begins its transaction; `None` until then.
    pub(super) last: Option<LogPosition>,
    /// The group committed in a write's stretch (`ClientWrite::commit_if`).
    committed: bool,
}

impl Store {
    /// Opens a group of writes on the store's own writer connection, waiting for it if another
    /// group (or an applied batch) holds it. Its writes run through `write_client`; for
    /// `begin_write`, which lends out a sqlx connection, use `begin_sqlx_write_group`. Refused
    /// until capture is installed.
    pub async fn begin_write_group(&self) -> Result<WriteGroup, StoreError> {
        self.ensure_capture_installed()?;
        let transaction = WriterTransaction::acquire(&self.owned, self.busy_timeout).await?;
        Ok(WriteGroup {
            connection: Some(transaction),
            rolling_hash: self.rolling_hash,
            last: None,
            committed: false,
        })
    }

    /// A group of writes on sqlx's writer connection, for `begin_write` (whose statements run
    /// through sqlx). Slower than `begin_write_group`: every stretch is a round trip to sqlx's
    /// worker thread, and statements are prepared afresh.
    pub async fn begin_sqlx_write_group(&self) -> Result<WriteGroup, StoreError> {
        self.ensure_capture_installed()?;
        let transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        Ok(WriteGroup {
            connection: Some(transaction),
            rolling_hash: self.rolling_hash,
            last: None,
            committed: false,
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
        PendingWrite::begin(self, context).await
    }

    /// Runs `run` in one synchronous stretch inside the group's transaction (see
    /// `WriterTransaction::stretch`), with the log position after the finished writes. The
    /// group's first stretch begins the transaction and reads the position. Failing to reach
    /// the connection or to begin gives the group up.
    pub(super) async fn stretch<T>(
        &mut self,
        run: impl FnOnce(RawDb<'_>, &LogPosition) -> T,
    ) -> Result<T, StoreError> {
        self.stretch_and_commit_if(run, |_| false).await
    }

    /// `stretch`, then COMMIT of the whole group in the same stretch if `commit_if` says so
    /// for the value (see `WriterTransaction::stretch_and_commit_if`); `commit` then only
    /// reports the position. A failed COMMIT gives the group up.
    pub(super) async fn stretch_and_commit_if<T>(
        &mut self,
        run: impl FnOnce(RawDb<'_>, &LogPosition) -> T,
        commit_if: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        let known = self.last.clone();
        let Some(transaction) = self.connection.as_mut() else {
            return Err(StoreError::WriteGroupAborted);
        };
        let ran = transaction
            .stretch_and_commit_if(
                |db| {
                    let position = match known {
                        Some(position) => position,
                        None => last_position_raw(db)?,
                    };
                    let value = run(db, &position);
                    Ok((position, value))
                },
                |(_, value)| commit_if(value),
            )
            .await;
        match ran {
            Ok(((position, value), committed)) => {
                self.last.get_or_insert(position);
                if committed {
                    self.connection = None;
                    self.committed = true;
                }
                Ok(value)
            }
            Err(error) => {
                self.give_up();
                Err(error)
            }
        }
    }

    /// Commits every finished write of the group at once; returns the log position after them.
    pub async fn commit(mut self) -> Result<LogPosition, StoreError> {
        if self.committed
            && let Some(last) = self.last.take()
        {
            return Ok(last);
        }
        let mut transaction = self
            .connection
            .take()
            .ok_or(StoreError::WriteGroupAborted)?;
        let last = match self.last.take() {
            Some(last) => last,
            // No write ran: the position is the log's.
            None if transaction.is_owned() => {
                transaction
                    .stretch_and_commit_if(last_position_raw, |_| false)
                    .await?
                    .0
            }
            None => last_position(&mut transaction).await?,
        };
        transaction.commit().await?;
        Ok(last)
    }

    /// Whether a write's stretch already committed the group (then only `commit` is left).
    pub fn is_committed(&self) -> bool {
        self.committed
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

    pub(super) fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        match self.connection.as_mut() {
            Some(connection) if connection.is_owned() => Err(StoreError::NotSqlxGroup),
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

/// Refuses a write stamped with an older epoch than the log's last entry, `last`.
pub(super) fn check_epoch(last: &LogPosition, context: &CaptureContext) -> Result<(), StoreError> {
    if context.term_epoch < last.term_epoch {
        return Err(StoreError::StaleTerm {
            idx: last.idx + 1,
            epoch: context.term_epoch,
            last_epoch: last.term_epoch,
        });
    }
    Ok(())
}
