//! Everything that can happen to the receiver. The driver turns peer messages and the completion
//! of its apply transactions into these.

use crate::log::batch::Batch;
use crate::log::term::LogTerm;

/// The closed set of inputs of the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReceiverEvent {
    /// A batch arrived from the active.
    Batch(Batch),
    /// The driver's apply transactions up to `index` are committed and fsync'd; `hash` is the
    /// rolling hash of the entry at `index` (the last entry of the batch it committed). With group
    /// commit one report may cover several batches.
    Durable { index: u64, hash: u64 },
    /// A new replication stream from the active opened: announce where this log stands.
    Connected,
    /// A newer term was seen elsewhere (a heartbeat). The role machine has already persisted it.
    TermSeen(LogTerm),
}
