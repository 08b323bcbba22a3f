//! A stateright model of witness mode (DESIGN.md §12): two nodes and the witness, run by
//! `cargo test`.
//!
//! # What it runs
//! The witness is the real `Grantor` (`node/src/witness/grantor.rs`), restarted from what it
//! persisted (`witness.db` is the list of records its outcomes said to persist, written before
//! the answer leaves). The nodes follow the lease rules of `driver/quorum.rs`, restated here:
//! - an active node sends heartbeats stamped with its clock; a passive answers each with an
//!   acknowledgement that carries its promise (not while it seeks a promotion), and promises not
//!   to ask for one until a lease after it received that heartbeat;
//! - an acknowledgement with the promise gives the active the peer's vote until the heartbeat's
//!   send time plus the holder's lease (the lease less the drift margin);
//! - the active renews at the witness; a grant gives the witness's vote until the request's
//!   send time plus the holder's lease;
//! - a passive may seek a promotion whenever the adversary says so, but only once its promise
//!   has run out; a grant makes it active in the granted term;
//! - a node admits while it is active and either vote holds on its own clock.
//!
//! # Time and drift
//! Discrete ticks of one global clock; the witness counts on it. Each node counts on its own
//! clock, which the adversary may hold back by one tick once in a run (the bounded drift); the
//! holder's lease is the witness's lease less one tick (`max_drift` as the margin).
//!
//! # What the adversary may do, at any moment
//! Tick (optionally holding one node's clock back, once); deliver, or drop, any message in
//! flight, in any order; cut and heal any of the three links (a-b, a-W, b-W), each cut dropping
//! what it carries; crash and restart either node (it comes back passive, its epoch kept) and
//! the witness (it comes back from `witness.db`); have the active renew, the passive send a
//! heartbeat answer, or the passive seek a promotion.
//!
//! # Bounds
//! A complete breadth-first search of every path up to 9 actions (`WITNESS_MODEL_DEPTH` to
//! change it; 10 explores about 2.2 million distinct states), a lease of 3 ticks, at most 9
//! ticks, 4 messages in flight, one node crash, one witness crash, two link cuts and one tick of
//! drift. Each `sometimes` property below is reached within that depth.
//!
//! # Properties
//! `always`: at no instant do both nodes admit clients. `sometimes`: b admits (a takeover
//! happened), a admits after the witness restarted, both nodes are active in their own minds at
//! once (so the admission rule, not the roles, is what keeps them apart), and a grant was
//! refused; so the check cannot pass vacuously.

use std::time::Instant;

use stateright::{Checker, Model, Property};
use tandem_node::witness::grantor::{
    Answer, Disk, Grantor, PairRecord, Request as GrantRequest, WitnessTerm,
};

/// The witness's lease, in ticks.
const LEASE: u8 = 3;
/// The lease a node counts: one tick less, for the drift.
const HOLDER_LEASE: u8 = LEASE - 1;
/// Messages in flight at most; a send beyond that is lost.
const MAX_IN_FLIGHT: usize = 4;
const MAX_TICKS: u8 = 9;
const CLUSTER: &str = "pbx";
const NAMES: [&str; 2] = ["a", "b"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    up: bool,
    clock: u8,
    active: bool,
    /// The term this node is active in, and the newest epoch it has seen (persisted).
    epoch: u64,
    max_epoch: u64,
    witness_until: Option<u8>,
    peer_until: Option<u8>,
    promise_until: Option<u8>,
    seeking: bool,
}

impl Node {
    fn admits(&self) -> bool {
        let holds = |until: Option<u8>| until.is_some_and(|until| self.clock < until);
        self.up && self.active && (holds(self.witness_until) || holds(self.peer_until))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Msg {
    Heartbeat {
        from: usize,
        sent: u8,
        epoch: u64,
    },
    Ack {
        from: usize,
        acked_sent: u8,
        promise: bool,
    },
    Request {
        from: usize,
        sent: u8,
        request: GrantRequest,
    },
    Reply {
        to: usize,
        sent: u8,
        promote: bool,
        answer: Answer,
    },
}

/// The links: a-b, a-W, b-W.
const AB: usize = 0;

fn witness_link(node: usize) -> usize {
    1 + node
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    t: u8,
    nodes: [Node; 2],
    witness_up: bool,
    grantor: Grantor,
    disk: Vec<PairRecord>,
    net: Vec<Msg>,
    cut: [bool; 3],
    lag_left: u8,
    crashes_left: u8,
    witness_crashes_left: u8,
    cuts_left: u8,
    // Sticky flags for the `sometimes` properties.
    b_admitted: bool,
    witness_restarted: bool,
    a_admitted_after_restart: bool,
    both_active: bool,
    refused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Tick { lag: Option<usize> },
    Deliver(usize),
    Drop(usize),
    Heartbeat(usize),
    Renew(usize),
    Seek(usize),
    Crash(usize),
    Restart(usize),
    CrashWitness,
    RestartWitness,
    Cut(usize),
    Heal(usize),
}

fn pairs() -> Vec<(String, Vec<String>)> {
    vec![(
        CLUSTER.into(),
        NAMES.iter().map(|name| name.to_string()).collect(),
    )]
}

struct WitnessModel;

impl State {
    fn send(&mut self, msg: Msg, link: usize) {
        if !self.cut[link] && self.net.len() < MAX_IN_FLIGHT && !self.net.contains(&msg) {
            self.net.push(msg);
            self.net.sort_by_key(|msg| format!("{msg:?}"));
        }
    }

    fn link_of(msg: &Msg) -> usize {
        match msg {
            Msg::Heartbeat { .. } | Msg::Ack { .. } => AB,
            Msg::Request { from, .. } => witness_link(*from),
            Msg::Reply { to, .. } => witness_link(*to),
        }
    }

    fn observe(&mut self) {
        if self.nodes[1].admits() {
            self.b_admitted = true;
        }
        if self.witness_restarted && self.nodes[0].admits() {
            self.a_admitted_after_restart = true;
        }
        if self.nodes.iter().all(|node| node.up && node.active) {
            self.both_active = true;
        }
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Heartbeat { from, sent, epoch } => {
                let to = 1 - from;
                let node = &mut self.nodes[to];
                if !node.up {
                    return;
                }
                node.max_epoch = node.max_epoch.max(epoch);
                let promise = !node.active && !node.seeking;
                if promise {
                    let until = node.clock + LEASE;
                    node.promise_until = Some(node.promise_until.map_or(until, |at| at.max(until)));
                }
                self.send(
                    Msg::Ack {
                        from: to,
                        acked_sent: sent,
                        promise,
                    },
                    AB,
                );
            }
            Msg::Ack {
                from,
                acked_sent,
                promise,
            } => {
                let node = &mut self.nodes[1 - from];
                if node.up && node.active && promise {
                    let until = acked_sent + HOLDER_LEASE;
                    node.peer_until = Some(node.peer_until.map_or(until, |at| at.max(until)));
                }
            }
            Msg::Request {
                from,
                sent,
                request,
            } => {
                if !self.witness_up {
                    return;
                }
                let promote = matches!(request, GrantRequest::Promote { .. });
                let outcome =
                    self.grantor
                        .request(CLUSTER, NAMES[from], request, u64::from(self.t));
                if let Some(record) = outcome.persist {
                    self.disk = vec![record];
                }
                self.send(
                    Msg::Reply {
                        to: from,
                        sent,
                        promote,
                        answer: outcome.answer,
                    },
                    witness_link(from),
                );
            }
            Msg::Reply {
                to,
                sent,
                promote,
                answer,
            } => {
                let node = &mut self.nodes[to];
                if !node.up {
                    return;
                }
                match answer {
                    Answer::Granted { term, .. } => {
                        if promote {
                            if !node.seeking {
                                return;
                            }
                            node.seeking = false;
                            node.active = true;
                            node.epoch = term.epoch;
                            node.max_epoch = node.max_epoch.max(term.epoch);
                            node.peer_until = None;
                        }
                        if node.active && term.epoch == node.epoch {
                            node.witness_until = Some(sent + HOLDER_LEASE);
                        }
                    }
                    Answer::Refused { .. } => {
                        self.refused = true;
                        if promote {
                            node.seeking = false;
                        }
                    }
                }
            }
        }
    }
}

impl Model for WitnessModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        // A running pair: a active in term 1, recorded by the witness, its lease just granted.
        let record = PairRecord {
            cluster: CLUSTER.into(),
            holder: Some(WitnessTerm {
                epoch: 1,
                node: "a".into(),
                priority: 100,
            }),
            outdated: Default::default(),
        };
        let mut grantor = Grantor::new(u64::from(LEASE), 0.0, &pairs(), vec![], 0);
        let first = grantor.request(
            CLUSTER,
            "a",
            GrantRequest::Renew {
                term: record.holder.clone().expect("a holder"),
                peer_outdated: false,
                disk: Disk::Consistent,
            },
            0,
        );
        assert!(matches!(first.answer, Answer::Granted { .. }));
        let node = |active: bool| Node {
            up: true,
            clock: 0,
            active,
            epoch: if active { 1 } else { 0 },
            max_epoch: 1,
            witness_until: active.then_some(HOLDER_LEASE),
            peer_until: None,
            promise_until: None,
            seeking: false,
        };
        vec![State {
            t: 0,
            nodes: [node(true), node(false)],
            witness_up: true,
            grantor,
            disk: vec![record],
            net: Vec::new(),
            cut: [false; 3],
            lag_left: 1,
            crashes_left: 1,
            witness_crashes_left: 1,
            cuts_left: 2,
            b_admitted: false,
            witness_restarted: false,
            a_admitted_after_restart: false,
            both_active: false,
            refused: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.t < MAX_TICKS {
            actions.push(Action::Tick { lag: None });
            if state.lag_left > 0 {
                actions.push(Action::Tick { lag: Some(0) });
                actions.push(Action::Tick { lag: Some(1) });
            }
        }
        for index in 0..state.net.len() {
            actions.push(Action::Deliver(index));
            actions.push(Action::Drop(index));
        }
        for (index, node) in state.nodes.iter().enumerate() {
            if node.up && node.active {
                actions.push(Action::Heartbeat(index));
                actions.push(Action::Renew(index));
            }
            let promised = node.promise_until.is_some_and(|until| node.clock < until);
            if node.up && !node.active && !node.seeking && !promised {
                actions.push(Action::Seek(index));
            }
            if node.up && state.crashes_left > 0 {
                actions.push(Action::Crash(index));
            }
            if !node.up {
                actions.push(Action::Restart(index));
            }
        }
        if state.witness_up && state.witness_crashes_left > 0 {
            actions.push(Action::CrashWitness);
        }
        if !state.witness_up {
            actions.push(Action::RestartWitness);
        }
        for link in 0..3 {
            if state.cut[link] {
                actions.push(Action::Heal(link));
            } else if state.cuts_left > 0 {
                actions.push(Action::Cut(link));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Tick { lag } => {
                state.t += 1;
                if lag.is_some() {
                    state.lag_left -= 1;
                }
                for (index, node) in state.nodes.iter_mut().enumerate() {
                    if node.up && lag != Some(index) {
                        node.clock += 1;
                    }
                }
            }
            Action::Deliver(index) => {
                let msg = state.net.remove(index);
                if !state.cut[State::link_of(&msg)] {
                    state.deliver(msg);
                }
            }
            Action::Drop(index) => {
                state.net.remove(index);
            }
            Action::Heartbeat(index) => {
                let node = &state.nodes[index];
                let msg = Msg::Heartbeat {
                    from: index,
                    sent: node.clock,
                    epoch: node.epoch,
                };
                state.send(msg, AB);
            }
            Action::Renew(index) => {
                let node = &state.nodes[index];
                let msg = Msg::Request {
                    from: index,
                    sent: node.clock,
                    request: GrantRequest::Renew {
                        term: WitnessTerm {
                            epoch: node.epoch,
                            node: NAMES[index].into(),
                            priority: 100,
                        },
                        peer_outdated: false,
                        disk: Disk::Consistent,
                    },
                };
                state.send(msg, witness_link(index));
            }
            Action::Seek(index) => {
                let node = &mut state.nodes[index];
                node.seeking = true;
                let msg = Msg::Request {
                    from: index,
                    sent: node.clock,
                    request: GrantRequest::Promote {
                        epoch: node.max_epoch + 1,
                        priority: 100,
                        disk: Disk::Consistent,
                        max_epoch_seen: node.max_epoch,
                        fast_path: false,
                        force: false,
                    },
                };
                state.send(msg, witness_link(index));
            }
            Action::Crash(index) => {
                state.crashes_left -= 1;
                let node = &mut state.nodes[index];
                *node = Node {
                    up: false,
                    active: false,
                    witness_until: None,
                    peer_until: None,
                    promise_until: None,
                    seeking: false,
                    ..node.clone()
                };
            }
            Action::Restart(index) => {
                // Back passive; its clock starts again, its epochs were persisted.
                let node = &mut state.nodes[index];
                node.up = true;
                node.epoch = 0;
            }
            Action::CrashWitness => {
                state.witness_crashes_left -= 1;
                state.witness_up = false;
            }
            Action::RestartWitness => {
                state.witness_up = true;
                state.witness_restarted = true;
                state.grantor = Grantor::new(
                    u64::from(LEASE),
                    0.0,
                    &pairs(),
                    state.disk.clone(),
                    u64::from(state.t),
                );
            }
            Action::Cut(link) => {
                state.cuts_left -= 1;
                state.cut[link] = true;
            }
            Action::Heal(link) => state.cut[link] = false,
        }
        state.observe();
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("never two nodes admitting", |_, state: &State| {
                !(state.nodes[0].admits() && state.nodes[1].admits())
            }),
            Property::sometimes("b admits after a takeover", |_, state: &State| {
                state.b_admitted
            }),
            Property::sometimes(
                "a admits after the witness restarted",
                |_, state: &State| state.a_admitted_after_restart,
            ),
            Property::sometimes("both nodes active at once", |_, state: &State| {
                state.both_active
            }),
            Property::sometimes("a vote refused", |_, state: &State| state.refused),
        ]
    }
}

#[test]
fn witness_mode_never_lets_two_nodes_admit() {
    let started = Instant::now();
    let depth: usize = std::env::var("WITNESS_MODEL_DEPTH")
        .ok()
        .and_then(|depth| depth.parse().ok())
        .unwrap_or(9);
    let checker = WitnessModel
        .checker()
        .threads(2)
        .target_max_depth(depth)
        .spawn_bfs()
        .join();
    eprintln!(
        "witness model: {} states ({} unique), depth {}, in {:?}",
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
