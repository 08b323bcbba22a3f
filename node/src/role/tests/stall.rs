//! The stall rule: an active node whose event loop froze for more than two intervals admits
//! nothing until one heartbeat round trip completes, and frozen time is never counted as misses.

use super::*;

const FENCED: &str =
    "event loop stalled for 300 ms; admitting nothing until a heartbeat round trip completes";

/// `a` active, ticked at 100 ms (heartbeat 2), then frozen until 400 ms.
fn stalled_active() -> (Node, Vec<Command>) {
    let mut node = active();
    assert_eq!(node.tick(), vec![send_heartbeat(2)]);
    let out = node.step_at(400, Event::Tick);
    (node, out)
}

#[test]
fn a_tick_gap_over_two_intervals_on_the_active_stops_admission() {
    let (node, out) = stalled_active();

    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            record(EventKind::Stall, FENCED),
            send_heartbeat(3),
        ]
    );
    assert!(!node.machine.admitting());
    assert!(node.machine.fenced());
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn a_gap_of_exactly_two_intervals_is_not_a_stall() {
    let mut node = active();
    node.tick();
    node.step_at(150, Event::Heartbeat(passive_peer_of(&node)));
    assert_eq!(node.step_at(300, Event::Tick), vec![send_heartbeat(3)]);
    assert!(node.machine.admitting());
}

#[test]
fn admission_returns_only_after_a_heartbeat_acknowledging_the_post_stall_heartbeat() {
    let (mut node, _) = stalled_active();
    let peer = passive_peer_of(&node);

    // Sent before the peer could have seen heartbeat 3: proves nothing.
    let out = node.step_at(
        410,
        Event::Heartbeat(PeerHeartbeat {
            ack_seq: 2,
            ..peer.clone()
        }),
    );
    assert_eq!(out, vec![]);
    assert!(!node.machine.admitting());

    let out = node.step_at(420, Event::Heartbeat(PeerHeartbeat { ack_seq: 3, ..peer }));

    assert_eq!(
        out,
        vec![
            Command::SetAdmission(true),
            record(
                EventKind::Stall,
                "heartbeat round trip after the stall: still the newest term, admitting"
            ),
        ]
    );
    assert!(!node.machine.fenced());
}

#[test]
fn a_round_trip_that_shows_a_newer_active_term_demotes_instead() {
    let (mut node, _) = stalled_active();

    let out = node.step_at(
        420,
        Event::Heartbeat(PeerHeartbeat {
            ack_seq: 3,
            ..heartbeat(Role::Active, Some(term(2, "b")))
        }),
    );

    let message = "split brain: peer b is active in the newer term (2, b); demoting";
    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(1, "a")))),
            persist(durable(2, Some(term(2, "b")))),
            set_role(Role::Passive, message),
            send_heartbeat(4),
            record(EventKind::SplitBrain, message),
        ]
    );
    assert!(!node.machine.admitting());
}

#[test]
fn a_newer_active_term_seen_before_the_round_trip_demotes_at_once() {
    let (mut node, _) = stalled_active();
    let out = node.step_at(
        410,
        Event::Heartbeat(PeerHeartbeat {
            ack_seq: 2,
            ..heartbeat(Role::Active, Some(term(2, "b")))
        }),
    );
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(node.role(), Role::Passive);
    assert!(!node.machine.fenced());
}

#[test]
fn frozen_time_is_not_counted_as_missed_keep_alives() {
    let mut node = passive();
    assert_eq!(node.tick(), vec![send_heartbeat(1)]);

    // Frozen for 900 ms: 9 intervals without a heartbeat, but none of them was observed.
    let out = node.step_at(1000, Event::Tick);

    assert_eq!(
        out,
        vec![
            record(EventKind::Stall, "event loop stalled for 900 ms"),
            send_heartbeat(2),
        ]
    );
    assert_eq!(node.role(), Role::Passive);
    assert_eq!(node.machine.last_heard_ms(), Some(1000));
    // A fresh count of eight misses is needed.
    let out = node.tick_quietly_until(1700);
    assert_eq!(out, vec![send_heartbeat(9)]);
    let out = node.tick();
    assert_eq!(out.len(), 7, "fails over at the eighth fresh miss: {out:?}");
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn a_stalled_active_admits_again_only_on_a_fresh_observation_of_the_peer_failed() {
    let (mut node, _) = stalled_active();

    let out = node.tick_quietly_until(1200);

    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, "peer b missed 8 keep-alives"),
            Command::SetAdmission(true),
            record(
                EventKind::Stall,
                "peer failed after the stall; admitting again"
            ),
            send_heartbeat(11),
        ]
    );
}
