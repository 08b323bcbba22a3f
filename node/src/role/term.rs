//! Terms: `(epoch, node)`, ordered by epoch and then by the node's rank.
//!
//! A node that promotes takes `max_epoch_seen + 1` under its own name, so two nodes can never hold
//! the same term. Rank breaks ties between equal epochs: higher `priority` first, then the lower
//! name. This module only orders terms; it does not decide who may take one.

use std::cmp::Ordering;

/// A node's rank: the preferred master has the higher priority; the lower name wins a tie.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rank {
    /// Configured `[node] priority`; higher is preferred.
    pub priority: u32,
    /// The node's name, unique in the pair.
    pub name: String,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher priority ranks higher; on equal priority the *lower* name ranks higher.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.name.cmp(&self.name))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A term of office. Only the node named in it may be active in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Term {
    /// Monotonic epoch; a new term always takes a higher epoch than any seen.
    pub epoch: u64,
    /// The node that holds (or was granted) this term, with its rank.
    pub rank: Rank,
}

impl Term {
    pub fn new(epoch: u64, name: impl Into<String>, priority: u32) -> Term {
        Term {
            epoch,
            rank: Rank {
                priority,
                name: name.into(),
            },
        }
    }

    /// The name of the node that holds this term.
    pub fn node(&self) -> &str {
        &self.rank.name
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.rank.cmp(&other.rank))
    }
}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.epoch, self.rank.name)
    }
}

/// Position of the last entry of a node's replication log. Until the replication log exists the
/// driver reports the node's last term with index 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct LogPosition {
    /// Term of the last entry; `None` for an empty log.
    pub term: Option<Term>,
    /// Index of the last entry; 0 for an empty log.
    pub index: u64,
}

impl LogPosition {
    /// Orders positions for the start-up election: the later term, then the higher index.
    pub fn election_key(&self) -> (Option<&Term>, u64) {
        (self.term.as_ref(), self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_first() {
        assert!(Term::new(2, "b", 1) > Term::new(1, "a", 100));
    }

    #[test]
    fn higher_priority_ranks_higher_in_one_epoch() {
        assert!(Term::new(3, "b", 100) > Term::new(3, "a", 50));
    }

    #[test]
    fn lower_name_wins_a_priority_tie() {
        assert!(Term::new(3, "a", 100) > Term::new(3, "b", 100));
        assert_eq!(
            Term::new(3, "a", 100).cmp(&Term::new(3, "a", 100)),
            Ordering::Equal
        );
    }
}
