//! Switchover on the active node: fence, catch up, persist "handing over to e+1" and hand over,
//! then demote when the peer takes the term, or stay active under a fresh term when it refuses.

use super::*;

const STARTED: &str = "switchover to b started (requested by an administrator): fenced";
const SWITCHED: &str = "switched over: b is active in term (2, b)";

/// The durable record while handing over to (2, b).
fn handing_over_record() -> Durable {
    Durable {
        handing_over: Some(term(2, "b")),
        ..durable(2, Some(term(1, "a")))
    }
}

/// `a` active, asked to switch over (admin request 1) at 100 ms, caught up at 150 ms.
fn handing_over(mut node: Node) -> Node {
    node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );
    node.step_at(150, Event::CaughtUp);
    assert_eq!(node.role(), Role::Demoting);
    node
}

/// Ticks, hearing `b` passive before each tick, until the tick at or after `until_ms`; returns
/// the commands of every tick.
fn ticks_hearing_until(node: &mut Node, until_ms: u64) -> Vec<Vec<Command>> {
    let mut ticks = Vec::new();
    while node.now_ms < until_ms {
        let peer = passive_peer_of(node);
        ticks.push(node.tick_hearing(&peer));
    }
    ticks
}

#[test]
fn the_full_path_fences_catches_up_hands_over_and_demotes_on_acceptance() {
    let mut node = active();

    let out = node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );
    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            record(EventKind::Switchover, STARTED),
            Command::StartCatchUp,
        ]
    );
    assert_eq!(
        node.machine.switchover_phase(),
        Some(SwitchoverPhase::CatchingUp)
    );
    assert_eq!(node.role(), Role::Active);

    let out = node.step_at(150, Event::CaughtUp);
    assert_eq!(
        out,
        vec![
            persist(handing_over_record()),
            set_role(Role::Demoting, "handing over to b in term (2, b)"),
            Command::SendHandover {
                new_term: term(2, "b")
            },
        ]
    );
    assert_eq!(
        node.machine.switchover_phase(),
        Some(SwitchoverPhase::HandingOver)
    );

    let out = node.step_at(
        160,
        Event::HandoverReplied {
            new_term: term(2, "b"),
            accepted: true,
        },
    );
    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(2, "b")))),
            set_role(Role::Passive, SWITCHED),
            send_heartbeat(2),
            record(EventKind::Switchover, SWITCHED),
            reply_ok(1, SWITCHED),
        ]
    );
    assert_eq!(node.machine.switchover_phase(), None);
    assert!(!node.machine.admitting());
}

#[test]
fn a_refused_hand_over_re_promotes_with_a_fresh_epoch_and_answers_the_error() {
    let mut node = handing_over(active());

    let out = node.step_at(
        160,
        Event::HandoverReplied {
            new_term: term(2, "b"),
            accepted: false,
        },
    );

    let reason = "switchover aborted: b refused the hand-over; staying active";
    let mut expected = promotion(
        durable(3, Some(term(3, "a"))),
        EventKind::Switchover,
        reason,
        2,
    );
    expected.push(reply_err(1, "switchover aborted: b refused the hand-over"));
    assert_eq!(out, expected);
    assert_eq!(node.machine.switchover_phase(), None);
}

#[test]
fn replies_for_another_term_or_outside_the_hand_over_are_ignored() {
    let mut node = handing_over(active());
    for new_term in [term(3, "b"), term(2, "a")] {
        let out = node.step(Event::HandoverReplied {
            new_term,
            accepted: true,
        });
        assert_eq!(out, vec![]);
    }
    assert_eq!(node.role(), Role::Demoting);

    let mut node = active();
    let out = node.step(Event::HandoverReplied {
        new_term: term(2, "b"),
        accepted: true,
    });
    assert_eq!(out, vec![]);
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn a_caught_up_outside_the_catch_up_phase_is_ignored() {
    let mut node = active();
    assert_eq!(node.step(Event::CaughtUp), vec![]);
    let mut node = handing_over(active());
    assert_eq!(node.step(Event::CaughtUp), vec![]);
    assert_eq!(node.durable(), handing_over_record());
}

#[test]
fn the_hand_over_is_resent_five_intervals_after_it_was_sent() {
    let mut node = active();
    node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );
    // Catching up takes 800 ms.
    for out in ticks_hearing_until(&mut node, 900) {
        assert!(matches!(out.as_slice(), [Command::SendHeartbeat { .. }]));
    }
    node.step(Event::CaughtUp);

    let ticks = ticks_hearing_until(&mut node, 1900);

    let handover = Command::SendHandover {
        new_term: term(2, "b"),
    };
    assert_eq!(ticks[0], vec![send_heartbeat(10)]);
    assert_eq!(ticks[3], vec![send_heartbeat(13)]);
    assert_eq!(ticks[4], vec![handover.clone(), send_heartbeat(14)]);
    assert_eq!(ticks[8], vec![send_heartbeat(18)]);
    assert_eq!(ticks[9], vec![handover, send_heartbeat(19)]);
    assert_eq!(ticks.len(), 10);
}

#[test]
fn an_unanswered_hand_over_times_out_and_re_promotes() {
    let mut node = handing_over(active());

    let ticks = ticks_hearing_until(&mut node, 5100);

    let resends = ticks.iter().filter(|out| out.len() == 2).count();
    assert_eq!(resends, 9, "resent at 650, 1150, ... 4650 ms");
    let reason = "switchover aborted: b did not take the hand-over in time; staying active";
    let mut expected = promotion(
        durable(3, Some(term(3, "a"))),
        EventKind::Switchover,
        reason,
        51,
    );
    expected.push(reply_err(
        1,
        "switchover aborted: b did not take the hand-over in time",
    ));
    assert_eq!(ticks.last(), Some(&expected));
    assert_eq!(node.now_ms, 5150);
}

#[test]
fn a_catch_up_that_does_not_finish_in_time_aborts_and_admits_again() {
    let mut node = active();
    node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );

    let ticks = ticks_hearing_until(&mut node, 5100);

    assert_eq!(
        ticks.last(),
        Some(&vec![
            Command::SetAdmission(true),
            record(
                EventKind::Switchover,
                "switchover aborted: the peer did not catch up in time; staying active"
            ),
            reply_err(1, "switchover aborted: the peer did not catch up in time"),
            send_heartbeat(51),
        ])
    );
    assert_eq!(node.role(), Role::Active);
    assert_eq!(
        node.durable(),
        durable(1, Some(term(1, "a"))),
        "no epoch spent"
    );
}

#[test]
fn a_heartbeat_showing_the_peer_active_in_the_new_term_also_completes_it() {
    let mut node = handing_over(active());

    let out = node.heartbeat(heartbeat(Role::Active, Some(term(2, "b"))));

    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(2, "b")))),
            set_role(Role::Passive, SWITCHED),
            send_heartbeat(2),
            record(EventKind::Switchover, SWITCHED),
            reply_ok(1, SWITCHED),
        ]
    );
}

#[test]
fn the_peer_failing_during_the_catch_up_aborts_the_switchover() {
    let mut node = active();
    node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );

    let out = node.tick_quietly_until(800);

    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, "peer b missed 8 keep-alives"),
            Command::SetAdmission(true),
            record(
                EventKind::Switchover,
                "switchover aborted: the peer failed during the switchover; staying active"
            ),
            reply_err(
                1,
                "switchover aborted: the peer failed during the switchover"
            ),
            send_heartbeat(8),
        ]
    );
}

/// Ticks without hearing the peer until 850 ms, past its eighth miss.
fn miss_the_peer_while_demoting(node: &mut Node) -> Vec<Command> {
    for tick in 0..6 {
        let out = node.tick();
        assert_eq!(out.last(), Some(&send_heartbeat(2 + tick)));
    }
    node.tick()
}

#[test]
fn the_peer_failing_during_the_hand_over_applies_the_failover_rules() {
    let mut node = handing_over(active());

    let out = miss_the_peer_while_demoting(&mut node);

    let missed = "peer b missed 8 keep-alives";
    let mut expected = vec![record(EventKind::PeerFailed, missed)];
    expected.extend(promotion(
        durable(3, Some(term(3, "a"))),
        EventKind::Failover,
        missed,
        8,
    ));
    expected.push(reply_err(
        1,
        "switchover aborted: b failed during the hand-over",
    ));
    assert_eq!(out, expected);
    assert_eq!(node.machine.switchover_phase(), None);
}

/// With `fence_peer`, a failed fence leaves the node passive with the switchover given up: it
/// neither resends the hand-over nor re-promotes when the switchover timeout passes.
#[test]
fn a_failed_fence_during_the_hand_over_leaves_no_switchover_behind() {
    let mut node = handing_over(active_with(fencing_config(), Durable::default()));
    let out = miss_the_peer_while_demoting(&mut node);
    let missed = "peer b missed 8 keep-alives";
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerFailed, missed),
            set_role(Role::Promoting, missed),
            Command::FencePeer,
            reply_err(1, "switchover aborted: b failed during the hand-over"),
            send_heartbeat(8),
        ]
    );
    node.step(Event::FenceResult { ok: false });
    assert_eq!(node.role(), Role::Passive);

    // `b` had taken the hand-over and answers again, active in (2, b).
    let b_active = heartbeat(Role::Active, Some(term(2, "b")));
    let out = node.heartbeat(b_active.clone());
    assert_eq!(
        out,
        vec![
            record(EventKind::PeerRecovered, "peer b answers again"),
            persist(Durable {
                term: Some(term(2, "b")),
                ..handing_over_record()
            }),
        ]
    );
    while node.now_ms < 6000 {
        let out = node.tick_hearing(&b_active);
        assert!(
            matches!(out.as_slice(), [Command::SendHeartbeat { .. }]),
            "{out:?}"
        );
    }
    assert_eq!(node.role(), Role::Passive);
}

fn refused(mut node: Node, why: &str) {
    let before = node.durable();
    let out = node.admin(9, AdminRequest::Switchover);
    assert_eq!(
        out,
        vec![reply_err(9, &format!("switchover refused: {why}"))]
    );
    assert_eq!(node.durable(), before);
}

#[test]
fn a_switchover_is_refused_on_a_node_that_is_not_active() {
    refused(passive(), "this node is passive, not active");
    refused(handing_over(active()), "this node is demoting, not active");
}

#[test]
fn a_switchover_is_refused_while_one_is_running() {
    let mut node = active();
    node.admin(1, AdminRequest::Switchover);
    refused(node, "a switchover is already running");
}

#[test]
fn a_switchover_is_refused_when_the_peer_is_not_ok() {
    let mut node = active();
    node.tick_quietly_until(300);
    refused(node, "peer b is suspect");
}

#[test]
fn a_switchover_is_refused_to_an_unfit_peer() {
    let cases = [
        (
            PeerHeartbeat {
                maintenance: true,
                ..heartbeat(Role::Passive, Some(term(1, "a")))
            },
            "peer b is in maintenance",
        ),
        (
            PeerHeartbeat {
                disk: DiskState::Outdated,
                ..heartbeat(Role::Passive, Some(term(1, "a")))
            },
            "peer disk is outdated",
        ),
        (
            PeerHeartbeat {
                reachable: false,
                ..heartbeat(Role::Passive, Some(term(1, "a")))
            },
            "peer b cannot reach its reachability targets",
        ),
        (heartbeat(Role::Starting, None), "peer b is starting"),
    ];
    for (peer, why) in cases {
        let mut node = active();
        node.heartbeat(peer);
        refused(node, why);
    }
}

#[test]
fn a_switchover_is_refused_while_monitoring_is_stopped() {
    let mut node = active();
    node.admin(1, AdminRequest::SetMonitoring(Monitoring::Stopped));
    refused(
        node,
        "monitoring is stopped, so the peer is not replicating",
    );
}

#[test]
fn the_passive_asking_for_a_switchover_starts_one_on_the_active() {
    let mut node = active();
    let out = node.step(Event::SwitchoverRequested);
    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            record(
                EventKind::Switchover,
                "switchover to b started (failover-now on b): fenced"
            ),
            Command::StartCatchUp,
        ]
    );

    let mut node = passive();
    let out = node.step(Event::SwitchoverRequested);
    assert_eq!(
        out,
        vec![record(
            EventKind::Switchover,
            "b asked for a switchover; refused: this node is passive, not active"
        )]
    );
}
