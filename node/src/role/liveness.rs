//! Liveness: ticks, heartbeats, missed keep-alives, the stall rule, the fast path and the
//! automatic failover they lead to.

use super::command::{Command, EventKind};
use super::event::PeerHeartbeat;
use super::machine::RoleMachine;
use super::types::{DialOutcome, DiskState, Monitoring, PeerView, Role};
use super::{FAST_PATH_MIN_DIALS, FAST_PATH_MIN_WINDOW_MS};

impl RoleMachine {
    pub(super) fn on_tick(&mut self, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        let interval = self.config.keepalive_interval_ms;
        let stalled_ms = self
            .last_tick_ms
            .map(|last| now_ms.saturating_sub(last))
            .filter(|gap| *gap > 2 * interval);
        self.last_tick_ms = Some(now_ms);
        if let Some(gap) = stalled_ms {
            self.on_stall(gap, now_ms, &mut out);
        } else {
            self.count_misses(now_ms, &mut out);
        }
        self.check_deadlines(now_ms, &mut out);
        // The tick's heartbeat goes last: the driver builds it from the machine as it is after
        // this step, so all it announces (a new term, say) must be persisted by an earlier
        // command. A rule that already sent one (a promotion) stands for it; an exit sends none.
        let sent = out
            .iter()
            .any(|command| matches!(command, Command::SendHeartbeat { .. }));
        if !sent && out.last() != Some(&Command::Exit) {
            out.push(self.next_heartbeat());
        }
        if stalled_ms.is_some() && self.stall_seq.is_some() {
            // The round trip that lifts the stall fence must answer a heartbeat sent after it.
            self.stall_seq = Some(self.seq);
        }
        out
    }

    /// The event loop was frozen for `gap_ms`: the frozen time proves nothing about the peer, and
    /// an active node admits nothing until a heartbeat round trip shows who holds the newest term.
    fn on_stall(&mut self, gap_ms: u64, now_ms: u64, out: &mut Vec<Command>) {
        if self.peer.last_heard_ms.is_some() {
            self.peer.last_heard_ms = Some(now_ms);
        }
        if self.role == Role::Starting {
            self.started_at_ms = now_ms;
        }
        let mut message = format!("event loop stalled for {gap_ms} ms");
        if matches!(self.role, Role::Active) {
            self.stall_seq = Some(0);
            self.set_admission(false, out);
            message.push_str("; admitting nothing until a heartbeat round trip completes");
        }
        out.push(Command::Record {
            kind: EventKind::Stall,
            message,
        });
    }

    fn count_misses(&mut self, now_ms: u64, out: &mut Vec<Command>) {
        let Some(last_heard) = self.peer.last_heard_ms else {
            return;
        };
        let missed = now_ms.saturating_sub(last_heard) / self.config.keepalive_interval_ms;
        self.peer.missed = u32::try_from(missed).unwrap_or(u32::MAX);
        if self.peer.missed >= self.config.failover_after_misses {
            if self.peer.view != PeerView::Failed {
                self.peer.view = PeerView::Failed;
                out.push(Command::Record {
                    kind: EventKind::PeerFailed,
                    message: format!(
                        "peer {} missed {} keep-alives",
                        self.config.peer_name, self.peer.missed
                    ),
                });
            }
            let reason = format!(
                "peer {} missed {} keep-alives",
                self.config.peer_name, self.peer.missed
            );
            out.extend(self.on_peer_failed(reason, now_ms));
        } else if self.peer.missed >= self.config.warn_after_misses
            && self.peer.view == PeerView::Ok
        {
            self.peer.view = PeerView::Suspect;
            out.push(Command::Record {
                kind: EventKind::PeerSuspect,
                message: format!(
                    "peer {} suspect: {} keep-alives missed",
                    self.config.peer_name, self.peer.missed
                ),
            });
        }
    }

    /// The peer is failed: a passive (or demoting) node tries to take over; an active node drops
    /// a switchover in progress and, after a stall, trusts this fresh observation.
    pub(super) fn on_peer_failed(&mut self, reason: String, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        match self.role {
            Role::Passive | Role::Demoting => out.extend(self.try_failover(reason, now_ms)),
            Role::Active => {
                if self.switchover.is_some() && self.role == Role::Active {
                    out.extend(
                        self.abort_switchover("the peer failed during the switchover".into()),
                    );
                }
                if self.stall_seq.take().is_some() {
                    self.set_admission(true, &mut out);
                    out.push(Command::Record {
                        kind: EventKind::Stall,
                        message: "peer failed after the stall; admitting again".into(),
                    });
                }
            }
            Role::Starting | Role::Promoting | Role::Fault => {}
        }
        out
    }

    /// Why an automatic failover may not happen now, if it may not.
    fn failover_blocker(&self, now_ms: u64) -> Option<String> {
        if self.durable.monitoring != Monitoring::On {
            return Some(format!(
                "monitoring is {}",
                self.durable.monitoring.as_str()
            ));
        }
        if self.durable.maintenance {
            return Some("this node is in maintenance".into());
        }
        if self.durable.disk != DiskState::Consistent {
            return Some(format!("disk state is {}", self.durable.disk.as_str()));
        }
        if !self.reachable {
            return Some(
                "reachability targets do not answer: this node is the isolated one".into(),
            );
        }
        if let Some(last) = self.last_failover_ms
            && now_ms.saturating_sub(last) < self.config.min_failover_interval_ms
        {
            // Names the configured interval, not the time elapsed: the reason must stay the same
            // from tick to tick, or `try_failover` would record it again every second.
            return Some(format!(
                "a failover already happened within min_failover_interval ({} s)",
                self.config.min_failover_interval_ms / 1000
            ));
        }
        if now_ms < self.next_fence_attempt_ms {
            return Some("fence_peer failed; waiting before trying again".into());
        }
        None
    }

    pub(super) fn try_failover(&mut self, reason: String, now_ms: u64) -> Vec<Command> {
        if let Some(blocker) = self.failover_blocker(now_ms) {
            if self.failover_blocked.as_ref() == Some(&blocker) {
                return Vec::new();
            }
            self.failover_blocked = Some(blocker.clone());
            return vec![Command::Record {
                kind: EventKind::FailoverSuppressed,
                message: format!("not taking over ({reason}): {blocker}"),
            }];
        }
        // A demoting node whose peer failed before taking the hand-over gives the switchover up:
        // the normal failover rules apply (DESIGN.md §3, switchover step 6). Left in place, a
        // failed fence would leave a passive node holding a switchover whose deadline re-promotes it.
        let abandoned = self.switchover.take();
        let mut out = if self.config.fence_peer {
            self.role = Role::Promoting;
            vec![
                Command::SetRole {
                    role: Role::Promoting,
                    reason: reason.clone(),
                },
                Command::FencePeer,
            ]
        } else {
            self.promote(EventKind::Failover, reason, now_ms)
        };
        if let Some(id) = abandoned.and_then(|switchover| switchover.admin_id) {
            out.push(Command::Reply {
                id,
                result: Err(format!(
                    "switchover aborted: {} failed during the hand-over",
                    self.config.peer_name
                )),
            });
        }
        out
    }

    pub(super) fn on_fence_result(&mut self, ok: bool, now_ms: u64) -> Vec<Command> {
        if self.role != Role::Promoting {
            return Vec::new();
        }
        if ok {
            let reason = format!("peer {} fenced", self.config.peer_name);
            return self.promote(EventKind::Failover, reason, now_ms);
        }
        self.role = Role::Passive;
        self.next_fence_attempt_ms = now_ms
            + u64::from(self.config.failover_after_misses) * self.config.keepalive_interval_ms;
        let mut out = vec![
            Command::SetRole {
                role: Role::Passive,
                reason: "fence_peer failed".into(),
            },
            Command::Record {
                kind: EventKind::Fence,
                message: "fence_peer failed: not taking over".into(),
            },
        ];
        self.answer_pending_failover_now(
            Err("fence_peer failed: not taking over".into()),
            &mut out,
        );
        out
    }

    pub(super) fn on_heartbeat(&mut self, heartbeat: PeerHeartbeat, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        if matches!(self.peer.view, PeerView::Suspect | PeerView::Failed) {
            out.push(Command::Record {
                kind: EventKind::PeerRecovered,
                message: format!("peer {} answers again", self.config.peer_name),
            });
        }
        self.peer.view = PeerView::Ok;
        self.peer.last_heard_ms = Some(now_ms);
        self.peer.missed = 0;
        self.fast_path = None;
        self.failover_blocked = None;
        self.adopt_peer_durable(&heartbeat, &mut out);
        self.peer.last = Some(heartbeat.clone());
        self.close_stall_round_trip(&heartbeat, &mut out);
        match self.role {
            Role::Starting => out.extend(self.start_up_with_peer(&heartbeat)),
            Role::Passive => out.extend(self.passive_sees(&heartbeat)),
            Role::Active => out.extend(self.active_sees(&heartbeat)),
            Role::Demoting => out.extend(self.demoting_sees(&heartbeat)),
            Role::Promoting => out.extend(self.promoting_sees(&heartbeat)),
            Role::Fault => {}
        }
        out
    }

    /// Takes the peer's newer epoch and its newer pair-wide monitoring setting.
    fn adopt_peer_durable(&mut self, heartbeat: &PeerHeartbeat, out: &mut Vec<Command>) {
        let peer_epoch = heartbeat
            .term
            .as_ref()
            .map_or(0, |term| term.epoch)
            .max(heartbeat.max_epoch_seen);
        let mut changed = false;
        if peer_epoch > self.durable.max_epoch_seen {
            self.durable.max_epoch_seen = peer_epoch;
            changed = true;
        }
        let newer_monitoring = heartbeat.monitoring_stamp > self.durable.monitoring_stamp
            || (heartbeat.monitoring_stamp == self.durable.monitoring_stamp
                && heartbeat.monitoring != self.durable.monitoring
                && self.peer_rank(heartbeat) > self.my_rank());
        if newer_monitoring {
            self.durable.monitoring_stamp = heartbeat.monitoring_stamp;
            if self.durable.monitoring != heartbeat.monitoring {
                out.push(Command::Record {
                    kind: EventKind::Monitoring,
                    message: format!(
                        "monitoring {} (set on {})",
                        heartbeat.monitoring.as_str(),
                        self.config.peer_name
                    ),
                });
            }
            self.durable.monitoring = heartbeat.monitoring;
            changed = true;
        }
        if changed {
            out.push(Command::Persist(self.durable.clone()));
        }
    }

    fn close_stall_round_trip(&mut self, heartbeat: &PeerHeartbeat, out: &mut Vec<Command>) {
        let Some(stall_seq) = self.stall_seq else {
            return;
        };
        if heartbeat.ack_seq < stall_seq || stall_seq == 0 {
            return;
        }
        self.stall_seq = None;
        let still_newest = !peer_claims_newer_active_term(self, heartbeat);
        if self.role == Role::Active && self.switchover.is_none() && still_newest {
            self.set_admission(true, out);
            out.push(Command::Record {
                kind: EventKind::Stall,
                message: "heartbeat round trip after the stall: still the newest term, admitting"
                    .into(),
            });
        }
    }

    pub(super) fn on_stream_ended(&mut self) -> Vec<Command> {
        if self.fast_path.is_none() {
            self.fast_path = Some(super::machine::FastPath {
                refused_dials: 0,
                first_refused_ms: None,
            });
        }
        Vec::new()
    }

    pub(super) fn on_fast_path_dial(
        &mut self,
        peer_port: DialOutcome,
        client_port: DialOutcome,
        now_ms: u64,
    ) -> Vec<Command> {
        let Some(fast_path) = self.fast_path.as_mut() else {
            return Vec::new();
        };
        if peer_port == DialOutcome::Connected || client_port == DialOutcome::Connected {
            self.fast_path = None;
            return Vec::new();
        }
        if peer_port != DialOutcome::Refused || client_port != DialOutcome::Refused {
            fast_path.refused_dials = 0;
            fast_path.first_refused_ms = None;
            return Vec::new();
        }
        fast_path.refused_dials += 1;
        let first = *fast_path.first_refused_ms.get_or_insert(now_ms);
        let window_ms = now_ms - first;
        if fast_path.refused_dials < FAST_PATH_MIN_DIALS || window_ms < FAST_PATH_MIN_WINDOW_MS {
            return Vec::new();
        }
        let dials = fast_path.refused_dials;
        self.fast_path = None;
        let reason = format!(
            "peer {} process gone: stream ended and {dials} dials refused on both ports over {window_ms} ms",
            self.config.peer_name
        );
        let mut out = Vec::new();
        if self.peer.view != PeerView::Failed {
            self.peer.view = PeerView::Failed;
            out.push(Command::Record {
                kind: EventKind::PeerFailed,
                message: reason.clone(),
            });
        }
        out.extend(self.on_peer_failed(reason, now_ms));
        out
    }
}

/// The peer announces itself active in a term newer than ours.
pub(super) fn peer_claims_newer_active_term(
    machine: &RoleMachine,
    heartbeat: &PeerHeartbeat,
) -> bool {
    let peer_active = matches!(heartbeat.role, Role::Active);
    match (&heartbeat.term, &machine.durable.term) {
        (Some(peer_term), Some(my_term)) => peer_active && peer_term > my_term,
        (Some(_), None) => peer_active,
        (None, _) => false,
    }
}
