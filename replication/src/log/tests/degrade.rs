//! Leaving sync and coming back: the sync timeout, a failed peer, the stall rule, `sync_strict`,
//! the bound on waiting writes, returning to sync once caught up, and mode changes.

use super::*;

fn degrade(reason: Unavailable) -> ShipperCommand {
    ShipperCommand::Degrade { reason }
}

fn refuse(reason: Unavailable) -> ShipperCommand {
    ShipperCommand::RefuseWrites {
        reason: WriteRefusal::PeerUnavailable(reason),
    }
}

fn timeout(waited_ms: u64) -> Unavailable {
    Unavailable::SyncTimeout { waited_ms }
}

#[test]
fn a_write_unacknowledged_for_longer_than_sync_timeout_degrades_to_async() {
    let mut active = Active::connected(config());
    assert_eq!(active.write(1), vec![send(1, 1)]);

    // Exactly the timeout is not "older than" it.
    assert_eq!(active.tick_quietly_until(SYNC_TIMEOUT_MS), vec![]);
    let out = active.tick();

    assert_eq!(out, vec![degrade(timeout(1100)), ack_writes(&[1])]);
    assert_eq!(
        active.shipper.sync_state(),
        SyncState::Degraded(timeout(1100))
    );
    assert!(active.shipper.degraded());
    // Degraded, writes complete on their local commit.
    assert_eq!(active.write(2), vec![send(2, 2), ack_writes(&[2])]);
}

#[test]
fn the_timeout_counts_from_the_oldest_waiting_write() {
    let mut active = Active::connected(config());
    active.write(1);
    active.tick_quietly_until(500);
    active.write(2);
    assert_eq!(active.ack(1), vec![ack_writes(&[1])]);

    // Write 2 has waited 1000 ms at 1500 ms, 1100 ms at 1600 ms.
    assert_eq!(active.tick_quietly_until(1500), vec![]);
    assert_eq!(
        active.tick(),
        vec![degrade(timeout(1100)), ack_writes(&[2])]
    );
}

#[test]
fn a_failed_peer_degrades_at_once() {
    let mut active = Active::connected(config());
    active.write(1);
    active.write(2);

    let out = active.peer_state(false, true);

    assert_eq!(
        out,
        vec![degrade(Unavailable::PeerFailed), ack_writes(&[1, 2])]
    );
    assert_eq!(
        active.shipper.sync_state(),
        SyncState::Degraded(Unavailable::PeerFailed)
    );
}

#[test]
fn a_failed_peer_degrades_even_with_no_write_waiting() {
    let mut active = Active::connected(config());
    assert_eq!(
        active.peer_state(false, true),
        vec![degrade(Unavailable::PeerFailed)]
    );
    assert_eq!(active.peer_state(false, true), vec![], "degraded once");
}

#[test]
fn a_tick_after_a_freeze_does_not_degrade_but_restarts_the_wait() {
    let mut active = Active::connected(config());
    active.write(1);
    assert_eq!(active.tick(), vec![]);

    // Frozen (SIGSTOP, a VM pause) from 100 ms to 5000 ms: the write "waited" 5000 ms.
    assert_eq!(active.step_at(5000, ShipperEvent::Tick), vec![]);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);

    // A fresh observation: the wait restarted at 5000 ms and times out 1000 ms later.
    assert_eq!(active.tick_quietly_until(6000), vec![]);
    assert_eq!(
        active.tick(),
        vec![degrade(timeout(1100)), ack_writes(&[1])]
    );
}

#[test]
fn the_peer_acknowledging_after_a_freeze_completes_the_write() {
    let mut active = Active::connected(config());
    active.write(1);
    active.tick();
    active.step_at(5000, ShipperEvent::Tick);

    assert_eq!(active.ack(1), vec![ack_writes(&[1])]);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);
}

#[test]
fn a_gap_of_exactly_two_intervals_is_not_a_freeze() {
    let mut active = Active::connected(config());
    active.write(1);
    active.tick_quietly_until(900);

    assert_eq!(
        active.step_at(1100, ShipperEvent::Tick),
        vec![degrade(timeout(1100)), ack_writes(&[1])]
    );
}

#[test]
fn strict_refuses_writes_and_answers_the_committed_ones_outcome_unknown_on_timeout() {
    let mut active = Active::connected(strict_config());
    active.write(1);
    active.write(2);
    active.tick_quietly_until(SYNC_TIMEOUT_MS);

    let out = active.tick();

    assert_eq!(out, vec![refuse(timeout(1100)), outcome_unknown(&[1, 2])]);
    assert_eq!(
        active.shipper.sync_state(),
        SyncState::Refusing(timeout(1100))
    );
    assert!(!active.shipper.admits_writes());
}

#[test]
fn strict_refuses_writes_when_the_peer_fails() {
    let mut active = Active::connected(strict_config());
    active.write(1);

    let out = active.peer_state(false, true);

    assert_eq!(
        out,
        vec![refuse(Unavailable::PeerFailed), outcome_unknown(&[1])]
    );
}

#[test]
fn strict_answers_a_write_that_committed_while_refusing_outcome_unknown() {
    let mut active = Active::connected(strict_config());
    active.peer_state(false, true);

    // A commit already under way when writes were refused.
    assert_eq!(active.write(1), vec![outcome_unknown(&[1])]);
}

#[test]
fn strict_admits_writes_again_once_the_peer_has_caught_up() {
    let mut active = Active::connected(strict_config());
    active.write(1);
    active.peer_state(false, true);
    active.write(2);

    assert_eq!(active.peer_state(true, false), vec![]);
    assert_eq!(active.position(0), vec![send(1, 2)]);
    assert_eq!(active.ack(2), vec![ShipperCommand::AdmitWrites]);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);
    assert!(active.shipper.admits_writes());
    assert_eq!(active.write(3), vec![send(3, 3)]);
}

/// Degraded because the peer failed, then 25 one-entry writes while it is away.
fn degraded_with_backlog() -> Active {
    let mut active = Active::connected(config());
    active.peer_state(false, true);
    for write_id in 1..=25 {
        assert_eq!(active.write(write_id), vec![ack_writes(&[write_id])]);
    }
    active
}

#[test]
fn the_active_returns_to_sync_once_the_peer_has_caught_up() {
    let mut active = degraded_with_backlog();

    assert_eq!(active.peer_state(true, false), vec![]);
    assert_eq!(active.position(0), vec![send(1, 10), send(11, 20)]);
    assert_eq!(active.ack(10), vec![send(21, 25)]);
    assert_eq!(active.ack(20), vec![], "still behind");
    assert!(active.shipper.degraded());

    assert_eq!(active.ack(25), vec![ShipperCommand::Resync]);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);
    assert_eq!(active.write(26), vec![send(26, 26)]);
    assert_eq!(active.ack(26), vec![ack_writes(&[26])]);
}

#[test]
fn under_steady_load_acknowledging_a_batch_that_reached_the_tail_is_caught_up() {
    let mut active = degraded_with_backlog();
    active.peer_state(true, false);
    active.position(0);
    active.ack(10); // sends 21..=25, which reached the tail when it was cut
    assert_eq!(active.write(26), vec![ack_writes(&[26])]);

    // Entry 26 is not acknowledged yet, but the peer is within one round trip.
    assert_eq!(active.ack(25), vec![ShipperCommand::Resync, send(26, 26)]);
}

#[test]
fn a_peer_still_failed_does_not_bring_back_sync() {
    let mut active = degraded_with_backlog();
    active.peer_state(true, true);
    active.position(0);
    active.ack(20);
    assert_eq!(active.ack(25), vec![]);
    assert!(active.shipper.degraded());

    assert_eq!(active.peer_state(true, false), vec![ShipperCommand::Resync]);
}

#[test]
fn at_the_bound_on_waiting_writes_writes_are_refused_before_commit() {
    let mut active = Active::connected(config());
    assert_eq!(active.write(1), vec![send(1, 1)]);
    assert_eq!(active.write(2), vec![send(2, 2)]);
    assert_eq!(active.write(3), vec![]);
    let full = ShipperCommand::RefuseWrites {
        reason: WriteRefusal::WaitingWritesFull,
    };
    assert_eq!(active.write(4), vec![full]);
    assert!(!active.shipper.admits_writes());

    // Committed anyway: not tracked, so its outcome is unknown.
    assert_eq!(active.write(5), vec![outcome_unknown(&[5])]);

    assert_eq!(
        active.ack(2),
        vec![ack_writes(&[1, 2]), send(3, 5), ShipperCommand::AdmitWrites]
    );
}

#[test]
fn switching_to_async_completes_the_waiting_writes() {
    let mut active = Active::connected(config());
    active.write(1);

    let out = active.step(ShipperEvent::ModeChanged {
        mode: Mode::Async,
        sync_strict: false,
    });

    assert_eq!(out, vec![ack_writes(&[1])]);
    assert_eq!(active.shipper.sync_state(), SyncState::Async);
}

#[test]
fn switching_to_sync_with_a_failed_peer_degrades() {
    let mut active = Active::connected(ShipperConfig {
        mode: Mode::Async,
        ..config()
    });
    assert_eq!(active.peer_state(false, true), vec![]);

    let out = active.step(ShipperEvent::ModeChanged {
        mode: Mode::Sync,
        sync_strict: false,
    });

    assert_eq!(out, vec![degrade(Unavailable::PeerFailed)]);
}

#[test]
fn turning_strict_on_while_degraded_refuses_writes_and_off_again_degrades() {
    let mut active = Active::connected(config());
    active.peer_state(false, true);

    let out = active.step(ShipperEvent::ModeChanged {
        mode: Mode::Sync,
        sync_strict: true,
    });
    assert_eq!(out, vec![refuse(Unavailable::PeerFailed)]);

    let out = active.step(ShipperEvent::ModeChanged {
        mode: Mode::Sync,
        sync_strict: false,
    });
    assert_eq!(
        out,
        vec![
            degrade(Unavailable::PeerFailed),
            ShipperCommand::AdmitWrites
        ]
    );
}

#[test]
fn a_first_tick_long_after_the_shipper_was_created_is_a_freeze() {
    let mut active = Active::connected(config());
    active.write(1);

    assert_eq!(active.step_at(5000, ShipperEvent::Tick), vec![]);
    assert_eq!(active.shipper.sync_state(), SyncState::Sync);
}

#[test]
fn a_peer_that_comes_back_with_everything_brings_back_sync_at_once() {
    let mut active = Active::connected(config());
    active.write(1);
    active.peer_state(false, true);
    assert_eq!(
        active.shipper.sync_state(),
        SyncState::Degraded(Unavailable::PeerFailed)
    );

    active.peer_state(true, false);
    assert_eq!(active.position(1), vec![ShipperCommand::Resync]);
}
