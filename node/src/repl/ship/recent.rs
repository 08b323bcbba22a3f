//! `RecentEntries`: the newest committed entries as the writer handed them over, so a batch of
//! them is shipped without reading the log back. Bounded by count and bytes; a range it does not
//! hold whole is read from the log instead.

use std::collections::VecDeque;

use tandem_replication::store::LogEntry;

/// Bounds of the newest entries kept in memory for shipping.
pub(super) const RECENT_MAX_ENTRIES: usize = 4096;
pub(super) const RECENT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The newest committed entries, consecutive, as the writer handed them over. Only the writer
/// appends to the log while this node is active in a term, so these are the log's entries; a
/// gap (a write too large to hand over) starts the window afresh.
#[derive(Default)]
pub(super) struct RecentEntries {
    pub(super) entries: VecDeque<LogEntry>,
    pub(super) bytes: usize,
}

impl RecentEntries {
    /// Adds the entries committed up to `last_index`.
    pub(super) fn push(&mut self, entries: Vec<LogEntry>, last_index: u64) {
        let continues = |first: &LogEntry, held: &VecDeque<LogEntry>| {
            held.back().is_none_or(|back| back.idx + 1 == first.idx)
        };
        match entries.first() {
            Some(first) if continues(first, &self.entries) => {}
            _ => {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        if entries.last().is_none_or(|last| last.idx != last_index) {
            return;
        }
        for entry in entries {
            self.bytes += entry.approx_size_bytes();
            self.entries.push_back(entry);
        }
        while self.entries.len() > RECENT_MAX_ENTRIES || self.bytes > RECENT_MAX_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.approx_size_bytes(),
                None => break,
            }
        }
    }

    /// The entries `from..=to`, if all are held.
    pub(super) fn range(&self, from: u64, to: u64) -> Option<Vec<LogEntry>> {
        let first = self.entries.front()?.idx;
        let last = self.entries.back()?.idx;
        if from < first || to > last || from > to {
            return None;
        }
        let start = usize::try_from(from - first).ok()?;
        let end = usize::try_from(to - first).ok()?;
        Some(self.entries.range(start..=end).cloned().collect())
    }
}
