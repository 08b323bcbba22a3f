//! The window of batches in flight: how many, how big, cut at transaction boundaries, and what
//! refusals, reconnects and a peer ahead of us do to it.

use super::*;

/// Connected at position 0 after `transactions` one-entry commits made while disconnected:
/// returns the commands of the position announcement.
fn backlog_of(transactions: u64, bytes: u64) -> (Active, Vec<ShipperCommand>) {
    let mut active = Active::new(config());
    for _ in 0..transactions {
        assert_eq!(active.commit_sized(1, bytes), vec![]);
    }
    assert_eq!(active.peer_state(true, false), vec![]);
    let out = active.position(0);
    (active, out)
}

#[test]
fn two_batches_are_in_flight_and_an_acknowledgement_frees_a_slot() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(1), vec![send(1, 1)]);
    assert_eq!(active.commit(1), vec![send(2, 2)]);
    assert_eq!(active.commit(1), vec![]);
    assert_eq!(active.commit(1), vec![]);
    assert_eq!(active.shipper.batches_in_flight(), 2);

    // The queued transactions go together in the freed slot.
    assert_eq!(active.ack(1), vec![send(3, 4)]);
    assert_eq!(active.ack(4), vec![]);
    assert_eq!(active.shipper.batches_in_flight(), 0);
}

#[test]
fn the_window_size_is_configurable() {
    let mut active = Active::connected(ShipperConfig {
        batches_in_flight_max: 3,
        ..config()
    });
    assert_eq!(active.commit(1), vec![send(1, 1)]);
    assert_eq!(active.commit(1), vec![send(2, 2)]);
    assert_eq!(active.commit(1), vec![send(3, 3)]);
    assert_eq!(active.commit(1), vec![]);
}

#[test]
fn the_window_is_bounded_between_two_and_sixty_four() {
    for batches_in_flight_max in [1, BATCHES_IN_FLIGHT_LIMIT + 1] {
        let config = ShipperConfig {
            batches_in_flight_max,
            ..config()
        };
        let error = Shipper::new(config, 0, 0).unwrap_err();
        assert_eq!(error.setting, "batches_in_flight_max");
        assert_eq!((error.min, error.max), (2, 64));
    }
}

#[test]
fn every_limit_is_checked() {
    let error = Shipper::new(
        ShipperConfig {
            waiting_writes_max: 0,
            ..config()
        },
        0,
        0,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "replication setting waiting_writes_max is 0; it must be between 1 and 1000000"
    );
}

#[test]
fn a_batch_holds_at_most_batch_entries_max_entries() {
    let (mut active, out) = backlog_of(25, 10);
    assert_eq!(out, vec![send(1, 10), send(11, 20)]);
    assert_eq!(active.ack(10), vec![send(21, 25)]);
}

#[test]
fn a_batch_holds_at_most_batch_bytes_max_bytes() {
    let (_, out) = backlog_of(7, 300);
    assert_eq!(out, vec![send(1, 3), send(4, 6)]);
}

#[test]
fn a_batch_never_splits_a_transaction() {
    let mut active = Active::new(config());
    for _ in 0..3 {
        assert_eq!(active.commit(4), vec![]);
    }
    active.peer_state(true, false);
    // 4 + 4 entries fit in 10; a third transaction would make 12.
    assert_eq!(active.position(0), vec![send(1, 8), send(9, 12)]);
}

#[test]
fn a_transaction_over_the_limits_goes_whole_and_alone() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(15), vec![send(1, 15)]);
    assert_eq!(active.commit_sized(1, 5000), vec![send(16, 16)]);
    assert_eq!(active.commit(1), vec![]);
}

#[test]
fn a_new_stream_starts_from_the_position_the_peer_announces() {
    let mut active = Active::connected(config());
    active.commit(1);
    active.commit(1);
    active.commit(1);

    assert_eq!(active.peer_state(false, false), vec![]);
    assert_eq!(active.shipper.batches_in_flight(), 0);
    assert_eq!(active.commit(1), vec![]);

    assert_eq!(active.peer_state(true, false), vec![]);
    assert_eq!(active.position(1), vec![send(2, 4)]);
}

#[test]
fn a_gap_refusal_resends_from_the_index_the_peer_expects() {
    let mut active = Active::connected(config());
    active.commit(1);
    active.commit(1);

    // The peer already held entry 1 (accepted on an earlier stream, durable only now).
    let out = active.refused(1, Refusal::Gap { expected_index: 2 });
    assert_eq!(out, vec![send(2, 2)]);
    // The first copy of batch 2 was accepted, so the second is refused: nothing left to send.
    let out = active.refused(2, Refusal::Gap { expected_index: 3 });
    assert_eq!(out, vec![]);
    assert_eq!(active.ack(2), vec![]);
    assert_eq!(active.shipper.batches_in_flight(), 0);
}

#[test]
fn a_checksum_refusal_resends_the_batch_and_everything_after_it() {
    let mut active = Active::connected(config());
    active.commit(1);
    active.commit(1);
    active.commit(1);

    assert_eq!(active.refused(1, Refusal::BadChecksum), vec![send(1, 3)]);
    // The peer refuses the batch behind the damaged one too: already given up on.
    assert_eq!(
        active.refused(2, Refusal::Gap { expected_index: 1 }),
        vec![]
    );
    assert_eq!(active.ack(3), vec![]);
}

#[test]
fn refusals_in_a_row_beyond_refusals_max_halt_shipping() {
    let mut active = Active::connected(config());
    active.commit(1);
    for _ in 0..3 {
        assert_eq!(active.refused(1, Refusal::BadChecksum), vec![send(1, 1)]);
    }

    let out = active.refused(1, Refusal::BadChecksum);

    let reason = HaltReason::RefusedRepeatedly(Refusal::BadChecksum);
    assert_eq!(
        out,
        vec![ShipperCommand::Halt {
            reason: reason.clone()
        }]
    );
    assert_eq!(active.shipper.halted(), Some(&reason));
    assert_eq!(active.commit(1), vec![]);
}

#[test]
fn progress_resets_the_count_of_refusals() {
    let mut active = Active::connected(config());
    active.commit(1);
    for _ in 0..3 {
        active.refused(1, Refusal::BadChecksum);
    }
    assert_eq!(active.ack(1), vec![]);
    active.commit(1);
    assert_eq!(active.refused(2, Refusal::BadChecksum), vec![send(2, 2)]);
}

#[test]
fn a_refusal_from_a_newer_term_halts_shipping_until_the_stream_reconnects() {
    let mut active = Active::connected(config());
    active.commit(1);
    let refusal = Refusal::StaleTerm {
        batch_term: LogTerm::new(1, "a", 100),
        newest_term: LogTerm::new(2, "b", 50),
    };

    let out = active.refused(1, refusal.clone());

    let reason = HaltReason::Refused(refusal);
    assert_eq!(out, vec![ShipperCommand::Halt { reason }]);
    assert_eq!(active.commit(1), vec![]);
    assert_eq!(
        active.ack(1),
        vec![],
        "acknowledgements are not listened to either"
    );

    active.peer_state(false, false);
    active.peer_state(true, false);
    assert_eq!(active.shipper.halted(), None);
    assert_eq!(active.position(0), vec![send(1, 2)]);
}

#[test]
fn a_hash_mismatch_halts_shipping() {
    let mut active = Active::connected(config());
    active.commit(1);
    let refusal = Refusal::HashMismatch { index: 1 };
    let out = active.refused(1, refusal.clone());
    assert_eq!(
        out,
        vec![ShipperCommand::Halt {
            reason: HaltReason::Refused(refusal)
        }]
    );
}

#[test]
fn a_peer_that_acknowledges_past_our_last_entry_halts_shipping() {
    let mut active = Active::new(config());
    active.commit(5);
    active.peer_state(true, false);

    let out = active.position(9);

    let reason = HaltReason::PeerAhead {
        peer_index: 9,
        last_index: 5,
    };
    assert_eq!(out, vec![ShipperCommand::Halt { reason }]);
}

#[test]
fn a_peer_that_expects_an_index_past_our_log_halts_shipping() {
    let mut active = Active::connected(config());
    active.commit(1);

    let out = active.refused(1, Refusal::Gap { expected_index: 7 });

    let reason = HaltReason::PeerAhead {
        peer_index: 6,
        last_index: 1,
    };
    assert_eq!(out, vec![ShipperCommand::Halt { reason }]);
}

#[test]
fn a_position_whose_hash_differs_from_ours_halts_and_acknowledges_nothing() {
    let mut active = Active::connected(config());
    active.write(1);
    active.write(2);
    active.peer_state(false, false);
    active.peer_state(true, false);

    let out = active.step(ShipperEvent::PeerPosition {
        index: 2,
        hash_matches: Some(false),
    });

    let reason = HaltReason::Diverged { peer_index: 2 };
    assert_eq!(out, vec![ShipperCommand::Halt { reason }]);
    assert_eq!(active.shipper.waiting_writes(), 2);
    assert_eq!(active.shipper.peer_acked_index(), 0);
}

#[test]
fn an_acknowledgement_before_the_position_is_ignored() {
    let mut active = Active::new(config());
    active.write(1);
    active.peer_state(true, false);

    assert_eq!(active.ack(1), vec![]);
    assert_eq!(active.shipper.waiting_writes(), 1);
    assert_eq!(active.position(0), vec![send(1, 1)]);
}

#[test]
fn an_unverified_position_is_where_shipping_starts_but_acknowledges_nothing() {
    let mut active = Active::new(config());
    active.write(1);
    active.write(2);
    active.peer_state(true, false);

    assert_eq!(active.unverified_position(1), vec![send(2, 2)]);
    assert_eq!(active.shipper.waiting_writes(), 2);
    // The batch passed the peer's hash check: now entry 1 is proven too.
    assert_eq!(active.ack(2), vec![ack_writes(&[1, 2])]);
}
