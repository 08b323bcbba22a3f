//! Retention and snapshots: the log is truncated to `log_retention` by entries and by bytes, never
//! splitting a transaction; a connected peer's unacknowledged entries are kept up to twice the
//! retention; a peer whose position is gone gets `NeedSnapshot`.

use super::*;

/// Connected; `transactions` commits of 10 entries (100 bytes), each acknowledged at once.
fn caught_up_after(transactions: u64) -> Active {
    let mut active = Active::connected(config());
    for n in 0..transactions {
        let (from, to) = (10 * n + 1, 10 * n + 10);
        assert_eq!(active.commit(10), vec![send(from, to)]);
        assert_eq!(active.ack(to), vec![]);
    }
    active
}

/// Never connected; `transactions` commits of 10 entries, the output of the last one returned.
fn disconnected_after(transactions: u64) -> (Active, Vec<ShipperCommand>) {
    let mut active = Active::new(config());
    let mut out = Vec::new();
    for _ in 0..transactions {
        out = active.commit(10);
    }
    (active, out)
}

#[test]
fn the_log_is_truncated_to_the_retained_entries_when_the_peer_has_them() {
    let mut active = caught_up_after(10);
    assert_eq!(active.shipper.retained_entries(), 100);

    let out = active.commit(10);

    assert_eq!(out, vec![send(101, 110), truncate(11)]);
    assert_eq!(active.shipper.first_retained_index(), 11);
    assert_eq!(active.shipper.retained_entries(), 100);
}

#[test]
fn the_log_is_truncated_to_the_retained_bytes() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit_sized(1, 4000), vec![send(1, 1)]);
    active.ack(1);
    assert_eq!(active.commit_sized(1, 4000), vec![send(2, 2)]);
    active.ack(2);

    let out = active.commit_sized(1, 4000);

    assert_eq!(out, vec![send(3, 3), truncate(2)]);
    assert_eq!(active.shipper.retained_bytes(), 8000);
}

#[test]
fn truncation_removes_whole_transactions_only() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(60), vec![send(1, 60)]);
    active.ack(60);

    // 120 entries: over 100, and the oldest transaction is 60 entries.
    assert_eq!(active.commit(60), vec![send(61, 120), truncate(61)]);
}

#[test]
fn the_last_transaction_is_never_truncated() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(250), vec![send(1, 250)]);
    assert_eq!(active.ack(250), vec![]);
    assert_eq!(active.shipper.retained_entries(), 250);

    assert_eq!(active.commit(1), vec![send(251, 251), truncate(251)]);
}

#[test]
fn a_connected_peer_keeps_its_unacknowledged_entries_up_to_twice_the_retention() {
    let mut active = Active::connected(config());
    assert_eq!(active.commit(10), vec![send(1, 10)]);
    assert_eq!(active.commit(10), vec![send(11, 20)]);
    // The peer acknowledges nothing: 200 entries are kept for it, twice the retention.
    for _ in 3..=20 {
        assert_eq!(active.commit(10), vec![]);
    }
    assert_eq!(active.shipper.retained_entries(), 200);

    // Past twice the retention, retention wins, down to twice the retention.
    assert_eq!(active.commit(10), vec![truncate(11)]);
    assert_eq!(active.shipper.retained_entries(), 200);
}

#[test]
fn acknowledged_entries_of_a_connected_peer_are_truncated_to_the_retention() {
    let mut active = Active::connected(config());
    for _ in 1..=15 {
        active.commit(10);
    }

    // 150 entries, the peer has 20 of them: those go, the rest is kept for it.
    assert_eq!(
        active.ack(20),
        vec![send(21, 30), send(31, 40), truncate(21)]
    );
    assert_eq!(active.shipper.retained_entries(), 130);
}

#[test]
fn a_disconnected_peer_does_not_hold_back_truncation() {
    let (active, out) = disconnected_after(11);
    assert_eq!(out, vec![truncate(11)]);
    assert_eq!(active.shipper.first_retained_index(), 11);
}

#[test]
fn a_failed_peer_does_not_hold_back_truncation() {
    let mut active = Active::connected(config());
    active.peer_state(true, true);
    active.commit(10);
    active.commit(10);
    for _ in 3..=10 {
        active.commit(10);
    }
    assert_eq!(active.commit(10), vec![truncate(11)]);
}

#[test]
fn a_disconnect_releases_the_entries_kept_for_the_peer() {
    let mut active = Active::connected(config());
    for _ in 1..=15 {
        active.commit(10);
    }
    assert_eq!(active.shipper.retained_entries(), 150);

    assert_eq!(active.peer_state(false, false), vec![truncate(51)]);
}

#[test]
fn a_peer_behind_the_retained_log_needs_a_snapshot() {
    let (mut active, _) = disconnected_after(11);
    assert_eq!(active.peer_state(true, false), vec![]);

    let out = active.unverified_position(5);

    assert_eq!(out, vec![ShipperCommand::NeedSnapshot { peer_index: 5 }]);
    assert_eq!(active.commit(10), vec![], "nothing is shipped meanwhile");
    // The snapshot is in: the peer announces its index, and the log continues from there.
    assert_eq!(
        active.ack(100),
        vec![send(101, 110), send(111, 120), truncate(21)]
    );
}

#[test]
fn a_peer_just_before_the_retained_log_needs_no_snapshot() {
    let (mut active, _) = disconnected_after(11);
    active.peer_state(true, false);

    assert_eq!(active.position(10), vec![send(11, 20), send(21, 30)]);
}

#[test]
fn a_snapshot_is_asked_for_once_per_stream() {
    let (mut active, _) = disconnected_after(11);
    active.peer_state(true, false);
    assert_eq!(
        active.position(0),
        vec![ShipperCommand::NeedSnapshot { peer_index: 0 }]
    );
    assert_eq!(active.position(0), vec![]);

    active.peer_state(false, false);
    active.peer_state(true, false);
    assert_eq!(
        active.position(0),
        vec![ShipperCommand::NeedSnapshot { peer_index: 0 }]
    );
}

#[test]
fn a_batch_to_resend_that_was_truncated_past_twice_the_retention_needs_a_snapshot() {
    let mut active = Active::connected(config());
    active.commit(10);
    active.commit(10);
    for _ in 3..=21 {
        active.commit(10);
    }
    assert_eq!(active.shipper.first_retained_index(), 11);

    let out = active.refused(1, Refusal::BadChecksum);

    assert_eq!(out, vec![ShipperCommand::NeedSnapshot { peer_index: 0 }]);
}

#[test]
fn a_restarted_shipper_is_rebuilt_from_the_retained_transactions() {
    let mut active = Active {
        shipper: Shipper::new(config(), 40, 0).expect("valid config"),
        now_ms: 0,
    };
    assert_eq!(active.commit(10), vec![]);
    assert_eq!(active.commit(10), vec![]);
    assert_eq!(active.shipper.first_retained_index(), 41);
    assert_eq!(active.shipper.last_index(), 60);

    active.peer_state(true, false);
    assert_eq!(
        active.unverified_position(39),
        vec![ShipperCommand::NeedSnapshot { peer_index: 39 }]
    );
    active.peer_state(false, false);
    active.peer_state(true, false);
    assert_eq!(active.position(40), vec![send(41, 50), send(51, 60)]);
}
