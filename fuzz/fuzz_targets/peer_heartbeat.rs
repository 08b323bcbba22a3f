//! Peer-link messages as the driver takes them (node/src/driver.rs `on_peer_message`): each
//! `PeerMessage` is decoded, converted by `tandem_node::wire`, and stepped into a role machine,
//! with keep-alive ticks in between.
//!
//! Input: a flags byte, then length-delimited `PeerMessage`s. The flags pick the node's durable
//! state at start (bits 0-1), whether it first waits out the start-up election alone (bit 2), and
//! whether a tick follows each message (bit 3). Besides "no panic", it checks that an active node
//! always holds a term under its own name, and never a term older than the highest epoch it saw.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tandem_node::role::{
    DiskState, Durable, Event, LogPosition, Role, RoleConfig, RoleMachine, Term,
};
use tandem_node::wire;
use tandem_proto::peer as pb;

const INTERVAL_MS: u64 = 100;

fn config() -> RoleConfig {
    RoleConfig {
        name: "a".into(),
        priority: 100,
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

fn durable(flags: u8) -> Durable {
    match flags & 3 {
        0 => Durable::default(),
        1 => Durable {
            max_epoch_seen: 3,
            term: Some(Term::new(3, "a", 100)),
            ..Durable::default()
        },
        2 => Durable {
            max_epoch_seen: 3,
            term: Some(Term::new(3, "b", 50)),
            ..Durable::default()
        },
        _ => Durable {
            max_epoch_seen: 5,
            term: Some(Term::new(4, "b", 50)),
            disk: DiskState::Outdated,
            ..Durable::default()
        },
    }
}

fn check(machine: &RoleMachine) {
    let durable = machine.durable();
    if let Some(term) = &durable.term {
        assert!(
            term.epoch <= durable.max_epoch_seen,
            "holds term {term} beyond max_epoch_seen {}",
            durable.max_epoch_seen
        );
    }
    if machine.role() == Role::Active {
        let term = durable.term.as_ref().expect("an active node holds a term");
        assert_eq!(
            term.node(),
            "a",
            "active in a term that is not its own: {term}"
        );
    }
}

fn step(machine: &mut RoleMachine, now_ms: u64, message: pb::PeerMessage) {
    use pb::peer_message::Body;
    let event = match message.body {
        Some(Body::Heartbeat(heartbeat)) => match wire::heartbeat_from_pb(&heartbeat) {
            Ok(domain) => Event::Heartbeat(domain),
            Err(_) => return,
        },
        Some(Body::Handover(request)) => match request.new_term.as_ref().map(wire::term_from_pb) {
            Some(Ok(new_term)) => Event::HandoverRequested { new_term },
            _ => return,
        },
        Some(Body::HandoverReply(reply)) => match reply.new_term.as_ref().map(wire::term_from_pb) {
            Some(Ok(new_term)) => Event::HandoverReplied {
                new_term,
                accepted: reply.accepted,
            },
            _ => return,
        },
        Some(Body::SwitchoverRequest(_)) => Event::SwitchoverRequested,
        None => return,
    };
    machine.step(event, now_ms);
    check(machine);
}

fuzz_target!(|data: &[u8]| {
    let (flags, messages) = tandem_fuzz::flags_and_messages::<pb::PeerMessage>(data);
    let mut machine = RoleMachine::new(config(), durable(flags), LogPosition::default(), 0);
    let mut now_ms = 0;
    if flags & 4 != 0 {
        for _ in 0..=50 {
            now_ms += INTERVAL_MS;
            machine.step(Event::Tick, now_ms);
        }
        check(&machine);
    }
    for message in messages {
        // The heartbeat also round-trips: what the node would send back must encode.
        let _ = message.encoded_len();
        step(&mut machine, now_ms, message);
        if flags & 8 != 0 {
            now_ms += INTERVAL_MS;
            machine.step(Event::Tick, now_ms);
            check(&machine);
        }
    }
});
