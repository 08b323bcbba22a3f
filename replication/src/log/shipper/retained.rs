//! `RetainedLog`: the shipper's summary of the log it still holds, one record per transaction.
//!
//! It answers the two questions that need sizes: where a batch starting at some index must end
//! (`cut`), and how much of the front may go (`truncate`). Both work on whole transactions, so a
//! batch or a truncation never splits one. It holds no entries: the store does.

use std::collections::VecDeque;

/// One retained transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Transaction {
    /// Its last entry; its first is the previous transaction's last + 1.
    last_index: u64,
    /// Its size as reported by `Appended`.
    bytes: u64,
}

/// How much log to keep (`log_retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct RetentionLimits {
    /// `log_retention.entries`: the log is over when it holds more entries.
    pub entries: u64,
    /// `log_retention.bytes`: the log is over when its transactions add up to more bytes.
    pub bytes: u64,
}

/// The retained log, as the shipper sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct RetainedLog {
    /// The oldest retained entry; `last_index + 1` when nothing is retained.
    first_index: u64,
    /// The last entry ever appended (kept when nothing is retained).
    last_index: u64,
    /// Every retained transaction, oldest first. Bounded: `truncate` keeps at most twice the
    /// retention's entries, and a transaction holds at least one.
    transactions: VecDeque<Transaction>,
    /// Sum of the retained transactions' bytes.
    bytes: u64,
}

impl RetainedLog {
    /// An empty log whose next entry is `last_index + 1`.
    pub fn new(last_index: u64) -> RetainedLog {
        RetainedLog {
            first_index: last_index + 1,
            last_index,
            transactions: VecDeque::new(),
            bytes: 0,
        }
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn entries(&self) -> u64 {
        self.last_index + 1 - self.first_index
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn append(&mut self, last_index: u64, bytes: u64) {
        assert!(
            last_index > self.last_index,
            "appended up to {last_index}, but the log already ends at {}: one writer appends in order",
            self.last_index
        );
        self.last_index = last_index;
        self.transactions
            .push_back(Transaction { last_index, bytes });
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// The last index of a batch starting at `from` (retained, at most `last_index`): whole
    /// transactions while they fit both limits, and always at least the first one.
    pub fn cut(&self, from: u64, entries_max: u64, bytes_max: u64) -> u64 {
        assert!(
            self.first_index <= from && from <= self.last_index,
            "a batch from {from} outside the retained log {}..={}",
            self.first_index,
            self.last_index
        );
        let start = self.transactions.partition_point(|t| t.last_index < from);
        let mut to = self.transactions[start].last_index;
        let mut bytes = self.transactions[start].bytes;
        // Bounded by `entries_max` iterations: every transaction adds at least one entry.
        for transaction in self.transactions.range(start + 1..) {
            let entries = transaction.last_index - from + 1;
            bytes = bytes.saturating_add(transaction.bytes);
            if entries > entries_max || bytes > bytes_max {
                break;
            }
            to = transaction.last_index;
        }
        to
    }

    /// Drops the oldest transactions while the log is over `limits`, but keeps those holding
    /// entries at or after `protected_from` until the log is over twice the limits, and always
    /// keeps the last transaction. The new first index, if it moved.
    pub fn truncate(
        &mut self,
        limits: RetentionLimits,
        protected_from: Option<u64>,
    ) -> Option<u64> {
        let before = self.first_index;
        while self.transactions.len() > 1 {
            let oldest = self.transactions[0];
            if !self.over(limits, 1) {
                break;
            }
            let protected = protected_from.is_some_and(|from| oldest.last_index >= from);
            if protected && !self.over(limits, 2) {
                break;
            }
            self.transactions.pop_front();
            self.first_index = oldest.last_index + 1;
            self.bytes = self.bytes.saturating_sub(oldest.bytes);
        }
        (self.first_index != before).then_some(self.first_index)
    }

    /// More entries or more bytes than `factor` times the limits.
    fn over(&self, limits: RetentionLimits, factor: u64) -> bool {
        self.entries() > limits.entries.saturating_mul(factor)
            || self.bytes > limits.bytes.saturating_mul(factor)
    }
}
