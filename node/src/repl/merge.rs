//! Merge-back on the active (DESIGN.md §4, divergence step 4).
//!
//! The rejoining passive rewinds its orphaned suffix into its orphans table and hands the orphans
//! over its `Replicate` stream. The active re-applies them one transaction at a time, as new
//! writes through the writer, each under the request id `merge:<origin>:<txid>`: a transaction
//! already merged (before a crash, say) is answered from `tandem_requests` and not applied twice.
//! That same `tandem_requests` row travels back to the passive, which then drops those orphans:
//! orphans leave only once they are back through replication.
//!
//! Each orphan is decided inside the write that re-applies it, against the row as it is then
//! (`merge_plan`): a client write the active committed while the merge runs counts as a change
//! after the divergence point too. The losing image goes to `tandem_conflicts` with both stamps.
//! A change that breaks a constraint is recorded as a conflict, and the merge carries on. Every
//! merge is an event with its counts, including how many orphans were decided against writes
//! made during the merge.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::FuturesOrdered;

use tandem_proto::peer as pb;
use tandem_replication::data_api::Mode;
use tandem_replication::log::Hlc;
use tandem_replication::store::{LogEntry, SqlValue, decode_image};

use super::handle::Replication;
use super::merge_plan::{Conflict, MERGE_PREFIX, OrphanPlan, Planned, RowIndex, kept_conflict};
use super::messages::{MergeWrite, WriteFailure};

/// Merge writes queued for the writer at once; each waits for its acknowledgement like a
/// client's write, so one at a time would merge at one round trip per orphan transaction.
const MERGE_IN_FLIGHT: usize = 64;

/// Counts of one merge.
#[derive(Default)]
struct Counts {
    transactions: u64,
    applied: u64,
    already: u64,
    conflicts: u64,
    /// Conflicts decided against a change the active made while the merge ran.
    during_merge: u64,
}

impl Counts {
    fn describe(&self) -> String {
        format!(
            "{} re-applied, {} already merged, {} conflicts recorded ({} against writes made \
             during the merge)",
            self.applied, self.already, self.conflicts, self.during_merge
        )
    }
}

/// Queues the orphans the passive sent; one merge task applies them in the order they came.
/// Never waits: the ship task calls it, and the merge's writes wait for the ship task.
pub async fn reapply(repl: &Replication, orphans: pb::OrphanBatch) {
    if repl.inner.merges.try_send(orphans).is_err() {
        tracing::warn!("the merge queue is full; these orphans are merged on the next stream");
    }
}

/// The merge task: runs merges one at a time, in order. Its writes wait for the ship task, which
/// is why merging does not run on the ship task itself.
pub async fn run(repl: Replication, mut queue: tokio::sync::mpsc::Receiver<pb::OrphanBatch>) {
    while let Some(orphans) = queue.recv().await {
        let _merging = repl.inner.merge_lock.lock().await;
        let mut counts = Counts::default();
        let result = merge(&repl, orphans, &mut counts).await;
        let mut message = format!(
            "merge-back: {} orphan transactions from the peer: {}",
            counts.transactions,
            counts.describe()
        );
        if let Err(reason) = &result {
            message.push_str(&format!(
                "; stopped: {reason} (the rest is merged on reconnect)"
            ));
        }
        repl.record("merge", &message).await;
        repl.refresh_counts().await;
    }
}

/// Re-applies this node's own orphans (kept from a rewind before it became the active); each is
/// dropped once its merge write is acknowledged.
pub fn reapply_local(repl: &Replication) {
    let repl = repl.clone();
    tokio::spawn(async move {
        let orphans = match repl.store().orphans().await {
            Ok(orphans) if !orphans.is_empty() => orphans,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read the orphans table");
                return;
            }
        };
        let _merging = repl.inner.merge_lock.lock().await;
        let txids: Vec<u64> = orphans.iter().map(|orphan| orphan.entry.txid).collect();
        let entries = orphans
            .into_iter()
            .map(|orphan| (orphan.entry, orphan.diverged_after))
            .collect();
        let mut counts = Counts::default();
        let result = merge_entries(&repl, entries, &mut counts).await;
        let mut message = format!(
            "merge-back of this node's own orphans: {} transactions: {}",
            counts.transactions,
            counts.describe()
        );
        match result {
            Ok(()) => {
                if let Err(error) = repl.store().drop_orphan_transactions(&txids).await {
                    tracing::warn!(%error, "cannot drop merged orphans");
                }
            }
            Err(reason) => {
                message.push_str(&format!("; stopped: {reason}"));
                // Those merged before it stopped are in this log now, and would never come
                // back through replication: drop them here.
                drop_already_merged(&repl).await;
            }
        }
        repl.record("merge", &message).await;
        repl.refresh_counts().await;
    });
}

async fn merge(
    repl: &Replication,
    orphans: pb::OrphanBatch,
    counts: &mut Counts,
) -> Result<(), String> {
    let wire = pb::LogBatch {
        term: Some(pb::Term {
            epoch: 0,
            node: "orphans".into(),
            priority: 0,
        }),
        entries: orphans.entries,
        checksum: 0,
    };
    let batch = super::convert::batch_from_pb(wire)?;
    let entries: Vec<LogEntry> = batch
        .entries
        .iter()
        .map(tandem_replication::bridge::stored_of)
        .collect();
    let diverged_after = if orphans.diverged_after.len() == entries.len() {
        orphans.diverged_after
    } else {
        // A sender from before the field (or a malformed message): each message falls back to
        // its oldest orphan's index less one, as merges did before the field.
        if !orphans.diverged_after.is_empty() {
            tracing::warn!(
                entries = entries.len(),
                points = orphans.diverged_after.len(),
                "an orphans message whose divergence points do not match its entries"
            );
        }
        let oldest = entries.iter().map(|e| e.idx).min().unwrap_or(0);
        vec![oldest.saturating_sub(1); entries.len()]
    };
    // An orphan diverged before itself: a larger point would hide the active's changes from it.
    let entries = entries
        .into_iter()
        .zip(diverged_after)
        .map(|(entry, point)| {
            let point = point.min(entry.idx.saturating_sub(1));
            (entry, point)
        })
        .collect();
    merge_entries(repl, entries, counts).await
}

/// Merges orphans, each with the last index its log had in common with this one.
async fn merge_entries(
    repl: &Replication,
    entries: Vec<(LogEntry, u64)>,
    counts: &mut Counts,
) -> Result<(), String> {
    // Orphans kept from several rewinds (or left by a merge that stopped) diverged at different
    // indexes: each is decided against the changes after its own.
    let since = entries.iter().map(|(_, d)| *d).min().unwrap_or(0);
    // Changes of the active after this index were made while the merge ran.
    let merge_start = repl
        .store()
        .last_log_position()
        .await
        .map_err(|error| error.to_string())?
        .idx;
    let rows = RowIndex::after(since);
    // Transactions in log order; entries of one transaction are consecutive (and were rewound
    // together).
    let mut transactions: Vec<(u64, String, u64, Vec<LogEntry>)> = Vec::new();
    for (entry, diverged_after) in entries {
        match transactions.last_mut() {
            Some((txid, _, _, entries)) if *txid == entry.txid => entries.push(entry),
            _ => transactions.push((
                entry.txid,
                entry.origin.clone(),
                diverged_after,
                vec![entry],
            )),
        }
    }
    // Several merge writes in flight, as clients' writes are: the writer still runs them (and
    // their plans) in order, and they share its group commits.
    let mut in_flight = FuturesOrdered::new();
    let mut transactions = transactions.into_iter();
    loop {
        while in_flight.len() < MERGE_IN_FLIGHT {
            let Some((txid, origin, diverged_after, entries)) = transactions.next() else {
                break;
            };
            counts.transactions += 1;
            let request_id = format!("{MERGE_PREFIX}{origin}:{txid}");
            let planned = Arc::new(Mutex::new(Planned::default()));
            let plan = OrphanPlan {
                repl: repl.clone(),
                entries: entries.clone(),
                rows: rows.clone(),
                diverged_after,
                merge_start,
                planned: planned.clone(),
            };
            let write = merge_write(&entries, Some(Box::new(move |reads| plan.plan(reads))));
            let repl = repl.clone();
            in_flight.push_back(async move {
                let outcome = submit(&repl, &request_id, Vec::new(), write).await;
                (request_id, entries, planned, outcome)
            });
        }
        let Some((request_id, entries, planned, outcome)) = in_flight.next().await else {
            return Ok(());
        };
        match outcome {
            Ok(replayed) if replayed => counts.already += 1,
            Ok(_) => {
                let planned = planned
                    .lock()
                    .map_or_else(|p| p.into_inner().clone(), |p| p.clone());
                if planned.already_ran {
                    counts.already += 1;
                } else {
                    counts.applied += 1;
                    counts.conflicts += planned.conflicts;
                    counts.during_merge += planned.during_merge;
                }
            }
            Err(WriteFailure::Invalid(error)) => {
                counts.conflicts += record_constraint(repl, &request_id, &entries, &error).await?;
            }
            // The writes still in flight run or fail on their own; what is left is merged on
            // the next stream (request ids make that idempotent).
            Err(other) => return Err(format!("{other:?}")),
        }
    }
}

/// A re-applied orphan transaction broke a constraint: the whole transaction is kept as a
/// conflict (with the conflict rows it carried, if it was a rewound merge write) under the
/// same request id. Returns the conflicts recorded.
async fn record_constraint(
    repl: &Replication,
    request_id: &str,
    entries: &[LogEntry],
    error: &tandem_replication::data_api::DataError,
) -> Result<u64, String> {
    let mut records = Vec::new();
    let mut carried = Vec::new();
    for entry in entries {
        if entry.table == super::schema::REQUESTS_TABLE {
            continue;
        }
        if entry.table == super::schema::CONFLICTS_TABLE {
            carried.extend(kept_conflict(entry)?);
            continue;
        }
        records.push(Conflict::constraint(entry, &error.to_string()).statement(entry));
    }
    let recorded = records.len() as u64;
    records.extend(carried);
    let write = merge_write(entries, None);
    submit(repl, request_id, records, write)
        .await
        .map_err(|failure| format!("{failure:?}"))?;
    Ok(recorded)
}

/// The write of one orphan transaction, stamped as the orphan was. `plan` decides its
/// statements inside the write; without one, the statements given to `submit` run.
fn merge_write(entries: &[LogEntry], plan: Option<super::messages::MergePlan>) -> MergeWrite {
    let first = &entries[0];
    MergeWrite {
        plan,
        txid: first.txid,
        hlc: Hlc::new(first.hlc_ms, first.hlc_logical, first.hlc_node.clone()),
        origin: first.origin.clone(),
    }
}

/// Runs one merge write; `Ok(true)` when it had already been merged.
async fn submit(
    repl: &Replication,
    request_id: &str,
    statements: Vec<tandem_replication::data_api::Statement>,
    write: MergeWrite,
) -> Result<bool, WriteFailure> {
    super::writer::submit(repl, request_id, statements, Mode::Node, Some(write))
        .await
        .map(|done| done.replayed)
}

/// Drops the kept orphans whose merge is already in this node's log, however it got there
/// (this node merged some of its own while active, say, and then stopped being the active: the
/// active then answers them "already merged", and no new entry would ever bring their request
/// ids back). Returns how many were dropped.
pub async fn drop_already_merged(repl: &Replication) -> u64 {
    let store = repl.store();
    let merged = match store.orphans_already_merged().await {
        Ok(merged) if !merged.is_empty() => merged,
        Ok(_) => return 0,
        Err(error) => {
            tracing::warn!(%error, "cannot read which orphans are already merged");
            return 0;
        }
    };
    match store.drop_orphan_transactions(&merged).await {
        Ok(dropped) => {
            tracing::info!(dropped, "orphans already merged in this log dropped");
            repl.refresh_counts().await;
            dropped
        }
        Err(error) => {
            tracing::warn!(%error, "cannot drop merged orphans");
            0
        }
    }
}

/// On the passive, after a batch is applied: orphans whose merge came back are dropped.
pub async fn on_applied(repl: &Replication, entries: &[LogEntry]) {
    let mut merged = Vec::new();
    for entry in entries {
        if entry.table != super::schema::REQUESTS_TABLE {
            continue;
        }
        let Ok(key) = decode_image(&entry.pk) else {
            continue;
        };
        for (_, value) in key {
            if let SqlValue::Text(id) = value
                && let Some(rest) = id.strip_prefix(MERGE_PREFIX)
                && let Some((_, txid)) = rest.rsplit_once(':')
                && let Ok(txid) = txid.parse::<u64>()
            {
                merged.push(txid);
            }
        }
    }
    if merged.is_empty() {
        return;
    }
    match repl.store().drop_orphan_transactions(&merged).await {
        Ok(dropped) => {
            tracing::info!(dropped, "orphans back through replication");
            repl.refresh_counts().await;
        }
        Err(error) => tracing::warn!(%error, "cannot drop merged orphans"),
    }
}
