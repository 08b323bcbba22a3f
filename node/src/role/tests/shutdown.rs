//! SIGTERM: the active switches over and then exits, so a restart is not a failover; any other
//! role exits at once; a deadline bounds the wait.

use super::*;

const SWITCHED: &str = "switched over: b is active in term (2, b)";

#[test]
fn on_the_active_it_switches_over_and_exits_after_the_hand_over() {
    let mut node = active();

    let out = node.step_at(100, Event::Shutdown);
    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            record(
                EventKind::Switchover,
                "switchover to b started (SIGTERM on the active): fenced"
            ),
            Command::StartCatchUp,
        ]
    );
    assert!(node.machine.shutting_down());
    assert_eq!(
        node.step(Event::Shutdown),
        vec![],
        "a second SIGTERM changes nothing"
    );

    node.step_at(150, Event::CaughtUp);
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
            Command::Exit,
        ]
    );
}

#[test]
fn a_passive_node_exits_at_once() {
    let mut node = passive();
    assert_eq!(
        node.step(Event::Shutdown),
        vec![record(EventKind::Shutdown, "stopping"), Command::Exit]
    );
}

#[test]
fn an_active_node_that_cannot_hand_over_stops_admitting_and_exits() {
    let mut node = active();
    node.tick_quietly_until(300);

    let out = node.step(Event::Shutdown);

    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            record(
                EventKind::Shutdown,
                "stopping without a hand-over: peer b is suspect"
            ),
            Command::Exit,
        ]
    );
}

#[test]
fn the_shutdown_deadline_exits_even_if_the_hand_over_is_not_done() {
    let config = RoleConfig {
        shutdown_timeout_ms: 1000,
        ..config()
    };
    let mut node = active_with(config, Durable::default());
    node.step_at(100, Event::Shutdown);
    let peer = passive_peer_of(&node);
    for seq in 2..11 {
        assert_eq!(node.tick_hearing(&peer), vec![send_heartbeat(seq)]);
    }

    let out = node.tick_hearing(&peer);

    assert_eq!(
        out,
        vec![
            record(
                EventKind::Shutdown,
                "the hand-over did not finish in time; stopping anyway"
            ),
            Command::Exit,
        ]
    );
}

#[test]
fn a_catch_up_that_times_out_during_shutdown_exits_without_admitting_again() {
    let mut node = active();
    node.step_at(100, Event::Shutdown);
    let peer = passive_peer_of(&node);
    for seq in 2..51 {
        assert_eq!(node.tick_hearing(&peer), vec![send_heartbeat(seq)]);
    }

    let out = node.tick_hearing(&peer);

    // No heartbeat: the node exits.
    assert_eq!(
        out,
        vec![
            record(
                EventKind::Switchover,
                "switchover aborted: the peer did not catch up in time; staying active"
            ),
            record(
                EventKind::Shutdown,
                "stopping without a hand-over: the peer did not catch up in time"
            ),
            Command::Exit,
        ]
    );
    assert!(!node.machine.admitting());
}

#[test]
fn sigterm_during_an_admin_switchover_exits_once_it_completes() {
    let mut node = active();
    node.step_at(
        100,
        Event::Admin {
            id: 1,
            request: AdminRequest::Switchover,
        },
    );
    assert_eq!(node.step_at(120, Event::Shutdown), vec![]);
    node.step_at(150, Event::CaughtUp);

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
            Command::Exit,
        ]
    );
}
