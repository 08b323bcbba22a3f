//! Tests of the ship task's parts that need no stream.

use tandem_replication::store::{ChangeOp, LogEntry};

use super::recent::{RECENT_MAX_BYTES, RECENT_MAX_ENTRIES, RecentEntries};

fn entry(idx: u64, image_bytes: usize) -> LogEntry {
    LogEntry {
        idx,
        term_epoch: 1,
        term_node: "a".into(),
        txid: idx,
        table: "t".into(),
        pk: format!("{{\"id\":{idx}}}"),
        op: ChangeOp::Insert,
        new_image: Some("x".repeat(image_bytes)),
        old_image: None,
        hlc_ms: 1,
        hlc_logical: 0,
        hlc_node: "a".into(),
        origin: "a".into(),
        hash: idx,
    }
}

fn indexes(entries: Option<Vec<LogEntry>>) -> Option<Vec<u64>> {
    entries.map(|entries| entries.iter().map(|entry| entry.idx).collect())
}

#[test]
fn recent_entries_serve_only_ranges_they_hold_whole() {
    let mut recent = RecentEntries::default();
    assert_eq!(indexes(recent.range(1, 1)), None);
    recent.push(vec![entry(1, 10), entry(2, 10)], 2);
    recent.push(vec![entry(3, 10)], 3);
    assert_eq!(indexes(recent.range(1, 3)), Some(vec![1, 2, 3]));
    assert_eq!(indexes(recent.range(2, 2)), Some(vec![2]));
    assert_eq!(indexes(recent.range(2, 4)), None, "4 is not held");
    assert_eq!(indexes(recent.range(0, 2)), None, "0 is not held");

    // A write too large to hand over leaves a gap: the window starts afresh.
    recent.push(Vec::new(), 5);
    assert_eq!(indexes(recent.range(3, 3)), None);
    recent.push(vec![entry(6, 10)], 6);
    assert_eq!(indexes(recent.range(6, 6)), Some(vec![6]));
    // Entries that do not continue the window replace it.
    recent.push(vec![entry(9, 10)], 9);
    assert_eq!(indexes(recent.range(6, 6)), None);
    assert_eq!(indexes(recent.range(9, 9)), Some(vec![9]));
}

#[test]
fn recent_entries_are_bounded_by_count_and_bytes() {
    let mut recent = RecentEntries::default();
    for idx in 1..=(RECENT_MAX_ENTRIES as u64 + 10) {
        recent.push(vec![entry(idx, 1)], idx);
    }
    assert_eq!(recent.entries.len(), RECENT_MAX_ENTRIES);
    assert_eq!(recent.entries.front().map(|e| e.idx), Some(11));

    let mut recent = RecentEntries::default();
    let big = RECENT_MAX_BYTES / 3;
    for idx in 1..=4 {
        recent.push(vec![entry(idx, big)], idx);
    }
    assert!(recent.bytes <= RECENT_MAX_BYTES, "{}", recent.bytes);
    assert_eq!(indexes(recent.range(4, 4)), Some(vec![4]));
    assert_eq!(indexes(recent.range(1, 1)), None, "the oldest went first");
}
