//! Everything the receiver asks its driver to do, in order.
//!
//! The driver runs the commands of one `step` in sequence and finishes each before the next: a
//! `PersistTerm` is durable before the `Apply` that follows it.

use crate::log::batch::Batch;
use crate::log::term::LogTerm;

use super::refusal::Refusal;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReceiverCommand {
    /// Persist `term` as the newest term seen (fsync) before applying anything from it: after a
    /// restart this node must still refuse the terms it has fenced off.
    PersistTerm { term: LogTerm },
    /// Apply the batch in one transaction (foreign keys deferred), keep its entries in the log,
    /// and report `ReceiverEvent::Durable` once it is committed.
    Apply { batch: Batch },
    /// Tell the active that the batch starting at `from_index` was refused.
    Refuse { from_index: u64, refusal: Refusal },
    /// Tell the active that everything up to `index` is durable here.
    Ack { index: u64 },
    /// Tell the active, on a new stream, where the durable log ends and its hash there, so the
    /// active can check the two logs agree before it trusts the position.
    Position { index: u64, hash: u64 },
}
