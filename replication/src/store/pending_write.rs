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
use super::finish::{Finished, finish_entries};
use super::log_table::LogPosition;
use super::write_group::{WriteGroup, check_epoch};
use crate::data_api::Value;
use crate::raw_sqlite::{Prepared, RawDb};

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
        // The statements run through sqlx: only a group on sqlx's connection can lend it.
        group.connection().map(drop)?;
        let started = group
            .stretch(|db, last| match check_epoch(last, context) {
                // Refused before anything ran: the group goes on.
                Err(error) => Err((error, true)),
                // Whether the savepoint was opened is not known: the group is given up.
                Ok(()) => start_write(db, context).map_err(|error| (error, false)),
            })
            .await?;
        if let Err((error, sound)) = started {
            if !sound {
                group.give_up();
            }
            return Err(error);
        }
        Ok(PendingWrite {
            group,
            txid: context.txid,
            settled: false,
        })
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
        let txid = self.txid;
        let settled = self
            .group
            .stretch(|db, last| settle(db, finish_write(db, txid, rolling_hash, last)))
            .await?;
        match settled {
            Ok(finished) => {
                self.group.last = Some(finished.last);
                Ok(finished.log_range)
            }
            Err((error, undone)) => {
                if !undone {
                    self.group.give_up();
                }
                Err(error)
            }
        }
    }

    /// Undoes the write, leaving the group's other writes as they are.
    pub async fn undo(mut self) -> Result<(), StoreError> {
        self.settled = true;
        if !self.group.stretch(|db, _| undo_write(db)).await? {
            self.group.give_up();
        }
        self.group.connection().map(drop)
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
pub(super) fn start_write(db: RawDb<'_>, context: &CaptureContext) -> Result<(), StoreError> {
    db.run_cached("SAVEPOINT tandem_write")?;
    let mut update = Prepared::store(
        db,
        "UPDATE _tandem_capture_ctx SET term_epoch = ?, term_node = ?, txid = ?, hlc_ms = ?, \
         hlc_logical = ?, hlc_node = ?, origin = ?",
    )?;
    update.bind(&[
        Value::Integer(to_sql_int("term epoch", context.term_epoch)?),
        Value::Text(context.term_node.clone()),
        Value::Integer(to_sql_int("txid", context.txid)?),
        Value::Integer(to_sql_int("hlc ms", context.hlc_ms)?),
        Value::Integer(i64::from(context.hlc_logical)),
        Value::Text(context.hlc_node.clone()),
        Value::Text(context.origin.clone()),
    ])?;
    while update.step()? {}
    Ok(())
}

/// Checks the transaction survived the client's statements, finishes the entries, clears the
/// context and releases the savepoint.
pub(super) fn finish_write(
    db: RawDb<'_>,
    txid: u64,
    rolling_hash: RollingHash,
    previous: &LogPosition,
) -> Result<Finished, StoreError> {
    let current = {
        let mut select = Prepared::store(db, "SELECT txid FROM _tandem_capture_ctx")?;
        match select.step()? {
            true => select.row().pop(),
            false => None,
        }
    };
    if current != Some(Value::Integer(to_sql_int("txid", txid)?)) {
        // The context was set inside the transaction, so it is gone only if the transaction is.
        return Err(StoreError::WriteGroupAborted);
    }
    let finished = finish_entries(db, rolling_hash, previous)?;
    db.run_cached(CLEAR_CONTEXT)?;
    db.run_cached("RELEASE tandem_write")?;
    Ok(finished)
}

/// After `finish_write` failed: undoes the write unless its transaction is gone. The error
/// comes back with whether the write was undone (if not, the caller gives the group up).
pub(super) fn settle<T>(
    db: RawDb<'_>,
    finished: Result<T, StoreError>,
) -> Result<T, (StoreError, bool)> {
    match finished {
        Ok(value) => Ok(value),
        Err(StoreError::WriteGroupAborted) => Err((StoreError::WriteGroupAborted, false)),
        Err(error) => Err((error, undo_write(db))),
    }
}

/// Rolls back to the write's savepoint; `false` if even that failed (the transaction is gone).
pub(super) fn undo_write(db: RawDb<'_>) -> bool {
    match db.exec("ROLLBACK TO tandem_write; RELEASE tandem_write") {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "rolling back a write failed");
            false
        }
    }
}

/// Clearing the context, after which the triggers refuse (the savepoint is released next).
const CLEAR_CONTEXT: &str = "UPDATE _tandem_capture_ctx SET term_epoch = NULL, \
     term_node = NULL, txid = NULL, hlc_ms = NULL, hlc_logical = NULL, hlc_node = NULL, \
     origin = NULL";
