//! The writer task: client writes in groups, one commit (one fsync) per group.
//!
//! Requests queue on a channel; the task takes every request waiting (up to `GROUP_MAX`), runs
//! each in its own savepoint of one transaction, commits once, and hands the committed ones to the
//! ship task, which answers them when the shipper releases them. So the writer never waits for
//! the peer: acknowledgements are awaited outside it, while the next group is already running.
//!
//! Each write records its outcome under its request id in `tandem_requests`, in the same
//! transaction, so a retry (here or on the other node after a failover) finds it and is answered
//! with the first outcome instead of running again.

use tandem_replication::data_api::{Mode, Statement};
use tandem_replication::store::{
    CaptureContext, ClientWrite, ClientWriteOutcome, LogEntry, StoreError, WriteGroup,
};
use tokio::sync::{mpsc, oneshot};

use super::handle::Replication;
use super::messages::{MergeWrite, ShipInput, WriteDone, WriteFailure, WriteRequest};

/// Most client writes in one group (one commit).
const GROUP_MAX: usize = 256;

pub async fn run(repl: Replication, mut requests: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        repl.write_group(group).await;
    }
}

/// Queues one write for the writer task and waits for its outcome (committed and released by
/// the shipper, as for a client).
pub async fn submit(
    repl: &Replication,
    request_id: &str,
    statements: Vec<Statement>,
    mode: Mode,
    merge: Option<MergeWrite>,
) -> Result<WriteDone, WriteFailure> {
    let started = std::time::Instant::now();
    let (reply, answer) = oneshot::channel();
    let request = WriteRequest {
        request_id: request_id.to_string(),
        statements,
        mode,
        merge,
        reply,
    };
    if repl.inner.writes.send(request).await.is_err() {
        return Err(WriteFailure::Unavailable("the writer stopped".into()));
    }
    let outcome = answer
        .await
        .unwrap_or_else(|_| Err(WriteFailure::Unavailable("the writer stopped".into())));
    if outcome.is_ok() {
        crate::http::metrics::global()
            .commit_latency
            .observe(started.elapsed());
    }
    outcome
}

enum Outcome {
    Committed(WriteDone),
    Failed(WriteFailure),
}

impl Replication {
    async fn write_group(&self, group: Vec<WriteRequest>) {
        let Some((term_epoch, term_node)) = self.writable_term() else {
            for request in group {
                let _ = request.reply.send(Err(WriteFailure::NotActive));
            }
            return;
        };
        let refusing = self
            .inner
            .refusing
            .lock()
            .map(|r| r.clone())
            .unwrap_or(None);
        if let Some(reason) = refusing {
            for request in group {
                let _ = request
                    .reply
                    .send(Err(WriteFailure::Unavailable(reason.clone())));
            }
            return;
        }
        let mut write_group = match self.store().begin_write_group().await {
            Ok(write_group) => write_group,
            Err(error) => {
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(WriteFailure::Store(error.to_string())));
                }
                return;
            }
        };
        let mut outcomes = Vec::with_capacity(group.len());
        // The group's entries as stored, handed to the shipper; `None` if one write had too
        // many to hand over.
        let mut entries = Some(Vec::new());
        let mut bytes = 0u64;
        // The group's last write commits it in its own stretch if this node may still write
        // then (the same check as below, made just before COMMIT).
        let still_writable = || self.writable_term().is_some();
        let last = group.len().saturating_sub(1);
        for (position, request) in group.iter().enumerate() {
            bytes += request
                .statements
                .iter()
                .map(|statement| {
                    statement.sql.len() as u64
                        + statement
                            .params
                            .iter()
                            .map(|param| param.size_bytes() as u64)
                            .sum::<u64>()
                })
                .sum::<u64>()
                + 128;
            let context = self.capture_context(term_epoch, &term_node, request.merge.as_ref());
            let commit_if = (position == last).then_some(&still_writable as _);
            let (outcome, written) = self
                .write_one(&mut write_group, &context, request, commit_if)
                .await;
            match (written, entries.as_mut()) {
                // A write too large to hand its entries over: the shipper reads the log.
                (Some(written), Some(_)) if written.is_empty() => entries = None,
                (Some(written), Some(entries)) => entries.extend(written),
                _ => {}
            }
            outcomes.push(outcome);
        }
        if !write_group.is_committed() && self.writable_term().is_none() {
            // Fenced (a switchover) or demoted while the group ran: nothing of it commits, so
            // the catch-up the fence waits for is final.
            let _ = write_group.rollback().await;
            for request in group {
                let _ = request.reply.send(Err(WriteFailure::NotActive));
            }
            return;
        }
        let committed = write_group.commit().await;
        let last_index = match committed {
            Ok(position) => position.idx,
            Err(error) => {
                // Nothing of this group is on disk: every write fails, none is half done.
                let reason = format!("the write was rolled back ({error}); retry");
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(WriteFailure::Unavailable(reason.clone())));
                }
                return;
            }
        };
        let changed = outcomes
            .iter()
            .any(|outcome| matches!(outcome, Outcome::Committed(done) if done.log_index > 0));
        if changed {
            let _ = self
                .inner
                .ship
                .send(ShipInput::Appended {
                    last_index,
                    bytes,
                    entries: entries.unwrap_or_default(),
                })
                .await;
            self.update_status(|status| status.last_index = status.last_index.max(last_index));
        }
        for (request, outcome) in group.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Failed(failure) => {
                    let _ = request.reply.send(Err(failure));
                }
                Outcome::Committed(done) if done.log_index == 0 && !done.replayed => {
                    let _ = request.reply.send(Ok(done));
                }
                Outcome::Committed(done) => {
                    // A replayed outcome waits for everything written so far: its own entries
                    // are somewhere before `last_index`.
                    let index = if done.replayed {
                        last_index
                    } else {
                        done.log_index
                    };
                    let wait = ShipInput::Wait {
                        index,
                        done,
                        reply: request.reply,
                    };
                    let _ = self.inner.ship.send(wait).await;
                }
            }
        }
    }

    /// The term this node writes in, if it admits writes now.
    fn writable_term(&self) -> Option<(u64, String)> {
        if !self.inner.driver.admission.admits() {
            return None;
        }
        let status = self.inner.driver.status.borrow();
        if status.node.role != "active" {
            return None;
        }
        status
            .node
            .term
            .as_ref()
            .map(|term| (term.epoch, term.node.clone()))
    }

    /// The stamp of one write: a fresh one; or, for a merge write, the orphan's own (which this
    /// node's clock then follows, so its later writes stamp after it).
    fn capture_context(
        &self,
        term_epoch: u64,
        term_node: &str,
        merge: Option<&MergeWrite>,
    ) -> CaptureContext {
        let mut clock = match self.inner.hlc.lock() {
            Ok(clock) => clock,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (txid, stamp, origin) = match merge {
            Some(merge) => {
                clock.observe(&merge.hlc, Replication::wall_ms());
                (merge.txid, merge.hlc.clone(), merge.origin.clone())
            }
            None => (
                random_txid(),
                clock.tick(Replication::wall_ms()),
                self.inner.config.node.name.clone(),
            ),
        };
        CaptureContext {
            term_epoch,
            term_node: term_node.to_owned(),
            txid,
            hlc_ms: stamp.ms,
            hlc_logical: stamp.logical,
            hlc_node: stamp.node,
            origin,
        }
    }

    /// One client write inside the group; with it, the entries it appended (`None` if it
    /// appended none; empty if too many to hand over).
    async fn write_one(
        &self,
        write_group: &mut WriteGroup,
        context: &CaptureContext,
        request: &WriteRequest,
        commit_if: Option<&(dyn Fn() -> bool + Sync)>,
    ) -> (Outcome, Option<Vec<LogEntry>>) {
        let limits = self.inner.limits.clone();
        let write = ClientWrite {
            context,
            request_id: &request.request_id,
            statements: &request.statements,
            limits: &limits,
            mode: request.mode,
            now_ms: crate::state::store::wall_clock_ms(),
            commit_if,
            plan: request
                .merge
                .as_ref()
                .and_then(|merge| merge.plan.as_deref())
                .map(|plan| plan as _),
        };
        match write_group.write_client(write).await {
            Ok(ClientWriteOutcome::Written {
                result,
                log_range,
                entries,
            }) => (
                Outcome::Committed(WriteDone {
                    rows_affected: result.rows_affected,
                    last_insert_rowid: result.last_insert_rowid,
                    log_index: log_range.map_or(0, |(_, last)| last),
                    replayed: false,
                }),
                log_range.map(|_| entries),
            ),
            Ok(ClientWriteOutcome::Replayed {
                rows_affected,
                last_insert_rowid,
            }) => (
                Outcome::Committed(WriteDone {
                    rows_affected,
                    last_insert_rowid,
                    log_index: 0,
                    replayed: true,
                }),
                None,
            ),
            Ok(ClientWriteOutcome::Refused(error)) => {
                (Outcome::Failed(WriteFailure::Invalid(error)), None)
            }
            Err(error) => (Outcome::Failed(store_failure(error)), None),
        }
    }
}

fn store_failure(error: StoreError) -> WriteFailure {
    match error {
        StoreError::WriteGroupAborted => WriteFailure::Unavailable(
            "the write was rolled back with its group (another write of the group failed, ran \
             too long or could not get the database's write lock); retry"
                .into(),
        ),
        other => WriteFailure::Store(other.to_string()),
    }
}

/// A transaction id: random, so ids never repeat across restarts or nodes. Kept below 2^63
/// (SQLite integers are signed).
fn random_txid() -> u64 {
    (crate::random::random_u64() >> 1).max(1)
}
