//! Why the passive refused a batch. It travels back to the active, whose shipper decides whether
//! resending can help (`Gap`, `BadChecksum`) or shipping must halt (the others).

use crate::log::term::LogTerm;

/// A batch the receiver did not accept, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The batch's checksum does not match its content: damaged on the way. Resending helps.
    BadChecksum,
    /// The sender's term is older than the newest term this node has seen: the sender was
    /// deposed (DESIGN.md §3, fencing by term).
    StaleTerm {
        batch_term: LogTerm,
        newest_term: LogTerm,
    },
    /// The batch does not start right after the last entry accepted; resend from
    /// `expected_index`.
    Gap { expected_index: u64 },
    /// The batch breaks the shape every batch has.
    Malformed(MalformedBatch),
    /// Entry `index` does not continue this node's log: the two logs diverged before it.
    HashMismatch { index: u64 },
}

/// How a batch broke the shape every batch has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MalformedBatch {
    /// No entries at all.
    Empty,
    /// Entry `index` does not follow the entry before it.
    NotConsecutive { index: u64 },
    /// Entry `index` has a term newer than the sender's: no active ships entries of a later term.
    EntryTermAhead { index: u64 },
    /// Entry `index` has a term older than the entry before it: terms never go back in a log.
    EntryTermBehind { index: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadChecksum => write!(f, "batch checksum does not match its entries"),
            Refusal::StaleTerm {
                batch_term,
                newest_term,
            } => write!(
                f,
                "batch from term {batch_term}, older than term {newest_term}"
            ),
            Refusal::Gap { expected_index } => {
                write!(
                    f,
                    "batch does not start at the expected index {expected_index}"
                )
            }
            Refusal::Malformed(shape) => write!(f, "malformed batch: {shape:?}"),
            Refusal::HashMismatch { index } => {
                write!(
                    f,
                    "entry {index} does not continue this log (hashes differ)"
                )
            }
        }
    }
}
