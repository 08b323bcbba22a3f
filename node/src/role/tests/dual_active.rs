//! Dual active after a partition heals: the higher term stays, the lower one stops admitting and
//! then demotes. Fencing by term: a claim older than the newest epoch seen is not followed.

use super::*;

#[test]
fn the_higher_term_stays_active_and_records_the_split_brain_once() {
    // `a` failed over to (2, a) while `b` stayed active in (1, b).
    let mut node = passive();
    node.tick_quietly_until(800);
    assert_eq!(node.durable().term, Some(term(2, "a")));
    let peer = heartbeat(Role::Active, Some(term(1, "b")));

    let out = node.heartbeat(peer.clone());

    assert_eq!(
        out,
        vec![
            record(EventKind::PeerRecovered, "peer b answers again"),
            record(
                EventKind::SplitBrain,
                "split brain: peer b is active in the older term (1, b); it must demote"
            ),
        ]
    );
    assert_eq!(node.heartbeat(peer), vec![]);
    assert_eq!(node.role(), Role::Active);
    assert!(node.machine.admitting());
}

#[test]
fn the_lower_term_stops_admitting_before_it_demotes_and_persists_the_peer_term() {
    let mut node = active();
    assert!(node.machine.admitting());

    let out = node.heartbeat(heartbeat(Role::Active, Some(term(2, "b"))));

    let message = "split brain: peer b is active in the newer term (2, b); demoting";
    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(1, "a")))),
            Command::SetAdmission(false),
            persist(durable(2, Some(term(2, "b")))),
            set_role(Role::Passive, message),
            send_heartbeat(2),
            record(EventKind::SplitBrain, message),
        ]
    );
    assert!(!node.machine.admitting());
}

#[test]
fn in_one_epoch_the_rank_decides_which_active_stays() {
    // `a` and `b` both promoted to epoch 1 while partitioned; `a` ranks higher.
    let mut node = active();
    let out = node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));
    assert_eq!(
        out,
        vec![record(
            EventKind::SplitBrain,
            "split brain: peer b is active in the older term (1, b); it must demote"
        )]
    );

    let low = RoleConfig {
        priority: 10,
        ..config()
    };
    let mut node = Node::start_with(low, Durable::default(), LogPosition::default());
    node.tick_quietly_until(5000);
    assert_eq!(node.durable().term, Some(Term::new(1, "a", 10)));
    let out = node.heartbeat(heartbeat(Role::Active, Some(term(1, "b"))));
    let message = "split brain: peer b is active in the newer term (1, b); demoting";
    assert_eq!(
        out,
        vec![
            Command::SetAdmission(false),
            persist(durable(1, Some(term(1, "b")))),
            set_role(Role::Passive, message),
            send_heartbeat(51),
            record(EventKind::SplitBrain, message),
        ]
    );
    assert_eq!(node.role(), Role::Passive);
}

#[test]
fn a_passive_node_does_not_follow_an_active_claim_older_than_the_newest_epoch_seen() {
    let mut node = passive();
    node.heartbeat(heartbeat(Role::Active, Some(term(3, "b"))));
    assert_eq!(node.durable(), durable(3, Some(term(3, "b"))));

    // A heartbeat of `b` from before, delivered late, claims epoch 2.
    let out = node.heartbeat(heartbeat(Role::Active, Some(term(2, "b"))));

    assert_eq!(out, vec![]);
    assert_eq!(node.durable(), durable(3, Some(term(3, "b"))));
}

#[test]
fn a_starting_node_holds_an_election_instead_of_following_a_stale_active_claim() {
    let log = LogPosition {
        term: Some(term(3, "a")),
        index: 0,
    };
    let mut node = Node::start_with(config(), durable(3, Some(term(3, "a"))), log);

    let out = node.heartbeat(PeerHeartbeat {
        log: LogPosition {
            term: Some(term(2, "b")),
            index: 40,
        },
        ..heartbeat(Role::Active, Some(term(2, "b")))
    });

    let reason = "start-up election: won against b (last log term, index, then rank)";
    assert_eq!(
        out,
        promotion(
            durable(4, Some(term(4, "a"))),
            EventKind::Election,
            reason,
            1
        )
    );
}

#[test]
fn an_active_node_renews_a_term_its_peer_has_outgrown() {
    let mut node = active();

    let out = node.heartbeat(PeerHeartbeat {
        max_epoch_seen: 2,
        ..heartbeat(Role::Passive, Some(term(2, "b")))
    });

    let reason = "epoch 2 was seen, newer than the term held";
    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(1, "a")))),
            persist(durable(3, Some(term(3, "a")))),
            record_term(term(3, "a"), reason),
            record(
                EventKind::Election,
                &format!("a renews its term to (3, a): {reason}")
            ),
            send_heartbeat(2),
        ]
    );
    assert_eq!(node.role(), Role::Active);
    assert!(node.machine.admitting());
}

/// The whole story the renewal fixes: `b` held (2, b) while partitioned, restarted, and lost
/// the start-up election to `a`, still active in (1, a) with the longer log. Without the renewal
/// `b` would never follow `a`'s stale claim.
#[test]
fn after_a_lost_election_the_stale_active_renews_and_the_peer_follows_it() {
    let b_log = LogPosition {
        term: Some(term(1, "a")),
        index: 3,
    };
    let mut b = Node::start_with(config_b(), durable(2, Some(term(2, "b"))), b_log);
    let mut a = active();
    let a_says = |a: &Node| PeerHeartbeat {
        role: a.role(),
        priority: A_PRIORITY,
        max_epoch_seen: a.durable().max_epoch_seen,
        log: LogPosition {
            term: Some(term(1, "a")),
            index: 5,
        },
        ..heartbeat(a.role(), a.durable().term)
    };

    b.heartbeat(a_says(&a));
    assert_eq!(b.role(), Role::Passive);
    assert_eq!(
        b.durable().term,
        Some(term(2, "b")),
        "a's claim is stale for b"
    );

    a.heartbeat(PeerHeartbeat {
        max_epoch_seen: 2,
        ..heartbeat(Role::Passive, Some(term(2, "b")))
    });
    assert_eq!(a.durable().term, Some(term(3, "a")));

    let out = b.heartbeat(a_says(&a));
    assert_eq!(
        out,
        vec![
            persist(durable(3, Some(term(2, "b")))),
            persist(durable(3, Some(term(3, "a")))),
        ]
    );
}

#[test]
fn a_demotion_during_a_switchover_answers_the_administrator_and_finishes_a_graceful_stop() {
    let mut node = active();
    node.heartbeat(heartbeat(Role::Passive, Some(term(1, "a"))));
    let started = node.admin(7, AdminRequest::Switchover);
    assert!(started.contains(&Command::StartCatchUp), "{started:?}");
    node.step(Event::Shutdown);

    // Before the catch-up ends, the peer turns out to be active in a newer term.
    let out = node.heartbeat(heartbeat(Role::Active, Some(term(2, "b"))));

    let message = "split brain: peer b is active in the newer term (2, b); demoting";
    let interrupted = reply_err(7, &format!("switchover interrupted: {message}"));
    let reply_at = out.iter().position(|c| *c == interrupted);
    let exit_at = out.iter().position(|c| *c == Command::Exit);
    assert!(reply_at.is_some() && exit_at.is_some(), "{out:?}");
    assert_eq!(node.role(), Role::Passive);
    assert!(!node.machine.admitting());
}
