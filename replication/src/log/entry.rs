//! `EntryContent`: the replicated content of one log entry, and its canonical byte encoding.
//!
//! Both nodes hash the same bytes for the same entry, so the rolling hashes of two logs agree
//! exactly where the logs agree (DESIGN.md §4, divergence). The encoding is fixed here and
//! versioned; it is never produced by a general serializer whose output could change with a
//! library upgrade.
//!
//! This is deliberately not the store's row type: `store` has its own `LogEntry` that mirrors the
//! log table. The driver converts between the two; this module knows nothing of SQL. Images and
//! the primary key are hashed as the exact JSON text the entry carries (as written by the capture
//! triggers) and must never be re-serialized on the way, or the hashes of the two nodes differ.

use super::hlc::Hlc;
use super::term::LogTerm;

/// Bumped whenever the encoding changes, so two versions never silently disagree on hashes.
pub const ENTRY_ENCODING_VERSION: u8 = 1;

/// What a captured change did to its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    /// The byte that stands for the operation in the canonical encoding.
    fn code(self) -> u8 {
        match self {
            Operation::Insert => 1,
            Operation::Update => 2,
            Operation::Delete => 3,
        }
    }
}

/// Everything of an entry that is replicated, and therefore hashed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryContent {
    /// The term the entry was written in: fences entries of deposed actives.
    pub term: LogTerm,
    /// Position in the log, from 1, without gaps.
    pub index: u64,
    /// The replicated table the change belongs to.
    pub table: String,
    /// The row's primary key as JSON text: which row merge-back and conflicts talk about.
    pub primary_key: String,
    /// Insert, update or delete.
    pub operation: Operation,
    /// The row after the change as JSON text (BLOBs as base64); `None` for a delete.
    pub new_image: Option<String>,
    /// The row before the change as JSON text; `None` for an insert. Rewinds an orphaned suffix.
    pub old_image: Option<String>,
    /// When the change happened, for the `newest` conflict policy.
    pub hlc: Hlc,
    /// The node whose client made the change (not the node that shipped it).
    pub origin: String,
    /// The local transaction that made the change: merge-back re-applies orphans by transaction.
    pub txid: u64,
}

impl EntryContent {
    /// The canonical bytes: a version byte, then every field in declaration order. Integers are
    /// little-endian of fixed width; strings are a u64 little-endian byte length and the UTF-8
    /// bytes; an `Option` is a byte 0 (none) or 1 followed by the value. The term contributes its
    /// epoch and node only (see `LogTerm::priority`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.push(ENTRY_ENCODING_VERSION);
        put_u64(&mut out, self.term.epoch);
        put_str(&mut out, &self.term.node);
        put_u64(&mut out, self.index);
        put_str(&mut out, &self.table);
        put_str(&mut out, &self.primary_key);
        out.push(self.operation.code());
        put_optional_str(&mut out, self.new_image.as_deref());
        put_optional_str(&mut out, self.old_image.as_deref());
        put_u64(&mut out, self.hlc.ms);
        out.extend_from_slice(&self.hlc.logical.to_le_bytes());
        put_str(&mut out, &self.hlc.node);
        put_str(&mut out, &self.origin);
        put_u64(&mut out, self.txid);
        out
    }

    /// Enough capacity for `encode` to allocate once.
    fn encoded_len_hint(&self) -> usize {
        let texts = [
            self.term.node.len(),
            self.table.len(),
            self.primary_key.len(),
            self.new_image.as_ref().map_or(0, String::len),
            self.old_image.as_ref().map_or(0, String::len),
            self.hlc.node.len(),
            self.origin.len(),
        ];
        texts.iter().sum::<usize>() + 128
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // usize fits in u64 on every platform we build for.
    put_u64(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_str(out, text);
        }
    }
}
