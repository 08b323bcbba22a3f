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
use tandem_replication::data_api::{Statement, Value};
use tandem_replication::log::Operation;
use tandem_replication::store::{LogEntry, SqlValue, decode_image};
use tokio::sync::oneshot;

use super::Replication;
use super::writer::{WriteFailure, WriteRequest};
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

/// Re-applies the orphans the passive sent, in its own task (the writes wait for the ship task).
pub async fn reapply(repl: &Replication, orphans: pb::OrphanBatch) {
    let repl = repl.clone();
    tokio::spawn(async move {
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
    });
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
        for entry in &entries {
            if entry.table == super::REQUESTS_TABLE || entry.table == super::CONFLICTS_TABLE {
                continue; // bookkeeping of the old term, not data
            }
            plan_change(repl, entry, since, &mut statements, &mut conflicts).await?;
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
    since: u64,
    statements: &mut Vec<Statement>,
    conflicts: &mut Vec<Statement>,
) -> Result<(), String> {
    // The active's newest change of this row after the divergence point, if any.
    let newer: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT hlc_ms, hlc_logical, hlc_node, new_image FROM _tandem_log \
         WHERE tbl = ? AND pk = ? AND idx >= ? ORDER BY idx DESC LIMIT 1",
    )
    .bind(&entry.table)
    .bind(&entry.pk)
    .bind(i64::try_from(since).unwrap_or(i64::MAX))
    .fetch_optional(repl.store().reader())
    .await
    .map_err(|error| error.to_string())?;
    if let Some((ms, logical, node, active_image)) = newer {
        let policy = repl.inner.config.replication.policy_of(&entry.table);
        let active_stamp = (ms.max(0) as u64, logical.max(0) as u32, node);
        let orphan_stamp = (entry.hlc_ms, entry.hlc_logical, entry.hlc_node.clone());
        let orphan_wins = policy == ConflictPolicy::Newest && orphan_stamp > active_stamp;
        let reason = match policy {
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::KeepActive => "keep_active",
        };
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
    statements.extend(change_statements(repl, entry).await?);
    Ok(())
}

/// The SQL that makes the active's row what the orphan made it.
async fn change_statements(repl: &Replication, entry: &LogEntry) -> Result<Vec<Statement>, String> {
    let key = decode_image(&entry.pk)?;
    let table = quote(&entry.table);
    let key_match = key
        .iter()
        .map(|(column, _)| format!("{} IS ?", quote(column)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let key_params: Vec<Value> = key.iter().map(|(_, value)| value_of(value)).collect();
    let operation = match entry.op {
        tandem_replication::store::ChangeOp::Insert => Operation::Insert,
        tandem_replication::store::ChangeOp::Update => Operation::Update,
        tandem_replication::store::ChangeOp::Delete => Operation::Delete,
    };
    if operation == Operation::Delete {
        return Ok(vec![Statement::new(
            format!("DELETE FROM {table} WHERE {key_match}"),
            key_params,
        )]);
    }
    let image = decode_image(entry.new_image.as_deref().unwrap_or("{}"))?;
    let exists: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM {table} WHERE {}",
        key.iter()
            .map(|(column, _)| format!("{} IS ?", quote(column)))
            .collect::<Vec<_>>()
            .join(" AND ")
    ))
    .bind_all(&key)
    .fetch_optional(repl.store().reader())
    .await
    .map_err(|error| error.to_string())?;
    let columns: Vec<String> = image.iter().map(|(column, _)| quote(column)).collect();
    let values: Vec<Value> = image.iter().map(|(_, value)| value_of(value)).collect();
    let statement = if exists.is_some() {
        let sets = columns
            .iter()
            .map(|column| format!("{column} = ?"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut params = values;
        params.extend(key_params);
        Statement::new(
            format!("UPDATE {table} SET {sets} WHERE {key_match}"),
            params,
        )
    } else {
        let marks = vec!["?"; columns.len()].join(", ");
        Statement::new(
            format!(
                "INSERT INTO {table} ({}) VALUES ({marks})",
                columns.join(", ")
            ),
            values,
        )
    };
    Ok(vec![statement])
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
    let (reply, answer) = oneshot::channel();
    let request = WriteRequest {
        request_id: request_id.to_string(),
        statements,
        reply,
    };
    if repl.inner.writes.send(request).await.is_err() {
        return Err(WriteFailure::Unavailable("the writer stopped".into()));
    }
    match answer.await {
        Ok(Ok(done)) => Ok(done.replayed),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(WriteFailure::Unavailable("the writer stopped".into())),
    }
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

/// Binds every key value to a query.
trait BindAll<'q> {
    fn bind_all(self, key: &'q [(String, SqlValue)]) -> Self;
}

impl<'q, O> BindAll<'q>
    for sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>
{
    fn bind_all(mut self, key: &'q [(String, SqlValue)]) -> Self {
        for (_, value) in key {
            self = match value {
                SqlValue::Null => self.bind(None::<i64>),
                SqlValue::Integer(integer) => self.bind(*integer),
                SqlValue::Real(real) => self.bind(*real),
                SqlValue::Text(text) => self.bind(text.as_str()),
                SqlValue::Blob(blob) => self.bind(blob.as_slice()),
            };
        }
        self
    }
}
