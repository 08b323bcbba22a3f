//! `WriteGroup::write_client`: one Data API write, with its request id, in one synchronous
//! stretch under sqlx's handle lock.
//!
//! The stretch opens the write's savepoint, stamps the capture context, looks the request id
//! up (a retry returns the first outcome and runs nothing), runs the client's statements under
//! the Data API's guard, records the request id, finishes the captured entries and releases the
//! savepoint. Done as one stretch, a write costs one round trip to sqlx's worker thread instead
//! of a dozen; nothing in it waits on the disk (the group's COMMIT does, on the worker thread).
//! It is bounded like any `Execute` by the request's `Limits`.
//!
//! Not here: BEGIN and COMMIT (the `WriteGroup`), waiting for the peer (the writer driver).

use super::context::CaptureContext;
use super::entry::LogEntry;
use super::error::StoreError;
use super::finish::Finished;
use super::pending_write::{finish_write, start_write, undo_write};
use super::transaction_reads::TransactionReads;
use super::write_group::{WriteGroup, check_epoch};
use crate::data_api::{DataError, ExecuteResult, Limits, Mode, Statement, Value, execute_locked};
use crate::raw_sqlite::{Prepared, RawDb};

/// The replicated table of request ids: the outcome of every `Execute` that carried one, so a
/// retry (also on the other node, after a failover) returns the first outcome. The node
/// creates it with `REQUESTS_SQL` as a built-in migration and replicates it.
pub const REQUESTS_TABLE: &str = "tandem_requests";
pub const REQUESTS_SQL: &str = "CREATE TABLE IF NOT EXISTS tandem_requests (
    request_id TEXT PRIMARY KEY,
    rows_affected TEXT NOT NULL,
    last_insert_rowid INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);";

/// One client write.
pub struct ClientWrite<'a> {
    pub context: &'a CaptureContext,
    /// Empty when the client sent none: nothing is looked up or recorded.
    pub request_id: &'a str,
    pub statements: &'a [Statement],
    pub limits: &'a Limits,
    /// `Mode::Execute` for a client's write; `Mode::Node` for the node's own (merge-back),
    /// which may also write the node's `tandem_*` tables.
    pub mode: Mode,
    /// Recorded with the request id.
    pub now_ms: i64,
    /// For a write whose statements are decided inside its own transaction (merge-back), in
    /// place of `statements`: called once, after the request id was looked up (a replay calls
    /// nothing), with reads of the transaction.
    pub plan: Option<WritePlan<'a>>,
    /// For the group's last write: asked, once the write has run and the group is sound,
    /// whether to commit the group in the same stretch (saving a round trip). `None`: the
    /// caller commits with `WriteGroup::commit`.
    pub commit_if: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// A write's plan: its statements, decided from what the transaction reads (see
/// `ClientWrite::plan`).
pub type WritePlan<'a> =
    &'a (dyn Fn(&TransactionReads<'_>) -> Result<Vec<Statement>, StoreError> + Sync);

/// What a client write came to. Only `Written` changed anything; it is durable once the group
/// commits.
#[derive(Debug)]
pub enum ClientWriteOutcome {
    Written {
        result: ExecuteResult,
        /// The log indexes it appended; `None` when it changed no replicated row.
        log_range: Option<(u64, u64)>,
        /// The entries it appended, as stored (so shipping need not read them back); empty
        /// when there were more than 1,024.
        entries: Vec<LogEntry>,
    },
    /// The request id was already recorded: its first outcome, and nothing ran.
    Replayed {
        rows_affected: Vec<u64>,
        last_insert_rowid: i64,
    },
    /// The client's statements failed or were refused; the write was undone.
    Refused(DataError),
}

impl WriteGroup {
    /// Runs `write` inside the group (see the module). A store failure undoes the write; when
    /// even that is impossible (a statement ended the whole transaction) the group is given
    /// up, and its commit fails.
    pub async fn write_client(
        &mut self,
        write: ClientWrite<'_>,
    ) -> Result<ClientWriteOutcome, StoreError> {
        let rolling_hash = self.rolling_hash;
        let txid = write.context.txid;
        let commit_if = write.commit_if;
        let (outcome, sound) = self
            .stretch_and_commit_if(
                |db, last| match check_epoch(last, write.context) {
                    Err(error) => (Err(error), true),
                    Ok(()) => stretch(db, &write, |db| finish_write(db, txid, rolling_hash, last)),
                },
                |(_, sound)| *sound && commit_if.is_some_and(|commit_if| commit_if()),
            )
            .await?;
        if !sound {
            self.give_up();
        }
        Ok(match outcome? {
            Stretch::Written { result, finished } => {
                self.last = Some(finished.last);
                ClientWriteOutcome::Written {
                    result,
                    log_range: finished.log_range,
                    entries: finished.entries,
                }
            }
            Stretch::Replayed {
                rows_affected,
                last_insert_rowid,
            } => ClientWriteOutcome::Replayed {
                rows_affected,
                last_insert_rowid,
            },
            Stretch::Refused(error) => ClientWriteOutcome::Refused(error),
        })
    }
}

enum Stretch {
    Written {
        result: ExecuteResult,
        finished: Finished,
    },
    Replayed {
        rows_affected: Vec<u64>,
        last_insert_rowid: i64,
    },
    Refused(DataError),
}

/// The synchronous stretch; returns its outcome and whether the group's transaction is sound
/// (the write either released or undone).
fn stretch(
    db: RawDb<'_>,
    write: &ClientWrite<'_>,
    finish: impl FnOnce(RawDb<'_>) -> Result<Finished, StoreError>,
) -> (Result<Stretch, StoreError>, bool) {
    if let Err(error) = start_write(db, write.context) {
        // Whether the savepoint was opened is not known: give the group up.
        return (Err(error), false);
    }
    let undone = |outcome| (outcome, undo_write(db));
    if !write.request_id.is_empty() {
        match earlier_outcome(db, write.request_id) {
            Ok(Some((rows_affected, last_insert_rowid))) => {
                return undone(Ok(Stretch::Replayed {
                    rows_affected,
                    last_insert_rowid,
                }));
            }
            Ok(None) => {}
            Err(error) => return undone(Err(error)),
        }
    }
    let planned;
    let statements = match write.plan {
        Some(plan) => match plan(&TransactionReads::new(db)) {
            Ok(statements) => {
                planned = statements;
                &planned[..]
            }
            Err(error) => return undone(Err(error)),
        },
        None => write.statements,
    };
    let result = match execute_locked(db, statements, write.limits, write.mode) {
        Ok(result) => result,
        Err(error) => return undone(Ok(Stretch::Refused(error))),
    };
    if !write.request_id.is_empty()
        && let Err(error) = record_outcome(db, write, &result)
    {
        return undone(Err(error));
    }
    match finish(db) {
        Ok(finished) => (Ok(Stretch::Written { result, finished }), true),
        Err(StoreError::WriteGroupAborted) => (Err(StoreError::WriteGroupAborted), false),
        Err(error) => undone(Err(error)),
    }
}

/// The recorded outcome of `request_id`, if any.
fn earlier_outcome(db: RawDb<'_>, request_id: &str) -> Result<Option<(Vec<u64>, i64)>, StoreError> {
    let mut select = Prepared::store(
        db,
        "SELECT rows_affected, last_insert_rowid FROM tandem_requests WHERE request_id = ?",
    )?;
    select.bind(&[Value::Text(request_id.to_owned())])?;
    if !select.step()? {
        return Ok(None);
    }
    match select.row().as_slice() {
        [
            Value::Text(rows_affected),
            Value::Integer(last_insert_rowid),
        ] => Ok(Some((
            serde_json::from_str(rows_affected).unwrap_or_default(),
            *last_insert_rowid,
        ))),
        other => Err(StoreError::Corrupt {
            what: "tandem_requests",
            detail: format!("request {request_id:?} holds {other:?}"),
        }),
    }
}

fn record_outcome(
    db: RawDb<'_>,
    write: &ClientWrite<'_>,
    result: &ExecuteResult,
) -> Result<(), StoreError> {
    let mut insert = Prepared::store(
        db,
        "INSERT INTO tandem_requests (request_id, rows_affected, last_insert_rowid, at_ms) \
         VALUES (?, ?, ?, ?)",
    )?;
    insert.bind(&[
        Value::Text(write.request_id.to_owned()),
        Value::Text(serde_json::to_string(&result.rows_affected).unwrap_or_default()),
        Value::Integer(result.last_insert_rowid),
        Value::Integer(write.now_ms),
    ])?;
    while insert.step()? {}
    Ok(())
}
