//! The part of the role machine's state that must survive a crash.
//!
//! The machine emits `Command::Persist` with a whole `Durable` record before any command that acts
//! on it; the driver writes it to `state.db` with `synchronous=FULL` before running the next
//! command (persist before you send).

use super::term::Term;
use super::types::{DiskState, Monitoring};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Durable {
    /// Highest epoch this node has seen anywhere; a new term takes `max_epoch_seen + 1`.
    pub max_epoch_seen: u64,
    /// The term this node holds (when it is the named node) or last granted/followed.
    pub term: Option<Term>,
    /// Set while a switchover hands over to this term, so that a crash mid-handover restarts
    /// without claiming the old term.
    pub handing_over: Option<Term>,
    /// DRBD-style disk state.
    pub disk: DiskState,
    /// Pair-wide monitoring mode.
    pub monitoring: Monitoring,
    /// Lamport stamp of `monitoring`; the higher stamp wins across the pair.
    pub monitoring_stamp: u64,
    /// This node is ineligible to become active.
    pub maintenance: bool,
}

impl Default for Durable {
    fn default() -> Durable {
        Durable {
            max_epoch_seen: 0,
            term: None,
            handing_over: None,
            disk: DiskState::Consistent,
            monitoring: Monitoring::On,
            monitoring_stamp: 0,
            maintenance: false,
        }
    }
}
