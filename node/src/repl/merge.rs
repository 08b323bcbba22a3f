//! Merge-back on the active (DESIGN.md §4, divergence step 4).
//!
//! The rejoining passive rewinds its orphaned suffix into its orphans table and hands the orphans
//! over its `Replicate` stream. The active re-applies them one transaction at a time, as new
//! writes through the writer, each under the request id `merge:<origin>:<txid>`: a transaction
//! already merged (before a crash, say) is answered from `tandem_requests` and not applied twice.
//! That same `tandem_requests` row travels back to the passive, which then drops those orphans:
//! orphans leave only once they are back through replication.
//!
//! Where the active changed the same row after the divergence point, the table's policy decides:
//! `newest` by HLC stamp, or `keep_active`. The losing image goes to `tandem_conflicts`. A change
//! that breaks a constraint (a UNIQUE clash) is recorded as a conflict too, and the merge carries
//! on. Every merge is an event with its counts.

use tandem_proto::peer as pb;
use tandem_replication::data_api::{Mode, Statement, Value};
use tandem_replication::store::{LogEntry, SqlValue, decode_image};

use super::Replication;
use super::writer::WriteFailure;
use crate::config::ConflictPolicy;

const MERGE_PREFIX: &str = "merge:";

/// Counts of one merge.
#[derive(Default)]
struct Counts {
    transactions: u64,
    applied: u64,
    already: u64,
    conflicts: u64,
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
            "merge-back: {} orphan transactions from the peer: {} re-applied, {} already merged, \
             {} conflicts recorded",
            counts.transactions, counts.applied, counts.already, counts.conflicts
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
        let entries: Vec<LogEntry> = orphans.into_iter().map(|(_, entry)| entry).collect();
        let txids: Vec<u64> = entries.iter().map(|entry| entry.txid).collect();
        let mut counts = Counts::default();
        let result = merge_entries(&repl, entries, &mut counts).await;
        let mut message = format!(
            "merge-back of this node's own orphans: {} transactions: {} re-applied, {} already              merged, {} conflicts recorded",
            counts.transactions, counts.applied, counts.already, counts.conflicts
        );
        match result {
            Ok(()) => {
                if let Err(error) = repl.store().drop_orphan_transactions(&txids).await {
                    tracing::warn!(%error, "cannot drop merged orphans");
                }
            }
            Err(reason) => message.push_str(&format!("; stopped: {reason}")),
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
    let entries = batch
        .entries
        .iter()
        .map(tandem_replication::bridge::stored_of)
        .collect();
    merge_entries(repl, entries, counts).await
}

async fn merge_entries(
    repl: &Replication,
    entries: Vec<LogEntry>,
    counts: &mut Counts,
) -> Result<(), String> {
    let since = entries.iter().map(|e| e.idx).min().unwrap_or(0);
    // The active's changes to compare with: those after the divergence point and before this
    // merge began (not the merge's own writes).
    let until = repl
        .store()
        .last_log_position()
        .await
        .map_err(|error| error.to_string())?
        .idx;
    // Transactions in log order; entries of one transaction are consecutive.
    let mut transactions: Vec<(u64, String, Vec<LogEntry>)> = Vec::new();
    for entry in entries {
        match transactions.last_mut() {
            Some((txid, _, entries)) if *txid == entry.txid => entries.push(entry),
            _ => transactions.push((entry.txid, entry.origin.clone(), vec![entry])),
        }
    }
    for (txid, origin, entries) in transactions {
        counts.transactions += 1;
        let request_id = format!("{MERGE_PREFIX}{origin}:{txid}");
        let mut statements = Vec::new();
        let mut conflicts = Vec::new();
        // The client's own request ids travel with the merge, so a retry finds them; if a retry
        // already ran here, the orphan is that same write and is not applied again.
        let client_ids = client_request_ids(&entries);
        if already_ran_here(repl, &client_ids).await? {
            match write(repl, &request_id, Vec::new()).await {
                Ok(_) => counts.already += 1,
                Err(failure) => return Err(format!("{failure:?}")),
            }
            continue;
        }
        for entry in &entries {
            if entry.table == super::REQUESTS_TABLE {
                if entry.op != tandem_replication::store::ChangeOp::Delete {
                    statements.push(upsert_statement(entry, true)?);
                }
                continue;
            }
            if entry.table == super::CONFLICTS_TABLE {
                continue; // the old term's own merge bookkeeping
            }
            plan_change(repl, entry, (since, until), &mut statements, &mut conflicts).await?;
        }
        let conflict_count = conflicts.len() as u64;
        statements.extend(conflicts);
        match write(repl, &request_id, statements).await {
            Ok(replayed) if replayed => counts.already += 1,
            Ok(_) => {
                counts.applied += 1;
                counts.conflicts += conflict_count;
            }
            Err(WriteFailure::Invalid(error)) => {
                // A constraint broke: keep the whole orphan transaction as a conflict.
                let mut records = Vec::new();
                for entry in &entries {
                    if entry.table == super::REQUESTS_TABLE || entry.table == super::CONFLICTS_TABLE
                    {
                        continue;
                    }
                    records.push(conflict_statement(
                        entry,
                        &format!("constraint: {error}"),
                        entry.new_image.clone(),
                        None,
                    ));
                }
                counts.conflicts += records.len() as u64;
                write(repl, &request_id, records)
                    .await
                    .map_err(|failure| format!("{failure:?}"))?;
            }
            Err(other) => return Err(format!("{other:?}")),
        }
    }
    Ok(())
}

/// Adds the statements that re-apply `entry`, or the conflict record if the active's version wins.
async fn plan_change(
    repl: &Replication,
    entry: &LogEntry,
    (since, until): (u64, u64),
    statements: &mut Vec<Statement>,
    conflicts: &mut Vec<Statement>,
) -> Result<(), String> {
    // The active's newest change of this row after the divergence point, if any.
    let newer: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT hlc_ms, hlc_logical, hlc_node, new_image FROM _tandem_log \
         WHERE tbl = ? AND pk = ? AND idx >= ? AND idx <= ? ORDER BY idx DESC LIMIT 1",
    )
    .bind(&entry.table)
    .bind(&entry.pk)
    .bind(i64::try_from(since).unwrap_or(i64::MAX))
    .bind(i64::try_from(until).unwrap_or(i64::MAX))
    .fetch_optional(repl.store().reader())
    .await
    .map_err(|error| error.to_string())?;
    if let Some((ms, logical, node, active_image)) = newer {
        if active_image == entry.new_image {
            // Both sides made the row the same (both deleted it, say): nothing to merge.
            return Ok(());
        }
        let policy = repl.inner.config.replication.policy_of(&entry.table);
        let active_stamp = (ms.max(0) as u64, logical.max(0) as u32, node);
        let orphan_stamp = (entry.hlc_ms, entry.hlc_logical, entry.hlc_node.clone());
        let mut orphan_wins = policy == ConflictPolicy::Newest && orphan_stamp > active_stamp;
        let mut reason = match policy {
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::KeepActive => "keep_active",
        };
        // Two versions of one call's CDR: the real end wins over `failover` (DESIGN.md §5).
        if entry.table == tandem_gateway::schema::CDRS_TABLE
            && let Some(wins) = tandem_gateway::schema::cdr_image_wins(
                cause_of(entry.new_image.as_deref()).as_deref(),
                cause_of(active_image.as_deref()).as_deref(),
            )
        {
            orphan_wins = wins;
            reason = "cdr_real_end_wins";
        }
        if !orphan_wins {
            conflicts.push(conflict_statement(
                entry,
                reason,
                entry.new_image.clone(),
                active_image,
            ));
            return Ok(());
        }
        conflicts.push(conflict_statement(
            entry,
            reason,
            active_image,
            entry.new_image.clone(),
        ));
    }
    statements.extend(change_statements(entry)?);
    Ok(())
}

/// The SQL that makes the active's row what the orphan made it: a delete, or an upsert decided
/// when it runs (inside the merge's own write), never from an earlier read.
fn change_statements(entry: &LogEntry) -> Result<Vec<Statement>, String> {
    if entry.op == tandem_replication::store::ChangeOp::Delete {
        let key = decode_image(&entry.pk)?;
        let key_match = key
            .iter()
            .map(|(column, _)| format!("{} IS ?", quote(column)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key_params = key.iter().map(|(_, value)| value_of(value)).collect();
        return Ok(vec![Statement::new(
            format!("DELETE FROM {} WHERE {key_match}", quote(&entry.table)),
            key_params,
        )]);
    }
    Ok(vec![upsert_statement(entry, false)?])
}

/// `INSERT … ON CONFLICT (key) DO UPDATE` with the entry's new image; with `keep_existing`,
/// `DO NOTHING` instead (request ids: the first outcome stands).
fn upsert_statement(entry: &LogEntry, keep_existing: bool) -> Result<Statement, String> {
    let key = decode_image(&entry.pk)?;
    let image = decode_image(entry.new_image.as_deref().unwrap_or("{}"))?;
    if image.is_empty() {
        return Err(format!("orphan {} has no new image", entry.idx));
    }
    let columns: Vec<String> = image.iter().map(|(column, _)| quote(column)).collect();
    let values: Vec<Value> = image.iter().map(|(_, value)| value_of(value)).collect();
    let key_columns: Vec<String> = key.iter().map(|(column, _)| quote(column)).collect();
    let updates: Vec<String> = image
        .iter()
        .filter(|(column, _)| !key.iter().any(|(k, _)| k == column))
        .map(|(column, _)| format!("{0} = excluded.{0}", quote(column)))
        .collect();
    let action = if keep_existing || updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let marks = vec!["?"; columns.len()].join(", ");
    Ok(Statement::new(
        format!(
            "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT ({}) {action}",
            quote(&entry.table),
            columns.join(", "),
            key_columns.join(", ")
        ),
        values,
    ))
}

/// The clients' request ids recorded by an orphan transaction.
fn client_request_ids(entries: &[LogEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| entry.table == super::REQUESTS_TABLE)
        .filter_map(|entry| decode_image(&entry.pk).ok())
        .flat_map(|key| key.into_iter())
        .filter_map(|(_, value)| match value {
            SqlValue::Text(id) if !id.starts_with(MERGE_PREFIX) => Some(id),
            _ => None,
        })
        .collect()
}

/// True when one of `ids` already ran on the active (a client retried it there).
async fn already_ran_here(repl: &Replication, ids: &[String]) -> Result<bool, String> {
    for id in ids {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM tandem_requests WHERE request_id = ?")
                .bind(id)
                .fetch_optional(repl.store().reader())
                .await
                .map_err(|error| error.to_string())?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn conflict_statement(
    entry: &LogEntry,
    reason: &str,
    losing: Option<String>,
    kept: Option<String>,
) -> Statement {
    Statement::new(
        "INSERT OR REPLACE INTO tandem_conflicts (id, at_ms, tbl, pk, reason, losing_image, \
         kept_image) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            Value::Text(format!("{}:{}:{}", entry.origin, entry.txid, entry.idx)),
            Value::Integer(crate::state_store::wall_clock_ms()),
            Value::Text(entry.table.clone()),
            Value::Text(entry.pk.clone()),
            Value::Text(reason.to_string()),
            losing.map_or(Value::Null, Value::Text),
            kept.map_or(Value::Null, Value::Text),
        ],
    )
}

/// Runs one merge write; `Ok(true)` when it had already been merged.
async fn write(
    repl: &Replication,
    request_id: &str,
    statements: Vec<Statement>,
) -> Result<bool, WriteFailure> {
    super::writer::submit(repl, request_id, statements, Mode::Node)
        .await
        .map(|done| done.replayed)
}

/// On the passive, after a batch is applied: orphans whose merge came back are dropped.
pub async fn on_applied(repl: &Replication, entries: &[LogEntry]) {
    let mut merged = Vec::new();
    for entry in entries {
        if entry.table != super::REQUESTS_TABLE {
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

/// The `cause` column of a CDR image, if the image is a row.
fn cause_of(image: Option<&str>) -> Option<String> {
    let row: serde_json::Value = serde_json::from_str(image?).ok()?;
    row.get("cause")?.as_str().map(str::to_string)
}

fn value_of(value: &SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(integer) => Value::Integer(*integer),
        SqlValue::Real(real) => Value::Real(*real),
        SqlValue::Text(text) => Value::Text(text.clone()),
        SqlValue::Blob(blob) => Value::Blob(blob.clone()),
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
