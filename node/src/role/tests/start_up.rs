//! Start-up: follow an active peer; otherwise elect by the last log term, index, then rank; alone
//! after `startup_failover_after_misses` intervals, become active only if eligible.

use super::*;

fn log(epoch: u64, name: &str, index: u64) -> LogPosition {
    LogPosition {
        term: Some(term(epoch, name)),
        index,
    }
}

const WON: &str = "start-up election: won against b (last log term, index, then rank)";

#[test]
fn a_starting_node_follows_an_active_peer_as_passive() {
    let mut node = Node::start(Durable::default());

    let out = node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));

    assert_eq!(
        out,
        vec![
            persist(durable(1, None)),
            persist(durable(1, Some(term(1, "b")))),
            set_role(Role::Passive, "peer b is active"),
        ]
    );
    assert_eq!(node.machine.peer_view(), PeerView::Ok);
}

#[test]
fn both_starting_the_later_last_log_term_wins_over_a_higher_index() {
    let mut node = Node::start_with(config(), durable(2, Some(term(2, "b"))), log(2, "b", 5));

    let out = node.heartbeat(PeerHeartbeat {
        log: log(1, "a", 9),
        ..heartbeat(Role::Starting, Some(term(1, "a")))
    });

    assert_eq!(
        out,
        promotion(durable(3, Some(term(3, "a"))), EventKind::Election, WON, 1)
    );
}

#[test]
fn both_starting_the_peer_with_the_later_last_log_term_wins() {
    let mut node = Node::start_with(config(), durable(1, Some(term(1, "a"))), log(1, "a", 9));

    let out = node.heartbeat(PeerHeartbeat {
        log: log(2, "b", 5),
        ..heartbeat(Role::Starting, Some(term(2, "b")))
    });

    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(1, "a")))),
            set_role(Role::Passive, "start-up election: b wins"),
        ]
    );
}

#[test]
fn both_starting_with_the_same_last_term_the_higher_index_wins() {
    let mut node = Node::start_with(config(), durable(1, Some(term(1, "a"))), log(1, "a", 9));
    let out = node.heartbeat(PeerHeartbeat {
        log: log(1, "a", 7),
        ..heartbeat(Role::Starting, Some(term(1, "a")))
    });
    assert_eq!(
        out,
        promotion(durable(2, Some(term(2, "a"))), EventKind::Election, WON, 1)
    );

    let mut node = Node::start_with(config(), durable(1, Some(term(1, "a"))), log(1, "a", 7));
    let out = node.heartbeat(PeerHeartbeat {
        log: log(1, "a", 9),
        ..heartbeat(Role::Starting, Some(term(1, "a")))
    });
    assert_eq!(
        out,
        vec![set_role(Role::Passive, "start-up election: b wins")]
    );
}

#[test]
fn with_equal_logs_the_higher_priority_wins_then_the_lower_name() {
    let mut node = Node::start(Durable::default());
    let out = node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(
        out,
        promotion(durable(1, Some(term(1, "a"))), EventKind::Election, WON, 1)
    );

    // `a` configured with the lower priority loses.
    let low = RoleConfig {
        priority: 10,
        ..config()
    };
    let mut node = Node::start_with(low, Durable::default(), LogPosition::default());
    let out = node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(
        out,
        vec![set_role(Role::Passive, "start-up election: b wins")]
    );

    // `c` and `b` with equal priorities: the lower name, `b`, wins.
    let c = RoleConfig {
        name: "c".into(),
        priority: B_PRIORITY,
        ..config()
    };
    let mut node = Node::start_with(c, Durable::default(), LogPosition::default());
    let out = node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(
        out,
        vec![set_role(Role::Passive, "start-up election: b wins")]
    );
}

/// The election is decided the same way on both nodes, whichever heartbeat arrives first.
#[test]
fn both_nodes_of_the_pair_agree_on_the_winner_in_both_orders() {
    let cases = [
        (LogPosition::default(), LogPosition::default()),
        (log(1, "a", 3), log(1, "a", 4)),
        (log(2, "b", 1), log(1, "a", 9)),
        (log(3, "a", 0), log(3, "a", 0)),
    ];
    for (log_a, log_b) in cases {
        let mut a = Node::start_with(config(), Durable::default(), log_a.clone());
        let mut b = Node::start_with(config_b(), Durable::default(), log_b.clone());
        let starting = |log: &LogPosition, priority| PeerHeartbeat {
            log: log.clone(),
            priority,
            ..heartbeat(Role::Starting, None)
        };
        a.heartbeat(starting(&log_b, B_PRIORITY));
        b.heartbeat(starting(&log_a, A_PRIORITY));
        let actives = [a.role(), b.role()]
            .iter()
            .filter(|role| **role == Role::Active)
            .count();
        assert_eq!(actives, 1, "logs {log_a:?} / {log_b:?}");
        assert!(b.role() == Role::Passive || a.role() == Role::Passive);
    }
}

#[test]
fn alone_after_the_start_up_wait_a_consistent_node_becomes_active() {
    let mut node = Node::start(Durable::default());
    for seq in 1..50 {
        assert_eq!(node.tick(), vec![send_heartbeat(seq)], "tick {seq}");
        assert_eq!(node.role(), Role::Starting);
    }

    let out = node.tick();

    let reason = "peer absent for 50 keep-alive intervals after start";
    assert_eq!(
        out,
        promotion(
            durable(1, Some(term(1, "a"))),
            EventKind::Election,
            reason,
            50
        )
    );
}

fn alone_ineligible(start: Durable, reachable: bool, why: &str) {
    let mut node = Node::start(start);
    assert_eq!(node.step(Event::Reachability(reachable)), vec![]);

    let out = node.tick_quietly_until(5000);

    assert_eq!(
        out,
        vec![
            set_role(Role::Passive, &format!("alone after start: {why}")),
            record(
                EventKind::Election,
                &format!("peer absent after start and this node may not become active: {why}")
            ),
            send_heartbeat(50),
        ]
    );
    // It stays passive: no later tick promotes it.
    node.tick_quietly_until(10_000);
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn alone_in_maintenance_stays_passive_and_records_why() {
    let start = Durable {
        maintenance: true,
        ..Durable::default()
    };
    alone_ineligible(start, true, "this node is in maintenance");
}

#[test]
fn alone_and_unreachable_stays_passive_and_records_why() {
    alone_ineligible(
        Durable::default(),
        false,
        "reachability targets do not answer",
    );
}

#[test]
fn alone_with_an_outdated_disk_stays_passive_and_records_why() {
    let start = Durable {
        disk: DiskState::Outdated,
        ..Durable::default()
    };
    alone_ineligible(start, true, "disk state is outdated");
}

#[test]
fn an_inconsistent_disk_is_a_fault_alone_or_with_a_peer() {
    let inconsistent = Durable {
        disk: DiskState::Inconsistent,
        ..Durable::default()
    };
    let mut node = Node::start(inconsistent.clone());
    let out = node.tick_quietly_until(5000);
    assert_eq!(
        out,
        vec![
            set_role(Role::Fault, "disk is inconsistent"),
            send_heartbeat(50)
        ]
    );

    let mut node = Node::start(inconsistent);
    let out = node.heartbeat(heartbeat(Role::Starting, None));
    assert_eq!(out, vec![set_role(Role::Fault, "disk is inconsistent")]);
    assert_eq!(node.heartbeat(heartbeat(Role::Passive, None)), vec![]);
    assert_eq!(node.role(), Role::Fault);
}

#[test]
fn a_stall_while_starting_restarts_the_start_up_wait() {
    let mut node = Node::start(Durable::default());
    node.tick_quietly_until(4000);
    // Frozen for 900 ms: the wait counts again from the end of the stall.
    let out = node.step_at(4900, Event::Tick);
    assert_eq!(
        out,
        vec![
            record(EventKind::Stall, "event loop stalled for 900 ms"),
            send_heartbeat(41),
        ]
    );
    let out = node.tick_quietly_until(4900 + 5000);
    assert_eq!(out.len(), 6, "promoted at the end of the new wait: {out:?}");
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn a_starting_node_waits_as_passive_while_the_peer_is_promoting() {
    let mut node = Node::start(durable(1, Some(term(1, "a"))));
    let out = node.heartbeat(heartbeat(Role::Promoting, Some(term(1, "a"))));
    assert_eq!(out, vec![set_role(Role::Passive, "peer b is promoting")]);
}

#[test]
fn when_neither_node_may_become_active_both_wait_and_it_is_recorded_once() {
    let maintenance = Durable {
        maintenance: true,
        ..Durable::default()
    };
    let mut node = Node::start(maintenance);
    let peer = PeerHeartbeat {
        maintenance: true,
        ..heartbeat(Role::Starting, None)
    };

    let out = node.heartbeat(peer.clone());

    assert_eq!(
        out,
        vec![
            set_role(Role::Passive, "start-up election: no eligible node"),
            record(
                EventKind::Election,
                "start-up election: neither node may become active"
            ),
        ]
    );
    // Every later heartbeat of the passive peer re-runs the election, silently.
    let passive_peer = PeerHeartbeat {
        role: Role::Passive,
        ..peer
    };
    assert_eq!(node.heartbeat(passive_peer.clone()), vec![]);
    assert_eq!(node.heartbeat(passive_peer), vec![]);
}

#[test]
fn two_passive_nodes_elect_one_of_them() {
    // `a` waited alone in maintenance, then left maintenance; `b` comes up and waits as passive.
    let mut node = Node::start(Durable {
        maintenance: true,
        ..Durable::default()
    });
    node.tick_quietly_until(5000);
    assert_eq!(node.role(), Role::Passive);
    let out = node.admin(1, AdminRequest::SetMaintenance(false));
    assert_eq!(
        out,
        vec![
            persist(Durable::default()),
            record(EventKind::Maintenance, "maintenance off for a"),
            send_heartbeat(51),
            reply_ok(1, "maintenance off for a"),
        ]
    );

    let out = node.heartbeat(heartbeat(Role::Passive, None));

    let reason = "no active node: won against b (last log term, index, then rank)";
    assert_eq!(
        out,
        promotion(
            durable(1, Some(term(1, "a"))),
            EventKind::Election,
            reason,
            52
        )
    );
}

#[test]
fn a_node_alone_that_becomes_eligible_later_promotes_at_the_next_tick() {
    // `a` waited alone in maintenance and stayed passive; the peer never answered.
    let mut node = Node::start(Durable {
        maintenance: true,
        ..Durable::default()
    });
    node.tick_quietly_until(5000);
    assert_eq!(node.role(), Role::Passive);
    node.admin(1, AdminRequest::SetMaintenance(false));

    let out = node.tick();

    let reason = "peer b still absent since start, and this node became eligible";
    // The promotion's heartbeat is the tick's heartbeat: one, after the Persist.
    assert_eq!(
        out,
        promotion(
            durable(1, Some(term(1, "a"))),
            EventKind::Election,
            reason,
            52
        )
    );
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn a_node_alone_does_not_promote_late_while_monitoring_is_suspended() {
    let mut node = Node::start(Durable {
        maintenance: true,
        monitoring: Monitoring::Suspended,
        ..Durable::default()
    });
    node.tick_quietly_until(5000);
    node.admin(1, AdminRequest::SetMaintenance(false));
    assert_eq!(node.tick(), vec![send_heartbeat(52)]);
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn a_starting_node_wins_the_election_against_a_faulted_peer_with_an_inconsistent_disk() {
    let mut node = Node::start_with(config(), durable(1, Some(term(1, "a"))), log(1, "a", 5));

    node.heartbeat(PeerHeartbeat {
        disk: DiskState::Inconsistent,
        ..heartbeat(Role::Fault, Some(term(1, "a")))
    });

    assert_eq!(node.role(), Role::Active);
}
