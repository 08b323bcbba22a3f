//! `TransactionReads`: what the plan of a write may read inside that write's own transaction.
//!
//! Merge-back decides each orphan against the row as it is when the orphan is re-applied, not
//! as it was when the merge began (DESIGN.md §4): a client write committed meanwhile must be
//! compared too. So the decision reads the log in the same transaction that then writes, under
//! the same write turn, and no write can come between the two. Read only, and only what merge
//! needs; not a general query API (the Data API's `Query` is that).

use super::entry::LogEntry;
use super::error::{StoreError, from_sql_int, to_sql_int};
use super::log_table::{ENTRY_COLUMNS, entry_from_values};
use crate::data_api::Value;
use crate::raw_sqlite::{Prepared, RawDb};

/// Log entries read per query by `changes_after`.
const SCAN_CHUNK_ENTRIES: i64 = 4096;

/// Reads inside a write's transaction (see the module).
pub struct TransactionReads<'db> {
    db: RawDb<'db>,
}

impl<'db> TransactionReads<'db> {
    pub(super) fn new(db: RawDb<'db>) -> TransactionReads<'db> {
        TransactionReads { db }
    }

    /// Calls `seen(idx, table, primary_key)` for every log entry after `after_idx`, in order,
    /// and returns the index of the last one (`after_idx` if there is none).
    pub fn changes_after(
        &self,
        after_idx: u64,
        mut seen: impl FnMut(u64, &str, &str),
    ) -> Result<u64, StoreError> {
        let mut select = Prepared::store(
            self.db,
            "SELECT idx, tbl, pk FROM _tandem_log WHERE idx > ? ORDER BY idx LIMIT ?",
        )?;
        let mut last = after_idx;
        loop {
            select.reset();
            select.bind(&[
                Value::Integer(to_sql_int("log index", last)?),
                Value::Integer(SCAN_CHUNK_ENTRIES),
            ])?;
            let mut rows = 0;
            while select.step()? {
                rows += 1;
                let row = select.row();
                let [Value::Integer(idx), Value::Text(table), Value::Text(pk)] = row.as_slice()
                else {
                    return Err(StoreError::Corrupt {
                        what: "_tandem_log",
                        detail: format!("an entry reads as {row:?}"),
                    });
                };
                last = from_sql_int("_tandem_log.idx", *idx)?;
                seen(last, table, pk);
            }
            if rows < SCAN_CHUNK_ENTRIES {
                return Ok(last);
            }
        }
    }

    /// The log entry at `idx`, if the log holds it.
    pub fn entry_at(&self, idx: u64) -> Result<Option<LogEntry>, StoreError> {
        let mut select = Prepared::store(
            self.db,
            &format!("SELECT {ENTRY_COLUMNS} FROM _tandem_log WHERE idx = ?"),
        )?;
        select.bind(&[Value::Integer(to_sql_int("log index", idx)?)])?;
        if !select.step()? {
            return Ok(None);
        }
        entry_from_values(select.row(), false).map(Some)
    }

    /// Whether `request_id` is recorded in `tandem_requests` (a write with that id ran).
    pub fn request_recorded(&self, request_id: &str) -> Result<bool, StoreError> {
        let mut select = Prepared::store(
            self.db,
            "SELECT 1 FROM tandem_requests WHERE request_id = ?",
        )?;
        select.bind(&[Value::Text(request_id.to_owned())])?;
        Ok(select.step()?)
    }
}
