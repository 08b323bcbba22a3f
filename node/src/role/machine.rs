//! The `RoleMachine` struct, its configuration, the event dispatch and the two transitions every
//! rule ends in: promote and demote.

use super::command::{Command, EventKind};
use super::durable::Durable;
use super::event::{Event, PeerHeartbeat};
use super::term::{LogPosition, Rank, Term};
use super::types::{DiskState, PeerView, Role};

/// The timers and names the machine needs; the driver builds it from the node config.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleConfig {
    pub name: String,
    pub priority: u32,
    pub peer_name: String,
    pub keepalive_interval_ms: u64,
    pub warn_after_misses: u32,
    pub failover_after_misses: u32,
    pub startup_failover_after_misses: u32,
    pub min_failover_interval_ms: u64,
    /// `[hooks] fence_peer` is set: it must succeed before a failover on missed keep-alives.
    pub fence_peer: bool,
    /// How long a switchover may spend catching up and handing over before it is aborted.
    pub switchover_timeout_ms: u64,
    /// How long SIGTERM on the active waits for the hand-over before exiting anyway.
    pub shutdown_timeout_ms: u64,
}

/// Where a running switchover is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwitchoverPhase {
    /// Fenced; waiting until the passive has acknowledged everything (`Event::CaughtUp`).
    CatchingUp,
    /// `handing_over` persisted and the hand-over sent; role is `Demoting`.
    HandingOver,
}

/// A switchover in progress on the active node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Switchover {
    pub phase: SwitchoverPhase,
    /// The term offered to the peer; set when the hand-over is sent.
    pub new_term: Option<Term>,
    pub started_at_ms: u64,
    /// When the hand-over was last (re)sent, so a lost message is sent again.
    pub last_sent_ms: u64,
    /// The admin request to answer when the switchover ends, if an administrator asked.
    pub admin_id: Option<u64>,
    /// SIGTERM started this switchover: exit once it is done.
    pub exit_after: bool,
}

/// What this node knows of its peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PeerState {
    pub view: PeerView,
    /// The latest heartbeat, for elections and switchover checks.
    pub last: Option<PeerHeartbeat>,
    /// When the latest heartbeat arrived (or the clock restarted after a stall).
    pub last_heard_ms: Option<u64>,
    /// Consecutive keep-alive intervals without a heartbeat.
    pub missed: u32,
}

/// Progress of the fast path after the peer's stream ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct FastPath {
    /// Consecutive dial rounds refused on both ports.
    pub refused_dials: u32,
    /// When the first of them was refused.
    pub first_refused_ms: Option<u64>,
}

/// `failover-now` on the passive, waiting for the active to hand over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PendingFailoverNow {
    pub admin_id: u64,
    pub deadline_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleMachine {
    pub(super) config: RoleConfig,
    /// Mirrors `state.db`; every change is emitted as `Command::Persist` before it is acted on.
    pub(super) durable: Durable,
    pub(super) role: Role,
    /// When this process started; the start-up wait counts from here.
    pub(super) started_at_ms: u64,
    /// The previous tick, to detect an event-loop stall.
    pub(super) last_tick_ms: Option<u64>,
    pub(super) peer: PeerState,
    /// This node's last log position, for the start-up election.
    pub(super) log: LogPosition,
    /// The reachability targets answer (true when none are configured).
    pub(super) reachable: bool,
    /// After a stall: the heartbeat sequence the peer must acknowledge before we admit again.
    pub(super) stall_seq: Option<u64>,
    /// A switchover has fenced this node.
    pub(super) switchover: Option<Switchover>,
    /// Whether the last `SetAdmission` said "admit"; only changes are emitted.
    pub(super) admitting: bool,
    /// Sequence of the last heartbeat sent.
    pub(super) seq: u64,
    /// When this node last failed over automatically, for `min_failover_interval`.
    pub(super) last_failover_ms: Option<u64>,
    /// Why an automatic failover is being held back; an event is recorded when it changes.
    pub(super) failover_blocked: Option<String>,
    /// The fence hook failed: do not run it again before this time.
    pub(super) next_fence_attempt_ms: u64,
    /// True when this node became active by taking over (failover, start-up, failover-now),
    /// false when the peer handed its term over: the gateway then closes the calls of older
    /// terms, which ran on a node that failed.
    pub(super) took_over: bool,
    pub(super) fast_path: Option<FastPath>,
    pub(super) pending_failover_now: Option<PendingFailoverNow>,
    /// A failover-now that is waiting for `fence_peer`.
    pub(super) promoting_admin_id: Option<u64>,
    /// SIGTERM arrived: exit by this time at the latest.
    pub(super) shutdown_deadline_ms: Option<u64>,
    /// The peer term already reported as a stale active, so it is reported once.
    pub(super) reported_stale_peer: Option<Term>,
}

impl RoleMachine {
    /// A machine for a node that just started with `durable` read from `state.db`.
    pub fn new(config: RoleConfig, durable: Durable, log: LogPosition, now_ms: u64) -> Self {
        RoleMachine {
            config,
            durable,
            role: Role::Starting,
            started_at_ms: now_ms,
            last_tick_ms: None,
            peer: PeerState {
                view: PeerView::Unknown,
                last: None,
                last_heard_ms: None,
                missed: 0,
            },
            log,
            reachable: true,
            stall_seq: None,
            switchover: None,
            admitting: false,
            seq: 0,
            last_failover_ms: None,
            failover_blocked: None,
            next_fence_attempt_ms: 0,
            fast_path: None,
            took_over: false,
            pending_failover_now: None,
            promoting_admin_id: None,
            shutdown_deadline_ms: None,
            reported_stale_peer: None,
        }
    }

    pub fn step(&mut self, event: Event, now_ms: u64) -> Vec<Command> {
        match event {
            Event::Tick => self.on_tick(now_ms),
            Event::Heartbeat(heartbeat) => self.on_heartbeat(heartbeat, now_ms),
            Event::PeerStreamEnded => self.on_stream_ended(),
            Event::FastPathDial {
                peer_port,
                client_port,
            } => self.on_fast_path_dial(peer_port, client_port, now_ms),
            Event::Reachability(reachable) => {
                self.reachable = reachable;
                Vec::new()
            }
            Event::FenceResult { ok } => self.on_fence_result(ok, now_ms),
            Event::LogPosition(position) => {
                self.log = position;
                Vec::new()
            }
            Event::CaughtUp => self.on_caught_up(now_ms),
            Event::HandoverRequested { new_term } => self.on_handover_request(new_term),
            Event::HandoverReplied { new_term, accepted } => {
                self.on_handover_reply(new_term, accepted, now_ms)
            }
            Event::SwitchoverRequested => self.on_switchover_requested(now_ms),
            Event::Admin { id, request } => self.on_admin(id, request, now_ms),
            Event::Shutdown => self.on_shutdown(now_ms),
            Event::DiskVerdict {
                disk,
                reason,
                local,
            } => self.on_disk_verdict(disk, reason, local),
        }
    }

    fn on_disk_verdict(&mut self, disk: DiskState, reason: String, local: bool) -> Vec<Command> {
        if self.role == Role::Active || self.durable.disk == disk {
            return Vec::new();
        }
        if self.durable.disk == DiskState::Inconsistent && !local {
            return Vec::new();
        }
        self.durable.disk = disk;
        let mut out = vec![
            Command::Persist(self.durable.clone()),
            Command::Record {
                kind: EventKind::Disk,
                message: format!("disk is {}: {reason}", disk.as_str()),
            },
        ];
        if self.role == Role::Fault && disk != DiskState::Inconsistent {
            // Whole again: a passive that may follow the active (and catch up).
            let reason = format!("disk is {} again", disk.as_str());
            out.extend(self.follow(self.durable.term.clone(), reason));
        }
        out
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the current active term was taken over rather than handed over.
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    pub fn config(&self) -> &RoleConfig {
        &self.config
    }

    pub fn peer_view(&self) -> PeerView {
        self.peer.view
    }

    pub fn peer_heartbeat(&self) -> Option<&PeerHeartbeat> {
        self.peer.last.as_ref()
    }

    pub fn missed_keepalives(&self) -> u32 {
        self.peer.missed
    }

    pub fn last_heard_ms(&self) -> Option<u64> {
        self.peer.last_heard_ms
    }

    /// True while this node admits clients: active, and fenced neither by a stall nor a switchover.
    pub fn admitting(&self) -> bool {
        self.admitting
    }

    /// Fenced: active but admitting nothing (a stall or a switchover).
    pub fn fenced(&self) -> bool {
        self.stall_seq.is_some() || self.switchover.is_some()
    }

    pub fn reachable(&self) -> bool {
        self.reachable
    }

    pub fn log_position(&self) -> &LogPosition {
        &self.log
    }

    pub fn switchover_phase(&self) -> Option<SwitchoverPhase> {
        self.switchover.as_ref().map(|switchover| switchover.phase)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown_deadline_ms.is_some()
    }

    pub(super) fn my_rank(&self) -> Rank {
        Rank {
            priority: self.config.priority,
            name: self.config.name.clone(),
        }
    }

    pub(super) fn peer_rank(&self, heartbeat: &PeerHeartbeat) -> Rank {
        Rank {
            priority: heartbeat.priority,
            name: self.config.peer_name.clone(),
        }
    }

    /// Emits `SetAdmission` when the admission state changes.
    pub(super) fn set_admission(&mut self, admit: bool, out: &mut Vec<Command>) {
        if self.admitting != admit {
            self.admitting = admit;
            out.push(Command::SetAdmission(admit));
        }
    }

    pub(super) fn next_heartbeat(&mut self) -> Command {
        self.seq += 1;
        Command::SendHeartbeat { seq: self.seq }
    }

    /// Takes a new term `max_epoch_seen + 1` and becomes active.
    pub(super) fn promote(&mut self, kind: EventKind, reason: String, now_ms: u64) -> Vec<Command> {
        let epoch = self.durable.max_epoch_seen + 1;
        let term = Term::new(epoch, self.config.name.clone(), self.config.priority);
        self.durable.max_epoch_seen = epoch;
        self.durable.term = Some(term.clone());
        self.durable.handing_over = None;
        if kind == EventKind::Failover {
            self.last_failover_ms = Some(now_ms);
        }
        self.role = Role::Active;
        self.took_over = true;
        self.stall_seq = None;
        self.switchover = None;
        self.fast_path = None;
        self.failover_blocked = None;
        let mut out = vec![
            Command::Persist(self.durable.clone()),
            Command::RecordTerm {
                term: term.clone(),
                reason: reason.clone(),
            },
            Command::SetRole {
                role: Role::Active,
                reason: reason.clone(),
            },
        ];
        self.set_admission(true, &mut out);
        out.push(Command::Record {
            kind,
            message: format!("{} is active in term {term}: {reason}", self.config.name),
        });
        out.push(self.next_heartbeat());
        self.answer_pending_failover_now(
            Ok(format!("{} is now active in term {term}", self.config.name)),
            &mut out,
        );
        out
    }

    /// Stops admitting, then persists and announces the passive role, following `term`.
    pub(super) fn demote(&mut self, term: Option<Term>, reason: String) -> Vec<Command> {
        let mut out = Vec::new();
        self.set_admission(false, &mut out);
        self.durable.term = term;
        self.durable.handing_over = None;
        self.role = Role::Passive;
        let interrupted = self.switchover.take();
        self.stall_seq = None;
        out.push(Command::Persist(self.durable.clone()));
        out.push(Command::SetRole {
            role: Role::Passive,
            reason: reason.clone(),
        });
        out.push(self.next_heartbeat());
        if let Some(switchover) = interrupted {
            if let Some(id) = switchover.admin_id {
                out.push(Command::Reply {
                    id,
                    result: Err(format!("switchover interrupted: {reason}")),
                });
            }
            if switchover.exit_after {
                out.push(Command::Exit);
            }
        }
        out
    }

    /// Becomes passive behind the peer's term without a demotion (from starting or promoting).
    pub(super) fn follow(&mut self, term: Option<Term>, reason: String) -> Vec<Command> {
        let mut out = Vec::new();
        if self.durable.term != term {
            self.durable.term = term;
            out.push(Command::Persist(self.durable.clone()));
        }
        if self.role != Role::Passive {
            self.role = Role::Passive;
            out.push(Command::SetRole {
                role: Role::Passive,
                reason,
            });
        }
        out
    }

    pub(super) fn answer_pending_failover_now(
        &mut self,
        result: Result<String, String>,
        out: &mut Vec<Command>,
    ) {
        if let Some(pending) = self.pending_failover_now.take() {
            out.push(Command::Reply {
                id: pending.admin_id,
                result: result.clone(),
            });
        }
        if let Some(id) = self.promoting_admin_id.take() {
            out.push(Command::Reply { id, result });
        }
    }
}
