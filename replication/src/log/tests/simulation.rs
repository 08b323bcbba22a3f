//! A shipper and a real receiver wired through two message queues, driven by random sequences of
//! commits, writes, deliveries, disconnects, peer failures, ticks, freezes and mode changes.
//!
//! Safety, checked at every step: a write is acknowledged in sync mode only once the passive holds
//! it durably, unless a `Degrade` came first (or the mode is async); "outcome unknown" only under
//! `sync_strict`; no write is answered twice; the passive never refuses a batch (no gaps, no bad
//! hashes) and the bounds hold. Liveness, checked after a heal phase (peer back, healthy, every
//! message delivered): the passive holds the whole log with the same hash, every write is
//! answered, and the active is back in sync.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::receiver::{content, durable, term};
use super::*;

/// One thing that happens to the pair.
#[derive(Clone, Debug)]
enum Action {
    /// A transaction without a waiting client (a background job).
    Commit {
        entries: u64,
    },
    /// A client write of one entry, if writes are admitted.
    Write,
    /// The oldest batch in flight reaches the passive.
    Deliver,
    /// The oldest answer of the passive reaches the active.
    DeliverAnswer,
    Disconnect,
    Connect,
    PeerFailed(bool),
    Tick {
        after_ms: u64,
    },
    /// The active's process is frozen for a long time, then ticks.
    Freeze,
    Mode {
        mode: Mode,
        sync_strict: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (1u64..15).prop_map(|entries| Action::Commit { entries }),
        4 => Just(Action::Write),
        4 => Just(Action::Deliver),
        4 => Just(Action::DeliverAnswer),
        1 => Just(Action::Disconnect),
        1 => Just(Action::Connect),
        1 => any::<bool>().prop_map(Action::PeerFailed),
        3 => (1u64..400).prop_map(|after_ms| Action::Tick { after_ms }),
        1 => Just(Action::Freeze),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(sync, sync_strict)| Action::Mode {
            mode: if sync { Mode::Sync } else { Mode::Async },
            sync_strict,
        }),
    ]
}

/// The pair and the driver's bookkeeping.
struct Sim {
    /// The shipper on the active.
    active: Active,
    /// The active's log; entry `i` at `log[i - 1]`. Truncation is not carried out here.
    log: Vec<HashedEntry>,
    /// The receiver on the passive; every batch it accepts is durable at once.
    receiver: Receiver,
    /// Batches on their way to the passive.
    to_passive: VecDeque<Batch>,
    /// Acknowledgements and refusals on their way to the active.
    to_active: VecDeque<ReceiverCommand>,
    connected: bool,
    failed: bool,
    /// `sync_strict` as last configured.
    sync_strict: bool,
    /// Writes not yet answered: id to index.
    pending: BTreeMap<u64, u64>,
    next_write_id: u64,
}

impl Sim {
    fn new() -> Sim {
        let config = ShipperConfig {
            retention_entries: 1_000_000,
            retention_bytes: 1 << 40,
            waiting_writes_max: 8,
            ..config()
        };
        let head = LogHead {
            index: 0,
            hash: GENESIS_HASH,
        };
        Sim {
            active: Active::new(config),
            log: Vec::new(),
            receiver: Receiver::new(head, Some(term(1, "a"))),
            to_passive: VecDeque::new(),
            to_active: VecDeque::new(),
            connected: false,
            failed: false,
            sync_strict: false,
            pending: BTreeMap::new(),
            next_write_id: 1,
        }
    }

    fn run(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Commit { entries } => self.commit(entries),
            Action::Write => self.write(),
            Action::Deliver => self.deliver(),
            Action::DeliverAnswer => self.deliver_answer(),
            Action::Disconnect => self.set_peer(false, self.failed),
            Action::Connect => self.set_peer(true, self.failed),
            Action::PeerFailed(failed) => self.set_peer(self.connected, failed),
            Action::Tick { after_ms } => self.step_after(after_ms, ShipperEvent::Tick),
            Action::Freeze => self.step_after(5000, ShipperEvent::Tick),
            Action::Mode { mode, sync_strict } => {
                self.sync_strict = sync_strict;
                self.step(ShipperEvent::ModeChanged { mode, sync_strict })
            }
        }
    }

    fn commit(&mut self, entries: u64) -> Result<(), TestCaseError> {
        for _ in 0..entries {
            let previous = self.log.last().map_or(GENESIS_HASH, |entry| entry.hash);
            let index = self.log.len() as u64 + 1;
            let entry = HashedEntry::chain(previous, content(&term(1, "a"), index));
            self.log.push(entry);
        }
        let last_index = self.log.len() as u64;
        self.step(ShipperEvent::Appended {
            last_index,
            bytes: 10 * entries,
        })
    }

    fn write(&mut self) -> Result<(), TestCaseError> {
        if !self.active.shipper.admits_writes() {
            return Ok(()); // The driver refuses it before it commits.
        }
        self.commit(1)?;
        let (write_id, index) = (self.next_write_id, self.log.len() as u64);
        self.next_write_id += 1;
        self.pending.insert(write_id, index);
        self.step(ShipperEvent::WriteWaiting { write_id, index })
    }

    fn deliver(&mut self) -> Result<(), TestCaseError> {
        let Some(batch) = self.to_passive.pop_front() else {
            return Ok(());
        };
        for command in self.receiver.step(ReceiverEvent::Batch(batch)) {
            match command {
                ReceiverCommand::Apply { batch } => {
                    let acks = self.receiver.step(durable(&batch));
                    self.to_active.extend(acks);
                }
                ReceiverCommand::Refuse { refusal, .. } => {
                    prop_assert!(false, "the passive refused a batch: {refusal}");
                }
                ReceiverCommand::PersistTerm { .. }
                | ReceiverCommand::Ack { .. }
                | ReceiverCommand::Position { .. } => {}
            }
        }
        Ok(())
    }

    fn deliver_answer(&mut self) -> Result<(), TestCaseError> {
        match self.to_active.pop_front() {
            Some(ReceiverCommand::Ack { index }) => self.step(ShipperEvent::PeerAcked { index }),
            Some(ReceiverCommand::Position { index, hash }) => {
                // What the driver does: compare with its own log's hash at that index.
                let ours = match index {
                    0 => Some(GENESIS_HASH),
                    _ => self.log.get(index as usize - 1).map(|entry| entry.hash),
                };
                let hash_matches = ours.map(|ours| ours == hash);
                self.step(ShipperEvent::PeerPosition {
                    index,
                    hash_matches,
                })
            }
            Some(other) => Err(TestCaseError::fail(format!("unexpected answer {other:?}"))),
            None => Ok(()),
        }
    }

    /// The stream goes down or comes up (the queues die with it), or the peer's health changes.
    fn set_peer(&mut self, connected: bool, failed: bool) -> Result<(), TestCaseError> {
        let reconnected = connected && !self.connected;
        if connected != self.connected {
            self.to_passive.clear();
            self.to_active.clear();
        }
        self.connected = connected;
        self.failed = failed;
        self.step(ShipperEvent::PeerState { connected, failed })?;
        if reconnected {
            let announce = self.receiver.step(ReceiverEvent::Connected);
            self.to_active.extend(announce);
        }
        Ok(())
    }

    fn step_after(&mut self, after_ms: u64, event: ShipperEvent) -> Result<(), TestCaseError> {
        self.active.now_ms += after_ms;
        self.step(event)
    }

    /// Runs one event and every command it returns, checking the safety properties.
    fn step(&mut self, event: ShipperEvent) -> Result<(), TestCaseError> {
        let to_async = matches!(
            event,
            ShipperEvent::ModeChanged {
                mode: Mode::Async,
                ..
            }
        );
        let before = self.active.shipper.sync_state();
        let mut may_ack_unreplicated =
            to_async || matches!(before, SyncState::Async | SyncState::Degraded(_));
        for command in self.active.step(event) {
            match command {
                ShipperCommand::SendBatch {
                    from_index,
                    to_index,
                } => self.send(from_index, to_index)?,
                ShipperCommand::AckWrites { write_ids } => {
                    for write_id in write_ids {
                        let index = self.answer(write_id)?;
                        let durable = self.receiver.durable_index();
                        prop_assert!(may_ack_unreplicated || index <= durable);
                    }
                }
                ShipperCommand::OutcomeUnknown { write_ids } => {
                    prop_assert!(self.sync_strict, "outcome unknown without sync_strict");
                    for write_id in write_ids {
                        self.answer(write_id)?;
                    }
                }
                ShipperCommand::Degrade { .. } => may_ack_unreplicated = true,
                ShipperCommand::NeedSnapshot { .. } | ShipperCommand::Halt { .. } => {
                    prop_assert!(false, "unexpected {command:?}");
                }
                ShipperCommand::Resync
                | ShipperCommand::RefuseWrites { .. }
                | ShipperCommand::AdmitWrites
                | ShipperCommand::Truncate { .. } => {}
            }
        }
        prop_assert!(self.active.shipper.batches_in_flight() <= 2);
        prop_assert!(self.active.shipper.waiting_writes() <= 8);
        Ok(())
    }

    fn send(&mut self, from_index: u64, to_index: u64) -> Result<(), TestCaseError> {
        prop_assert!(self.connected, "a batch sent while disconnected");
        prop_assert!(1 <= from_index && from_index <= to_index);
        prop_assert!(to_index <= self.log.len() as u64);
        let entries = self.log[(from_index - 1) as usize..to_index as usize].to_vec();
        self.to_passive.push_back(Batch::new(term(1, "a"), entries));
        Ok(())
    }

    /// Marks a write answered; the index it waited for.
    fn answer(&mut self, write_id: u64) -> Result<u64, TestCaseError> {
        self.pending
            .remove(&write_id)
            .ok_or_else(|| TestCaseError::fail(format!("write {write_id} answered twice")))
    }

    /// The peer comes back healthy, in sync mode, and every message is delivered.
    fn heal(&mut self) -> Result<(), TestCaseError> {
        self.sync_strict = false;
        self.step(ShipperEvent::ModeChanged {
            mode: Mode::Sync,
            sync_strict: false,
        })?;
        self.set_peer(true, false)?;
        // Each round delivers at least one message while any is queued; the window bounds them.
        for _ in 0..10 * (self.log.len() + 10) {
            if self.to_passive.is_empty() && self.to_active.is_empty() {
                break;
            }
            self.deliver()?;
            self.deliver_answer()?;
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn writes_are_acknowledged_only_when_safe_and_the_pair_converges(
        actions in proptest::collection::vec(action(), 1..150),
    ) {
        let mut sim = Sim::new();
        for action in actions {
            sim.run(action)?;
        }
        sim.heal()?;

        let last_index = sim.log.len() as u64;
        prop_assert_eq!(sim.receiver.durable_index(), last_index);
        let last_hash = sim.log.last().map_or(GENESIS_HASH, |entry| entry.hash);
        prop_assert_eq!(sim.receiver.accepted().hash, last_hash);
        prop_assert_eq!(sim.active.shipper.peer_acked_index(), last_index);
        prop_assert!(sim.pending.is_empty(), "unanswered writes: {:?}", sim.pending);
        prop_assert_eq!(sim.active.shipper.sync_state(), SyncState::Sync);
        prop_assert!(sim.active.shipper.admits_writes());
    }
}
