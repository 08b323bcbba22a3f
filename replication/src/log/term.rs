//! `LogTerm`: the term an entry or a batch was written in, as the log sees it.
//!
//! It mirrors `tandem_node::role::Term` (`(epoch, node)`, ordered by epoch and then by rank: higher
//! priority first, then the lower name) without depending on the node crate, which will depend on
//! this one. The driver converts between the two. This module only orders terms; it deliberately
//! does not decide who may hold one (that is the role machine's job).

use std::cmp::Ordering;

/// A term of office as carried by log entries and batches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogTerm {
    /// Monotonic epoch: a promotion always takes a higher epoch than any seen.
    pub epoch: u64,
    /// The holder's configured priority: breaks ties between equal epochs (split brain), higher
    /// first. Deliberately left out of the entry hash, so a priority change never looks like a
    /// divergence.
    pub priority: u32,
    /// The node that holds the term; the lower name wins a tie of epoch and priority.
    pub node: String,
}

impl LogTerm {
    pub fn new(epoch: u64, node: impl Into<String>, priority: u32) -> LogTerm {
        LogTerm {
            epoch,
            priority,
            node: node.into(),
        }
    }
}

impl Ord for LogTerm {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.priority.cmp(&other.priority))
            // On equal priority the *lower* name ranks higher, as in the role machine.
            .then_with(|| other.node.cmp(&self.node))
    }
}

impl PartialOrd for LogTerm {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for LogTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.epoch, self.node)
    }
}
