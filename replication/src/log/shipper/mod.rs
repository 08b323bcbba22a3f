//! The shipper: the active side of shipping, sans-IO.
//!
//! `Shipper::step(event, now_ms) -> Vec<ShipperCommand>` decides which entries to send and when
//! (a window of batches in flight, cut at transaction boundaries), which waiting writes to answer,
//! when to degrade to async or refuse writes (`sync_strict`) and when to return to sync, when the
//! peer needs a snapshot, and how much log to truncate (DESIGN.md §4).
//!
//! It deliberately does no IO and holds no entries: the driver reads the log, sends, commits, and
//! answers clients. No clock either: `now_ms` is a monotonic clock chosen by the driver. It does not
//! take snapshots or resolve divergence; it says when they are needed (`NeedSnapshot`, `Halt`).
//!
//! # Rules where DESIGN.md is silent
//! - **Batches** hold whole transactions, so the passive never applies half of one; a transaction
//!   over the batch limits goes alone, whole. At most `batches_in_flight_max` are unacknowledged.
//! - **Trust**: on a new stream the peer's announced position counts as an acknowledgement only if
//!   its rolling hash there matches ours (`PeerPosition::hash_matches`); a mismatch halts
//!   (`Diverged`). Otherwise only acknowledgements of what we shipped (checked against the hashes
//!   by the receiver) or of a snapshot release writes, so a diverged peer can never complete a
//!   sync write nor bring back sync.
//! - **Caught up** (back to sync): the peer acknowledged a batch that ended at our last entry when
//!   it was cut (or acknowledged our last entry). Its lag is then what one round trip writes, so
//!   this can happen under steady load, unlike "acked == last".
//! - **Stall**: a `Tick` more than two intervals after the previous one restarts the clock of every
//!   waiting write instead of checking `sync_timeout`; only a later, normal tick can time out.
//! - **Retention**: the configured bounds win over a disconnected or `failed` peer. A connected
//!   peer's unacknowledged entries are kept beyond them, up to twice the bounds; past that the
//!   bounds win again (down to twice them) and the peer gets `NeedSnapshot`. The last transaction
//!   is never truncated, so the log's last index and hash stay readable.
//! - **Refusals**: a gap or a bad checksum is resent (from where the peer expects, or the refused
//!   batch), up to `refusals_max` in a row; anything else (a newer term, diverged hashes, a
//!   malformed batch, a peer ahead of us) halts shipping until the stream reconnects. Waiting
//!   writes then time out as usual.
//! - **Waiting writes**: at `waiting_writes_max`, writes are refused before commit
//!   (`WaitingWritesFull`) and admitted again below it; one that commits anyway gets
//!   `OutcomeUnknown`, in either mode, since it cannot be tracked.
//! - **Strict**: `sync_strict` never emits `Degrade` (no acknowledged write is missing on the
//!   peer, so it stays `consistent`); it refuses writes and answers the waiting ones "outcome
//!   unknown", and admits writes again on catch-up.

mod command;
mod config;
mod event;
mod retained;
mod window;
mod writes;

pub use command::{HaltReason, ShipperCommand, Unavailable, WriteRefusal};
pub use config::{
    BATCH_BYTES_LIMIT, BATCH_ENTRIES_LIMIT, BATCHES_IN_FLIGHT_LIMIT, ConfigError, Mode,
    REFUSALS_LIMIT, RETENTION_ENTRIES_LIMIT, ShipperConfig, WAITING_WRITES_LIMIT,
};
pub use event::ShipperEvent;

use std::collections::VecDeque;

use retained::RetainedLog;

/// Where replication stands with respect to client writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncState {
    /// Writes wait for the peer's acknowledgement.
    Sync,
    /// Configured `async`: writes complete on the local commit.
    Async,
    /// Degraded to async (not `sync_strict`) until the peer catches up; the peer is `outdated`.
    Degraded(Unavailable),
    /// `sync_strict` and the peer is unavailable: writes are refused until it catches up.
    Refusing(Unavailable),
}

/// A batch sent and not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InFlightBatch {
    /// Its first index: refusals name the batch by it.
    from_index: u64,
    /// Its last index: an acknowledgement of it frees a slot of the window.
    to_index: u64,
    /// It ended at the log's last entry when it was cut: its acknowledgement means caught up.
    reached_tail: bool,
}

/// A committed client write that waits for the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct WaitingWrite {
    /// The driver's id, handed back in `AckWrites` or `OutcomeUnknown`.
    write_id: u64,
    /// The write's last entry: the peer must acknowledge it.
    index: u64,
    /// When it started waiting, for `sync_timeout_ms`.
    since_ms: u64,
}

/// What the shipper knows of the peer and of the stream to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PeerProgress {
    /// The replication stream is up; batches go only on it.
    connected: bool,
    /// The role machine's view of the peer is `failed`: degrade, and retain for it no longer.
    failed: bool,
    /// The peer told its position on this stream (`PeerPosition`); nothing is sent before, since
    /// we would not know where to start, and no acknowledgement is taken before either.
    position_known: bool,
    /// The peer's durable index: writes up to it are acknowledged.
    acked_index: u64,
    /// The next entry to put in a batch.
    next_index: u64,
    /// `NeedSnapshot` was sent for the current position: nothing is sent until the peer's
    /// position is retained again.
    snapshot_needed: bool,
    /// Shipping stopped until the stream reconnects.
    halted: Option<HaltReason>,
    /// Refusals in a row that resending should have fixed; reset by progress and reconnects.
    refusals_in_a_row: u32,
}

/// The active side of shipping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipper {
    /// Validated settings; `ModeChanged` updates `mode` and `sync_strict`.
    config: ShipperConfig,
    /// Sync, async, degraded or refusing.
    state: SyncState,
    /// The retained log's indices and sizes, for batches and truncation.
    log: RetainedLog,
    /// The stream to the peer and how far the peer is: where batches start, what is acknowledged.
    peer: PeerProgress,
    /// Batches sent and unacknowledged, oldest first. Bounded by `batches_in_flight_max`: at the
    /// bound nothing more is sent until an acknowledgement frees a slot.
    in_flight: VecDeque<InFlightBatch>,
    /// Writes waiting for the peer, in commit (index) order. Bounded by `waiting_writes_max`: at
    /// the bound writes are refused before commit (`WaitingWritesFull`), and a write that
    /// committed anyway gets `OutcomeUnknown`.
    waiting: VecDeque<WaitingWrite>,
    /// The refusal last announced (`RefuseWrites`), `None` after `AdmitWrites`: only changes are
    /// emitted.
    refusing_writes: Option<WriteRefusal>,
    /// The previous tick (or the shipper's creation), to detect a stall of the process.
    last_tick_ms: u64,
    /// After a stall, waits count from here: frozen time never times a write out.
    clock_restarted_ms: u64,
}

impl Shipper {
    /// A shipper for a log truncated up to `last_truncated_index` (0 if it never was), with the
    /// peer disconnected. The driver then reports each retained transaction as `Appended`, oldest
    /// first (which truncates, if the retained log is over `log_retention`).
    pub fn new(
        config: ShipperConfig,
        last_truncated_index: u64,
        now_ms: u64,
    ) -> Result<Shipper, ConfigError> {
        config.validate()?;
        let state = match config.mode {
            Mode::Sync => SyncState::Sync,
            Mode::Async => SyncState::Async,
        };
        Ok(Shipper {
            config,
            state,
            log: RetainedLog::new(last_truncated_index),
            peer: PeerProgress {
                connected: false,
                failed: false,
                position_known: false,
                acked_index: 0,
                next_index: last_truncated_index + 1,
                snapshot_needed: false,
                halted: None,
                refusals_in_a_row: 0,
            },
            in_flight: VecDeque::new(),
            waiting: VecDeque::new(),
            refusing_writes: None,
            last_tick_ms: now_ms,
            clock_restarted_ms: now_ms,
        })
    }

    pub fn step(&mut self, event: ShipperEvent, now_ms: u64) -> Vec<ShipperCommand> {
        let mut out = Vec::new();
        match event {
            ShipperEvent::Appended { last_index, bytes } => {
                self.log.append(last_index, bytes);
                self.fill_window(&mut out);
            }
            ShipperEvent::WriteWaiting { write_id, index } => {
                self.on_write_waiting(write_id, index, now_ms, &mut out)
            }
            ShipperEvent::PeerPosition {
                index,
                hash_matches,
            } => self.on_peer_position(index, hash_matches, &mut out),
            ShipperEvent::PeerAcked { index } => self.on_peer_acked(index, &mut out),
            ShipperEvent::PeerRefused {
                from_index,
                refusal,
            } => self.on_peer_refused(from_index, refusal, &mut out),
            ShipperEvent::PeerState { connected, failed } => {
                self.on_peer_state(connected, failed, &mut out)
            }
            ShipperEvent::ModeChanged { mode, sync_strict } => {
                self.on_mode_changed(mode, sync_strict, &mut out)
            }
            ShipperEvent::Tick => self.on_tick(now_ms, &mut out),
        }
        self.update_admission(&mut out);
        if self.truncate(&mut out) {
            // The peer's position may no longer be retained: `NeedSnapshot` now, not later.
            self.fill_window(&mut out);
        }
        out
    }

    pub fn sync_state(&self) -> SyncState {
        self.state
    }

    /// `replication.degraded`: writes are not replicated synchronously because the peer is
    /// unavailable (degraded to async, or refusing under `sync_strict`).
    pub fn degraded(&self) -> bool {
        matches!(self.state, SyncState::Degraded(_) | SyncState::Refusing(_))
    }

    /// Writes may commit (no `RefuseWrites` in force).
    pub fn admits_writes(&self) -> bool {
        self.refusing_writes.is_none()
    }

    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    pub fn peer_acked_index(&self) -> u64 {
        self.peer.acked_index
    }

    /// `replication.lag_entries`.
    pub fn lag_entries(&self) -> u64 {
        self.log.last_index().saturating_sub(self.peer.acked_index)
    }

    pub fn first_retained_index(&self) -> u64 {
        self.log.first_index()
    }

    pub fn retained_entries(&self) -> u64 {
        self.log.entries()
    }

    pub fn retained_bytes(&self) -> u64 {
        self.log.bytes()
    }

    pub fn waiting_writes(&self) -> usize {
        self.waiting.len()
    }

    pub fn batches_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn halted(&self) -> Option<&HaltReason> {
        self.peer.halted.as_ref()
    }
}
