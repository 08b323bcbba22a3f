//! Everything the shipper asks its driver to do, in order.
//!
//! The driver runs the commands of one `step` in sequence and finishes each before the next: the
//! entries of a `SendBatch` are read before a later `Truncate` removes anything, and a `Degrade`
//! (marking the peer `outdated`) is persisted before the `AckWrites` it releases.

use crate::log::receiver::Refusal;

/// Why the peer cannot acknowledge writes in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unavailable {
    /// The oldest waiting write had waited `waited_ms`, more than `sync_timeout_ms`.
    SyncTimeout { waited_ms: u64 },
    /// The role machine sees the peer as `failed`.
    PeerFailed,
}

/// Why writes are refused before they commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteRefusal {
    /// `sync_strict` and the peer is unavailable.
    PeerUnavailable(Unavailable),
    /// `waiting_writes_max` writes already wait for the peer.
    WaitingWritesFull,
}

/// Why shipping stopped until the stream reconnects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HaltReason {
    /// The peer refused a batch for a reason resending cannot fix: a newer term (this node is
    /// deposed), diverged hashes or a malformed batch.
    Refused(Refusal),
    /// The peer refused `refusals_max` batches in a row that resending should have fixed.
    RefusedRepeatedly(Refusal),
    /// The peer holds entries past our last one: the logs diverged.
    PeerAhead { peer_index: u64, last_index: u64 },
    /// The peer's rolling hash at its position differs from ours: the logs diverged.
    Diverged { peer_index: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShipperCommand {
    /// Read entries `from_index ..= to_index` from the log and send them as one batch.
    SendBatch { from_index: u64, to_index: u64 },
    /// Answer these waiting writes with success.
    AckWrites { write_ids: Vec<u64> },
    /// Answer these committed writes with UNAVAILABLE, "outcome unknown" (`sync_strict`).
    OutcomeUnknown { write_ids: Vec<u64> },
    /// Degrade to async: raise an event and an alert, set `replication.degraded`, mark the peer
    /// `outdated`.
    Degrade { reason: Unavailable },
    /// The peer caught up: back to sync; clear `replication.degraded` and the peer's `outdated`.
    Resync,
    /// Refuse writes before they commit, until `AdmitWrites`.
    RefuseWrites { reason: WriteRefusal },
    /// Admit writes again.
    AdmitWrites,
    /// The peer's position `peer_index` is before the oldest entry retained: send a snapshot.
    NeedSnapshot { peer_index: u64 },
    /// Delete the log entries before `before_index`.
    Truncate { before_index: u64 },
    /// Shipping stopped; raise an alert. It resumes when the stream reconnects.
    Halt { reason: HaltReason },
}
