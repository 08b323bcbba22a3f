//! Client writes and the modes: which waiting writes to answer, the sync timeout and the stall
//! rule, degrading or refusing, returning to sync, and admission. What to send and when is in
//! `window.rs`; nothing here emits a batch.

use super::command::{ShipperCommand, Unavailable, WriteRefusal};
use super::config::Mode;
use super::{Shipper, SyncState, WaitingWrite};

impl Shipper {
    pub(super) fn on_write_waiting(
        &mut self,
        write_id: u64,
        index: u64,
        now_ms: u64,
        out: &mut Vec<ShipperCommand>,
    ) {
        assert!(
            index <= self.log.last_index(),
            "write {write_id} waits for index {index}, which was never appended"
        );
        assert!(
            self.waiting.back().is_none_or(|last| last.index <= index),
            "write {write_id} at index {index} reported out of commit order"
        );
        let write_ids = vec![write_id];
        match self.state {
            SyncState::Async | SyncState::Degraded(_) => {
                out.push(ShipperCommand::AckWrites { write_ids })
            }
            SyncState::Refusing(_) => out.push(ShipperCommand::OutcomeUnknown { write_ids }),
            SyncState::Sync if index <= self.peer.acked_index => {
                out.push(ShipperCommand::AckWrites { write_ids })
            }
            // It committed although writes were refused (a commit already under way): we will not
            // track it, so we cannot say whether the peer will have it.
            SyncState::Sync if self.waiting.len() >= self.config.waiting_writes_max => {
                out.push(ShipperCommand::OutcomeUnknown { write_ids })
            }
            SyncState::Sync => self.waiting.push_back(WaitingWrite {
                write_id,
                index,
                since_ms: now_ms,
            }),
        }
    }

    /// The sync timeout, checked only on a tick that follows the previous one within two
    /// intervals: after a longer gap the process was frozen, so waits restart instead.
    pub(super) fn on_tick(&mut self, now_ms: u64, out: &mut Vec<ShipperCommand>) {
        let stall_gap_ms = 2 * self.config.tick_interval_ms;
        let stalled = now_ms.saturating_sub(self.last_tick_ms) > stall_gap_ms;
        self.last_tick_ms = now_ms;
        if stalled {
            self.clock_restarted_ms = now_ms;
            return;
        }
        let Some(oldest) = self.waiting.front() else {
            return;
        };
        let waited_ms = now_ms.saturating_sub(oldest.since_ms.max(self.clock_restarted_ms));
        if self.state == SyncState::Sync && waited_ms > self.config.sync_timeout_ms {
            self.become_unavailable(Unavailable::SyncTimeout { waited_ms }, out);
        }
    }

    /// Leaves sync: degrades to async and completes every waiting write, or under `sync_strict`
    /// refuses writes and answers every waiting write "outcome unknown".
    pub(super) fn become_unavailable(
        &mut self,
        reason: Unavailable,
        out: &mut Vec<ShipperCommand>,
    ) {
        let write_ids: Vec<u64> = self.waiting.drain(..).map(|w| w.write_id).collect();
        if self.config.sync_strict {
            self.state = SyncState::Refusing(reason);
            self.update_admission(out); // Refuse new writes before answering the committed ones.
            if !write_ids.is_empty() {
                out.push(ShipperCommand::OutcomeUnknown { write_ids });
            }
        } else {
            self.state = SyncState::Degraded(reason);
            // First, so the peer is marked `outdated` before writes it lacks are acknowledged.
            out.push(ShipperCommand::Degrade { reason });
            if !write_ids.is_empty() {
                out.push(ShipperCommand::AckWrites { write_ids });
            }
        }
    }

    /// Back to sync once the peer is connected, healthy and caught up: it acknowledged a batch
    /// that reached the tail (`tail_acked`) or everything we have.
    pub(super) fn resync_if_caught_up(&mut self, tail_acked: bool, out: &mut Vec<ShipperCommand>) {
        let peer = &self.peer;
        let reachable = peer.connected && !peer.failed && peer.position_known;
        let caught_up = tail_acked || peer.acked_index >= self.log.last_index();
        if !reachable || peer.halted.is_some() || !caught_up {
            return;
        }
        match self.state {
            SyncState::Degraded(_) => out.push(ShipperCommand::Resync),
            // Never left sync: `update_admission` admits writes again.
            SyncState::Refusing(_) => {}
            SyncState::Sync | SyncState::Async => return,
        }
        self.state = SyncState::Sync;
    }

    /// Answers the waiting writes the peer's acknowledgement now covers.
    pub(super) fn release_acknowledged_writes(&mut self, out: &mut Vec<ShipperCommand>) {
        let acked_index = self.peer.acked_index;
        let covered = self.waiting.partition_point(|w| w.index <= acked_index);
        if covered > 0 {
            let write_ids = self.waiting.drain(..covered).map(|w| w.write_id).collect();
            out.push(ShipperCommand::AckWrites { write_ids });
        }
    }

    pub(super) fn on_mode_changed(
        &mut self,
        mode: Mode,
        sync_strict: bool,
        out: &mut Vec<ShipperCommand>,
    ) {
        self.config.mode = mode;
        self.config.sync_strict = sync_strict;
        match (mode, self.state) {
            (Mode::Async, SyncState::Async) => {}
            (Mode::Async, _) => {
                self.state = SyncState::Async;
                let write_ids: Vec<u64> = self.waiting.drain(..).map(|w| w.write_id).collect();
                if !write_ids.is_empty() {
                    out.push(ShipperCommand::AckWrites { write_ids });
                }
            }
            (Mode::Sync, SyncState::Async) => {
                self.state = SyncState::Sync;
                if self.peer.failed {
                    self.become_unavailable(Unavailable::PeerFailed, out);
                }
            }
            (Mode::Sync, SyncState::Degraded(reason)) if sync_strict => {
                self.state = SyncState::Refusing(reason);
            }
            (Mode::Sync, SyncState::Refusing(reason)) if !sync_strict => {
                self.state = SyncState::Degraded(reason);
                out.push(ShipperCommand::Degrade { reason });
            }
            (Mode::Sync, _) => {}
        }
    }

    /// Emits `RefuseWrites` or `AdmitWrites` when what writes should get changes.
    pub(super) fn update_admission(&mut self, out: &mut Vec<ShipperCommand>) {
        let wanted = match self.state {
            SyncState::Refusing(reason) => Some(WriteRefusal::PeerUnavailable(reason)),
            _ if self.waiting.len() >= self.config.waiting_writes_max => {
                Some(WriteRefusal::WaitingWritesFull)
            }
            _ => None,
        };
        if wanted != self.refusing_writes {
            out.push(match wanted {
                Some(reason) => ShipperCommand::RefuseWrites { reason },
                None => ShipperCommand::AdmitWrites,
            });
            self.refusing_writes = wanted;
        }
    }
}
