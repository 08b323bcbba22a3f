//! Unit tests of the log core: the exact commands each state emits for each event.
//!
//! Each test builds a shipper or a receiver in a given state through public steps only, then
//! asserts the exact `Vec` of commands of the next steps, as the role machine's tests do. The
//! clock is a plain number of milliseconds that the tests move by hand. Property tests cover the
//! clock (`hlc`) and the hashes (`encoding`).
//!
//! The shipper under test uses small limits (`config`): batches of at most 10 entries or 1000
//! bytes, two in flight, a 1000 ms sync timeout with 100 ms ticks, retention of 100 entries or
//! 10,000 bytes, four waiting writes.

use super::*;

mod degrade;
mod encoding;
mod hlc;
mod receiver;
mod retention;
mod simulation;
mod sync_writes;
mod window;

pub(super) const TICK_MS: u64 = 100;
pub(super) const SYNC_TIMEOUT_MS: u64 = 1000;

pub(super) fn config() -> ShipperConfig {
    ShipperConfig {
        mode: Mode::Sync,
        sync_strict: false,
        sync_timeout_ms: SYNC_TIMEOUT_MS,
        tick_interval_ms: TICK_MS,
        batches_in_flight_max: 2,
        batch_entries_max: 10,
        batch_bytes_max: 1000,
        retention_entries: 100,
        retention_bytes: 10_000,
        waiting_writes_max: 4,
        refusals_max: 3,
    }
}

pub(super) fn strict_config() -> ShipperConfig {
    ShipperConfig {
        sync_strict: true,
        ..config()
    }
}

pub(super) fn send(from_index: u64, to_index: u64) -> ShipperCommand {
    ShipperCommand::SendBatch {
        from_index,
        to_index,
    }
}

pub(super) fn ack_writes(write_ids: &[u64]) -> ShipperCommand {
    ShipperCommand::AckWrites {
        write_ids: write_ids.to_vec(),
    }
}

pub(super) fn outcome_unknown(write_ids: &[u64]) -> ShipperCommand {
    ShipperCommand::OutcomeUnknown {
        write_ids: write_ids.to_vec(),
    }
}

pub(super) fn truncate(before_index: u64) -> ShipperCommand {
    ShipperCommand::Truncate { before_index }
}

/// A shipper under test with the clock its steps run at.
pub(super) struct Active {
    /// The core under test.
    pub shipper: Shipper,
    /// The time of the last step; tests only move it forward.
    pub now_ms: u64,
}

impl Active {
    /// A shipper at time 0 over an empty log, the peer not yet connected.
    pub fn new(config: ShipperConfig) -> Active {
        Active {
            shipper: Shipper::new(config, 0, 0).expect("valid config"),
            now_ms: 0,
        }
    }

    /// A shipper whose peer connected at an empty log: nothing in flight, nothing retained.
    pub fn connected(config: ShipperConfig) -> Active {
        let mut active = Active::new(config);
        assert_eq!(active.peer_state(true, false), vec![]);
        assert_eq!(active.position(0), vec![]);
        active
    }

    pub fn step(&mut self, event: ShipperEvent) -> Vec<ShipperCommand> {
        self.shipper.step(event, self.now_ms)
    }

    /// Runs one event at `now_ms`, which becomes the current time.
    pub fn step_at(&mut self, now_ms: u64, event: ShipperEvent) -> Vec<ShipperCommand> {
        assert!(now_ms >= self.now_ms, "the clock is monotonic");
        self.now_ms = now_ms;
        self.step(event)
    }

    /// One transaction of `entries` entries, 10 bytes each.
    pub fn commit(&mut self, entries: u64) -> Vec<ShipperCommand> {
        self.commit_sized(entries, 10 * entries)
    }

    pub fn commit_sized(&mut self, entries: u64, bytes: u64) -> Vec<ShipperCommand> {
        let last_index = self.shipper.last_index() + entries;
        self.step(ShipperEvent::Appended { last_index, bytes })
    }

    /// A one-entry transaction and the client write waiting for it.
    pub fn write(&mut self, write_id: u64) -> Vec<ShipperCommand> {
        let mut out = self.commit(1);
        let index = self.shipper.last_index();
        out.extend(self.step(ShipperEvent::WriteWaiting { write_id, index }));
        out
    }

    /// The peer's position on a new stream, its hash matching ours.
    pub fn position(&mut self, index: u64) -> Vec<ShipperCommand> {
        self.step(ShipperEvent::PeerPosition {
            index,
            hash_matches: Some(true),
        })
    }

    /// The peer's position on a new stream, where our log no longer holds that index.
    pub fn unverified_position(&mut self, index: u64) -> Vec<ShipperCommand> {
        self.step(ShipperEvent::PeerPosition {
            index,
            hash_matches: None,
        })
    }

    pub fn ack(&mut self, index: u64) -> Vec<ShipperCommand> {
        self.step(ShipperEvent::PeerAcked { index })
    }

    pub fn refused(&mut self, from_index: u64, refusal: Refusal) -> Vec<ShipperCommand> {
        self.step(ShipperEvent::PeerRefused {
            from_index,
            refusal,
        })
    }

    pub fn peer_state(&mut self, connected: bool, failed: bool) -> Vec<ShipperCommand> {
        self.step(ShipperEvent::PeerState { connected, failed })
    }

    /// The next tick, one interval after the current time.
    pub fn tick(&mut self) -> Vec<ShipperCommand> {
        self.step_at(self.now_ms + TICK_MS, ShipperEvent::Tick)
    }

    /// Ticks every interval until `until_ms`; every tick before the last must emit nothing.
    pub fn tick_quietly_until(&mut self, until_ms: u64) -> Vec<ShipperCommand> {
        while self.now_ms + TICK_MS < until_ms {
            assert_eq!(self.tick(), vec![], "tick at {} ms", self.now_ms);
        }
        self.tick()
    }
}
