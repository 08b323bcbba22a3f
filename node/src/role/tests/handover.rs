//! The passive side of the hand-over: take the offered term (persisted first) and become active,
//! or refuse an offer that is stale, for another node, or to a node that may not serve.

use super::*;

const FROM_B: &str = "switchover from b";

fn offer(epoch: u64, name: &str) -> Event {
    Event::HandoverRequested {
        new_term: term(epoch, name),
    }
}

fn accepted(epoch: u64) -> Command {
    Command::SendHandoverReply {
        new_term: term(epoch, "a"),
        accepted: true,
        reason: String::new(),
    }
}

#[test]
fn a_passive_node_takes_the_offered_term_and_becomes_active() {
    let mut node = passive();

    let out = node.step(offer(2, "a"));

    assert_eq!(
        out,
        vec![
            persist(durable(2, Some(term(2, "a")))),
            record_term(term(2, "a"), FROM_B),
            set_role(Role::Active, FROM_B),
            Command::SetAdmission(true),
            accepted(2),
            record(
                EventKind::Switchover,
                "a is active in term (2, a): switchover from b"
            ),
            send_heartbeat(1),
        ]
    );
    assert!(node.machine.admitting());
}

#[test]
fn a_duplicate_request_is_answered_accepted_again_without_a_new_term() {
    let mut node = passive();
    node.step(offer(2, "a"));

    assert_eq!(node.step(offer(2, "a")), vec![accepted(2)]);
    assert_eq!(node.durable(), durable(2, Some(term(2, "a"))));
}

fn refused(mut node: Node, new_term: Term, why: &str) {
    let before = node.durable();
    let role = node.role();
    let out = node.step(Event::HandoverRequested {
        new_term: new_term.clone(),
    });
    assert_eq!(
        out,
        vec![
            record(
                EventKind::Switchover,
                &format!("refused the hand-over of term {new_term}: {why}")
            ),
            Command::SendHandoverReply {
                new_term,
                accepted: false,
                reason: why.into(),
            },
        ]
    );
    assert_eq!(node.durable(), before);
    assert_eq!(node.role(), role);
}

#[test]
fn a_hand_over_with_a_stale_epoch_is_refused() {
    refused(
        passive(),
        term(1, "a"),
        "epoch 1 is not newer than 1 already seen",
    );
    let mut node = passive();
    node.heartbeat(heartbeat(Role::Active, Some(term(4, "b"))));
    refused(
        node,
        term(3, "a"),
        "epoch 3 is not newer than 4 already seen",
    );
}

#[test]
fn a_hand_over_for_another_node_is_refused() {
    refused(passive(), term(2, "b"), "the term names b, not this node");
}

#[test]
fn a_hand_over_to_a_node_that_may_not_serve_is_refused() {
    let maintenance = Durable {
        maintenance: true,
        ..durable(1, Some(term(1, "b")))
    };
    refused(
        passive_with(config(), maintenance),
        term(2, "a"),
        "this node is in maintenance",
    );
    let outdated = Durable {
        disk: DiskState::Outdated,
        ..durable(1, Some(term(1, "b")))
    };
    refused(
        passive_with(config(), outdated),
        term(2, "a"),
        "disk state is outdated",
    );
    refused(
        Node::start(durable(1, Some(term(1, "b")))),
        term(2, "a"),
        "this node is starting",
    );
    refused(active(), term(2, "a"), "this node is active");
}

/// Both machines of the pair, the messages carried by hand.
#[test]
fn a_switchover_between_the_two_machines_leaves_one_active_in_the_new_term() {
    let mut b = Node::start_with(config_b(), Durable::default(), LogPosition::default());
    let mut a = active();
    b.heartbeat(PeerHeartbeat {
        priority: A_PRIORITY,
        ..heartbeat(Role::Active, Some(term(1, "a")))
    });
    assert_eq!(b.role(), Role::Passive);

    a.admin(1, AdminRequest::Switchover);
    let out = a.step(Event::CaughtUp);
    let Some(Command::SendHandover { new_term }) = out.last().cloned() else {
        panic!("no hand-over sent: {out:?}");
    };
    assert_eq!(new_term, term(2, "b"));
    let out = b.step(Event::HandoverRequested {
        new_term: new_term.clone(),
    });
    assert!(out.contains(&Command::SendHandoverReply {
        new_term: new_term.clone(),
        accepted: true,
        reason: String::new(),
    }));
    a.step(Event::HandoverReplied {
        new_term,
        accepted: true,
    });

    assert_eq!((a.role(), b.role()), (Role::Passive, Role::Active));
    assert_eq!(a.durable().term, Some(term(2, "b")));
    assert_eq!(b.durable().term, Some(term(2, "b")));
    assert_eq!(a.durable().max_epoch_seen, 2);
    assert_eq!(b.durable().max_epoch_seen, 2);
}
