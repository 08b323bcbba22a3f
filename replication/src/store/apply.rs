//! `Store::apply_entries`: a batch of the peer's entries, applied in one transaction.
//!
//! Each change is re-executed from its images (INSERT OR REPLACE, UPDATE, DELETE) with every
//! value bound as a typed parameter, so BLOBs and reals land bit for bit. The applying flag
//! keeps the triggers quiet, so nothing is captured a second time; instead the entries are
//! appended to the local log unchanged (same idx, term, stamp, origin and hash), so both nodes
//! hold the same log. Foreign keys are deferred to the commit, because a batch may carry a
//! child before its parent. The batch is refused whole, nothing applied, if it does not
//! continue the local log exactly (next index, chained hash, no older epoch). The batch's SQL runs
//! in one synchronous stretch under sqlx's handle lock (see `crate::raw_sqlite`), with each
//! distinct statement text prepared once per batch. Not here: term fencing against the newest
//! term seen, or batch checksums; the shipping layer does those.

use std::collections::HashMap;

use super::entry::{ChangeOp, LogEntry};
use super::error::{StoreError, to_sql_int};
use super::handle::Store;
use super::log_table::{LogPosition, last_position_raw};
use super::sql_text::quote_ident;
use super::value::SqlValue;
use super::writer_transaction::WriterTransaction;
use crate::data_api::Value;
use crate::raw_sqlite::{PrepareError, Prepared, RawDb};

type Values = Vec<(String, SqlValue)>;

impl Store {
    /// Applies `entries` (consecutive, continuing the local log) in one transaction. On any
    /// error nothing is applied and the local log is unchanged.
    pub async fn apply_entries(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let mut transaction = WriterTransaction::acquire(&self.owned, self.busy_timeout).await?;
        // COMMIT in the same stretch: deferred foreign keys are checked there.
        let applied = transaction
            .stretch_and_commit_if(
                |db| {
                    let previous = last_position_raw(db)?;
                    self.check_continues(&previous, entries)?;
                    let mut statements = Statements::new(db);
                    // The pragma makes SQLite expire every prepared statement, so only a schema
                    // with foreign keys pays for it.
                    if has_foreign_keys(db)? {
                        statements.run("PRAGMA defer_foreign_keys = ON", &[])?;
                    }
                    set_applying(&mut statements, true)?;
                    for entry in entries {
                        apply_change(&mut statements, entry)?;
                        append_entry(&mut statements, entry)?;
                    }
                    set_applying(&mut statements, false)
                },
                |_| true,
            )
            .await;
        match applied {
            Ok(_) => Ok(()),
            Err(StoreError::CommitFailed { reason }) => Err(StoreError::ApplyBatch {
                first_idx: first.idx,
                last_idx: last.idx,
                reason,
            }),
            Err(error) => Err(error),
        }
    }

    /// Refuses a batch that does not continue `previous`: a gap or overlap, a broken hash
    /// chain, or an epoch older than the one before it.
    fn check_continues(
        &self,
        previous: &LogPosition,
        entries: &[LogEntry],
    ) -> Result<(), StoreError> {
        let (mut expected_idx, mut previous_hash, mut last_epoch) =
            (previous.idx + 1, previous.hash, previous.term_epoch);
        for entry in entries {
            if entry.idx != expected_idx {
                return Err(StoreError::OutOfOrder {
                    expected: expected_idx,
                    got: entry.idx,
                });
            }
            if entry.term_epoch < last_epoch {
                return Err(StoreError::StaleTerm {
                    idx: entry.idx,
                    epoch: entry.term_epoch,
                    last_epoch,
                });
            }
            let expected_hash = (self.rolling_hash)(previous_hash, entry);
            if entry.hash != expected_hash {
                return Err(StoreError::HashMismatch {
                    idx: entry.idx,
                    expected: expected_hash,
                    got: entry.hash,
                });
            }
            (expected_idx, previous_hash, last_epoch) =
                (entry.idx + 1, entry.hash, entry.term_epoch);
        }
        Ok(())
    }
}

/// Whether any table of the database declares a foreign key.
pub(super) fn has_foreign_keys(db: RawDb<'_>) -> Result<bool, StoreError> {
    let mut any = Prepared::store(
        db,
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema AS s, pragma_foreign_key_list(s.name) AS f \
         WHERE s.type = 'table')",
    )?;
    Ok(any.step()? && any.row().first() == Some(&Value::Integer(1)))
}

/// Runs the store's own statements inside one stretch, each distinct text prepared once.
pub(super) struct Statements<'db> {
    db: RawDb<'db>,
    prepared: HashMap<String, Prepared<'db>>,
}

impl<'db> Statements<'db> {
    pub(super) fn new(db: RawDb<'db>) -> Statements<'db> {
        Statements {
            db,
            prepared: HashMap::new(),
        }
    }

    /// Runs `sql` (one statement) with `params` to completion; returns the rows it changed.
    pub(super) fn run(&mut self, sql: &str, params: &[Value]) -> Result<u64, PrepareError> {
        let statement = match self.prepared.get_mut(sql) {
            Some(statement) => statement,
            None => self
                .prepared
                .entry(sql.to_owned())
                .or_insert(Prepared::store(self.db, sql)?),
        };
        statement.reset();
        statement.bind(params)?;
        while statement.step().map_err(PrepareError::Sqlite)? {}
        Ok(statement.changes())
    }
}

pub(super) fn set_applying(
    statements: &mut Statements<'_>,
    applying: bool,
) -> Result<(), StoreError> {
    statements.run(
        "UPDATE _tandem_applying SET flag = ?",
        &[Value::Integer(i64::from(applying))],
    )?;
    Ok(())
}

/// Re-executes one change. An update whose row is missing writes the new image instead, which
/// leaves the row exactly as on the peer.
pub(super) fn apply_change(
    statements: &mut Statements<'_>,
    entry: &LogEntry,
) -> Result<(), StoreError> {
    let bad = |reason: &str| StoreError::BadEntry {
        idx: entry.idx,
        reason: reason.to_owned(),
    };
    let lower = entry.table.to_ascii_lowercase();
    if lower.starts_with("_tandem_") || lower.starts_with("sqlite_") {
        return Err(bad("it targets an internal table"));
    }
    let key = entry.pk_values()?;
    if key.is_empty() {
        return Err(bad("its primary key is empty"));
    }
    let applied = match entry.op {
        ChangeOp::Insert => upsert(statements, entry, &non_empty(entry.new_values()?, entry)?),
        ChangeOp::Update => {
            let new_values = non_empty(entry.new_values()?, entry)?;
            match update(statements, entry, &new_values, &key) {
                Ok(0) => upsert(statements, entry, &new_values),
                other => other.map(drop),
            }
        }
        ChangeOp::Delete => delete(statements, entry, &key),
    };
    applied.map_err(|error| StoreError::Apply {
        idx: entry.idx,
        table: entry.table.clone(),
        reason: error.to_string(),
    })
}

fn non_empty(values: Values, entry: &LogEntry) -> Result<Values, StoreError> {
    match values.is_empty() {
        true => Err(StoreError::BadEntry {
            idx: entry.idx,
            reason: format!("an {} needs a non-empty new image", entry.op.as_str()),
        }),
        false => Ok(values),
    }
}

fn params<'v>(values: impl IntoIterator<Item = &'v (String, SqlValue)>) -> Vec<Value> {
    values
        .into_iter()
        .map(|(_, value)| Value::from(value.clone()))
        .collect()
}

fn upsert(
    statements: &mut Statements<'_>,
    entry: &LogEntry,
    values: &Values,
) -> Result<(), PrepareError> {
    let columns: Vec<String> = values
        .iter()
        .map(|(column, _)| quote_ident(column))
        .collect();
    let sql = format!(
        "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
        quote_ident(&entry.table),
        columns.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    statements.run(&sql, &params(values)).map(drop)
}

fn update(
    statements: &mut Statements<'_>,
    entry: &LogEntry,
    values: &Values,
    key: &Values,
) -> Result<u64, PrepareError> {
    let assignments: Vec<String> = values
        .iter()
        .map(|(column, _)| format!("{} = ?", quote_ident(column)))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        quote_ident(&entry.table),
        assignments.join(", "),
        key_match(key)
    );
    statements.run(&sql, &params(values.iter().chain(key)))
}

fn delete(
    statements: &mut Statements<'_>,
    entry: &LogEntry,
    key: &Values,
) -> Result<(), PrepareError> {
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        quote_ident(&entry.table),
        key_match(key)
    );
    statements.run(&sql, &params(key)).map(drop)
}

/// `"a" IS ? AND "b" IS ?`: IS, not =, because SQLite allows NULL in a non-integer primary key.
fn key_match(key: &Values) -> String {
    let terms: Vec<String> = key
        .iter()
        .map(|(column, _)| format!("{} IS ?", quote_ident(column)))
        .collect();
    terms.join(" AND ")
}

fn append_entry(statements: &mut Statements<'_>, entry: &LogEntry) -> Result<(), StoreError> {
    statements.run(
        "INSERT INTO _tandem_log (idx, term_epoch, term_node, txid, tbl, pk, op, new_image, \
         old_image, hlc_ms, hlc_logical, hlc_node, origin, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &entry_values(entry)?,
    )?;
    Ok(())
}

/// An entry's fields in `ENTRY_COLUMNS` order (the orphans table takes the same ones).
pub(super) fn entry_values(entry: &LogEntry) -> Result<Vec<Value>, StoreError> {
    let text = |text: &Option<String>| text.clone().map_or(Value::Null, Value::Text);
    Ok(vec![
        Value::Integer(to_sql_int("log index", entry.idx)?),
        Value::Integer(to_sql_int("term epoch", entry.term_epoch)?),
        Value::Text(entry.term_node.clone()),
        Value::Integer(to_sql_int("txid", entry.txid)?),
        Value::Text(entry.table.clone()),
        Value::Text(entry.pk.clone()),
        Value::Text(entry.op.as_str().to_owned()),
        text(&entry.new_image),
        text(&entry.old_image),
        Value::Integer(to_sql_int("hlc ms", entry.hlc_ms)?),
        Value::Integer(i64::from(entry.hlc_logical)),
        Value::Text(entry.hlc_node.clone()),
        Value::Text(entry.origin.clone()),
        // The u64 hash is stored bit for bit in SQLite's i64.
        Value::Integer(entry.hash as i64),
    ])
}
