//! The window of batches in flight: what to send next, acknowledgements, refusals, the stream's
//! state, and truncating the log behind the peer. Answering writes and the modes are in
//! `writes.rs`; this file only calls into them when the peer's position moves.

use std::collections::VecDeque;

use crate::log::receiver::Refusal;

use super::command::{HaltReason, ShipperCommand, Unavailable};
use super::retained::RetentionLimits;
use super::{InFlightBatch, Shipper, SyncState};

impl Shipper {
    /// Sends batches until the window is full or everything is sent; asks for a snapshot instead
    /// when the peer's position is no longer retained.
    pub(super) fn fill_window(&mut self, out: &mut Vec<ShipperCommand>) {
        let peer = &self.peer;
        if !peer.connected || !peer.position_known || peer.snapshot_needed || peer.halted.is_some()
        {
            return;
        }
        // Bounded by `batches_in_flight_max` iterations.
        while self.in_flight.len() < self.config.batches_in_flight_max
            && self.peer.next_index <= self.log.last_index()
        {
            let from_index = self.peer.next_index;
            if from_index < self.log.first_index() {
                self.peer.snapshot_needed = true;
                out.push(ShipperCommand::NeedSnapshot {
                    peer_index: from_index - 1,
                });
                return;
            }
            let to_index = self.log.cut(
                from_index,
                self.config.batch_entries_max,
                self.config.batch_bytes_max,
            );
            self.in_flight.push_back(InFlightBatch {
                from_index,
                to_index,
                reached_tail: to_index == self.log.last_index(),
            });
            out.push(ShipperCommand::SendBatch {
                from_index,
                to_index,
            });
            self.peer.next_index = to_index + 1;
        }
    }

    pub(super) fn on_peer_position(
        &mut self,
        index: u64,
        hash_matches: Option<bool>,
        out: &mut Vec<ShipperCommand>,
    ) {
        let peer = &self.peer;
        if !peer.connected || peer.halted.is_some() || peer.position_known {
            return; // From a closed stream, after a halt, or repeated: the first one stands.
        }
        let last_index = self.log.last_index();
        if index > last_index {
            let reason = HaltReason::PeerAhead {
                peer_index: index,
                last_index,
            };
            return self.halt(reason, out);
        }
        if hash_matches == Some(false) {
            return self.halt(HaltReason::Diverged { peer_index: index }, out);
        }
        self.peer.position_known = true;
        self.peer.next_index = index + 1;
        if hash_matches == Some(true) {
            // Proven to be our log up to `index`: as good as an acknowledgement. Lower than the
            // index acknowledged before only if the peer lost data; it is the truth now.
            self.peer.acked_index = index;
            self.release_acknowledged_writes(out);
            self.resync_if_caught_up(false, out);
        }
        self.fill_window(out);
    }

    pub(super) fn on_peer_acked(&mut self, index: u64, out: &mut Vec<ShipperCommand>) {
        let peer = &self.peer;
        if !peer.connected || !peer.position_known || peer.halted.is_some() {
            // From a closed stream; before the position (out of protocol); or after a halt, when
            // the peer's log may not be ours, so its acknowledgements prove nothing.
            return;
        }
        if index > self.log.last_index() {
            let last_index = self.log.last_index();
            let reason = HaltReason::PeerAhead {
                peer_index: index,
                last_index,
            };
            return self.halt(reason, out);
        }
        if index <= self.peer.acked_index {
            return; // Nothing new.
        }
        self.peer.acked_index = index;
        self.peer.next_index = self.peer.next_index.max(index + 1);
        self.peer.refusals_in_a_row = 0;
        if index + 1 >= self.log.first_index() {
            self.peer.snapshot_needed = false; // The snapshot is in.
        }
        let tail_acked = acknowledge_batches(&mut self.in_flight, index);
        self.release_acknowledged_writes(out);
        self.resync_if_caught_up(tail_acked, out);
        self.fill_window(out);
    }

    pub(super) fn on_peer_refused(
        &mut self,
        from_index: u64,
        refusal: Refusal,
        out: &mut Vec<ShipperCommand>,
    ) {
        let current = self.in_flight.iter().any(|b| b.from_index == from_index);
        if !self.peer.connected || self.peer.halted.is_some() || !current {
            return; // A refusal of a batch already given up on (after an earlier refusal).
        }
        let resume_at = match &refusal {
            Refusal::Gap { expected_index } => *expected_index,
            Refusal::BadChecksum => from_index,
            _ => return self.halt(HaltReason::Refused(refusal), out),
        };
        if resume_at > self.log.last_index() + 1 {
            let (peer_index, last_index) = (resume_at - 1, self.log.last_index());
            return self.halt(
                HaltReason::PeerAhead {
                    peer_index,
                    last_index,
                },
                out,
            );
        }
        self.peer.refusals_in_a_row += 1;
        if self.peer.refusals_in_a_row > self.config.refusals_max {
            return self.halt(HaltReason::RefusedRepeatedly(refusal), out);
        }
        // Every batch after the refused one will be refused too: send again from `resume_at`.
        self.in_flight.clear();
        self.peer.next_index = resume_at;
        self.fill_window(out);
    }

    pub(super) fn on_peer_state(
        &mut self,
        connected: bool,
        failed: bool,
        out: &mut Vec<ShipperCommand>,
    ) {
        if connected != self.peer.connected {
            // Either way the old stream's batches are gone; a new stream starts from the
            // position the peer announces.
            self.in_flight.clear();
            self.peer.position_known = false;
            self.peer.snapshot_needed = false;
            self.peer.halted = None;
            self.peer.refusals_in_a_row = 0;
        }
        self.peer.connected = connected;
        self.peer.failed = failed;
        if failed && self.state == SyncState::Sync {
            self.become_unavailable(Unavailable::PeerFailed, out);
        } else if !failed {
            self.resync_if_caught_up(false, out);
        }
    }

    pub(super) fn halt(&mut self, reason: HaltReason, out: &mut Vec<ShipperCommand>) {
        self.in_flight.clear();
        self.peer.halted = Some(reason.clone());
        out.push(ShipperCommand::Halt { reason });
    }

    /// Truncates the log to `log_retention` (see the module's rules); true if it did.
    pub(super) fn truncate(&mut self, out: &mut Vec<ShipperCommand>) -> bool {
        let limits = RetentionLimits {
            entries: self.config.retention_entries,
            bytes: self.config.retention_bytes,
        };
        let peer_needs_log = self.peer.connected && !self.peer.failed;
        let protected_from = peer_needs_log.then_some(self.peer.acked_index + 1);
        match self.log.truncate(limits, protected_from) {
            Some(before_index) => {
                out.push(ShipperCommand::Truncate { before_index });
                true
            }
            None => false,
        }
    }
}

/// Drops the batches `index` covers; true if one of them had reached the tail.
fn acknowledge_batches(in_flight: &mut VecDeque<InFlightBatch>, index: u64) -> bool {
    let mut tail_acked = false;
    while let Some(batch) = in_flight.front().filter(|batch| batch.to_index <= index) {
        tail_acked |= batch.reached_tail;
        in_flight.pop_front();
    }
    tail_acked
}
