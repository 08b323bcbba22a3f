//! Terms are ordered by epoch, then rank; a promotion takes `max_epoch_seen + 1` and persists it
//! before it acts.

use super::*;

#[test]
fn terms_order_by_epoch_then_priority_then_the_lower_name() {
    assert!(Term::new(2, "b", 1) > Term::new(1, "a", 100), "epoch first");
    assert!(
        Term::new(3, "b", 100) > Term::new(3, "a", 50),
        "then the higher priority"
    );
    assert!(
        Term::new(3, "a", 100) > Term::new(3, "b", 100),
        "then the lower name"
    );
    let rank = |priority, name: &str| Rank {
        priority,
        name: name.into(),
    };
    assert!(rank(100, "z") > rank(99, "a"));
    assert!(rank(50, "a") > rank(50, "b"));
}

#[test]
fn a_promotion_takes_max_epoch_seen_plus_one_and_persists_it_before_set_role() {
    // `a` last followed b in epoch 4 but has seen epoch 6 (say, an offered hand-over).
    let mut node = Node::start(durable(6, Some(term(4, "b"))));

    let out = node.tick_quietly_until(5000);

    let reason = "peer absent for 50 keep-alive intervals after start";
    let expected = promotion(
        durable(7, Some(term(7, "a"))),
        EventKind::Election,
        reason,
        50,
    );
    assert_eq!(out, expected);
    let persist_at = out.iter().position(|c| matches!(c, Command::Persist(_)));
    let set_role_at = out
        .iter()
        .position(|c| matches!(c, Command::SetRole { .. }));
    assert!(persist_at < set_role_at, "persist before acting");
    assert_eq!(node.role(), Role::Active);
}

#[test]
fn the_term_taken_by_a_promotion_names_this_node_with_its_priority() {
    let config = RoleConfig {
        priority: 7,
        ..config()
    };
    let mut node = Node::start_with(config, durable(2, None), LogPosition::default());
    node.tick_quietly_until(5000);
    assert_eq!(node.durable().term, Some(Term::new(3, "a", 7)));
    assert_eq!(node.durable().max_epoch_seen, 3);
}
