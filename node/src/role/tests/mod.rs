//! Unit tests of the role machine: the exact commands each state emits for each event.
//!
//! Each test builds a machine in a given state through public steps only (`RoleMachine::new` and
//! `step`), then asserts the exact `Vec<Command>` of the next steps, as openraft's engine tests
//! do. The node under test is `a` (priority 100); its peer `b` has priority 50, so `a` is the
//! preferred master. The clock is a plain number of milliseconds that the tests move by hand.
//!
//! Not here: the exhaustive search over message loss, reordering and crashes, which is the
//! stateright model in `node/tests/role_model.rs`.

use super::*;

mod crash_safety;
mod dual_active;
mod failover;
mod failover_now;
mod fast_path;
mod handover;
mod monitoring;
mod shutdown;
mod stall;
mod start_up;
mod switchover;
mod terms;

pub(super) const INTERVAL_MS: u64 = 100;
pub(super) const A_PRIORITY: u32 = 100;
pub(super) const B_PRIORITY: u32 = 50;

/// The default timers of DESIGN.md §9 for node `a`, with no `fence_peer` hook.
pub(super) fn config() -> RoleConfig {
    RoleConfig {
        name: "a".into(),
        priority: A_PRIORITY,
        peer_name: "b".into(),
        keepalive_interval_ms: INTERVAL_MS,
        warn_after_misses: 3,
        failover_after_misses: 8,
        startup_failover_after_misses: 50,
        min_failover_interval_ms: 300_000,
        fence_peer: false,
        switchover_timeout_ms: 5000,
        shutdown_timeout_ms: 10_000,
    }
}

/// The same timers seen from node `b`, for the tests that run both machines of the pair.
pub(super) fn config_b() -> RoleConfig {
    RoleConfig {
        name: "b".into(),
        priority: B_PRIORITY,
        peer_name: "a".into(),
        ..config()
    }
}

pub(super) fn fencing_config() -> RoleConfig {
    RoleConfig {
        fence_peer: true,
        ..config()
    }
}

/// A term of `a` or `b`, with that node's priority.
pub(super) fn term(epoch: u64, name: &str) -> Term {
    let priority = if name == "a" { A_PRIORITY } else { B_PRIORITY };
    Term::new(epoch, name, priority)
}

/// A durable record with everything but the epoch and the term at its default.
pub(super) fn durable(max_epoch_seen: u64, term: Option<Term>) -> Durable {
    Durable {
        max_epoch_seen,
        term,
        ..Durable::default()
    }
}

/// A heartbeat of `b` in `role`, holding or following `term`, with a healthy, consistent, empty
/// log and `max_epoch_seen` equal to the term's epoch. Tests change fields with `..`.
pub(super) fn heartbeat(role: Role, term: Option<Term>) -> PeerHeartbeat {
    PeerHeartbeat {
        role,
        max_epoch_seen: term.as_ref().map_or(0, |term| term.epoch),
        term,
        priority: B_PRIORITY,
        disk: DiskState::Consistent,
        log: LogPosition::default(),
        monitoring: Monitoring::On,
        monitoring_stamp: 0,
        maintenance: false,
        reachable: true,
        seq: 1,
        ack_seq: 0,
    }
}

pub(super) fn persist(durable: Durable) -> Command {
    Command::Persist(durable)
}

pub(super) fn set_role(role: Role, reason: &str) -> Command {
    Command::SetRole {
        role,
        reason: reason.into(),
    }
}

pub(super) fn record(kind: EventKind, message: &str) -> Command {
    Command::Record {
        kind,
        message: message.into(),
    }
}

pub(super) fn record_term(term: Term, reason: &str) -> Command {
    Command::RecordTerm {
        term,
        reason: reason.into(),
    }
}

pub(super) fn send_heartbeat(seq: u64) -> Command {
    Command::SendHeartbeat { seq }
}

pub(super) fn reply_ok(id: u64, message: &str) -> Command {
    Command::Reply {
        id,
        result: Ok(message.into()),
    }
}

pub(super) fn reply_err(id: u64, message: &str) -> Command {
    Command::Reply {
        id,
        result: Err(message.into()),
    }
}

/// The commands of `promote`: persist the new term first, then announce and admit.
pub(super) fn promotion(
    durable: Durable,
    kind: EventKind,
    reason: &str,
    heartbeat_seq: u64,
) -> Vec<Command> {
    let term = durable.term.clone().expect("a promotion holds a term");
    vec![
        persist(durable),
        record_term(term.clone(), reason),
        set_role(Role::Active, reason),
        Command::SetAdmission(true),
        record(kind, &format!("a is active in term {term}: {reason}")),
        send_heartbeat(heartbeat_seq),
    ]
}

/// A machine under test with the clock its steps run at.
pub(super) struct Node {
    pub machine: RoleMachine,
    pub now_ms: u64,
}

impl Node {
    /// Node `a` started at time 0 with `durable` read from `state.db` and an empty log.
    pub fn start(durable: Durable) -> Node {
        Node::start_with(config(), durable, LogPosition::default())
    }

    pub fn start_with(config: RoleConfig, durable: Durable, log: LogPosition) -> Node {
        Node {
            machine: RoleMachine::new(config, durable, log, 0),
            now_ms: 0,
        }
    }

    /// Runs one event at the current time.
    pub fn step(&mut self, event: Event) -> Vec<Command> {
        self.machine.step(event, self.now_ms)
    }

    /// Runs one event at `now_ms`, which becomes the current time.
    pub fn step_at(&mut self, now_ms: u64, event: Event) -> Vec<Command> {
        assert!(now_ms >= self.now_ms, "the clock is monotonic");
        self.now_ms = now_ms;
        self.step(event)
    }

    /// The next keep-alive tick, one interval after the current time.
    pub fn tick(&mut self) -> Vec<Command> {
        self.step_at(self.now_ms + INTERVAL_MS, Event::Tick)
    }

    /// Ticks until the tick at `until_ms` (a multiple of the interval), and returns the commands
    /// of that last tick only; the earlier ticks must emit nothing but their heartbeat (and the
    /// "peer suspect" record, which other tests check).
    pub fn tick_quietly_until(&mut self, until_ms: u64) -> Vec<Command> {
        while self.now_ms + INTERVAL_MS < until_ms {
            let out = self.tick();
            assert!(
                matches!(
                    out.as_slice(),
                    [Command::SendHeartbeat { .. }]
                        | [
                            Command::Record {
                                kind: EventKind::PeerSuspect,
                                ..
                            },
                            Command::SendHeartbeat { .. }
                        ]
                ),
                "unexpected commands at {} ms: {out:?}",
                self.now_ms
            );
        }
        self.tick()
    }

    /// The peer's heartbeat arrives just before the next tick, and then the tick fires: the
    /// commands of the tick, with the heartbeat's (asserted empty) left out.
    pub fn tick_hearing(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        let heard = self.step_at(
            self.now_ms + INTERVAL_MS - 1,
            Event::Heartbeat(heartbeat.clone()),
        );
        assert_eq!(
            heard,
            vec![],
            "the heartbeat at {} ms changed something",
            self.now_ms
        );
        self.step_at(self.now_ms + 1, Event::Tick)
    }

    pub fn heartbeat(&mut self, heartbeat: PeerHeartbeat) -> Vec<Command> {
        self.step(Event::Heartbeat(heartbeat))
    }

    pub fn admin(&mut self, id: u64, request: AdminRequest) -> Vec<Command> {
        self.step(Event::Admin { id, request })
    }

    pub fn role(&self) -> Role {
        self.machine.role()
    }

    pub fn durable(&self) -> Durable {
        self.machine.durable().clone()
    }
}

/// `a` active in term (1, a) after winning the start-up election against a starting `b` at time
/// 0, and since then told by `b` that it follows as passive. `a` has sent heartbeat 1.
pub(super) fn active() -> Node {
    active_with(config(), Durable::default())
}

pub(super) fn active_with(config: RoleConfig, start: Durable) -> Node {
    let mut node = Node::start_with(config, start, LogPosition::default());
    node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(node.role(), Role::Active);
    let term = node.durable().term;
    let out = node.heartbeat(PeerHeartbeat {
        max_epoch_seen: node.durable().max_epoch_seen,
        ..heartbeat(Role::Passive, term)
    });
    assert_eq!(out, vec![]);
    node
}

/// `a` passive behind `b`, which is active in term (1, b); heard at time 0.
pub(super) fn passive() -> Node {
    passive_with(config(), durable(1, Some(term(1, "b"))))
}

pub(super) fn passive_with(config: RoleConfig, start: Durable) -> Node {
    let mut node = Node::start_with(config, start, LogPosition::default());
    node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));
    assert_eq!(node.role(), Role::Passive);
    node
}

/// The heartbeat of a healthy `b` following `a`'s current term as passive.
pub(super) fn passive_peer_of(node: &Node) -> PeerHeartbeat {
    PeerHeartbeat {
        max_epoch_seen: node.durable().max_epoch_seen,
        ..heartbeat(Role::Passive, node.durable().term)
    }
}
