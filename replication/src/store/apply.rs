//! `Store::apply_entries`: a batch of the peer's entries, applied in one transaction.
//!
//! Each change is re-executed from its images (INSERT OR REPLACE, UPDATE, DELETE) with every
//! value bound as a typed parameter, so BLOBs and reals land bit for bit. The applying flag
//! keeps the triggers quiet, so nothing is captured a second time; instead the entries are
//! appended to the local log unchanged (same idx, term, stamp, origin and hash), so both nodes
//! hold the same log. Foreign keys are deferred to the commit, because a batch may carry a
//! child before its parent. The batch is refused whole, nothing applied, if it does not
//! continue the local log exactly (next index, chained hash, no older epoch). Not here: term
//! fencing against the newest term seen, or batch checksums; the shipping layer does those.

use sqlx::SqliteConnection;

use super::entry::{ChangeOp, LogEntry};
use super::error::{StoreError, to_sql_int};
use super::handle::Store;
use super::log_table::{LogPosition, last_position};
use super::sql_text::quote_ident;
use super::value::SqlValue;
use super::writer_transaction::WriterTransaction;

type Values = Vec<(String, SqlValue)>;

impl Store {
    /// Applies `entries` (consecutive, continuing the local log) in one transaction. On any
    /// error nothing is applied and the local log is unchanged.
    pub async fn apply_entries(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let mut transaction = WriterTransaction::begin(&self.writer).await?;
        let previous = last_position(&mut transaction).await?;
        self.check_continues(&previous, entries)?;
        sqlx::query("PRAGMA defer_foreign_keys = ON")
            .execute(&mut *transaction)
            .await?;
        set_applying(&mut transaction, true).await?;
        for entry in entries {
            apply_change(&mut transaction, entry).await?;
            append_entry(&mut transaction, entry).await?;
        }
        set_applying(&mut transaction, false).await?;
        // Deferred foreign-key violations surface here; the failed transaction is then closed.
        transaction
            .commit()
            .await
            .map_err(|source| StoreError::ApplyBatch {
                first_idx: first.idx,
                last_idx: last.idx,
                source,
            })
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

pub(super) async fn set_applying(
    connection: &mut SqliteConnection,
    applying: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE _tandem_applying SET flag = ?")
        .bind(i64::from(applying))
        .execute(connection)
        .await?;
    Ok(())
}

/// Re-executes one change. An update whose row is missing writes the new image instead, which
/// leaves the row exactly as on the peer.
pub(super) async fn apply_change(
    connection: &mut SqliteConnection,
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
        ChangeOp::Insert => {
            upsert(connection, entry, &non_empty(entry.new_values()?, entry)?).await
        }
        ChangeOp::Update => {
            let new_values = non_empty(entry.new_values()?, entry)?;
            match update(connection, entry, &new_values, &key).await {
                Ok(0) => upsert(connection, entry, &new_values).await,
                other => other.map(drop),
            }
        }
        ChangeOp::Delete => delete(connection, entry, &key).await,
    };
    applied.map_err(|source| StoreError::Apply {
        idx: entry.idx,
        table: entry.table.clone(),
        source,
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

async fn upsert(
    connection: &mut SqliteConnection,
    entry: &LogEntry,
    values: &Values,
) -> Result<(), sqlx::Error> {
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
    let query = values
        .iter()
        .fold(sqlx::query(&sql), |query, (_, value)| value.bind_to(query));
    query.execute(connection).await.map(drop)
}

/// Returns the number of rows updated (0 or 1).
async fn update(
    connection: &mut SqliteConnection,
    entry: &LogEntry,
    values: &Values,
    key: &Values,
) -> Result<u64, sqlx::Error> {
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
    let query = values
        .iter()
        .chain(key)
        .fold(sqlx::query(&sql), |query, (_, value)| value.bind_to(query));
    Ok(query.execute(connection).await?.rows_affected())
}

async fn delete(
    connection: &mut SqliteConnection,
    entry: &LogEntry,
    key: &Values,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        quote_ident(&entry.table),
        key_match(key)
    );
    let query = key
        .iter()
        .fold(sqlx::query(&sql), |query, (_, value)| value.bind_to(query));
    query.execute(connection).await.map(drop)
}

/// `"a" IS ? AND "b" IS ?`: IS, not =, because SQLite allows NULL in a non-integer primary key.
fn key_match(key: &Values) -> String {
    let terms: Vec<String> = key
        .iter()
        .map(|(column, _)| format!("{} IS ?", quote_ident(column)))
        .collect();
    terms.join(" AND ")
}

async fn append_entry(
    connection: &mut SqliteConnection,
    entry: &LogEntry,
) -> Result<(), StoreError> {
    let query = sqlx::query(
        "INSERT INTO _tandem_log (idx, term_epoch, term_node, txid, tbl, pk, op, new_image, old_image, \
         hlc_ms, hlc_logical, hlc_node, origin, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    bind_entry(query, entry)?.execute(connection).await?;
    Ok(())
}

/// Binds an entry's fields in `ENTRY_COLUMNS` order (the orphans table takes the same ones).
pub(super) fn bind_entry<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    entry: &'q LogEntry,
) -> Result<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>, StoreError> {
    Ok(query
        .bind(to_sql_int("log index", entry.idx)?)
        .bind(to_sql_int("term epoch", entry.term_epoch)?)
        .bind(&entry.term_node)
        .bind(to_sql_int("txid", entry.txid)?)
        .bind(&entry.table)
        .bind(&entry.pk)
        .bind(entry.op.as_str())
        .bind(&entry.new_image)
        .bind(&entry.old_image)
        .bind(to_sql_int("hlc ms", entry.hlc_ms)?)
        .bind(i64::from(entry.hlc_logical))
        .bind(&entry.hlc_node)
        .bind(&entry.origin)
        // The u64 hash is stored bit for bit in SQLite's i64.
        .bind(entry.hash as i64))
}
