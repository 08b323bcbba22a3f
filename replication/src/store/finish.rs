//! Finishing captured entries before their transaction commits: BLOB markers become base64
//! (see `image`) and each entry gets its rolling hash, chained from the entry before it.
//!
//! Runs inside the client's transaction (or savepoint), so an entry is never durable without
//! its hash and final images. Not here: capturing (the triggers) or the hash function itself
//! (`StoreOptions::rolling_hash`).

use super::entry::{LogEntry, RollingHash};
use super::error::{StoreError, to_sql_int};
use super::image::blob_hex_to_base64;
use super::log_table::{ENTRY_COLUMNS, LogPosition, entry_from_values};
use crate::data_api::Value;
use crate::raw_sqlite::{Prepared, RawDb};

/// Entries finished per query; bounds the memory of a transaction that touched many rows.
const FINISH_CHUNK_ENTRIES: i64 = 1024;
/// Finished entries handed back to the caller at most (for shipping without reading them back);
/// a transaction with more hands back none.
pub(super) const HANDED_BACK_ENTRIES: usize = 1024;

/// What finishing a write's entries produced.
#[derive(Debug)]
pub(super) struct Finished {
    /// The index range of the entries (`None` if there are none).
    pub(super) log_range: Option<(u64, u64)>,
    /// The log position after them.
    pub(super) last: LogPosition,
    /// The finished entries, as stored; empty when there were more than `HANDED_BACK_ENTRIES`.
    pub(super) entries: Vec<LogEntry>,
}

/// Finishes the entries appended after `previous`.
pub(super) fn finish_entries(
    db: RawDb<'_>,
    rolling_hash: RollingHash,
    previous: &LogPosition,
) -> Result<Finished, StoreError> {
    let mut select = Prepared::store(
        db,
        &format!("SELECT {ENTRY_COLUMNS} FROM _tandem_log WHERE idx > ? ORDER BY idx LIMIT ?"),
    )?;
    let mut update = Prepared::store(
        db,
        "UPDATE _tandem_log SET pk = ?, new_image = ?, old_image = ?, hash = ? WHERE idx = ?",
    )?;
    let mut last = previous.clone();
    let mut first_idx = None;
    let mut entries = Vec::new();
    let mut too_many = false;
    let finished = |first_idx: Option<u64>, last: LogPosition, entries| Finished {
        log_range: first_idx.map(|first| (first, last.idx)),
        last,
        entries,
    };
    loop {
        select.reset();
        select.bind(&[
            Value::Integer(to_sql_int("log index", last.idx)?),
            Value::Integer(FINISH_CHUNK_ENTRIES),
        ])?;
        let mut rows = Vec::new();
        while select.step()? {
            rows.push(select.row());
        }
        if rows.is_empty() {
            return Ok(finished(first_idx, last, entries));
        }
        let more = rows.len() as i64 == FINISH_CHUNK_ENTRIES;
        for row in rows {
            let entry = entry_from_values(row, false)?;
            let entry = finish_entry(&mut update, rolling_hash, entry, last.hash)?;
            first_idx.get_or_insert(entry.idx);
            last = LogPosition {
                idx: entry.idx,
                term_epoch: entry.term_epoch,
                term_node: entry.term_node.clone(),
                hash: entry.hash,
            };
            if !too_many {
                entries.push(entry);
                if entries.len() > HANDED_BACK_ENTRIES {
                    too_many = true;
                    entries = Vec::new();
                }
            }
        }
        // A short chunk was the last one: no need to ask again.
        if !more {
            return Ok(finished(first_idx, last, entries));
        }
    }
}

fn finish_entry(
    update: &mut Prepared<'_>,
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
    let text = |text: &Option<String>| text.clone().map_or(Value::Null, Value::Text);
    update.reset();
    update.bind(&[
        Value::Text(entry.pk.clone()),
        text(&entry.new_image),
        text(&entry.old_image),
        // The u64 hash is stored bit for bit in SQLite's i64.
        Value::Integer(entry.hash as i64),
        Value::Integer(to_sql_int("log index", entry.idx)?),
    ])?;
    while update.step()? {}
    Ok(entry)
}
