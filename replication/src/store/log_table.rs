//! Reading the log table: positions, batches for shipping, and retention.
//!
//! The log lives in `_tandem_log` inside `data.db`, so an entry commits (or not) together with
//! the change it describes, and a snapshot copy carries its own log. Reads go through the
//! read-only pool, so shipping never holds up the writer. Not here: deciding what to ship or
//! when to truncate (the log core), appending (`write`, `apply`).

use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row, SqliteConnection};

use super::entry::{ChangeOp, LogEntry};
use super::error::{StoreError, from_sql_int};
use super::handle::Store;
use super::value::SqlValue;
use crate::data_api::Value;
use crate::raw_sqlite::{Prepared, RawDb};

/// The last entry of a log: what heartbeats carry and what election compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// 0 for an empty log.
    pub idx: u64,
    pub term_epoch: u64,
    pub term_node: String,
    /// 0 for an empty log: the hash the first entry chains from.
    pub hash: u64,
}

pub(super) const ENTRY_COLUMNS: &str = "idx, term_epoch, term_node, txid, tbl, pk, op, new_image, \
     old_image, hlc_ms, hlc_logical, hlc_node, origin, hash";

impl Store {
    /// Up to `max_entries` entries after `after_idx`, in order, stopping before `max_bytes`
    /// (by `LogEntry::approx_size_bytes`) would be exceeded, but always at least one entry if
    /// there is one, so a single large entry cannot stall shipping. Fails with `LogCompacted`
    /// when retention already dropped the entry after `after_idx`: the peer needs a snapshot.
    pub async fn read_log(
        &self,
        after_idx: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut transaction = self.reader.begin().await?;
        let first: Option<i64> = sqlx::query_scalar("SELECT min(idx) FROM _tandem_log")
            .fetch_one(&mut *transaction)
            .await?;
        let first = first
            .map(|idx| from_sql_int("_tandem_log.idx", idx))
            .transpose()?;
        if let Some(first) = first
            && first > after_idx.saturating_add(1)
        {
            return Err(StoreError::LogCompacted {
                after_idx,
                first_retained: first,
            });
        }
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM _tandem_log WHERE idx > ? ORDER BY idx LIMIT ?"
        ))
        .bind(i64::try_from(after_idx).unwrap_or(i64::MAX))
        .bind(i64::try_from(max_entries).unwrap_or(i64::MAX))
        .fetch_all(&mut *transaction)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        for row in &rows {
            let entry = entry_from_row(row, true)?;
            bytes = bytes.saturating_add(entry.approx_size_bytes());
            if bytes > max_bytes && !entries.is_empty() {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The last entry's position; all zero for an empty log.
    pub async fn last_log_position(&self) -> Result<LogPosition, StoreError> {
        let mut connection = self.reader.acquire().await?;
        last_position(&mut connection).await
    }

    /// The newest HLC stamp in the log and the kept orphans as (ms, logical, node), or `None`
    /// when both are empty. Not always the last entry's: a re-applied orphan keeps its older
    /// stamp. One scan of each.
    pub async fn newest_stamp(&self) -> Result<Option<(u64, u32, String)>, StoreError> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT hlc_ms, hlc_logical, hlc_node FROM ( \
                 SELECT hlc_ms, hlc_logical, hlc_node FROM _tandem_log \
                 WHERE hlc_ms = (SELECT max(hlc_ms) FROM _tandem_log) \
                 UNION ALL \
                 SELECT hlc_ms, hlc_logical, hlc_node FROM _tandem_orphans \
                 WHERE hlc_ms = (SELECT max(hlc_ms) FROM _tandem_orphans)) \
             ORDER BY hlc_ms DESC, hlc_logical DESC, hlc_node DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(ms, logical, node)| {
            Ok((
                from_sql_int("_tandem_log.hlc_ms", ms)?,
                u32::try_from(logical).map_err(|_| StoreError::Corrupt {
                    what: "_tandem_log.hlc_logical",
                    detail: logical.to_string(),
                })?,
                node,
            ))
        })
        .transpose()
    }

    /// The first index still held, or `None` for an empty log.
    pub async fn first_log_idx(&self) -> Result<Option<u64>, StoreError> {
        let first: Option<i64> = sqlx::query_scalar("SELECT min(idx) FROM _tandem_log")
            .fetch_one(&self.reader)
            .await?;
        first
            .map(|idx| from_sql_int("_tandem_log.idx", idx))
            .transpose()
    }

    /// Retention: deletes the entries before `idx`, but never the last entry, which holds the
    /// log's position (term, hash) and keeps the next index from starting over. Returns how
    /// many entries went.
    pub async fn truncate_log_before(&self, idx: u64) -> Result<u64, StoreError> {
        let _turn = super::writer_transaction::write_turn(&self.owned).await?;
        let result = sqlx::query(
            "DELETE FROM _tandem_log WHERE idx < ? AND idx < (SELECT max(idx) FROM _tandem_log)",
        )
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected())
    }
}

impl Store {
    /// The rolling hash of the log at `idx` (0 at index 0), or `None` when the entry is not held
    /// (beyond the last entry, or truncated).
    pub async fn hash_at(&self, idx: u64) -> Result<Option<u64>, StoreError> {
        if idx == 0 {
            return Ok(Some(0));
        }
        let hash: Option<Option<i64>> =
            sqlx::query_scalar("SELECT hash FROM _tandem_log WHERE idx = ?")
                .bind(i64::try_from(idx).unwrap_or(i64::MAX))
                .fetch_optional(&self.reader)
                .await?;
        match hash {
            None => Ok(None),
            Some(hash) => Ok(Some(hash.ok_or_else(missing_hash)? as u64)),
        }
    }
}

/// Selects the last entry's position (`position_from_row` reads it).
pub(super) const LAST_POSITION_SQL: &str =
    "SELECT idx, term_epoch, term_node, hash FROM _tandem_log ORDER BY idx DESC LIMIT 1";

/// The last entry's position as `connection` sees it (inside a transaction: including its own
/// uncommitted entries).
pub(super) async fn last_position(
    connection: &mut SqliteConnection,
) -> Result<LogPosition, StoreError> {
    let row = sqlx::query(LAST_POSITION_SQL)
        .fetch_optional(connection)
        .await?;
    position_from_row(row.as_ref())
}

/// `last_position` inside a synchronous stretch on the writer connection.
pub(super) fn last_position_raw(db: RawDb<'_>) -> Result<LogPosition, StoreError> {
    let mut select = Prepared::store(db, LAST_POSITION_SQL)?;
    if !select.step()? {
        return Ok(LogPosition::default());
    }
    let Ok([idx, term_epoch, term_node, hash]): Result<[Value; 4], _> = select.row().try_into()
    else {
        return Err(StoreError::Corrupt {
            what: "_tandem_log",
            detail: "a row without the log's columns".to_owned(),
        });
    };
    Ok(LogPosition {
        idx: from_sql_int("_tandem_log.idx", integer("_tandem_log.idx", idx)?)?,
        term_epoch: from_sql_int(
            "_tandem_log.term_epoch",
            integer("_tandem_log.term_epoch", term_epoch)?,
        )?,
        term_node: text("_tandem_log.term_node", term_node)?,
        hash: optional_integer("_tandem_log.hash", hash)?.ok_or_else(missing_hash)? as u64,
    })
}

/// Reads the row of `LAST_POSITION_SQL`; no row is the empty log.
pub(super) fn position_from_row(row: Option<&SqliteRow>) -> Result<LogPosition, StoreError> {
    let Some(row) = row else {
        return Ok(LogPosition::default());
    };
    let hash: Option<i64> = row.try_get("hash")?;
    Ok(LogPosition {
        idx: from_sql_int("_tandem_log.idx", row.try_get("idx")?)?,
        term_epoch: from_sql_int("_tandem_log.term_epoch", row.try_get("term_epoch")?)?,
        term_node: row.try_get("term_node")?,
        hash: hash.ok_or_else(missing_hash)? as u64,
    })
}

/// Reads a `_tandem_log` row selected with `ENTRY_COLUMNS`. A NULL hash is an error when
/// `require_hash`; otherwise (entries of the transaction being finished) it reads as 0.
pub(super) fn entry_from_row(row: &SqliteRow, require_hash: bool) -> Result<LogEntry, StoreError> {
    let values = ENTRY_COLUMNS
        .split(", ")
        .map(|name| {
            let index = row.try_column(name)?.ordinal();
            SqlValue::from_row(row, index).map(Value::from)
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    entry_from_values(values, require_hash)
}

/// `entry_from_row` for a row read around sqlx: the values of `ENTRY_COLUMNS`, in order.
pub(super) fn entry_from_values(
    values: Vec<Value>,
    require_hash: bool,
) -> Result<LogEntry, StoreError> {
    let Ok(
        [
            idx,
            term_epoch,
            term_node,
            txid,
            table,
            pk,
            op,
            new_image,
            old_image,
            hlc_ms,
            hlc_logical,
            hlc_node,
            origin,
            hash,
        ],
    ): Result<[Value; 14], _> = values.try_into()
    else {
        return Err(StoreError::Corrupt {
            what: "_tandem_log",
            detail: "a row without the log's columns".to_owned(),
        });
    };
    let hash = optional_integer("_tandem_log.hash", hash)?;
    if hash.is_none() && require_hash {
        return Err(missing_hash());
    }
    let op = text("_tandem_log.op", op)?;
    let hlc_logical = integer("_tandem_log.hlc_logical", hlc_logical)?;
    Ok(LogEntry {
        idx: from_sql_int("_tandem_log.idx", integer("_tandem_log.idx", idx)?)?,
        term_epoch: from_sql_int(
            "_tandem_log.term_epoch",
            integer("_tandem_log.term_epoch", term_epoch)?,
        )?,
        term_node: text("_tandem_log.term_node", term_node)?,
        txid: from_sql_int("_tandem_log.txid", integer("_tandem_log.txid", txid)?)?,
        table: text("_tandem_log.tbl", table)?,
        pk: text("_tandem_log.pk", pk)?,
        op: ChangeOp::parse(&op).ok_or(StoreError::Corrupt {
            what: "_tandem_log.op",
            detail: op.clone(),
        })?,
        new_image: optional_text("_tandem_log.new_image", new_image)?,
        old_image: optional_text("_tandem_log.old_image", old_image)?,
        hlc_ms: from_sql_int("_tandem_log.hlc_ms", integer("_tandem_log.hlc_ms", hlc_ms)?)?,
        hlc_logical: u32::try_from(hlc_logical).map_err(|_| StoreError::Corrupt {
            what: "_tandem_log.hlc_logical",
            detail: hlc_logical.to_string(),
        })?,
        hlc_node: text("_tandem_log.hlc_node", hlc_node)?,
        origin: text("_tandem_log.origin", origin)?,
        // The u64 hash is stored bit for bit in SQLite's i64.
        hash: hash.unwrap_or(0) as u64,
    })
}

fn wrong_class(what: &'static str, value: &Value) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: format!("unexpected value {value:?}"),
    }
}

fn optional_integer(what: &'static str, value: Value) -> Result<Option<i64>, StoreError> {
    match value {
        Value::Null => Ok(None),
        Value::Integer(value) => Ok(Some(value)),
        other => Err(wrong_class(what, &other)),
    }
}

fn integer(what: &'static str, value: Value) -> Result<i64, StoreError> {
    optional_integer(what, value)?.ok_or_else(|| wrong_class(what, &Value::Null))
}

fn optional_text(what: &'static str, value: Value) -> Result<Option<String>, StoreError> {
    match value {
        Value::Null => Ok(None),
        Value::Text(text) => Ok(Some(text)),
        other => Err(wrong_class(what, &other)),
    }
}

fn text(what: &'static str, value: Value) -> Result<String, StoreError> {
    optional_text(what, value)?.ok_or_else(|| wrong_class(what, &Value::Null))
}

fn missing_hash() -> StoreError {
    StoreError::Corrupt {
        what: "_tandem_log.hash",
        detail: "NULL in a committed entry".to_owned(),
    }
}
