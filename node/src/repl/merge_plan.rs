//! The decisions of merge-back, made inside the write that re-applies each orphan transaction
//! (DESIGN.md §4, issue 26).
//!
//! Each orphan change is decided against the row as it is when the orphan is re-applied: the
//! active's newest change of the row after the divergence point, a client write committed while
//! the merge runs included. The reads run in the merge write's own transaction, under the one
//! write turn, so nothing can commit between the decision and the write. Where the active changed
//! the row, the table's policy decides (`newest` by HLC stamp, or `keep_active`; a CDR's real end
//! beats `failover`), and the losing image goes to `tandem_conflicts` with both stamps.
//!
//! A re-applied orphan keeps its transaction's id, stamp and origin (`writer::MergeWrite`), so a
//! later orphan of the same node's history follows it instead of conflicting with it, and
//! `newest` compares with when the client wrote. Not here: queueing, counting and events (the
//! `merge` task).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tandem_replication::data_api::{Statement, Value};
use tandem_replication::store::{
    ChangeOp, LogEntry, SqlValue, StoreError, TransactionReads, decode_image,
};

use super::handle::Replication;
use crate::config::ConflictPolicy;

/// Request ids of merge writes: `merge:<origin>:<txid>`.
pub const MERGE_PREFIX: &str = "merge:";

/// The newest change of each row in the active's log after the divergence point, kept up to
/// date by each merge write (so each write scans only what was appended since the last one).
/// Bounded by the log after the divergence point, which retention bounds: a divergence below
/// retention is settled by a snapshot, not merged.
pub struct RowIndex {
    /// The log has been read up to here.
    scanned_to: u64,
    /// (table, primary key) → index of the row's newest change.
    newest: HashMap<(String, String), u64>,
}

impl RowIndex {
    /// An index of the changes after `divergence_idx` (the last common index), read lazily.
    pub fn after(divergence_idx: u64) -> Arc<Mutex<RowIndex>> {
        Arc::new(Mutex::new(RowIndex {
            scanned_to: divergence_idx,
            newest: HashMap::new(),
        }))
    }

    fn catch_up(&mut self, reads: &TransactionReads<'_>) -> Result<(), StoreError> {
        let newest = &mut self.newest;
        self.scanned_to = reads.changes_after(self.scanned_to, |idx, table, pk| {
            newest.insert((table.to_owned(), pk.to_owned()), idx);
        })?;
        Ok(())
    }

    fn newest(&self, table: &str, pk: &str) -> Option<u64> {
        self.newest.get(&(table.to_owned(), pk.to_owned())).copied()
    }
}

/// What the plan of one orphan transaction decided, for the merge's counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Planned {
    /// A client retried the orphan's request on the active: it is that same write, not applied
    /// again.
    pub already_ran: bool,
    /// Conflict rows written.
    pub conflicts: u64,
    /// Of those, decided against a change the active made after the merge began.
    pub during_merge: u64,
}

/// The plan of one orphan transaction: run by the writer inside the merge write.
pub struct OrphanPlan {
    pub repl: Replication,
    pub entries: Vec<LogEntry>,
    pub rows: Arc<Mutex<RowIndex>>,
    /// The last index the orphan's log had in common with this one: only the changes after it
    /// are the active's side of the divergence.
    pub diverged_after: u64,
    /// The active's last log index when the merge began: a change after it was made during the
    /// merge.
    pub merge_start: u64,
    /// Filled by `plan`, read by the merge task once the write is done.
    pub planned: Arc<Mutex<Planned>>,
}

impl OrphanPlan {
    pub fn plan(&self, reads: &TransactionReads<'_>) -> Result<Vec<Statement>, StoreError> {
        let mut planned = Planned::default();
        let mut statements = Vec::new();
        // The client's own request ids travel with the merge, so a retry finds them; if a
        // retry already ran here, the orphan is that same write and is not applied again.
        for id in client_request_ids(&self.entries) {
            if reads.request_recorded(&id)? {
                planned.already_ran = true;
                *lock(&self.planned) = planned;
                return Ok(Vec::new());
            }
        }
        let mut rows = lock(&self.rows);
        rows.catch_up(reads)?;
        let mut conflicts = Vec::new();
        for entry in &self.entries {
            if entry.table == super::schema::REQUESTS_TABLE {
                // The request ids the orphan recorded (not a merge's own: the merge write
                // records its id itself).
                if entry.op != ChangeOp::Delete
                    && !client_request_ids(std::slice::from_ref(entry)).is_empty()
                {
                    statements.push(upsert_statement(entry, true).map_err(corrupt)?);
                }
                continue;
            }
            if entry.table == super::schema::CONFLICTS_TABLE {
                statements.extend(kept_conflict(entry).map_err(corrupt)?);
                continue;
            }
            let active = match rows.newest(&entry.table, &entry.pk) {
                Some(idx) if idx > self.diverged_after => reads.entry_at(idx)?,
                _ => None,
            };
            let decision = self.decide(reads, entry, active.as_ref())?;
            if let Some(conflict) = decision.conflict {
                planned.conflicts += 1;
                planned.during_merge += u64::from(conflict.during_merge);
                conflicts.push(conflict.statement(entry));
            }
            if decision.apply {
                statements.extend(change_statements(entry).map_err(corrupt)?);
            }
        }
        statements.extend(conflicts);
        *lock(&self.planned) = planned;
        Ok(statements)
    }

    /// One orphan change against the active's newest change of the row after the divergence
    /// point, if any.
    fn decide(
        &self,
        reads: &TransactionReads<'_>,
        orphan: &LogEntry,
        active: Option<&LogEntry>,
    ) -> Result<Decision, StoreError> {
        let Some(active) = active else {
            return Ok(Decision::apply());
        };
        // A re-applied orphan of the same node's history: a later change of that history simply
        // follows it, and an earlier one (orphans merged again, or an older episode's) was
        // already superseded in that history, so it is not applied over it.
        let reapplied = format!("{MERGE_PREFIX}{}:{}", active.origin, active.txid);
        if active.origin == orphan.origin && reads.request_recorded(&reapplied)? {
            return Ok(if stamp(orphan) > stamp(active) {
                Decision::apply()
            } else {
                Decision::nothing()
            });
        }
        if active.new_image == orphan.new_image {
            // Both sides made the row the same (both deleted it, say): nothing to merge.
            return Ok(Decision::nothing());
        }
        let policy = self.repl.inner.config.replication.policy_of(&orphan.table);
        let mut orphan_wins = policy == ConflictPolicy::Newest && stamp(orphan) > stamp(active);
        let mut reason = match policy {
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::KeepActive => "keep_active",
        };
        // Two versions of one call's CDR: the real end wins over `failover` (DESIGN.md §5).
        if orphan.table == tandem_gateway::schema::CDRS_TABLE
            && let Some(wins) = tandem_gateway::schema::cdr_image_wins(
                cause_of(orphan.new_image.as_deref()).as_deref(),
                cause_of(active.new_image.as_deref()).as_deref(),
            )
        {
            orphan_wins = wins;
            reason = "cdr_real_end_wins";
        }
        let (losing, kept) = if orphan_wins {
            (active, orphan)
        } else {
            (orphan, active)
        };
        Ok(Decision {
            apply: orphan_wins,
            conflict: Some(Conflict {
                reason: reason.to_string(),
                losing_image: losing.new_image.clone(),
                losing_hlc: stamp_json(losing),
                kept_image: kept.new_image.clone(),
                kept_hlc: Some(stamp_json(kept)),
                during_merge: active.idx > self.merge_start,
            }),
        })
    }
}

/// What to do with one orphan change.
struct Decision {
    /// Re-apply it.
    apply: bool,
    /// The conflict row to write, if both sides changed the row.
    conflict: Option<Conflict>,
}

impl Decision {
    fn apply() -> Decision {
        Decision {
            apply: true,
            conflict: None,
        }
    }

    fn nothing() -> Decision {
        Decision {
            apply: false,
            conflict: None,
        }
    }
}

/// A row of `tandem_conflicts`.
pub struct Conflict {
    pub reason: String,
    pub losing_image: Option<String>,
    pub losing_hlc: String,
    pub kept_image: Option<String>,
    pub kept_hlc: Option<String>,
    pub during_merge: bool,
}

impl Conflict {
    /// The whole orphan transaction broke a constraint: each change is kept here, the active
    /// keeps its rows.
    pub fn constraint(orphan: &LogEntry, error: &str) -> Conflict {
        Conflict {
            reason: format!("constraint: {error}"),
            losing_image: orphan.new_image.clone(),
            losing_hlc: stamp_json(orphan),
            kept_image: None,
            kept_hlc: None,
            during_merge: false,
        }
    }

    /// The statement that records it, keyed by the orphan change (a retried merge writes it
    /// once).
    pub fn statement(&self, orphan: &LogEntry) -> Statement {
        let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::Text);
        Statement::new(
            "INSERT OR REPLACE INTO tandem_conflicts (id, at_ms, tbl, pk, reason, losing_image, \
             kept_image, losing_hlc, kept_hlc, during_merge) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Value::Text(format!("{}:{}:{}", orphan.origin, orphan.txid, orphan.idx)),
                Value::Integer(crate::state::store::wall_clock_ms()),
                Value::Text(orphan.table.clone()),
                Value::Text(orphan.pk.clone()),
                Value::Text(self.reason.clone()),
                text(&self.losing_image),
                text(&self.kept_image),
                Value::Text(self.losing_hlc.clone()),
                text(&self.kept_hlc),
                Value::Integer(i64::from(self.during_merge)),
            ],
        )
    }
}

fn stamp(entry: &LogEntry) -> (u64, u32, &str) {
    (entry.hlc_ms, entry.hlc_logical, &entry.hlc_node)
}

/// A stamp as the conflicts table keeps it.
fn stamp_json(entry: &LogEntry) -> String {
    serde_json::json!({"ms": entry.hlc_ms, "logical": entry.hlc_logical, "node": entry.hlc_node})
        .to_string()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        what: "orphan",
        detail,
    }
}

/// A conflict row the orphan transaction wrote (it was itself a merge write, rewound since):
/// the record of a write that lost, kept as it was (a conflict row already here stands).
pub fn kept_conflict(entry: &LogEntry) -> Result<Option<Statement>, String> {
    if entry.op == ChangeOp::Delete {
        return Ok(None);
    }
    upsert_statement(entry, true).map(Some)
}

/// The SQL that makes the active's row what the orphan made it: a delete, or an upsert.
fn change_statements(entry: &LogEntry) -> Result<Vec<Statement>, String> {
    if entry.op == ChangeOp::Delete {
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

/// The clients' request ids recorded by an orphan transaction (not merge writes' own).
pub fn client_request_ids(entries: &[LogEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| entry.table == super::schema::REQUESTS_TABLE)
        .filter_map(|entry| decode_image(&entry.pk).ok())
        .flat_map(|key| key.into_iter())
        .filter_map(|(_, value)| match value {
            SqlValue::Text(id) if !id.starts_with(MERGE_PREFIX) => Some(id),
            _ => None,
        })
        .collect()
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
