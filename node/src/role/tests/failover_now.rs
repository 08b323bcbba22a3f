//! `failover-now` on the passive: a switchover when the active answers, an immediate takeover
//! when it does not; an outdated disk needs `--force`, an inconsistent one never promotes.

use super::*;

fn failover_now(force: bool) -> AdminRequest {
    AdminRequest::FailoverNow { force }
}

const NOW_ACTIVE: &str = "a is now active in term (2, a)";
const BY_ADMIN: &str = "failover-now by an administrator";

#[test]
fn failover_now_on_the_active_is_refused() {
    let mut node = active();
    let out = node.admin(7, failover_now(false));
    assert_eq!(
        out,
        vec![reply_err(
            7,
            "failover-now refused: this node is already active"
        )]
    );
}

#[test]
fn with_the_active_answering_it_asks_for_a_switchover_and_the_hand_over_answers() {
    let mut node = passive();
    assert_eq!(
        node.admin(7, failover_now(false)),
        vec![Command::SendSwitchoverRequest]
    );
    assert_eq!(
        node.admin(8, failover_now(false)),
        vec![reply_err(
            8,
            "failover-now refused: a failover-now is already waiting"
        )]
    );

    let out = node.step(Event::HandoverRequested {
        new_term: term(2, "a"),
    });

    let from_b = "switchover from b";
    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(2, "a")))),
            record_term(term(2, "a"), from_b),
            set_role(Role::Active, from_b),
            Command::SetAdmission(true),
            Command::SendHandoverReply {
                new_term: term(2, "a"),
                accepted: true,
                reason: String::new(),
            },
            record(
                EventKind::Switchover,
                "a is active in term (2, a): switchover from b"
            ),
            send_heartbeat(1),
            reply_ok(7, NOW_ACTIVE),
        ]
    );
}

#[test]
fn a_switchover_request_the_active_never_honours_fails_after_the_timeout() {
    let mut node = passive();
    node.admin(7, failover_now(false));
    let b_active = heartbeat(Role::Active, Some(term(1, "b")));
    for seq in 1..50 {
        assert_eq!(node.tick_hearing(&b_active), vec![send_heartbeat(seq)]);
    }

    let out = node.tick_hearing(&b_active);

    assert_eq!(
        out,
        vec![
            reply_err(
                7,
                "failover-now failed: the active b did not hand over in time"
            ),
            send_heartbeat(50),
        ]
    );
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn with_the_peer_failed_it_promotes_at_once() {
    // Monitoring is suspended, so the automatic failover did not happen; an administrator may.
    let start = Durable {
        monitoring: Monitoring::Suspended,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = passive_with(config(), start.clone());
    node.tick_quietly_until(800);

    let out = node.admin(7, failover_now(false));

    let mut expected = promotion(
        Durable {
            max_epoch_seen: 2,
            term: Some(term(2, "a")),
            ..start
        },
        EventKind::Failover,
        BY_ADMIN,
        9,
    );
    expected.push(reply_ok(7, NOW_ACTIVE));
    assert_eq!(out, expected);
}

#[test]
fn with_fence_peer_and_the_peer_not_ok_it_fences_first() {
    let mut node = passive_with(fencing_config(), durable(1, Some(term(1, "b"))));
    node.tick_quietly_until(300);

    let out = node.admin(7, failover_now(false));
    assert_eq!(
        out,
        vec![set_role(Role::Promoting, BY_ADMIN), Command::FencePeer]
    );

    let out = node.step(Event::FenceResult { ok: true });
    let mut expected = promotion(
        durable(2, Some(term(2, "a"))),
        EventKind::Failover,
        "peer b fenced",
        4,
    );
    expected.push(reply_ok(7, NOW_ACTIVE));
    assert_eq!(out, expected);
}

#[test]
fn a_failed_fence_answers_the_failover_now_with_the_error() {
    let mut node = passive_with(fencing_config(), durable(1, Some(term(1, "b"))));
    node.tick_quietly_until(300);
    node.admin(7, failover_now(false));

    let out = node.step(Event::FenceResult { ok: false });

    assert_eq!(
        out,
        vec![
            set_role(Role::Passive, "fence_peer failed"),
            record(EventKind::Fence, "fence_peer failed: not taking over"),
            reply_err(7, "fence_peer failed: not taking over"),
        ]
    );
}

#[test]
fn an_outdated_disk_takes_over_only_with_force() {
    let start = Durable {
        disk: DiskState::Outdated,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = passive_with(config(), start.clone());
    node.tick_quietly_until(800);
    assert_eq!(
        node.admin(7, failover_now(false)),
        vec![reply_err(
            7,
            "failover-now refused: disk state is outdated; --force takes over anyway"
        )]
    );

    let out = node.admin(8, failover_now(true));

    let mut expected = promotion(
        Durable {
            max_epoch_seen: 2,
            term: Some(term(2, "a")),
            ..start
        },
        EventKind::Failover,
        BY_ADMIN,
        9,
    );
    expected.push(reply_ok(8, NOW_ACTIVE));
    assert_eq!(out, expected);
}

#[test]
fn unreachable_targets_take_over_only_with_force() {
    let mut node = passive();
    node.step(Event::Reachability(false));
    node.tick_quietly_until(800);
    assert_eq!(
        node.admin(7, failover_now(false)),
        vec![reply_err(
            7,
            "failover-now refused: reachability targets do not answer; --force takes over anyway"
        )]
    );
    let out = node.admin(8, failover_now(true));
    assert_eq!(out.last(), Some(&reply_ok(8, NOW_ACTIVE)));
}

#[test]
fn an_inconsistent_disk_never_takes_over() {
    let inconsistent = Durable {
        disk: DiskState::Inconsistent,
        ..Durable::default()
    };
    let mut node = Node::start(inconsistent);
    assert_eq!(
        node.admin(7, failover_now(true)),
        vec![reply_err(
            7,
            "failover-now refused: disk state is inconsistent"
        )]
    );
    node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(
        node.admin(8, failover_now(true)),
        vec![reply_err(8, "failover-now refused: this node is fault")]
    );
}

#[test]
fn a_node_in_maintenance_refuses_failover_now() {
    let start = Durable {
        maintenance: true,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = passive_with(config(), start);
    assert_eq!(
        node.admin(7, failover_now(true)),
        vec![reply_err(
            7,
            "failover-now refused: this node is in maintenance"
        )]
    );
}

#[test]
fn a_duplicate_switchover_request_from_a_second_path_is_ignored() {
    let mut node = active();
    node.heartbeat(heartbeat(Role::Passive, Some(term(1, "a"))));
    let first = node.step(Event::SwitchoverRequested);
    assert!(first.contains(&Command::StartCatchUp), "{first:?}");
    assert_eq!(node.step(Event::SwitchoverRequested), vec![]);
}

#[test]
fn the_actives_verdict_outdates_the_passive_once() {
    let mut node = passive();
    let out = node.step(Event::DiskVerdict {
        disk: DiskState::Outdated,
        reason: "degraded".into(),
        local: false,
    });
    let mut outdated = node.durable().clone();
    outdated.disk = DiskState::Outdated;
    assert_eq!(
        out,
        vec![
            Command::Persist(outdated),
            Command::Record {
                kind: EventKind::Disk,
                message: "disk is outdated: degraded".into(),
            },
        ]
    );
    assert_eq!(node.durable().disk, DiskState::Outdated);
    let again = node.step(Event::DiskVerdict {
        disk: DiskState::Outdated,
        reason: "degraded".into(),
        local: false,
    });
    assert_eq!(again, Vec::new());
}

#[test]
fn an_active_ignores_disk_verdicts() {
    let mut node = active();
    let out = node.step(Event::DiskVerdict {
        disk: DiskState::Outdated,
        reason: "from a stale stream".into(),
        local: false,
    });
    assert_eq!(out, Vec::new());
    assert_eq!(node.durable().disk, DiskState::Consistent);
}

#[test]
fn a_node_in_fault_for_an_inconsistent_disk_follows_again_once_whole() {
    let start = Durable {
        disk: DiskState::Inconsistent,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = Node::start_with(config(), start, LogPosition::default());
    node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));
    assert_eq!(node.role(), Role::Fault);
    let out = node.step(Event::DiskVerdict {
        disk: DiskState::Outdated,
        reason: "snapshot installed".into(),
        local: true,
    });
    assert_eq!(node.role(), Role::Passive);
    assert!(out.contains(&Command::SetRole {
        role: Role::Passive,
        reason: "disk is outdated again".into(),
    }));
    assert_eq!(node.durable().disk, DiskState::Outdated);
}

#[test]
fn the_actives_verdict_does_not_clear_a_local_inconsistent_disk() {
    let start = Durable {
        disk: DiskState::Inconsistent,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = Node::start_with(config(), start, LogPosition::default());
    node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));
    let out = node.step(Event::DiskVerdict {
        disk: DiskState::Outdated,
        reason: "degraded during the snapshot".into(),
        local: false,
    });
    assert_eq!(out, Vec::new());
    assert_eq!(node.durable().disk, DiskState::Inconsistent);
    assert_eq!(node.role(), Role::Fault);
}
