//! Monitoring is pair-wide, carried by the heartbeats with a Lamport stamp; maintenance makes one
//! node ineligible, and on the active it starts a switchover.

use super::*;

#[test]
fn set_monitoring_persists_with_a_stamp_above_both_nodes_and_announces_it() {
    let mut node = active();
    let out = node.heartbeat(PeerHeartbeat {
        monitoring_stamp: 4,
        ..passive_peer_of(&node)
    });
    let stamped = Durable {
        monitoring_stamp: 4,
        ..durable(1, Some(term(1, "a")))
    };
    assert_eq!(out, vec![persist(stamped.clone())]);

    let out = node.admin(2, AdminRequest::SetMonitoring(Monitoring::Suspended));

    assert_eq!(
        out,
        vec![
            persist(Durable {
                monitoring: Monitoring::Suspended,
                monitoring_stamp: 5,
                ..stamped
            }),
            record(
                EventKind::Monitoring,
                "monitoring suspended (pair-wide), set on a"
            ),
            send_heartbeat(2),
            reply_ok(2, "monitoring suspended (pair-wide)"),
        ]
    );
}

#[test]
fn a_heartbeat_with_a_higher_stamp_is_adopted_and_a_lower_one_is_not() {
    let mut node = passive();
    let b_active = heartbeat(Role::Active, Some(term(1, "b")));

    let out = node.heartbeat(PeerHeartbeat {
        monitoring: Monitoring::Stopped,
        monitoring_stamp: 3,
        ..b_active.clone()
    });

    let stopped = Durable {
        monitoring: Monitoring::Stopped,
        monitoring_stamp: 3,
        ..durable(1, Some(term(1, "b")))
    };
    assert_eq!(
        out,
        vec![
            record(EventKind::Monitoring, "monitoring stopped (set on b)"),
            persist(stopped.clone()),
        ]
    );
    let older = PeerHeartbeat {
        monitoring: Monitoring::On,
        monitoring_stamp: 2,
        ..b_active.clone()
    };
    assert_eq!(node.heartbeat(older), vec![]);
    assert_eq!(node.durable(), stopped);
}

#[test]
fn on_equal_stamps_the_setting_of_the_higher_ranked_node_wins() {
    // `a` outranks `b`: b's conflicting setting with the same stamp is not taken.
    let start = Durable {
        monitoring: Monitoring::Suspended,
        monitoring_stamp: 3,
        ..durable(1, Some(term(1, "b")))
    };
    let mut node = passive_with(config(), start.clone());
    let out = node.heartbeat(PeerHeartbeat {
        monitoring: Monitoring::Stopped,
        monitoring_stamp: 3,
        ..heartbeat(Role::Active, Some(term(1, "b")))
    });
    assert_eq!(out, vec![]);
    assert_eq!(node.durable().monitoring, Monitoring::Suspended);

    // Seen from `b`, a's setting wins.
    let mut b = Node::start_with(config_b(), start, LogPosition::default());
    let out = b.heartbeat(PeerHeartbeat {
        monitoring: Monitoring::Stopped,
        monitoring_stamp: 3,
        priority: A_PRIORITY,
        ..heartbeat(Role::Active, Some(term(1, "a")))
    });
    assert_eq!(
        out[0],
        record(EventKind::Monitoring, "monitoring stopped (set on a)")
    );
    assert_eq!(b.durable().monitoring, Monitoring::Stopped);
}

#[test]
fn maintenance_on_the_active_starts_a_switchover() {
    let mut node = active();

    let out = node.admin(3, AdminRequest::SetMaintenance(true));

    assert_eq!(
        out,
        vec![
            persist(Durable {
                maintenance: true,
                ..durable(1, Some(term(1, "a")))
            }),
            record(EventKind::Maintenance, "maintenance on for a"),
            send_heartbeat(2),
            Command::SetAdmission(false),
            record(
                EventKind::Switchover,
                "switchover to b started (maintenance on): fenced"
            ),
            Command::StartCatchUp,
            reply_ok(3, "maintenance on for a; switching over to b"),
        ]
    );
}

#[test]
fn maintenance_on_an_active_that_cannot_switch_over_keeps_it_active_and_says_why() {
    let mut node = active();
    node.tick_quietly_until(300);

    let out = node.admin(3, AdminRequest::SetMaintenance(true));

    assert_eq!(
        out,
        vec![
            persist(Durable {
                maintenance: true,
                ..durable(1, Some(term(1, "a")))
            }),
            record(EventKind::Maintenance, "maintenance on for a"),
            send_heartbeat(5),
            reply_ok(3, "maintenance on for a; stays active: peer b is suspect"),
        ]
    );
    assert_eq!(node.role(), Role::Active);
    assert!(node.machine.admitting());
}

#[test]
fn maintenance_on_a_passive_node_is_persisted_and_announced() {
    let mut node = passive();

    let out = node.admin(3, AdminRequest::SetMaintenance(true));

    assert_eq!(
        out,
        vec![
            persist(Durable {
                maintenance: true,
                ..durable(1, Some(term(1, "b")))
            }),
            record(EventKind::Maintenance, "maintenance on for a"),
            send_heartbeat(1),
            reply_ok(3, "maintenance on for a"),
        ]
    );
}
