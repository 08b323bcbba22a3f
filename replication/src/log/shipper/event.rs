//! Everything that can happen to the shipper. The driver turns commits, client writes, peer
//! messages, the peer's state and its timer into these.
//!
//! There is deliberately no "batch sent" event: a batch counts as in flight from the `SendBatch`
//! that asked for it, and a send that fails shows as the stream going down (`PeerState`).

use crate::log::receiver::Refusal;

use super::config::Mode;

/// The closed set of inputs of the shipper.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShipperEvent {
    /// One local transaction committed its entries, up to `last_index`, `bytes` long in all. Batches
    /// and truncation never split a transaction, so the passive never holds half of one.
    Appended { last_index: u64, bytes: u64 },
    /// A client write committed at `index` and now waits for its answer: `AckWrites`,
    /// `OutcomeUnknown`, at once or later. Sent in commit order.
    WriteWaiting { write_id: u64, index: u64 },
    /// The peer's position on a new stream: its durable index, and whether its rolling hash there
    /// equals ours (the driver compares the peer's `ReceiverCommand::Position` with the log).
    /// `None` when our log no longer holds that index, so nothing can be compared. Only a
    /// matching position counts as an acknowledgement: a diverged peer's index proves nothing.
    PeerPosition {
        index: u64,
        hash_matches: Option<bool>,
    },
    /// The peer holds everything up to `index` durably (it acknowledged batches we sent, which
    /// passed its hash check, or a snapshot of ours).
    PeerAcked { index: u64 },
    /// The peer refused the batch that started at `from_index`.
    PeerRefused { from_index: u64, refusal: Refusal },
    /// The replication stream is up (`connected`), and the role machine's view of the peer is
    /// `failed`.
    PeerState { connected: bool, failed: bool },
    /// The configuration was reloaded with this mode and `sync_strict`.
    ModeChanged { mode: Mode, sync_strict: bool },
    /// The timer fired, every `tick_interval_ms`: checks `sync_timeout`.
    Tick,
}
