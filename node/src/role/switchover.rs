//! Planned role changes: switchover (fence, catch up, hand over, promote, demote), failover-now,
//! SIGTERM on the active, the admin commands, and the deadlines that bound them.

use super::command::{Command, EventKind};
use super::event::{AdminRequest, PeerHeartbeat};
use super::machine::{PendingFailoverNow, RoleMachine, Switchover, SwitchoverPhase};
use super::term::Term;
use super::types::{DiskState, Monitoring, PeerView, Role};

/// Resend an unanswered hand-over after this many keep-alive intervals.
const HANDOVER_RESEND_INTERVALS: u64 = 5;

impl RoleMachine {
    /// Why the active may not hand over to the peer now, if it may not.
    fn switchover_blocker(&self) -> Option<String> {
        if self.role != Role::Active {
            return Some(format!("this node is {}, not active", self.role.as_str()));
        }
        if self.switchover.is_some() {
            return Some("a switchover is already running".into());
        }
        if self.peer.view != PeerView::Ok {
            return Some(format!(
                "peer {} is {}",
                self.config.peer_name,
                self.peer.view.as_str()
            ));
        }
        let peer = self.peer.last.as_ref()?;
        if peer.role != Role::Passive {
            return Some(format!(
                "peer {} is {}",
                self.config.peer_name,
                peer.role.as_str()
            ));
        }
        if peer.disk != DiskState::Consistent {
            return Some(format!("peer disk is {}", peer.disk.as_str()));
        }
        if peer.maintenance {
            return Some(format!("peer {} is in maintenance", self.config.peer_name));
        }
        if !peer.reachable {
            return Some(format!(
                "peer {} cannot reach its reachability targets",
                self.config.peer_name
            ));
        }
        if self.durable.monitoring == Monitoring::Stopped {
            return Some("monitoring is stopped, so the peer is not replicating".into());
        }
        None
    }

    /// Phase 2 (fence) and the start of phase 3 (catch up).
    fn start_switchover(
        &mut self,
        admin_id: Option<u64>,
        exit_after: bool,
        why: &str,
        now_ms: u64,
    ) -> Result<Vec<Command>, String> {
        if let Some(blocker) = self.switchover_blocker() {
            return Err(blocker);
        }
        self.switchover = Some(Switchover {
            phase: SwitchoverPhase::CatchingUp,
            new_term: None,
            started_at_ms: now_ms,
            last_sent_ms: now_ms,
            admin_id,
            exit_after,
        });
        let mut out = Vec::new();
        self.set_admission(false, &mut out);
        out.push(Command::Record {
            kind: EventKind::Switchover,
            message: format!(
                "switchover to {} started ({why}): fenced",
                self.config.peer_name
            ),
        });
        out.push(Command::StartCatchUp);
        Ok(out)
    }

    /// Phase 4: persist "handing over to epoch e+1", then send the hand-over.
    pub(super) fn on_caught_up(&mut self, now_ms: u64) -> Vec<Command> {
        let Some(peer_priority) = self.peer.last.as_ref().map(|peer| peer.priority) else {
            return Vec::new();
        };
        let Some(switchover) = self.switchover.as_mut() else {
            return Vec::new();
        };
        if switchover.phase != SwitchoverPhase::CatchingUp {
            return Vec::new();
        }
        let epoch = self.durable.max_epoch_seen + 1;
        let new_term = Term::new(epoch, self.config.peer_name.clone(), peer_priority);
        switchover.phase = SwitchoverPhase::HandingOver;
        switchover.new_term = Some(new_term.clone());
        // The resend timer counts from this send, not from the start of the switchover.
        switchover.last_sent_ms = now_ms;
        self.durable.max_epoch_seen = epoch;
        self.durable.handing_over = Some(new_term.clone());
        self.role = Role::Demoting;
        vec![
            Command::Persist(self.durable.clone()),
            Command::SetRole {
                role: Role::Demoting,
                reason: format!(
                    "handing over to {} in term {new_term}",
                    self.config.peer_name
                ),
            },
            Command::SendHandover { new_term },
        ]
    }

    /// Phase 5, on the passive: persist the new term and become active.
    pub(super) fn on_handover_request(&mut self, new_term: Term) -> Vec<Command> {
        if self.role == Role::Active && self.durable.term.as_ref() == Some(&new_term) {
            return vec![Command::SendHandoverReply {
                new_term,
                accepted: true,
                reason: String::new(),
            }];
        }
        if let Some(refusal) = self.handover_refusal(&new_term) {
            return vec![
                Command::Record {
                    kind: EventKind::Switchover,
                    message: format!("refused the hand-over of term {new_term}: {refusal}"),
                },
                Command::SendHandoverReply {
                    new_term,
                    accepted: false,
                    reason: refusal,
                },
            ];
        }
        self.durable.max_epoch_seen = new_term.epoch;
        self.durable.term = Some(new_term.clone());
        self.durable.handing_over = None;
        self.role = Role::Active;
        self.took_over = false;
        self.fast_path = None;
        let reason = format!("switchover from {}", self.config.peer_name);
        let mut out = vec![
            Command::Persist(self.durable.clone()),
            Command::RecordTerm {
                term: new_term.clone(),
                reason: reason.clone(),
            },
            Command::SetRole {
                role: Role::Active,
                reason: reason.clone(),
            },
        ];
        self.set_admission(true, &mut out);
        out.push(Command::SendHandoverReply {
            new_term: new_term.clone(),
            accepted: true,
            reason: String::new(),
        });
        out.push(Command::Record {
            kind: EventKind::Switchover,
            message: format!(
                "{} is active in term {new_term}: {reason}",
                self.config.name
            ),
        });
        out.push(self.next_heartbeat());
        let message = format!("{} is now active in term {new_term}", self.config.name);
        self.answer_pending_failover_now(Ok(message), &mut out);
        out
    }

    fn handover_refusal(&self, new_term: &Term) -> Option<String> {
        if new_term.node() != self.config.name {
            return Some(format!("the term names {}, not this node", new_term.node()));
        }
        if new_term.epoch <= self.durable.max_epoch_seen {
            return Some(format!(
                "epoch {} is not newer than {} already seen",
                new_term.epoch, self.durable.max_epoch_seen
            ));
        }
        if self.role != Role::Passive {
            return Some(format!("this node is {}", self.role.as_str()));
        }
        if self.durable.maintenance {
            return Some("this node is in maintenance".into());
        }
        if self.durable.disk != DiskState::Consistent {
            return Some(format!("disk state is {}", self.durable.disk.as_str()));
        }
        None
    }

    /// Phase 6, on the old active: the peer took the term (demote) or refused it (stay active
    /// under a fresh term, since the offered epoch is spent).
    pub(super) fn on_handover_reply(
        &mut self,
        new_term: Term,
        accepted: bool,
        now_ms: u64,
    ) -> Vec<Command> {
        let offered = self.switchover.as_ref().and_then(|s| s.new_term.clone());
        if offered.as_ref() != Some(&new_term) || self.role != Role::Demoting {
            return Vec::new();
        }
        if accepted {
            return self.finish_switchover(new_term);
        }
        self.abort_handover(
            format!("{} refused the hand-over", self.config.peer_name),
            now_ms,
        )
    }

    pub(super) fn demoting_sees(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        let offered = self.switchover.as_ref().and_then(|s| s.new_term.clone());
        match (&heartbeat.term, offered) {
            (Some(peer_term), Some(offered))
                if heartbeat.role == Role::Active && *peer_term >= offered =>
            {
                self.finish_switchover(peer_term.clone())
            }
            _ => Vec::new(),
        }
    }

    fn finish_switchover(&mut self, peer_term: Term) -> Vec<Command> {
        let switchover = self.switchover.take();
        let message = format!(
            "switched over: {} is active in term {peer_term}",
            self.config.peer_name
        );
        let mut out = self.demote(Some(peer_term), message.clone());
        out.push(Command::Record {
            kind: EventKind::Switchover,
            message: message.clone(),
        });
        if let Some(switchover) = switchover {
            if let Some(id) = switchover.admin_id {
                out.push(Command::Reply {
                    id,
                    result: Ok(message),
                });
            }
            if switchover.exit_after {
                out.push(Command::Exit);
            }
        }
        out
    }

    /// Gives up a switchover that has not handed over yet: unfence and stay active.
    pub(super) fn abort_switchover(&mut self, reason: String) -> Vec<Command> {
        let Some(switchover) = self.switchover.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // A node that is stopping (SIGTERM) exits below: do not admit clients for that moment.
        if self.stall_seq.is_none() && !switchover.exit_after {
            self.set_admission(true, &mut out);
        }
        out.push(Command::Record {
            kind: EventKind::Switchover,
            message: format!("switchover aborted: {reason}; staying active"),
        });
        self.finish_aborted(switchover, reason, &mut out);
        out
    }

    /// Gives up a hand-over that was sent: the offered epoch is spent, so take a fresh term.
    fn abort_handover(&mut self, reason: String, now_ms: u64) -> Vec<Command> {
        let Some(switchover) = self.switchover.take() else {
            return Vec::new();
        };
        let mut out = self.promote(
            EventKind::Switchover,
            format!("switchover aborted: {reason}; staying active"),
            now_ms,
        );
        self.finish_aborted(switchover, reason, &mut out);
        out
    }

    fn finish_aborted(&mut self, switchover: Switchover, reason: String, out: &mut Vec<Command>) {
        if let Some(id) = switchover.admin_id {
            out.push(Command::Reply {
                id,
                result: Err(format!("switchover aborted: {reason}")),
            });
        }
        if switchover.exit_after {
            out.push(Command::Record {
                kind: EventKind::Shutdown,
                message: format!("stopping without a hand-over: {reason}"),
            });
            self.set_admission(false, out);
            out.push(Command::Exit);
        }
    }

    /// The passive asked for a switchover (`failover-now` there while this node answers).
    pub(super) fn on_switchover_requested(&mut self, now_ms: u64) -> Vec<Command> {
        if self.switchover.is_some() {
            // The same request again, over a second keep-alive path: it is already running.
            return Vec::new();
        }
        let why = format!("failover-now on {}", self.config.peer_name);
        match self.start_switchover(None, false, &why, now_ms) {
            Ok(out) => out,
            Err(reason) => vec![Command::Record {
                kind: EventKind::Switchover,
                message: format!(
                    "{} asked for a switchover; refused: {reason}",
                    self.config.peer_name
                ),
            }],
        }
    }

    pub(super) fn on_admin(&mut self, id: u64, request: AdminRequest, now_ms: u64) -> Vec<Command> {
        match request {
            AdminRequest::Switchover => {
                match self.start_switchover(
                    Some(id),
                    false,
                    "requested by an administrator",
                    now_ms,
                ) {
                    Ok(out) => out,
                    Err(reason) => vec![reply_err(id, format!("switchover refused: {reason}"))],
                }
            }
            AdminRequest::FailoverNow { force } => self.failover_now(id, force, now_ms),
            AdminRequest::SetMonitoring(mode) => self.set_monitoring(id, mode),
            AdminRequest::SetMaintenance(on) => self.set_maintenance(id, on, now_ms),
        }
    }

    fn failover_now(&mut self, id: u64, force: bool, now_ms: u64) -> Vec<Command> {
        if let Some(refusal) = self.failover_now_refusal(force) {
            return vec![reply_err(id, format!("failover-now refused: {refusal}"))];
        }
        let peer_active = self.peer.view == PeerView::Ok
            && self
                .peer
                .last
                .as_ref()
                .is_some_and(|peer| peer.role == Role::Active);
        if peer_active {
            self.pending_failover_now = Some(PendingFailoverNow {
                admin_id: id,
                deadline_ms: now_ms + self.config.switchover_timeout_ms,
            });
            return vec![Command::SendSwitchoverRequest];
        }
        if self.config.fence_peer && self.peer.view != PeerView::Ok {
            self.role = Role::Promoting;
            self.promoting_admin_id = Some(id);
            return vec![
                Command::SetRole {
                    role: Role::Promoting,
                    reason: "failover-now by an administrator".into(),
                },
                Command::FencePeer,
            ];
        }
        let reason = "failover-now by an administrator".to_string();
        let mut out = self.promote(EventKind::Failover, reason, now_ms);
        let term = self.durable.term.clone();
        let name = self.config.name.clone();
        out.push(Command::Reply {
            id,
            result: Ok(format!(
                "{name} is now active in term {}",
                term.map_or_else(String::new, |term| term.to_string())
            )),
        });
        out
    }

    fn failover_now_refusal(&self, force: bool) -> Option<String> {
        if self.role == Role::Active {
            return Some("this node is already active".into());
        }
        if self.role != Role::Passive && self.role != Role::Starting {
            return Some(format!("this node is {}", self.role.as_str()));
        }
        if self.pending_failover_now.is_some() {
            return Some("a failover-now is already waiting".into());
        }
        if self.durable.maintenance {
            return Some("this node is in maintenance".into());
        }
        match self.durable.disk {
            DiskState::Inconsistent => return Some("disk state is inconsistent".into()),
            DiskState::Outdated if !force => {
                return Some("disk state is outdated; --force takes over anyway".into());
            }
            _ => {}
        }
        if !self.reachable && !force {
            return Some("reachability targets do not answer; --force takes over anyway".into());
        }
        None
    }

    fn set_monitoring(&mut self, id: u64, mode: Monitoring) -> Vec<Command> {
        let peer_stamp = self
            .peer
            .last
            .as_ref()
            .map_or(0, |peer| peer.monitoring_stamp);
        self.durable.monitoring_stamp = self.durable.monitoring_stamp.max(peer_stamp) + 1;
        self.durable.monitoring = mode;
        self.failover_blocked = None;
        let message = format!("monitoring {} (pair-wide)", mode.as_str());
        vec![
            Command::Persist(self.durable.clone()),
            Command::Record {
                kind: EventKind::Monitoring,
                message: format!("{message}, set on {}", self.config.name),
            },
            self.next_heartbeat(),
            Command::Reply {
                id,
                result: Ok(message),
            },
        ]
    }

    fn set_maintenance(&mut self, id: u64, on: bool, now_ms: u64) -> Vec<Command> {
        self.durable.maintenance = on;
        self.failover_blocked = None;
        let state = if on { "on" } else { "off" };
        let mut out = vec![
            Command::Persist(self.durable.clone()),
            Command::Record {
                kind: EventKind::Maintenance,
                message: format!("maintenance {state} for {}", self.config.name),
            },
            self.next_heartbeat(),
        ];
        let mut message = format!("maintenance {state} for {}", self.config.name);
        if on && self.role == Role::Active {
            match self.start_switchover(None, false, "maintenance on", now_ms) {
                Ok(more) => {
                    out.extend(more);
                    message.push_str(&format!("; switching over to {}", self.config.peer_name));
                }
                Err(reason) => message.push_str(&format!("; stays active: {reason}")),
            }
        }
        out.push(Command::Reply {
            id,
            result: Ok(message),
        });
        out
    }

    /// SIGTERM: the active switches over and then exits; any other role exits at once.
    pub(super) fn on_shutdown(&mut self, now_ms: u64) -> Vec<Command> {
        if self.shutdown_deadline_ms.is_some() {
            return Vec::new();
        }
        self.shutdown_deadline_ms = Some(now_ms + self.config.shutdown_timeout_ms);
        if let Some(switchover) = self.switchover.as_mut() {
            switchover.exit_after = true;
            return Vec::new();
        }
        if self.role != Role::Active {
            return vec![shutdown_record("stopping"), Command::Exit];
        }
        match self.start_switchover(None, true, "SIGTERM on the active", now_ms) {
            Ok(out) => out,
            Err(reason) => {
                let mut out = Vec::new();
                self.set_admission(false, &mut out);
                out.push(shutdown_record(&format!(
                    "stopping without a hand-over: {reason}"
                )));
                out.push(Command::Exit);
                out
            }
        }
    }

    /// Bounds the waits: start-up, catch-up, hand-over, failover-now and shutdown.
    pub(super) fn check_deadlines(&mut self, now_ms: u64, out: &mut Vec<Command>) {
        let interval = self.config.keepalive_interval_ms;
        let startup_wait = u64::from(self.config.startup_failover_after_misses) * interval;
        let waited_alone = self.peer.last_heard_ms.is_none()
            && now_ms.saturating_sub(self.started_at_ms) >= startup_wait;
        if waited_alone && self.role == Role::Starting {
            out.extend(self.start_up_alone());
        } else if waited_alone && self.role == Role::Passive && self.may_promote_alone_late() {
            // Alone after start, the node could not become active (maintenance, unreachable
            // targets). It has become eligible, and the peer has still never answered.
            let reason = format!(
                "peer {} still absent since start, and this node became eligible",
                self.config.peer_name
            );
            out.extend(self.promote(EventKind::Election, reason, now_ms));
        }
        self.check_switchover_deadline(now_ms, out);
        if let Some(pending) = &self.pending_failover_now
            && now_ms >= pending.deadline_ms
        {
            let reason = format!(
                "the active {} did not hand over in time",
                self.config.peer_name
            );
            self.answer_pending_failover_now(Err(format!("failover-now failed: {reason}")), out);
        }
        if let Some(deadline) = self.shutdown_deadline_ms
            && now_ms >= deadline
        {
            self.shutdown_deadline_ms = None;
            self.set_admission(false, out);
            out.push(shutdown_record(
                "the hand-over did not finish in time; stopping anyway",
            ));
            out.push(Command::Exit);
        }
    }

    fn check_switchover_deadline(&mut self, now_ms: u64, out: &mut Vec<Command>) {
        let interval = self.config.keepalive_interval_ms;
        let Some(switchover) = self.switchover.as_mut() else {
            return;
        };
        let elapsed = now_ms.saturating_sub(switchover.started_at_ms);
        let timed_out = elapsed >= self.config.switchover_timeout_ms;
        match switchover.phase {
            SwitchoverPhase::CatchingUp if timed_out => {
                out.extend(self.abort_switchover("the peer did not catch up in time".into()));
            }
            SwitchoverPhase::HandingOver if timed_out && self.peer.view == PeerView::Ok => {
                let reason = format!(
                    "{} did not take the hand-over in time",
                    self.config.peer_name
                );
                out.extend(self.abort_handover(reason, now_ms));
            }
            SwitchoverPhase::HandingOver
                if now_ms.saturating_sub(switchover.last_sent_ms)
                    >= HANDOVER_RESEND_INTERVALS * interval =>
            {
                switchover.last_sent_ms = now_ms;
                if let Some(new_term) = switchover.new_term.clone() {
                    out.push(Command::SendHandover { new_term });
                }
            }
            _ => {}
        }
    }
}

fn reply_err(id: u64, message: String) -> Command {
    Command::Reply {
        id,
        result: Err(message),
    }
}

fn shutdown_record(message: &str) -> Command {
    Command::Record {
        kind: EventKind::Shutdown,
        message: message.to_string(),
    }
}
