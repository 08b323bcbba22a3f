//! Sync and async writes with a healthy peer: a sync write completes only on the peer's
//! acknowledgement; an async write on its local commit.

use super::*;

#[test]
fn a_sync_write_completes_when_the_peer_acknowledges_it() {
    let mut active = Active::connected(config());

    assert_eq!(active.write(1), vec![send(1, 1)]);
    assert_eq!(active.shipper.waiting_writes(), 1);

    assert_eq!(active.ack(1), vec![ack_writes(&[1])]);
    assert_eq!(active.shipper.waiting_writes(), 0);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);
    assert!(!active.shipper.degraded());
}

#[test]
fn one_acknowledgement_completes_every_write_it_covers_in_commit_order() {
    let mut active = Active::connected(config());
    assert_eq!(active.write(1), vec![send(1, 1)]);
    assert_eq!(active.write(2), vec![send(2, 2)]);
    assert_eq!(active.write(3), vec![]); // two batches already in flight

    assert_eq!(active.ack(2), vec![ack_writes(&[1, 2]), send(3, 3)]);
    assert_eq!(active.ack(3), vec![ack_writes(&[3])]);
}

#[test]
fn an_acknowledgement_inside_a_batch_completes_only_the_writes_it_covers() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(3), vec![send(1, 3)]);
    let out = active.step(ShipperEvent::WriteWaiting {
        write_id: 1,
        index: 1,
    });
    assert_eq!(out, vec![]);
    let out = active.step(ShipperEvent::WriteWaiting {
        write_id: 2,
        index: 3,
    });
    assert_eq!(out, vec![]);

    assert_eq!(active.ack(2), vec![ack_writes(&[1])]);
    assert_eq!(active.shipper.batches_in_flight(), 1);
    assert_eq!(active.ack(3), vec![ack_writes(&[2])]);
}

#[test]
fn a_write_the_peer_already_holds_completes_at_once() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(1), vec![send(1, 1)]);
    assert_eq!(active.ack(1), vec![]);

    let out = active.step(ShipperEvent::WriteWaiting {
        write_id: 7,
        index: 1,
    });
    assert_eq!(out, vec![ack_writes(&[7])]);
}

#[test]
fn a_write_before_the_peer_connects_waits_for_it() {
    let mut active = Active::new(config());
    assert_eq!(active.write(1), vec![]);

    assert_eq!(active.peer_state(true, false), vec![]);
    assert_eq!(active.position(0), vec![send(1, 1)]); // the peer's position: nothing yet
    assert_eq!(active.ack(1), vec![ack_writes(&[1])]);
}

#[test]
fn stale_acknowledgements_change_nothing() {
    let mut active = Active::connected(config());
    active.write(1);
    active.write(2);
    assert_eq!(active.ack(2), vec![ack_writes(&[1, 2])]);

    assert_eq!(active.ack(1), vec![]);
    assert_eq!(active.ack(2), vec![]);
    assert_eq!(active.shipper.peer_acked_index(), 2);
}

#[test]
fn an_acknowledgement_from_a_closed_stream_is_ignored() {
    let mut active = Active::connected(config());
    active.write(1);
    assert_eq!(active.peer_state(false, false), vec![]);

    assert_eq!(active.ack(1), vec![]);
    assert_eq!(active.shipper.waiting_writes(), 1);
}

#[test]
fn an_async_write_completes_on_its_local_commit_and_is_still_shipped() {
    let mut active = Active::connected(ShipperConfig {
        mode: Mode::Async,
        ..config()
    });

    assert_eq!(active.write(1), vec![send(1, 1), ack_writes(&[1])]);
    assert_eq!(active.shipper.sync_state(), SyncState::Async);
    assert_eq!(active.ack(1), vec![]);
    assert_eq!(active.shipper.lag_entries(), 0);
}

#[test]
fn an_async_write_never_times_out() {
    let mut active = Active::new(ShipperConfig {
        mode: Mode::Async,
        ..config()
    });
    assert_eq!(active.write(1), vec![ack_writes(&[1])]);
    assert_eq!(active.tick_quietly_until(5000), vec![]);
    assert!(!active.shipper.degraded());
}

#[test]
#[should_panic(expected = "out of commit order")]
fn writes_reported_out_of_commit_order_are_a_bug() {
    let mut active = Active::connected(config());
    active.commit(2);
    active.step(ShipperEvent::WriteWaiting {
        write_id: 1,
        index: 2,
    });
    active.step(ShipperEvent::WriteWaiting {
        write_id: 2,
        index: 1,
    });
}

#[test]
#[should_panic(expected = "never appended")]
fn a_write_past_the_log_is_a_bug() {
    let mut active = Active::connected(config());
    active.step(ShipperEvent::WriteWaiting {
        write_id: 1,
        index: 1,
    });
}

#[test]
fn a_matching_position_acknowledges_the_writes_it_covers() {
    let mut active = Active::connected(config());
    assert_eq!(active.write(1), vec![send(1, 1)]);
    // The acknowledgement is lost with the stream.
    active.peer_state(false, false);
    active.peer_state(true, false);

    assert_eq!(active.position(1), vec![ack_writes(&[1])]);
}
