//! `Store::rewind_after`: the rejoining node's half of merge-back (DESIGN.md §4, divergence).
//!
//! Everything after the last common index is first copied to `_tandem_orphans`, then undone
//! from its old images, newest first, and removed from the log, all in one transaction: a crash
//! leaves either the diverged log or the rewound one with every orphan kept, never a mix. The
//! undo is quiet (the applying flag), so it is not captured. Not here: finding the common index
//! (the log core's divergence search) or re-applying the orphans (the active's driver).

use super::apply::{Statements, apply_change, entry_values, set_applying};
use super::entry::{ChangeOp, LogEntry};
use super::error::{StoreError, to_sql_int};
use super::handle::Store;
use super::log_table::{ENTRY_COLUMNS, LogPosition, entry_from_row, last_position};
use super::writer_transaction::{WriterTransaction, write_turn};
use crate::data_api::Value;
use crate::raw_sqlite::RawDb;

/// An entry kept in the orphans table.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptOrphan {
    pub id: i64,
    pub entry: LogEntry,
    /// The last index the rewound log had in common with the active's: the orphan is decided
    /// against the active's changes after it.
    pub diverged_after: u64,
}

impl Store {
    /// Moves the entries after `idx` to the orphans table and undoes their changes. Returns the
    /// orphans, oldest first, and the log's new last position (at `idx`).
    pub async fn rewind_after(&self, idx: u64) -> Result<(Vec<LogEntry>, LogPosition), StoreError> {
        let mut transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM _tandem_log WHERE idx > ? ORDER BY idx"
        ))
        .bind(to_sql_int("idx", idx)?)
        .fetch_all(&mut *transaction)
        .await?;
        let orphans = rows
            .iter()
            .map(|row| entry_from_row(row, true))
            .collect::<Result<Vec<_>, _>>()?;
        {
            let mut handle = transaction.lock_handle().await?;
            let mut statements = Statements::new(RawDb::new(&mut handle));
            statements.run("PRAGMA defer_foreign_keys = ON", &[])?;
            set_applying(&mut statements, true)?;
            // Orphans kept from an earlier rewind parted from the active's log no later than
            // this one did.
            let point = Value::Integer(to_sql_int("diverged_after", idx)?);
            statements.run(
                "UPDATE _tandem_orphans SET diverged_after = ? WHERE diverged_after > ?",
                &[point.clone(), point],
            )?;
            for entry in &orphans {
                keep_orphan(&mut statements, entry, idx)?;
            }
            for entry in orphans.iter().rev() {
                apply_change(&mut statements, &inverse(entry))?;
            }
            statements.run(
                "DELETE FROM _tandem_log WHERE idx > ?",
                &[Value::Integer(to_sql_int("idx", idx)?)],
            )?;
            set_applying(&mut statements, false)?;
        }
        let position = last_position(&mut transaction).await?;
        transaction.commit().await?;
        Ok((orphans, position))
    }

    /// The orphans still kept, oldest first.
    pub async fn orphans(&self) -> Result<Vec<KeptOrphan>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, diverged_after, {ENTRY_COLUMNS} FROM _tandem_orphans ORDER BY id"
        ))
        .fetch_all(&self.reader)
        .await?;
        let read = rows
            .iter()
            .map(|row| {
                let id: i64 = sqlx::Row::try_get(row, "id")?;
                let diverged_after: Option<i64> = sqlx::Row::try_get(row, "diverged_after")?;
                Ok((id, diverged_after, entry_from_row(row, true)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Kept by a version that did not record it: the oldest such orphan's index less one,
        // as merges did before the column.
        let unrecorded = read
            .iter()
            .filter(|(_, diverged_after, _)| diverged_after.is_none())
            .map(|(_, _, entry)| entry.idx.saturating_sub(1))
            .min()
            .unwrap_or(0);
        let kept = read
            .into_iter()
            .map(|(id, diverged_after, entry)| KeptOrphan {
                id,
                entry,
                diverged_after: diverged_after.map_or(unrecorded, |idx| idx.max(0) as u64),
            })
            .collect();
        Ok(kept)
    }

    /// The transactions among the kept orphans whose merge is already in this database: their
    /// request id `merge:<origin>:<txid>` is in `tandem_requests` (a merge write records it in
    /// its own transaction). Such orphans are done, wherever the merge ran: on the active, whose
    /// write came back through replication, or on this node itself while it was active. Empty
    /// if `tandem_requests` does not exist yet.
    pub async fn orphans_already_merged(&self) -> Result<Vec<u64>, StoreError> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tandem_requests'",
        )
        .fetch_one(&self.reader)
        .await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let txids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT o.txid FROM _tandem_orphans o JOIN tandem_requests r \
             ON r.request_id = 'merge:' || o.origin || ':' || o.txid",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(txids.into_iter().map(|txid| txid as u64).collect())
    }

    /// Forgets the orphans of these transactions: the active re-applied them (or recorded them
    /// as conflicts) and that came back through replication. Returns how many were dropped.
    pub async fn drop_orphan_transactions(&self, txids: &[u64]) -> Result<u64, StoreError> {
        let mut transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        let mut dropped = 0;
        for txid in txids {
            dropped += sqlx::query("DELETE FROM _tandem_orphans WHERE txid = ?")
                .bind(to_sql_int("txid", *txid)?)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
        }
        transaction.commit().await?;
        Ok(dropped)
    }

    /// Empties the orphans table (a snapshot brought the sender's own orphans along).
    pub async fn clear_orphans(&self) -> Result<u64, StoreError> {
        let _turn = write_turn(&self.owned).await?;
        Ok(sqlx::query("DELETE FROM _tandem_orphans")
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    /// Forgets the orphans with these ids: they are back through replication, or conflicts.
    pub async fn drop_orphans(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        for id in ids {
            sqlx::query("DELETE FROM _tandem_orphans WHERE id = ?")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

fn keep_orphan(
    statements: &mut Statements<'_>,
    entry: &LogEntry,
    diverged_after: u64,
) -> Result<(), StoreError> {
    let mut values = entry_values(entry)?;
    values.push(Value::Integer(to_sql_int(
        "diverged_after",
        diverged_after,
    )?));
    statements.run(
        "INSERT INTO _tandem_orphans (idx, term_epoch, term_node, txid, tbl, pk, op, new_image, \
         old_image, hlc_ms, hlc_logical, hlc_node, origin, hash, diverged_after, rewound_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         CAST(unixepoch('subsec') * 1000 AS INTEGER))",
        &values,
    )?;
    Ok(())
}

/// The change that undoes `entry`.
fn inverse(entry: &LogEntry) -> LogEntry {
    let mut undo = entry.clone();
    match entry.op {
        ChangeOp::Insert => {
            undo.op = ChangeOp::Delete;
            undo.old_image = entry.new_image.clone();
            undo.new_image = None;
        }
        ChangeOp::Update => {
            undo.new_image = entry.old_image.clone();
            undo.old_image = entry.new_image.clone();
        }
        ChangeOp::Delete => {
            undo.op = ChangeOp::Insert;
            undo.new_image = entry.old_image.clone();
            undo.old_image = None;
        }
    }
    undo
}
