//! Between the store and the log core: one entry, two shapes.
//!
//! The store reads and writes rows of `_tandem_log` (`store::LogEntry`); the log core ships and
//! checks `log::HashedEntry`. Both hash an entry the same way, `log::rolling_hash` over
//! `EntryContent::encode`, so an entry hashed by the writer on the active is checked bit for bit by
//! the receiver on the passive and stored there unchanged. `StoreOptions::new` uses
//! `entry_rolling_hash`, so there is one rolling hash in the project.
//!
//! A store row does not carry its term's priority (it orders terms in one epoch only, which the
//! row's epoch and node already pin down); the driver supplies it with `priority_of`.

use crate::log::{EntryContent, HashedEntry, Hlc, LogTerm, Operation, rolling_hash};
use crate::store::{ChangeOp, LogEntry};

/// The rolling hash of the log up to `entry`, as the log core computes it.
pub fn entry_rolling_hash(previous_hash: u64, entry: &LogEntry) -> u64 {
    rolling_hash(previous_hash, &content_of(entry, |_| 0).encode())
}

/// The log core's view of a stored entry.
pub fn content_of(entry: &LogEntry, priority_of: impl Fn(&str) -> u32) -> EntryContent {
    EntryContent {
        term: LogTerm::new(
            entry.term_epoch,
            entry.term_node.clone(),
            priority_of(&entry.term_node),
        ),
        index: entry.idx,
        table: entry.table.clone(),
        primary_key: entry.pk.clone(),
        operation: match entry.op {
            ChangeOp::Insert => Operation::Insert,
            ChangeOp::Update => Operation::Update,
            ChangeOp::Delete => Operation::Delete,
        },
        new_image: entry.new_image.clone(),
        old_image: entry.old_image.clone(),
        hlc: Hlc::new(entry.hlc_ms, entry.hlc_logical, entry.hlc_node.clone()),
        origin: entry.origin.clone(),
        txid: entry.txid,
    }
}

/// A stored entry as it travels: its content and the hash the store recorded.
pub fn hashed_of(entry: &LogEntry, priority_of: impl Fn(&str) -> u32) -> HashedEntry {
    HashedEntry {
        content: content_of(entry, priority_of),
        hash: entry.hash,
    }
}

/// A shipped entry as the receiver stores it.
pub fn stored_of(entry: &HashedEntry) -> LogEntry {
    let content = &entry.content;
    LogEntry {
        idx: content.index,
        term_epoch: content.term.epoch,
        term_node: content.term.node.clone(),
        txid: content.txid,
        table: content.table.clone(),
        pk: content.primary_key.clone(),
        op: match content.operation {
            Operation::Insert => ChangeOp::Insert,
            Operation::Update => ChangeOp::Update,
            Operation::Delete => ChangeOp::Delete,
        },
        new_image: content.new_image.clone(),
        old_image: content.old_image.clone(),
        hlc_ms: content.hlc.ms,
        hlc_logical: content.hlc.logical,
        hlc_node: content.hlc.node.clone(),
        origin: content.origin.clone(),
        hash: entry.hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LogEntry {
        LogEntry {
            idx: 7,
            term_epoch: 3,
            term_node: "a".into(),
            txid: 11,
            table: "extensions".into(),
            pk: r#"{"id":1}"#.into(),
            op: ChangeOp::Update,
            new_image: Some(r#"{"id":1,"name":"x"}"#.into()),
            old_image: None,
            hlc_ms: 1_700_000_000_000,
            hlc_logical: 2,
            hlc_node: "a".into(),
            origin: "a".into(),
            hash: 0,
        }
    }

    #[test]
    fn a_stored_entry_survives_the_trip_to_the_log_core_and_back() {
        let mut stored = entry();
        stored.hash = entry_rolling_hash(99, &stored);
        let shipped = hashed_of(&stored, |_| 100);
        assert_eq!(shipped.content.term.priority, 100);
        assert_eq!(stored_of(&shipped), stored);
    }

    #[test]
    fn the_store_hash_is_the_hash_the_receiver_checks() {
        let stored = entry();
        let from_store = entry_rolling_hash(5, &stored);
        let chained = HashedEntry::chain(5, content_of(&stored, |_| 42));
        assert_eq!(from_store, chained.hash);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = entry_rolling_hash(0, &entry());
        let mut other = entry();
        other.hlc_logical += 1;
        assert_ne!(entry_rolling_hash(0, &other), base);
        let mut other = entry();
        other.old_image = Some("{}".into());
        assert_ne!(entry_rolling_hash(0, &other), base);
        assert_ne!(entry_rolling_hash(1, &entry()), base);
    }
}
