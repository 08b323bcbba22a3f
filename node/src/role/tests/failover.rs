//! Missed keep-alives on the passive: warn, then fail over, unless something blocks it; the
//! `fence_peer` hook and its back-off.

use super::*;

const MISSED_8: &str = "peer b missed 8 keep-alives";

#[test]
fn warns_once_at_warn_after_misses_and_fails_over_at_failover_after_misses() {
    let mut node = passive();
    assert_eq!(node.tick(), vec![send_heartbeat(1)]);
    assert_eq!(node.tick(), vec![send_heartbeat(2)]);
    assert_eq!(
        node.tick(),
        vec![
            record(
                EventKind::PeerSuspect,
                "peer b suspect: 3 keep-alives missed"
            ),
            send_heartbeat(3),
        ]
    );
    assert_eq!(node.machine.peer_view(), PeerView::Suspect);
    for seq in 4..8 {
        assert_eq!(
            node.tick(),
            vec![send_heartbeat(seq)],
            "suspect is recorded once"
        );
    }

    let out = node.tick();

    let mut expected = vec![record(EventKind::PeerFailed, MISSED_8)];
    expected.extend(promotion(
        durable(2, Some(term(2, "a"))),
        EventKind::Failover,
        MISSED_8,
        8,
    ));
    assert_eq!(out, expected);
    assert_eq!(node.machine.missed_keepalives(), 8);
}

#[test]
fn a_heartbeat_after_a_suspicion_records_the_recovery_and_restarts_the_count() {
    let mut node = passive();
    node.tick_quietly_until(300);
    assert_eq!(node.machine.peer_view(), PeerView::Suspect);

    let out = node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));

    assert_eq!(
        out,
        vec![record(EventKind::PeerRecovered, "peer b answers again")]
    );
    assert_eq!(node.machine.peer_view(), PeerView::Ok);
    assert_eq!(node.machine.missed_keepalives(), 0);
    // Eight fresh misses are needed again: none at 1000 ms (7 missed), at 1100 ms it fails over.
    let out = node.tick_quietly_until(1000);
    assert_eq!(out, vec![send_heartbeat(10)]);
    assert_eq!(node.role(), Role::Passive);
    node.tick();
    assert_eq!(node.role(), Role::Active);
}

/// Misses the peer until `failover_after_misses`, and checks the failover is suppressed for
/// `blocker`, recorded once, not on every tick.
fn failover_blocked(mut node: Node, blocker: &str) -> Node {
    let out = node.tick_quietly_until(800);
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, MISSED_8),
            record(
                EventKind::FailoverSuppressed,
                &format!("not taking over ({MISSED_8}): {blocker}")
            ),
            send_heartbeat(8),
        ]
    );
    // Still failed twenty ticks later: nothing more is recorded, and nothing promotes.
    node.tick_quietly_until(2800);
    assert_eq!(node.role(), Role::Passive);
    node
}

#[test]
fn monitoring_suspended_blocks_the_failover() {
    let start = Durable {
        monitoring: Monitoring::Suspended,
        ..durable(1, Some(term(1, "b")))
    };
    failover_blocked(passive_with(config(), start), "monitoring is suspended");
}

#[test]
fn monitoring_stopped_blocks_the_failover() {
    let start = Durable {
        monitoring: Monitoring::Stopped,
        ..durable(1, Some(term(1, "b")))
    };
    failover_blocked(passive_with(config(), start), "monitoring is stopped");
}

#[test]
fn maintenance_blocks_the_failover() {
    let start = Durable {
        maintenance: true,
        ..durable(1, Some(term(1, "b")))
    };
    failover_blocked(passive_with(config(), start), "this node is in maintenance");
}

#[test]
fn an_outdated_disk_blocks_the_failover() {
    let start = Durable {
        disk: DiskState::Outdated,
        ..durable(1, Some(term(1, "b")))
    };
    failover_blocked(passive_with(config(), start), "disk state is outdated");
}

#[test]
fn unreachable_targets_block_the_failover_until_they_answer() {
    let mut node = passive();
    assert_eq!(node.step(Event::Reachability(false)), vec![]);
    let mut node = failover_blocked(
        node,
        "reachability targets do not answer: this node is the isolated one",
    );

    assert_eq!(node.step(Event::Reachability(true)), vec![]);
    let out = node.tick();

    let reason = "peer b missed 29 keep-alives";
    assert_eq!(
        out,
        promotion(
            durable(2, Some(term(2, "a"))),
            EventKind::Failover,
            reason,
            29
        )
    );
}

#[test]
fn min_failover_interval_damps_a_second_failover_and_says_so_once() {
    let mut node = passive();
    node.tick_quietly_until(800);
    assert_eq!(node.durable().term, Some(term(2, "a")));
    // `b` comes back active in a newer term at once; `a` demotes (heartbeat 9)...
    node.heartbeat(heartbeat(Role::Active, Some(term(3, "b"))));
    assert_eq!(node.role(), Role::Passive);
    // ...and `b` vanishes again.
    let out = node.tick_quietly_until(1600);
    let blocker = "a failover already happened within min_failover_interval (300 s)";
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, MISSED_8),
            record(
                EventKind::FailoverSuppressed,
                &format!("not taking over ({MISSED_8}): {blocker}")
            ),
            send_heartbeat(17),
        ]
    );

    // Recorded once, although the time since the last failover keeps growing, until the
    // interval has passed since the failover at 800 ms.
    let out = node.tick_quietly_until(800 + 300_000);

    let reason = "peer b missed 3000 keep-alives";
    assert_eq!(
        out,
        promotion(
            durable(4, Some(term(4, "a"))),
            EventKind::Failover,
            reason,
            3009
        )
    );
}

#[test]
fn with_fence_peer_the_failover_waits_for_the_fence_then_promotes() {
    let mut node = passive_with(fencing_config(), durable(1, Some(term(1, "b"))));
    let out = node.tick_quietly_until(800);
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, MISSED_8),
            set_role(Role::Promoting, MISSED_8),
            Command::FencePeer,
            send_heartbeat(8),
        ]
    );
    // Waiting for the hook: the next tick does not fence again.
    assert_eq!(node.tick(), vec![send_heartbeat(9)]);

    let out = node.step(Event::FenceResult { ok: true });

    assert_eq!(
        out,
        promotion(
            durable(2, Some(term(2, "a"))),
            EventKind::Failover,
            "peer b fenced",
            10
        )
    );
}

#[test]
fn a_failed_fence_leaves_the_node_passive_and_retries_only_after_the_back_off() {
    let mut node = passive_with(fencing_config(), durable(1, Some(term(1, "b"))));
    node.tick_quietly_until(800);

    let out = node.step(Event::FenceResult { ok: false });

    assert_eq!(
        out,
        vec![
            set_role(Role::Passive, "fence_peer failed"),
            record(EventKind::Fence, "fence_peer failed: not taking over"),
        ]
    );
    assert_eq!(
        node.durable(),
        durable(1, Some(term(1, "b"))),
        "nothing taken"
    );
    assert_eq!(
        node.tick(),
        vec![
            record(
                EventKind::FailoverSuppressed,
                "not taking over (peer b missed 9 keep-alives): fence_peer failed; waiting before trying again"
            ),
            send_heartbeat(9),
        ]
    );
    // The back-off is failover_after_misses intervals: the fence runs again at 800 + 800 ms.
    let out = node.tick_quietly_until(1600);
    assert_eq!(
        out,
        vec![
            set_role(Role::Promoting, "peer b missed 16 keep-alives"),
            Command::FencePeer,
            send_heartbeat(16),
        ]
    );
}

#[test]
fn a_promoting_node_that_hears_the_peer_active_again_follows_it_and_ignores_the_fence_result() {
    let mut node = passive_with(fencing_config(), durable(1, Some(term(1, "b"))));
    node.tick_quietly_until(800);
    assert_eq!(node.role(), Role::Promoting);

    let out = node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));

    assert_eq!(
        out,
        vec![
            record(EventKind::PeerRecovered, "peer b answers again"),
            set_role(Role::Passive, "peer answers again"),
        ]
    );
    assert_eq!(node.step(Event::FenceResult { ok: true }), vec![]);
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn a_fence_result_outside_promoting_is_ignored() {
    let mut node = passive();
    assert_eq!(node.step(Event::FenceResult { ok: true }), vec![]);
    assert_eq!(node.step(Event::FenceResult { ok: false }), vec![]);
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn an_active_node_that_misses_its_peer_only_records_it() {
    let mut node = active();
    let out = node.tick_quietly_until(800);
    assert_eq!(
        out,
        vec![record(EventKind::PeerFailed, MISSED_8), send_heartbeat(9)]
    );
    assert_eq!(node.tick(), vec![send_heartbeat(10)]);
    assert_eq!(node.role(), Role::Active);
}

/// The driver builds a heartbeat from the machine as it is after the step, so the tick's
/// heartbeat must not run before the `Persist` of a term taken in the same tick: a crash between
/// the two would have announced a term that the restarted node does not know it took.
#[test]
fn a_tick_that_promotes_announces_the_new_term_only_after_persisting_it() {
    let mut node = passive();
    let out = node.tick_quietly_until(800);

    let persisted_at = out.iter().position(|c| matches!(c, Command::Persist(_)));
    let first_heartbeat_at = out
        .iter()
        .position(|c| matches!(c, Command::SendHeartbeat { .. }));
    assert!(persisted_at < first_heartbeat_at, "{out:?}");
    let heartbeats = out
        .iter()
        .filter(|c| matches!(c, Command::SendHeartbeat { .. }))
        .count();
    assert_eq!(
        heartbeats, 1,
        "the promotion's heartbeat stands for the tick's"
    );
}
