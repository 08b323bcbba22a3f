use crate::witness::grantor::*;

const LEASE: u64 = 1000;

fn term(epoch: u64, node: &str) -> WitnessTerm {
    WitnessTerm {
        epoch,
        node: node.into(),
        priority: 100,
    }
}

fn grantor(records: Vec<PairRecord>, now: u64) -> Grantor {
    Grantor::new(
        LEASE,
        0.01,
        &[("pbx".into(), vec!["a".into(), "b".into()])],
        records,
        now,
    )
}

fn renew(epoch: u64, node: &str) -> Request {
    Request::Renew {
        term: term(epoch, node),
        peer_outdated: false,
        disk: Disk::Consistent,
    }
}

fn promote(epoch: u64, seen: u64) -> Request {
    Request::Promote {
        epoch,
        priority: 100,
        disk: Disk::Consistent,
        max_epoch_seen: seen,
        fast_path: false,
        force: false,
    }
}

fn granted(outcome: &Outcome) -> Option<WitnessTerm> {
    match &outcome.answer {
        Answer::Granted { term, .. } => Some(term.clone()),
        Answer::Refused { .. } => None,
    }
}

fn reason(outcome: &Outcome) -> String {
    match &outcome.answer {
        Answer::Refused { reason, .. } => reason.clone(),
        Answer::Granted { .. } => String::new(),
    }
}

#[test]
fn the_first_renewal_records_the_holder_and_later_ones_only_extend_its_lease() {
    let mut g = grantor(vec![], 0);
    let first = g.request("pbx", "a", renew(1, "a"), 10);
    assert_eq!(granted(&first), Some(term(1, "a")));
    assert_eq!(
        first.persist,
        Some(PairRecord {
            cluster: "pbx".into(),
            holder: Some(term(1, "a")),
            outdated: Default::default(),
        })
    );
    let again = g.request("pbx", "a", renew(1, "a"), 500);
    assert_eq!(granted(&again), Some(term(1, "a")));
    assert_eq!(again.persist, None, "a renewal changes nothing durable");
    assert_eq!(g.view(600)[0].lease_left_ms, 900);
}

#[test]
fn a_tie_goes_to_the_active_the_passive_is_refused_while_the_lease_runs() {
    let mut g = grantor(vec![], 0);
    g.request("pbx", "a", renew(1, "a"), 0);
    let early = g.request("pbx", "b", promote(2, 1), 999);
    assert!(granted(&early).is_none());
    assert!(reason(&early).contains("a is active"), "{early:?}");
    assert_eq!(early.persist, None);
    // a renews: still refused later on.
    g.request("pbx", "a", renew(1, "a"), 900);
    assert!(granted(&g.request("pbx", "b", promote(2, 1), 1800)).is_none());
    // a stops renewing: once its lease ran out on the witness's clock, b gets the vote.
    let late = g.request("pbx", "b", promote(2, 1), 1901);
    assert_eq!(granted(&late), Some(term(2, "b")));
    assert_eq!(late.persist.unwrap().holder, Some(term(2, "b")));
    // a's next renewal is superseded: it must stop acting active.
    match g.request("pbx", "a", renew(1, "a"), 1950).answer {
        Answer::Refused {
            superseded, holder, ..
        } => {
            assert!(superseded);
            assert_eq!(holder, Some(term(2, "b")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_proven_gone_holder_loses_its_lease_at_once_and_a_stream_back_restores_it() {
    let mut g = grantor(vec![], 0);
    g.connected("pbx", "a");
    g.request("pbx", "a", renew(1, "a"), 0);
    assert!(
        g.disconnected("pbx", "a"),
        "the holder's stream ended: probe it"
    );
    assert!(
        !g.disconnected("pbx", "b"),
        "a passive's stream is not probed"
    );
    let probing = Request::Promote {
        epoch: 2,
        priority: 100,
        disk: Disk::Consistent,
        max_epoch_seen: 1,
        fast_path: true,
        force: false,
    };
    assert!(reason(&g.request("pbx", "b", probing.clone(), 50)).contains("not proven gone"));
    g.holder_gone("pbx", "a");
    assert_eq!(
        granted(&g.request("pbx", "b", probing.clone(), 60)),
        Some(term(2, "b"))
    );
    // Had a opened a stream again before the proof, the proof would not count.
    let mut h = grantor(vec![], 0);
    h.connected("pbx", "a");
    h.request("pbx", "a", renew(1, "a"), 0);
    h.disconnected("pbx", "a");
    h.connected("pbx", "a");
    h.holder_gone("pbx", "a");
    assert!(granted(&h.request("pbx", "b", probing, 60)).is_none());
}

#[test]
fn only_a_consistent_up_to_date_node_is_promoted_unless_forced() {
    let mut g = grantor(vec![], 0);
    g.request(
        "pbx",
        "a",
        Request::Renew {
            term: term(3, "a"),
            peer_outdated: true,
            disk: Disk::Consistent,
        },
        0,
    );
    let outdated_here = g.request("pbx", "b", promote(4, 3), 5000);
    assert!(
        reason(&outdated_here).contains("reported b outdated"),
        "{outdated_here:?}"
    );
    let forced = Request::Promote {
        epoch: 4,
        priority: 100,
        disk: Disk::Outdated,
        max_epoch_seen: 3,
        fast_path: false,
        force: true,
    };
    assert_eq!(
        granted(&g.request("pbx", "b", forced, 5000)),
        Some(term(4, "b"))
    );

    let mut h = grantor(vec![], 0);
    h.request("pbx", "a", renew(3, "a"), 0);
    let inconsistent = Request::Promote {
        epoch: 4,
        priority: 100,
        disk: Disk::Inconsistent,
        max_epoch_seen: 3,
        fast_path: false,
        force: false,
    };
    assert!(reason(&h.request("pbx", "b", inconsistent, 5000)).contains("inconsistent"));
    let older = h.request("pbx", "b", promote(3, 2), 5000);
    assert!(reason(&older).contains("has not seen epoch 3"), "{older:?}");
    // The granted epoch is after the recorded one, whatever the node proposed.
    assert_eq!(
        granted(&h.request("pbx", "b", promote(2, 3), 5000)),
        Some(term(4, "b"))
    );
}

#[test]
fn the_outdated_mark_follows_the_active_and_is_durable() {
    let mut g = grantor(vec![], 0);
    g.request("pbx", "a", renew(1, "a"), 0);
    let degraded = g.request(
        "pbx",
        "a",
        Request::Renew {
            term: term(1, "a"),
            peer_outdated: true,
            disk: Disk::Consistent,
        },
        10,
    );
    assert_eq!(
        degraded.persist.unwrap().outdated,
        ["b".to_string()].into_iter().collect()
    );
    let resynced = g.request("pbx", "a", renew(1, "a"), 20);
    assert!(resynced.persist.unwrap().outdated.is_empty());
}

#[test]
fn after_a_restart_no_vote_is_given_before_a_recorded_lease_could_have_run_out() {
    let record = PairRecord {
        cluster: "pbx".into(),
        holder: Some(term(5, "a")),
        outdated: Default::default(),
    };
    // The witness restarts at 10,000 on its clock; it may have renewed a's lease just before.
    let mut g = grantor(vec![record], 10_000);
    let margin = g.restart_margin_ms();
    assert!(
        margin >= 20,
        "at least twice the drift of the lease: {margin}"
    );
    let early = g.request("pbx", "b", promote(6, 5), 10_000 + LEASE + margin - 1);
    assert!(granted(&early).is_none(), "{early:?}");
    let late = g.request("pbx", "b", promote(6, 5), 10_000 + LEASE + margin);
    assert_eq!(granted(&late), Some(term(6, "b")));
}

#[test]
fn strangers_and_wrong_terms_are_refused() {
    let mut g = grantor(vec![], 0);
    assert!(reason(&g.request("other", "a", renew(1, "a"), 0)).contains("serves no pair"));
    assert!(reason(&g.request("pbx", "c", renew(1, "c"), 0)).contains("not a node of"));
    assert!(reason(&g.request("pbx", "a", renew(1, "b"), 0)).contains("renews a term of b"));
    assert!(g.serves("pbx", "a") && !g.serves("pbx", "c"));
    assert_eq!(g.cluster_of("b"), Some("pbx"));
    assert_eq!(g.cluster_of("z"), None);
}

#[test]
fn the_other_nodes_newer_term_waits_for_the_holders_lease() {
    let mut g = grantor(vec![], 0);
    g.request("pbx", "a", renew(1, "a"), 0);
    // a handed over to b (or b made a term alone): not while a's lease runs, and not superseding
    // anyone.
    let early = g.request("pbx", "b", renew(2, "b"), 100);
    assert_eq!(granted(&early), None);
    assert!(
        reason(&early).contains("a holds the pair's vote for 900 ms more"),
        "{early:?}"
    );
    assert!(early.persist.is_none());
    // An inconsistent b is refused even then.
    let unfit = g.request(
        "pbx",
        "b",
        Request::Renew {
            term: term(2, "b"),
            peer_outdated: false,
            disk: Disk::Inconsistent,
        },
        LEASE + 1,
    );
    assert!(reason(&unfit).contains("disk is inconsistent"), "{unfit:?}");
    // Once a's lease has run out, b's term replaces a's, durably, and a is superseded.
    let later = g.request("pbx", "b", renew(2, "b"), LEASE + 1);
    assert_eq!(granted(&later), Some(term(2, "b")));
    assert!(later.persist.is_some());
    let old = g.request("pbx", "a", renew(1, "a"), LEASE + 2);
    assert!(matches!(
        old.answer,
        Answer::Refused {
            superseded: true,
            ..
        }
    ));
    // The holder's own newer term is granted at once.
    let own = g.request("pbx", "b", renew(3, "b"), LEASE + 3);
    assert_eq!(granted(&own), Some(term(3, "b")));
}
