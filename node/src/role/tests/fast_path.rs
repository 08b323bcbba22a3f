//! The fast path: the peer's stream ended and every reconnect is refused on both ports, at least
//! 3 rounds over at least 100 ms: its host answers but its process is gone, so take over at once.

use super::*;

const REFUSED: Event = Event::FastPathDial {
    peer_port: DialOutcome::Refused,
    client_port: DialOutcome::Refused,
};

fn gone(dials: u32, window_ms: u64) -> String {
    format!(
        "peer b process gone: stream ended and {dials} dials refused on both ports over {window_ms} ms"
    )
}

fn fast_failover(dials: u32, window_ms: u64, heartbeat_seq: u64) -> Vec<Command> {
    let reason = gone(dials, window_ms);
    let mut expected = vec![record(EventKind::PeerFailed, &reason)];
    expected.extend(promotion(
        durable(2, Some(term(2, "a"))),
        EventKind::Failover,
        &reason,
        heartbeat_seq,
    ));
    expected
}

#[test]
fn stream_end_and_three_refused_rounds_over_100_ms_fail_over_at_once() {
    let mut node = passive();
    assert_eq!(node.step_at(10, Event::PeerStreamEnded), vec![]);
    assert_eq!(node.step_at(10, REFUSED), vec![]);
    assert_eq!(node.step_at(60, REFUSED), vec![]);

    let out = node.step_at(110, REFUSED);

    assert_eq!(out, fast_failover(3, 100, 1));
    assert_eq!(node.machine.peer_view(), PeerView::Failed);
}

#[test]
fn two_refused_rounds_are_not_enough() {
    let mut node = passive();
    node.step(Event::PeerStreamEnded);
    assert_eq!(node.step_at(10, REFUSED), vec![]);
    assert_eq!(node.step_at(250, REFUSED), vec![]);
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn three_rounds_within_100_ms_wait_for_a_round_past_100_ms() {
    let mut node = passive();
    node.step(Event::PeerStreamEnded);
    assert_eq!(node.step_at(10, REFUSED), vec![]);
    assert_eq!(node.step_at(30, REFUSED), vec![]);
    assert_eq!(node.step_at(50, REFUSED), vec![]);
    assert_eq!(node.step_at(109, REFUSED), vec![], "4 rounds over 99 ms");

    let out = node.step_at(110, REFUSED);

    assert_eq!(out, fast_failover(5, 100, 1));
}

#[test]
fn a_connected_dial_aborts_the_fast_path() {
    let mut node = passive();
    node.step(Event::PeerStreamEnded);
    node.step_at(10, REFUSED);
    node.step_at(60, REFUSED);
    let connected = Event::FastPathDial {
        peer_port: DialOutcome::Refused,
        client_port: DialOutcome::Connected,
    };
    assert_eq!(node.step_at(70, connected), vec![]);
    // Disarmed: refusals alone no longer count until the stream ends again.
    for now_ms in [110, 160, 210, 260] {
        assert_eq!(node.step_at(now_ms, REFUSED), vec![]);
    }
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn a_failed_dial_proves_nothing_and_restarts_the_count() {
    let mut node = passive();
    node.step(Event::PeerStreamEnded);
    node.step_at(10, REFUSED);
    node.step_at(60, REFUSED);
    let timed_out = Event::FastPathDial {
        peer_port: DialOutcome::Failed,
        client_port: DialOutcome::Refused,
    };
    assert_eq!(node.step_at(70, timed_out), vec![]);
    assert_eq!(node.step_at(80, REFUSED), vec![]);
    assert_eq!(node.step_at(130, REFUSED), vec![]);

    let out = node.step_at(180, REFUSED);

    assert_eq!(out, fast_failover(3, 100, 1));
}

#[test]
fn a_heartbeat_disarms_the_fast_path() {
    let mut node = passive();
    node.step(Event::PeerStreamEnded);
    node.step_at(10, REFUSED);
    node.step_at(60, REFUSED);
    assert_eq!(
        node.heartbeat(heartbeat(Role::Active, Some(term(1, "b")))),
        vec![]
    );
    for now_ms in [110, 160, 210] {
        assert_eq!(node.step_at(now_ms, REFUSED), vec![]);
    }
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn dials_without_a_stream_end_are_ignored() {
    let mut node = passive();
    for now_ms in [10, 60, 110, 160] {
        assert_eq!(node.step_at(now_ms, REFUSED), vec![]);
    }
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn the_fast_path_respects_the_failover_blockers() {
    let start = Durable {
        monitoring: Monitoring::Suspended,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = passive_with(config(), start);
    node.step(Event::PeerStreamEnded);
    node.step_at(10, REFUSED);
    node.step_at(60, REFUSED);

    let out = node.step_at(110, REFUSED);

    let reason = gone(3, 100);
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, &reason),
            record(
                EventKind::FailoverSuppressed,
                &format!("not taking over ({reason}): monitoring is suspended")
            ),
        ]
    );
}

#[test]
fn on_an_active_node_the_fast_path_only_records_the_peer_failed() {
    let mut node = active();
    node.step(Event::PeerStreamEnded);
    node.step_at(10, REFUSED);
    node.step_at(60, REFUSED);

    let out = node.step_at(110, REFUSED);

    assert_eq!(out, vec![record(EventKind::PeerFailed, &gone(3, 100))]);
    assert_eq!(node.role(), Role::Active);
    assert_eq!(node.durable(), durable(1, Some(term(1, "a"))));
}
