//! `PendingWrite`: one client write in progress inside a `WriteGroup`.
//!
//! It is a savepoint. Beginning it copies the caller's `CaptureContext` into
//! `_tandem_capture_ctx`; the client's statements then run on `connection()` and the triggers
//! append entries; `finish` hashes the new entries (see `finish`), clears the context and
//! releases the savepoint; `undo` rolls back to it. The context doubles as a tripwire: it was set
//! inside the transaction, so if it is gone at `finish`, a statement rolled the whole
//! transaction back and the group is given up rather than run anything outside a transaction.
//! A `PendingWrite` dropped without `finish` or `undo` (an early `?`, a cancelled task) gives
//! up its whole group, since undoing needs an await that `Drop` cannot do.

use sqlx::SqliteConnection;

use super::context::CaptureContext;
use super::entry::RollingHash;
use super::error::{StoreError, to_sql_int};
use super::finish::finish_entries;
use super::log_table::LogPosition;
use super::write_group::WriteGroup;
use super::writer_transaction::execute;

pub struct PendingWrite<'g> {
    /// The group whose transaction this write is part of.
    group: &'g mut WriteGroup,
    /// This write's txid, to check at `finish` that the context (and transaction) survived.
    txid: u64,
    /// Set by `finish` and `undo`; a write dropped unsettled gives up its group.
    settled: bool,
}

impl<'g> PendingWrite<'g> {
    pub(super) async fn begin(
        group: &'g mut WriteGroup,
        context: &CaptureContext,
    ) -> Result<PendingWrite<'g>, StoreError> {
        let write = PendingWrite {
            group,
            txid: context.txid,
            settled: false,
        };
        start_write(write.group.connection()?, context).await?;
        Ok(write)
    }

    /// The connection to run the client's statements on. Statements must not BEGIN, COMMIT,
    /// ROLLBACK, RELEASE or touch `_tandem_*` tables (the Data API's authorizer refuses those).
    pub fn connection(&mut self) -> &mut SqliteConnection {
        // Invariant: a group lends out a `PendingWrite` only while it holds its connection,
        // and nothing can give the group up while the `PendingWrite` borrows it.
        self.group
            .connection()
            .expect("a pending write's group holds its connection")
    }

    /// Finishes the write: hashes its entries into the log and releases its savepoint. Returns
    /// the log indexes it appended (durable when the group commits). On error the write is
    /// undone, or, if its transaction is gone, the whole group is given up.
    pub async fn finish(mut self) -> Result<Option<(u64, u64)>, StoreError> {
        self.settled = true;
        let rolling_hash = self.group.rolling_hash;
        let previous = self.group.last.clone();
        let txid = self.txid;
        let connection = self.group.connection()?;
        let finished = finish_write(connection, txid, rolling_hash, &previous).await;
        match finished {
            Ok((log_range, last)) => {
                self.group.last = last;
                Ok(log_range)
            }
            Err(error) => {
                if matches!(error, StoreError::WriteGroupAborted) {
                    self.group.give_up();
                } else {
                    self.undo_savepoint().await;
                }
                Err(error)
            }
        }
    }

    /// Undoes the write, leaving the group's other writes as they are.
    pub async fn undo(mut self) -> Result<(), StoreError> {
        self.settled = true;
        self.undo_savepoint().await;
        self.group.connection().map(drop)
    }

    /// Rolls back to the savepoint; if even that fails the transaction is gone: give up.
    async fn undo_savepoint(&mut self) {
        let Ok(connection) = self.group.connection() else {
            return;
        };
        let undone = execute(connection, "ROLLBACK TO tandem_write; RELEASE tandem_write").await;
        if let Err(error) = undone {
            tracing::warn!(%error, "rolling back a write failed");
            self.group.give_up();
        }
    }
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.group.give_up();
        }
    }
}

/// Opens the write's savepoint and stamps it with `context`.
async fn start_write(
    connection: &mut SqliteConnection,
    context: &CaptureContext,
) -> Result<(), StoreError> {
    execute(connection, "SAVEPOINT tandem_write").await?;
    set_context(connection, Some(context)).await
}

/// Checks the transaction survived the client's statements, finishes the entries, clears the
/// context and releases the savepoint.
async fn finish_write(
    connection: &mut SqliteConnection,
    txid: u64,
    rolling_hash: RollingHash,
    previous: &LogPosition,
) -> Result<(Option<(u64, u64)>, LogPosition), StoreError> {
    let current: Option<i64> = sqlx::query_scalar("SELECT txid FROM _tandem_capture_ctx")
        .fetch_one(&mut *connection)
        .await?;
    if current != Some(to_sql_int("txid", txid)?) {
        // The context was set inside the transaction, so it is gone only if the transaction is.
        return Err(StoreError::WriteGroupAborted);
    }
    let finished = finish_entries(connection, rolling_hash, previous).await?;
    // Clearing the context and releasing the savepoint in one round trip.
    execute(connection, CLEAR_CONTEXT_AND_RELEASE).await?;
    Ok(finished)
}

/// Sets the capture context (`Some`) or clears it (`None`, after which the triggers refuse).
/// `set_context(None)` followed by the savepoint's release, as one batch of plain SQL.
const CLEAR_CONTEXT_AND_RELEASE: &str = "UPDATE _tandem_capture_ctx SET term_epoch = NULL, \
     term_node = NULL, txid = NULL, hlc_ms = NULL, hlc_logical = NULL, hlc_node = NULL, \
     origin = NULL; RELEASE tandem_write";

async fn set_context(
    connection: &mut SqliteConnection,
    context: Option<&CaptureContext>,
) -> Result<(), StoreError> {
    let query = sqlx::query(
        "UPDATE _tandem_capture_ctx SET term_epoch = ?, term_node = ?, txid = ?, hlc_ms = ?, \
         hlc_logical = ?, hlc_node = ?, origin = ?",
    );
    let query = match context {
        Some(context) => query
            .bind(to_sql_int("term epoch", context.term_epoch)?)
            .bind(&context.term_node)
            .bind(to_sql_int("txid", context.txid)?)
            .bind(to_sql_int("hlc ms", context.hlc_ms)?)
            .bind(i64::from(context.hlc_logical))
            .bind(&context.hlc_node)
            .bind(&context.origin),
        None => query
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<String>),
    };
    query.execute(connection).await?;
    Ok(())
}
