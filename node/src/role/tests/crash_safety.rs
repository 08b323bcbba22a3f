//! Crash safety of the switchover: a node rebuilt from the last `Durable` it persisted, at any
//! point of a switchover, never becomes a second active in an epoch.
//!
//! A small deterministic driver runs both machines: it executes their commands in order
//! (`Persist` is what survives a crash), carries the messages FIFO, ticks both nodes every
//! interval, and can crash one node after any command it executed. The stateright model in
//! `node/tests/role_model.rs` explores loss, duplication and reordering on top of this.

use std::collections::{BTreeSet, VecDeque};

use super::*;

enum Message {
    Heartbeat(PeerHeartbeat),
    Handover(Term),
    HandoverReply(Term, bool),
    SwitchoverRequest,
    CaughtUp,
}

/// One node of the simulated pair.
struct Host {
    config: RoleConfig,
    /// `None` while the process is down.
    machine: Option<RoleMachine>,
    /// The last `Persist`ed record: all that a crash leaves.
    persisted: Durable,
    /// The highest heartbeat sequence received from the peer, sent back as `ack_seq`.
    acked: u64,
}

/// A crash of `node` right after it executed its `after_commands`-th command of the run.
#[derive(Clone, Copy, Debug)]
struct Crash {
    node: usize,
    after_commands: usize,
    down_intervals: u64,
}

struct Pair {
    hosts: [Host; 2],
    /// Messages in flight, with the index of the receiving node.
    in_flight: VecDeque<(usize, Message)>,
    now_ms: u64,
    crash: Option<Crash>,
    /// Commands executed so far by each node.
    executed: [usize; 2],
    /// When the crashed node restarts.
    restart_at_ms: Option<u64>,
    /// Every term some node became active in, across restarts.
    taken: BTreeSet<Term>,
}

impl Pair {
    fn new(crash: Option<Crash>) -> Pair {
        let host = |config: RoleConfig| Host {
            machine: Some(RoleMachine::new(
                config.clone(),
                Durable::default(),
                LogPosition::default(),
                0,
            )),
            config,
            persisted: Durable::default(),
            acked: 0,
        };
        Pair {
            hosts: [host(config()), host(config_b())],
            in_flight: VecDeque::new(),
            now_ms: 0,
            crash,
            executed: [0, 0],
            restart_at_ms: None,
            taken: BTreeSet::new(),
        }
    }

    fn step(&mut self, node: usize, event: Event) {
        let now_ms = self.now_ms;
        let Some(machine) = self.hosts[node].machine.as_mut() else {
            return;
        };
        let was = (machine.role(), machine.durable().term.clone());
        let commands = machine.step(event, now_ms);
        let became = (machine.role(), machine.durable().term.clone());
        if became.0 == Role::Active && became != was {
            let term = became.1.expect("an active node holds a term");
            assert_eq!(
                term.node(),
                self.hosts[node].config.name,
                "holds its own term"
            );
            assert!(
                self.taken.insert(term.clone()),
                "{term} taken twice ({:?})",
                self.crash
            );
        }
        for command in commands {
            self.execute(node, command);
            self.executed[node] += 1;
            if let Some(crash) = self.crash
                && crash.node == node
                && crash.after_commands == self.executed[node]
                && self.restart_at_ms.is_none()
            {
                self.hosts[node].machine = None;
                self.in_flight.retain(|(to, _)| *to != node);
                self.restart_at_ms = Some(now_ms + crash.down_intervals * INTERVAL_MS);
                return;
            }
        }
        self.check_one_active_per_epoch();
    }

    fn execute(&mut self, node: usize, command: Command) {
        let peer = 1 - node;
        let message = match command {
            Command::Persist(durable) => {
                self.hosts[node].persisted = durable;
                return;
            }
            Command::SendHeartbeat { seq } => {
                let machine = self.hosts[node].machine.as_ref().expect("running");
                Message::Heartbeat(PeerHeartbeat {
                    role: machine.role(),
                    term: machine.durable().term.clone(),
                    max_epoch_seen: machine.durable().max_epoch_seen,
                    priority: machine.config().priority,
                    disk: machine.durable().disk,
                    log: machine.log_position().clone(),
                    monitoring: machine.durable().monitoring,
                    monitoring_stamp: machine.durable().monitoring_stamp,
                    maintenance: machine.durable().maintenance,
                    reachable: machine.reachable(),
                    seq,
                    ack_seq: self.hosts[node].acked,
                })
            }
            Command::SendHandover { new_term } => Message::Handover(new_term),
            Command::SendHandoverReply {
                new_term, accepted, ..
            } => Message::HandoverReply(new_term, accepted),
            Command::SendSwitchoverRequest => Message::SwitchoverRequest,
            Command::StartCatchUp => {
                self.in_flight.push_back((node, Message::CaughtUp));
                return;
            }
            Command::Exit => {
                self.hosts[node].machine = None;
                return;
            }
            _ => return,
        };
        self.in_flight.push_back((peer, message));
    }

    fn deliver_all(&mut self) {
        while let Some((to, message)) = self.in_flight.pop_front() {
            let event = match message {
                Message::Heartbeat(heartbeat) => {
                    self.hosts[to].acked = self.hosts[to].acked.max(heartbeat.seq);
                    Event::Heartbeat(heartbeat)
                }
                Message::Handover(new_term) => Event::HandoverRequested { new_term },
                Message::HandoverReply(new_term, accepted) => {
                    Event::HandoverReplied { new_term, accepted }
                }
                Message::SwitchoverRequest => Event::SwitchoverRequested,
                Message::CaughtUp => Event::CaughtUp,
            };
            self.step(to, event);
        }
    }

    /// One keep-alive interval: restart a crashed node when its time comes, tick, deliver.
    fn round(&mut self) {
        self.now_ms += INTERVAL_MS;
        if let Some(at) = self.restart_at_ms
            && self.now_ms >= at
            && let Some(crash) = self.crash
            && self.hosts[crash.node].machine.is_none()
        {
            let host = &mut self.hosts[crash.node];
            host.machine = Some(RoleMachine::new(
                host.config.clone(),
                host.persisted.clone(),
                LogPosition::default(),
                self.now_ms,
            ));
            host.acked = 0;
        }
        for node in 0..2 {
            self.step(node, Event::Tick);
        }
        self.deliver_all();
    }

    fn roles(&self) -> [Option<Role>; 2] {
        [0, 1].map(|node| self.hosts[node].machine.as_ref().map(RoleMachine::role))
    }

    fn check_one_active_per_epoch(&self) {
        let actives: Vec<&Term> = self
            .hosts
            .iter()
            .filter_map(|host| host.machine.as_ref())
            .filter(|machine| machine.role() == Role::Active)
            .filter_map(|machine| machine.durable().term.as_ref())
            .collect();
        if let [first, second] = actives.as_slice() {
            assert_ne!(
                first.epoch, second.epoch,
                "two actives in one epoch: {:?}",
                self.crash
            );
        }
    }
}

/// Runs the pair to `a` active and `b` passive, then a switchover asked on `a`, then long enough
/// for a crashed node to restart and the pair to settle. Returns the commands `a` and `b`
/// executed from the switchover on.
fn switchover_run(crash: Option<Crash>) -> (Pair, [usize; 2]) {
    let mut pair = Pair::new(crash);
    for _ in 0..3 {
        pair.round();
    }
    assert_eq!(pair.roles(), [Some(Role::Active), Some(Role::Passive)]);
    let before = pair.executed;
    pair.step(
        0,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );
    pair.deliver_all();
    for _ in 0..120 {
        pair.round();
    }
    let after = [pair.executed[0] - before[0], pair.executed[1] - before[1]];
    (pair, after)
}

#[test]
fn without_a_crash_the_switchover_leaves_b_active_in_epoch_2() {
    let (pair, _) = switchover_run(None);
    assert_eq!(pair.roles(), [Some(Role::Passive), Some(Role::Active)]);
    let expected: BTreeSet<Term> = [term(1, "a"), term(2, "b")].into();
    assert_eq!(pair.taken, expected);
}

#[test]
fn a_crash_of_either_node_at_any_point_of_a_switchover_never_makes_a_second_active_in_an_epoch() {
    let (_, [a_commands, b_commands]) = switchover_run(None);
    let mut set_up = Pair::new(None);
    for _ in 0..3 {
        set_up.round();
    }
    let reference = set_up.executed;
    let mut runs = 0;
    for (node, commands) in [(0, a_commands), (1, b_commands)] {
        // The first commands of the switchover: the crash points that matter, and some after.
        for offset in 1..=commands.min(40) {
            for down_intervals in [1, 20] {
                let crash = Crash {
                    node,
                    after_commands: reference[node] + offset,
                    down_intervals,
                };
                let (pair, _) = switchover_run(Some(crash));
                assert!(pair.restart_at_ms.is_some(), "{crash:?} did not happen");
                runs += 1;
                // The checks ran at every step; the pair also settles with one active.
                let actives = pair
                    .roles()
                    .iter()
                    .filter(|role| **role == Some(Role::Active))
                    .count();
                assert_eq!(actives, 1, "{crash:?}: {:?}", pair.roles());
                let terms: Vec<_> = pair
                    .hosts
                    .iter()
                    .map(|host| host.machine.as_ref().unwrap().durable().term.clone())
                    .collect();
                assert_eq!(
                    terms[0], terms[1],
                    "{crash:?}: the passive follows the active"
                );
            }
        }
    }
    assert!(runs >= 40, "only {runs} crash points");
}
