//! Finishing captured entries before their transaction commits: BLOB markers become base64
//! (see `image`) and each entry gets its rolling hash, chained from the entry before it.
//!
//! Runs inside the client's transaction (or savepoint), so an entry is never durable without
//! its hash and final images. Not here: capturing (the triggers) or the hash function itself
//! (`StoreOptions::rolling_hash`).

use sqlx::SqliteConnection;

use super::entry::{LogEntry, RollingHash};
use super::error::{StoreError, to_sql_int};
use super::image::blob_hex_to_base64;
use super::log_table::{ENTRY_COLUMNS, LogPosition, entry_from_row};

/// Entries finished per query; bounds the memory of a transaction that touched many rows.
const FINISH_CHUNK_ENTRIES: i64 = 1024;

/// Finishes the entries appended after `previous`. Returns their index range (`None` if there
/// are none) and the log position after them.
pub async fn finish_entries(
    connection: &mut SqliteConnection,
    rolling_hash: RollingHash,
    previous: &LogPosition,
) -> Result<(Option<(u64, u64)>, LogPosition), StoreError> {
    let mut last = previous.clone();
    let mut first_idx = None;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM _tandem_log WHERE idx > ? ORDER BY idx LIMIT ?"
        ))
        .bind(to_sql_int("log index", last.idx)?)
        .bind(FINISH_CHUNK_ENTRIES)
        .fetch_all(&mut *connection)
        .await?;
        if rows.is_empty() {
            return Ok((first_idx.map(|first| (first, last.idx)), last));
        }
        let more = rows.len() as i64 == FINISH_CHUNK_ENTRIES;
        for row in &rows {
            let entry = entry_from_row(row, false)?;
            let entry = finish_entry(connection, rolling_hash, entry, last.hash).await?;
            first_idx.get_or_insert(entry.idx);
            last = LogPosition {
                idx: entry.idx,
                term_epoch: entry.term_epoch,
                term_node: entry.term_node,
                hash: entry.hash,
            };
        }
        // A short chunk was the last one: no need to ask again.
        if !more {
            return Ok((first_idx.map(|first| (first, last.idx)), last));
        }
    }
}

async fn finish_entry(
    connection: &mut SqliteConnection,
    rolling_hash: RollingHash,
    mut entry: LogEntry,
    previous_hash: u64,
) -> Result<LogEntry, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "a captured image",
        detail,
    };
    let images = [
        Some(&mut entry.pk),
        entry.new_image.as_mut(),
        entry.old_image.as_mut(),
    ];
    for json in images.into_iter().flatten() {
        if let Some(rewritten) = blob_hex_to_base64(json).map_err(corrupt)? {
            *json = rewritten;
        }
    }
    entry.hash = rolling_hash(previous_hash, &entry);
    sqlx::query(
        "UPDATE _tandem_log SET pk = ?, new_image = ?, old_image = ?, hash = ? WHERE idx = ?",
    )
    .bind(&entry.pk)
    .bind(&entry.new_image)
    .bind(&entry.old_image)
    // The u64 hash is stored bit for bit in SQLite's i64.
    .bind(entry.hash as i64)
    .bind(to_sql_int("log index", entry.idx)?)
    .execute(&mut *connection)
    .await?;
    Ok(entry)
}
