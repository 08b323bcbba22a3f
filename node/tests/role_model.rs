//! A stateright model of the role machine of a pair (DESIGN.md §3), run by `cargo test`.
//!
//! # What it runs
//! Two real `RoleMachine`s, `a` (priority 100) and `b` (priority 50), driven through their real
//! `step` function. The model plays the driver: it runs each step's commands in order, keeps the
//! last `Persist`ed `Durable` of each node (all that survives a crash), builds each heartbeat from
//! the machine's accessors when its `SendHeartbeat` command runs (with `ack_seq` the highest
//! sequence received from the peer), and carries the messages.
//!
//! # What the adversary may do, at any moment
//! - tick a node: its logical clock moves one keep-alive interval, or three to model an event-loop
//!   stall (SIGSTOP, a VM pause);
//! - deliver or duplicate (deliver and keep) any message in flight, in any order: heartbeats,
//!   hand-over requests and replies, switchover requests. A message never delivered is lost; an
//!   explicit drop is offered when the network is full, to make room;
//! - crash a node and restart it later: a new `RoleMachine` from its persisted `Durable`, role
//!   starting. Messages from its previous life, and to it, stay in flight;
//! - partition the pair (nothing is delivered, every send is lost) and heal it;
//! - end the peer stream and run fast-path dial rounds (one per clock value), refused on both ports
//!   only while the peer's process is really down, failed while partitioned, connected otherwise;
//! - answer a `StartCatchUp` with `CaughtUp`, whenever it likes;
//! - run admin commands on either node: switchover, failover-now, maintenance on, monitoring
//!   suspended.
//!
//! # What it abstracts away
//! The replication log (a node's log position is its persisted term with index 0, as the driver
//! reports it until the log exists), reachability (always answering), disk state (consistent),
//! the `fence_peer` hook, SIGTERM, admin replies, and the alerts. Timers are short so that the
//! paths fit in the bounds: warn after 2 misses, fail over after 4, start alone after 2, no
//! `min_failover_interval`, switchover timeout 3 intervals. Terms are checked, not admission.
//!
//! # Bounds
//! Four explorations, each a complete breadth-first search of every path up to a number of actions
//! (its `depth`), from a start that the model's own driver plays: a fresh pair (depth 8), a running
//! pair with `a` active (depth 7), the running pair with `a`'s process dead (depth 8), and the
//! running pair with `a`'s hand-over in flight (depth 8). Also: at most `MAX_IN_FLIGHT` messages in
//! flight (a send beyond that is lost), states whose epochs pass `MAX_EPOCH` are not explored, a
//! clock limit per node, and budgets of one crash, one partition, one admin command and three
//! dial rounds. About 1.15 million distinct states in all (2.6 million visits), about 15 s on two
//! cores in a debug build. `ROLE_MODEL_EXTRA_DEPTH=1` searches one action deeper everywhere
//! (several times longer).
//!
//! # Properties
//! `always`, on every state: no two nodes active in the same term; an active node holds a term of
//! its own, no older than any epoch it has seen or persisted; every change to the durable record
//! is persisted. `always`, on every step: a term a node takes on is no older than the newest epoch
//! it saw; a node becomes active only in an epoch newer than any it had persisted; the epochs a
//! node becomes active in strictly increase across crashes, so no term is taken twice; a node acts
//! on (`SetRole`, admission) and announces (messages) only what it has persisted. `sometimes`: a
//! failover on missed keep-alives, a fast-path failover, a completed switchover, two actives at
//! once and the episode resolved, a stall fencing an active node, a restarted node back behind the
//! active; so the check cannot pass vacuously.

use std::time::Instant;

use stateright::{Checker, Expectation, Model, Property};
use tandem_node::role::{
    AdminRequest, Command, DialOutcome, DiskState, Durable, Event, EventKind, LogPosition,
    Monitoring, PeerHeartbeat, Role, RoleConfig, RoleMachine, Term,
};

const INTERVAL_MS: u64 = 100;
const MAX_IN_FLIGHT: usize = 3;
const MAX_EPOCH: u64 = 3;

const NAMES: [&str; 2] = ["a", "b"];
const PRIORITIES: [u32; 2] = [100, 50];

fn config(node: usize) -> RoleConfig {
    RoleConfig {
        name: NAMES[node].into(),
        priority: PRIORITIES[node],
        peer_name: NAMES[1 - node].into(),
        keepalive_interval_ms: INTERVAL_MS,
        warn_after_misses: 2,
        failover_after_misses: 4,
        startup_failover_after_misses: 2,
        min_failover_interval_ms: 0,
        fence_peer: false,
        switchover_timeout_ms: 3 * INTERVAL_MS,
        shutdown_timeout_ms: 10 * INTERVAL_MS,
    }
}

/// A message in flight, ordered so that the network is a canonical multiset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Message {
    to: usize,
    payload: Payload,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Payload {
    Heartbeat(Beat),
    Handover(Term),
    HandoverReply(Term, bool),
    SwitchoverRequest,
}

/// The varying part of a `PeerHeartbeat`, in a form that orders (the rest is constant here).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Beat {
    role: u8,
    term: Option<Term>,
    max_epoch_seen: u64,
    log_term: Option<Term>,
    monitoring: u8,
    monitoring_stamp: u64,
    maintenance: bool,
    seq: u64,
    ack_seq: u64,
}

const ROLES: [Role; 6] = [
    Role::Starting,
    Role::Passive,
    Role::Active,
    Role::Promoting,
    Role::Demoting,
    Role::Fault,
];
const MONITORING: [Monitoring; 3] = [Monitoring::On, Monitoring::Suspended, Monitoring::Stopped];

impl Beat {
    fn of(machine: &RoleMachine, seq: u64, ack_seq: u64) -> Beat {
        let durable = machine.durable();
        Beat {
            role: ROLES
                .iter()
                .position(|role| *role == machine.role())
                .unwrap() as u8,
            term: durable.term.clone(),
            max_epoch_seen: durable.max_epoch_seen,
            log_term: machine.log_position().term.clone(),
            monitoring: MONITORING
                .iter()
                .position(|mode| *mode == durable.monitoring)
                .unwrap() as u8,
            monitoring_stamp: durable.monitoring_stamp,
            maintenance: durable.maintenance,
            seq,
            ack_seq,
        }
    }

    fn heartbeat(&self, from: usize) -> PeerHeartbeat {
        PeerHeartbeat {
            role: ROLES[usize::from(self.role)],
            term: self.term.clone(),
            max_epoch_seen: self.max_epoch_seen,
            priority: PRIORITIES[from],
            disk: DiskState::Consistent,
            log: LogPosition {
                term: self.log_term.clone(),
                index: 0,
            },
            monitoring: MONITORING[usize::from(self.monitoring)],
            monitoring_stamp: self.monitoring_stamp,
            maintenance: self.maintenance,
            reachable: true,
            seq: self.seq,
            ack_seq: self.ack_seq,
        }
    }
}

/// One node as the driver sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Host {
    /// `None` while the process is down.
    machine: Option<RoleMachine>,
    /// The last `Persist`ed record: what a restart reads back.
    persisted: Durable,
    /// The node's logical clock; it only moves forward, also across restarts.
    clock_ms: u64,
    /// Highest heartbeat sequence received from the peer, sent back as `ack_seq`.
    acked: u64,
    /// A `StartCatchUp` is waiting for its `CaughtUp`.
    catching_up: bool,
    /// The clock of the last fast-path round, so a round takes time (one per clock value).
    dialed_at_ms: Option<u64>,
    /// The newest epoch this node ever became active in, across lives (property 3).
    last_taken_epoch: u64,
    /// This node crashed and was restarted.
    restarted: bool,
}

/// Things that happened, for the `sometimes` properties (sticky flags).
mod seen {
    pub const FAILOVER: u8 = 1;
    pub const FAST_PATH_FAILOVER: u8 = 2;
    pub const SWITCHOVER_DONE: u8 = 4;
    pub const SPLIT_BRAIN_RESOLVED: u8 = 8;
    pub const STALL_FENCED: u8 = 16;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    hosts: [Host; 2],
    /// Messages in flight, sorted: a multiset.
    network: Vec<Message>,
    partitioned: bool,
    crashes_left: u8,
    partitions_left: u8,
    admin_left: u8,
    dials_left: u8,
    seen: u8,
    /// The first rule broken during a step, if any (one of the `BROKE_*` names); checking stops
    /// there.
    violation: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Tick(usize),
    Stall(usize),
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Crash(usize),
    Restart(usize),
    Partition,
    Heal,
    StreamEnded(usize),
    Dial(usize),
    CaughtUp(usize),
    Admin(usize, AdminRequest),
}

/// Where an exploration starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Both nodes just started with empty state.
    Fresh,
    /// `a` active in (1, a) and `b` passive behind it; they have heard each other.
    RunningPair,
    /// The running pair, and then `a`'s process died.
    ActiveDown,
    /// The running pair, and `a` has sent the hand-over of a switchover to `b`.
    HandingOver,
}

/// One bounded exploration: where it starts and what the adversary may spend.
/// The rules checked on each step, named as the properties that report them.
const BROKE_STALE_TERM: &str = "a term a node takes on is no older than the newest epoch it saw";
const BROKE_FRESH_EPOCH: &str =
    "a node becomes active only in an epoch newer than any it had persisted";
const BROKE_UNIQUE_TAKE: &str =
    "no term is taken twice: the epochs a node becomes active in strictly increase, across crashes";
const BROKE_PERSIST_FIRST: &str =
    "a node acts on and announces only what it has persisted (SetRole, admission, messages)";

struct PairModel {
    start: Start,
    /// No clock passes this.
    clock_limit_ms: u64,
    crashes: u8,
    partitions: u8,
    /// The admin commands on offer, and how many may be run in all.
    admin: &'static [AdminRequest],
    admin_budget: u8,
    /// Fast-path dial rounds in all.
    dials: u8,
    /// The `sometimes` properties this exploration must reach.
    reaches: &'static [&'static str],
    /// Paths longer than this many actions are not explored.
    depth: usize,
}

impl PairModel {
    fn fresh_host(node: usize) -> Host {
        Host {
            machine: Some(RoleMachine::new(
                config(node),
                Durable::default(),
                LogPosition::default(),
                0,
            )),
            persisted: Durable::default(),
            clock_ms: 0,
            acked: 0,
            catching_up: false,
            dialed_at_ms: None,
            last_taken_epoch: 0,
            restarted: false,
        }
    }

    /// Runs one event on `node` and then its commands, as the driver does.
    fn step(state: &mut State, node: usize, event: Event) {
        let host = &mut state.hosts[node];
        let Some(machine) = host.machine.as_mut() else {
            return;
        };
        let before_role = machine.role();
        let before_term = machine.durable().term.clone();
        let persisted_max = host.persisted.max_epoch_seen;
        let dialing = matches!(event, Event::FastPathDial { .. });
        let commands = machine.step(event, host.clock_ms);
        let after_role = machine.role();
        let after_term = machine.durable().term.clone();
        if after_term != before_term
            && after_term
                .as_ref()
                .is_none_or(|term| term.epoch < machine.durable().max_epoch_seen)
        {
            state.violation.get_or_insert(BROKE_STALE_TERM);
        }

        if after_role == Role::Active && (before_role != Role::Active || before_term != after_term)
        {
            let term = after_term.as_ref().expect("an active node holds a term");
            if term.epoch <= persisted_max {
                state.violation.get_or_insert(BROKE_FRESH_EPOCH);
            }
            if term.epoch <= host.last_taken_epoch {
                state.violation.get_or_insert(BROKE_UNIQUE_TAKE);
            }
            host.last_taken_epoch = term.epoch;
            if before_role != Role::Active && commands.iter().any(is_failover_record) {
                state.seen |= seen::FAILOVER;
                if dialing {
                    state.seen |= seen::FAST_PATH_FAILOVER;
                }
            }
        }
        if before_role == Role::Demoting && after_role == Role::Passive {
            state.seen |= seen::SWITCHOVER_DONE;
        }
        if before_role == Role::Active
            && after_role == Role::Passive
            && commands.iter().any(is_split_brain_record)
        {
            state.seen |= seen::SPLIT_BRAIN_RESOLVED;
        }
        if commands.iter().any(is_stall_record) && commands.contains(&Command::SetAdmission(false))
        {
            state.seen |= seen::STALL_FENCED;
        }
        for command in commands {
            Self::execute(state, node, command);
        }
    }

    fn execute(state: &mut State, node: usize, command: Command) {
        let host = &mut state.hosts[node];
        let machine = host.machine.as_ref().expect("a running node");
        let payload = match command {
            Command::Persist(durable) => {
                host.persisted = durable;
                return;
            }
            Command::SetRole { .. } | Command::SetAdmission(true) => {
                if *machine.durable() != host.persisted {
                    state.violation.get_or_insert(BROKE_PERSIST_FIRST);
                }
                return;
            }
            Command::StartCatchUp => {
                host.catching_up = true;
                return;
            }
            Command::SendHeartbeat { seq } => {
                Payload::Heartbeat(Beat::of(machine, seq, host.acked))
            }
            Command::SendHandover { new_term } => Payload::Handover(new_term),
            Command::SendHandoverReply {
                new_term, accepted, ..
            } => Payload::HandoverReply(new_term, accepted),
            Command::SendSwitchoverRequest => Payload::SwitchoverRequest,
            Command::Exit => {
                host.machine = None;
                return;
            }
            _ => return,
        };
        if *machine.durable() != host.persisted {
            state.violation.get_or_insert(BROKE_PERSIST_FIRST);
        }
        if state.partitioned || state.network.len() >= MAX_IN_FLIGHT {
            return;
        }
        let message = Message {
            to: 1 - node,
            payload,
        };
        let at = state
            .network
            .binary_search(&message)
            .unwrap_or_else(|at| at);
        state.network.insert(at, message);
    }

    fn deliver(state: &mut State, message: Message) {
        let to = message.to;
        let event = match message.payload {
            Payload::Heartbeat(beat) => {
                if state.hosts[to].machine.is_some() {
                    state.hosts[to].acked = state.hosts[to].acked.max(beat.seq);
                }
                Event::Heartbeat(beat.heartbeat(1 - to))
            }
            Payload::Handover(new_term) => Event::HandoverRequested { new_term },
            Payload::HandoverReply(new_term, accepted) => {
                Event::HandoverReplied { new_term, accepted }
            }
            Payload::SwitchoverRequest => Event::SwitchoverRequested,
        };
        Self::step(state, to, event);
    }

    fn up(state: &State, node: usize) -> Option<&RoleMachine> {
        state.hosts[node].machine.as_ref()
    }
}

fn is_failover_record(command: &Command) -> bool {
    matches!(
        command,
        Command::Record {
            kind: EventKind::Failover,
            ..
        }
    )
}

fn is_split_brain_record(command: &Command) -> bool {
    matches!(
        command,
        Command::Record {
            kind: EventKind::SplitBrain,
            ..
        }
    )
}

fn is_stall_record(command: &Command) -> bool {
    matches!(
        command,
        Command::Record {
            kind: EventKind::Stall,
            ..
        }
    )
}

impl Model for PairModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let fresh = State {
            hosts: [Self::fresh_host(0), Self::fresh_host(1)],
            network: Vec::new(),
            partitioned: false,
            crashes_left: self.crashes,
            partitions_left: self.partitions,
            admin_left: self.admin_budget,
            dials_left: self.dials,
            seen: 0,
            violation: None,
        };
        match self.start {
            Start::Fresh => vec![fresh],
            Start::RunningPair => vec![running_pair(fresh)],
            Start::ActiveDown => {
                let mut state = running_pair(fresh);
                state.hosts[0].machine = None;
                vec![state]
            }
            Start::HandingOver => {
                let mut state = running_pair(fresh);
                let switchover = Event::Admin {
                    id: 1,
                    request: AdminRequest::Switchover,
                };
                PairModel::step(&mut state, 0, switchover);
                state.hosts[0].catching_up = false;
                PairModel::step(&mut state, 0, Event::CaughtUp);
                assert_eq!(PairModel::up(&state, 0).unwrap().role(), Role::Demoting);
                assert_eq!(state.network.len(), 1, "the hand-over is in flight");
                vec![state]
            }
        }
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.violation.is_some() {
            return;
        }
        for node in 0..2 {
            let host = &state.hosts[node];
            let peer_down = state.hosts[1 - node].machine.is_none();
            if host.machine.is_none() {
                actions.push(Action::Restart(node));
                continue;
            }
            if host.clock_ms + INTERVAL_MS <= self.clock_limit_ms {
                actions.push(Action::Tick(node));
            }
            if host.clock_ms + 3 * INTERVAL_MS <= self.clock_limit_ms {
                actions.push(Action::Stall(node));
            }
            if state.crashes_left > 0 {
                actions.push(Action::Crash(node));
            }
            if peer_down || state.partitioned {
                actions.push(Action::StreamEnded(node));
            }
            if state.dials_left > 0 && host.dialed_at_ms != Some(host.clock_ms) {
                actions.push(Action::Dial(node));
            }
            if host.catching_up {
                actions.push(Action::CaughtUp(node));
            }
            if state.admin_left > 0 {
                for request in self.admin {
                    actions.push(Action::Admin(node, request.clone()));
                }
            }
        }
        if !state.partitioned {
            for index in 0..state.network.len() {
                if index > 0 && state.network[index] == state.network[index - 1] {
                    continue;
                }
                actions.push(Action::Deliver(index));
                actions.push(Action::Duplicate(index));
            }
        }
        // A message left in flight for ever is a lost one; dropping matters only to make room,
        // so it is offered only when the network is full (fewer, equivalent paths).
        if state.network.len() >= MAX_IN_FLIGHT {
            for index in 0..state.network.len() {
                if index == 0 || state.network[index] != state.network[index - 1] {
                    actions.push(Action::Drop(index));
                }
            }
        }
        if state.partitioned {
            actions.push(Action::Heal);
        } else if state.partitions_left > 0 {
            actions.push(Action::Partition);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Tick(node) | Action::Stall(node) => {
                let intervals = if matches!(action, Action::Stall(_)) {
                    3
                } else {
                    1
                };
                state.hosts[node].clock_ms += intervals * INTERVAL_MS;
                Self::step(&mut state, node, Event::Tick);
            }
            Action::Deliver(index) => {
                let message = state.network.remove(index);
                Self::deliver(&mut state, message);
            }
            Action::Duplicate(index) => {
                let message = state.network[index].clone();
                Self::deliver(&mut state, message);
            }
            Action::Drop(index) => {
                state.network.remove(index);
            }
            Action::Crash(node) => {
                state.crashes_left -= 1;
                let host = &mut state.hosts[node];
                host.machine = None;
                host.catching_up = false;
                host.acked = 0;
            }
            Action::Restart(node) => {
                let host = &mut state.hosts[node];
                host.restarted = true;
                let log = LogPosition {
                    term: host.persisted.term.clone(),
                    index: 0,
                };
                host.machine = Some(RoleMachine::new(
                    config(node),
                    host.persisted.clone(),
                    log,
                    host.clock_ms,
                ));
            }
            Action::Partition => {
                state.partitions_left -= 1;
                state.partitioned = true;
            }
            Action::Heal => state.partitioned = false,
            Action::StreamEnded(node) => Self::step(&mut state, node, Event::PeerStreamEnded),
            Action::Dial(node) => {
                state.dials_left -= 1;
                state.hosts[node].dialed_at_ms = Some(state.hosts[node].clock_ms);
                let outcome = if state.partitioned {
                    DialOutcome::Failed
                } else if state.hosts[1 - node].machine.is_none() {
                    DialOutcome::Refused
                } else {
                    DialOutcome::Connected
                };
                let event = Event::FastPathDial {
                    peer_port: outcome,
                    client_port: outcome,
                };
                Self::step(&mut state, node, event);
            }
            Action::CaughtUp(node) => {
                state.hosts[node].catching_up = false;
                Self::step(&mut state, node, Event::CaughtUp);
            }
            Action::Admin(node, request) => {
                state.admin_left -= 1;
                Self::step(&mut state, node, Event::Admin { id: 1, request });
            }
        }
        Some(state)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state
            .hosts
            .iter()
            .all(|host| host.persisted.max_epoch_seen <= MAX_EPOCH)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let all = vec![
            Property::always(
                "no two nodes active in the same term",
                |_, state: &State| match (PairModel::up(state, 0), PairModel::up(state, 1)) {
                    (Some(a), Some(b)) => {
                        a.role() != Role::Active
                            || b.role() != Role::Active
                            || a.durable().term != b.durable().term
                    }
                    _ => true,
                },
            ),
            Property::always(
                "an active node holds its own term, no older than any epoch it has seen",
                |_, state: &State| {
                    (0..2).all(|node| {
                        let Some(machine) = PairModel::up(state, node) else {
                            return true;
                        };
                        if machine.role() != Role::Active {
                            return true;
                        }
                        let persisted = &state.hosts[node].persisted;
                        machine.durable().term.as_ref().is_some_and(|term| {
                            term.node() == NAMES[node]
                                && term.epoch >= machine.durable().max_epoch_seen
                                && term.epoch >= persisted.max_epoch_seen
                        })
                    })
                },
            ),
            Property::always("every durable change is persisted", |_, state: &State| {
                (0..2).all(|node| {
                    PairModel::up(state, node)
                        .is_none_or(|machine| *machine.durable() == state.hosts[node].persisted)
                })
            }),
            Property::always(BROKE_STALE_TERM, |_, state: &State| {
                state.violation != Some(BROKE_STALE_TERM)
            }),
            Property::always(BROKE_FRESH_EPOCH, |_, state: &State| {
                state.violation != Some(BROKE_FRESH_EPOCH)
            }),
            Property::always(BROKE_UNIQUE_TAKE, |_, state: &State| {
                state.violation != Some(BROKE_UNIQUE_TAKE)
            }),
            Property::always(BROKE_PERSIST_FIRST, |_, state: &State| {
                state.violation != Some(BROKE_PERSIST_FIRST)
            }),
            Property::sometimes("a failover on missed keep-alives", |_, state: &State| {
                state.seen & seen::FAILOVER != 0
            }),
            Property::sometimes("a fast-path failover", |_, state: &State| {
                state.seen & seen::FAST_PATH_FAILOVER != 0
            }),
            Property::sometimes("a switchover completed", |_, state: &State| {
                state.seen & seen::SWITCHOVER_DONE != 0
            }),
            Property::sometimes(
                "two nodes active at once (different terms)",
                |_, state: &State| {
                    (0..2).all(|node| {
                        PairModel::up(state, node)
                            .is_some_and(|machine| machine.role() == Role::Active)
                    })
                },
            ),
            Property::sometimes("a dual-active episode resolved", |_, state: &State| {
                state.seen & seen::SPLIT_BRAIN_RESOLVED != 0
            }),
            Property::sometimes("a stall fenced an active node", |_, state: &State| {
                state.seen & seen::STALL_FENCED != 0
            }),
            Property::sometimes(
                "a restarted node rejoined behind the active",
                |_, state: &State| {
                    (0..2).any(|node| {
                        let (Some(me), Some(peer)) =
                            (PairModel::up(state, node), PairModel::up(state, 1 - node))
                        else {
                            return false;
                        };
                        state.hosts[node].restarted
                            && me.role() == Role::Passive
                            && peer.role() == Role::Active
                            && me.durable().term == peer.durable().term
                    })
                },
            ),
        ];
        all.into_iter()
            .filter(|property| {
                property.expectation != Expectation::Sometimes
                    || self.reaches.contains(&property.name)
            })
            .collect()
    }
}

/// `a` active in (1, a), `b` passive behind it, each having heard the other: the start of a
/// fresh pair, played by the model's own driver.
fn running_pair(fresh: State) -> State {
    let mut state = fresh;
    tick(&mut state, 0);
    tick(&mut state, 1);
    // `a` hears `b` starting and wins the election; `b` hears `a` starting, then active.
    deliver_first_to(&mut state, 0);
    deliver_first_to(&mut state, 1);
    deliver_first_to(&mut state, 1);
    tick(&mut state, 1);
    deliver_first_to(&mut state, 0);
    assert!(state.network.is_empty(), "{state:?}");
    let (a, b) = (
        PairModel::up(&state, 0).unwrap(),
        PairModel::up(&state, 1).unwrap(),
    );
    assert_eq!((a.role(), b.role()), (Role::Active, Role::Passive));
    assert_eq!(b.durable().term, a.durable().term);
    assert!(state.violation.is_none());
    state.seen = 0;
    state
}

fn tick(state: &mut State, node: usize) {
    state.hosts[node].clock_ms += INTERVAL_MS;
    PairModel::step(state, node, Event::Tick);
}

/// Delivers the oldest message (lowest sequence) in flight to `node`.
fn deliver_first_to(state: &mut State, node: usize) {
    let index = state
        .network
        .iter()
        .enumerate()
        .filter(|(_, message)| message.to == node)
        .min_by_key(|(_, message)| match &message.payload {
            Payload::Heartbeat(beat) => beat.seq,
            _ => u64::MAX,
        })
        .map(|(index, _)| index)
        .expect("a message to deliver");
    let message = state.network.remove(index);
    PairModel::deliver(state, message);
}

const FAILOVER: &str = "a failover on missed keep-alives";
const FAST_PATH: &str = "a fast-path failover";
const SWITCHOVER: &str = "a switchover completed";
const DUAL_ACTIVE: &str = "two nodes active at once (different terms)";
const RESOLVED: &str = "a dual-active episode resolved";
const STALL: &str = "a stall fenced an active node";
const REJOINED: &str = "a restarted node rejoined behind the active";

fn check(model: PairModel) {
    let started = Instant::now();
    let name = format!("{:?}", model.start);
    let extra_depth: usize = std::env::var("ROLE_MODEL_EXTRA_DEPTH")
        .ok()
        .and_then(|depth| depth.parse().ok())
        .unwrap_or(0);
    let depth = model.depth + extra_depth;
    let checker = model
        .checker()
        .threads(2)
        .target_max_depth(depth)
        .spawn_bfs()
        .join();
    eprintln!(
        "role model {name}: {} states ({} unique), depth {}, in {:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    for property in checker.discoveries().keys() {
        eprintln!("  reached: {property}");
    }
    checker.assert_properties();
}

#[test]
fn from_a_fresh_start_election_crashes_and_partitions_keep_one_active_per_term() {
    check(PairModel {
        start: Start::Fresh,
        clock_limit_ms: 5 * INTERVAL_MS,
        crashes: 1,
        partitions: 1,
        admin: &[],
        admin_budget: 0,
        dials: 0,
        reaches: &[FAILOVER, DUAL_ACTIVE, RESOLVED, STALL, REJOINED],
        depth: 8,
    });
}

#[test]
fn in_a_running_pair_switchover_failover_and_admin_commands_keep_one_active_per_term() {
    check(PairModel {
        start: Start::RunningPair,
        clock_limit_ms: 6 * INTERVAL_MS,
        crashes: 1,
        partitions: 1,
        admin: &[
            AdminRequest::Switchover,
            AdminRequest::FailoverNow { force: false },
            AdminRequest::SetMaintenance(true),
            AdminRequest::SetMonitoring(Monitoring::Suspended),
        ],
        admin_budget: 1,
        dials: 0,
        reaches: &[FAILOVER, SWITCHOVER, DUAL_ACTIVE, RESOLVED, STALL, REJOINED],
        depth: 7,
    });
}

#[test]
fn with_the_active_down_the_fast_path_and_its_restart_keep_one_active_per_term() {
    check(PairModel {
        start: Start::ActiveDown,
        clock_limit_ms: 8 * INTERVAL_MS,
        crashes: 0,
        partitions: 1,
        admin: &[AdminRequest::FailoverNow { force: false }],
        admin_budget: 1,
        dials: 3,
        reaches: &[FAILOVER, FAST_PATH, RESOLVED, REJOINED],
        depth: 8,
    });
}

#[test]
fn during_a_hand_over_loss_duplication_and_crashes_keep_one_active_per_term() {
    check(PairModel {
        start: Start::HandingOver,
        clock_limit_ms: 6 * INTERVAL_MS,
        crashes: 1,
        partitions: 1,
        admin: &[],
        admin_budget: 0,
        dials: 0,
        reaches: &[FAILOVER, SWITCHOVER, DUAL_ACTIVE, REJOINED],
        depth: 8,
    });
}
