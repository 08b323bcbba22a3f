//! The receiver on the passive: fencing by term, gaps, checksums, hashes and shape, the durable
//! index and its acknowledgements; and one round trip with a shipper.

use super::*;

/// A term of `a` (priority 100) or `b` (priority 50).
pub(super) fn term(epoch: u64, node: &str) -> LogTerm {
    let priority = if node == "a" { 100 } else { 50 };
    LogTerm::new(epoch, node, priority)
}

/// An insert of row `index` into `extensions`, written in `term`.
pub(super) fn content(term: &LogTerm, index: u64) -> EntryContent {
    EntryContent {
        term: term.clone(),
        index,
        table: "extensions".into(),
        primary_key: format!("[{index}]"),
        operation: Operation::Insert,
        new_image: Some(format!(r#"{{"id":{index}}}"#)),
        old_image: None,
        hlc: Hlc::new(1000 + index, 0, term.node.clone()),
        origin: term.node.clone(),
        txid: index,
    }
}

/// The contents hashed one after the other onto `previous`.
fn chain(previous: u64, contents: Vec<EntryContent>) -> Vec<HashedEntry> {
    let mut hash = previous;
    contents
        .into_iter()
        .map(|content| {
            let entry = HashedEntry::chain(hash, content);
            hash = entry.hash;
            entry
        })
        .collect()
}

/// Entries `from ..= to` written in `term`, continuing a log whose last hash is `previous`.
fn entries(term: &LogTerm, from: u64, to: u64, previous: u64) -> Vec<HashedEntry> {
    chain(previous, (from..=to).map(|i| content(term, i)).collect())
}

/// A receiver with an empty log that has seen term (1, a).
fn receiver() -> Receiver {
    Receiver::new(
        LogHead {
            index: 0,
            hash: GENESIS_HASH,
        },
        Some(term(1, "a")),
    )
}

/// The driver's report that `batch` is committed.
pub(super) fn durable(batch: &Batch) -> ReceiverEvent {
    let last = batch.entries.last().expect("a batch with entries");
    ReceiverEvent::Durable {
        index: last.index(),
        hash: last.hash,
    }
}

fn apply(batch: &Batch) -> ReceiverCommand {
    ReceiverCommand::Apply {
        batch: batch.clone(),
    }
}

fn refuse(from_index: u64, refusal: Refusal) -> ReceiverCommand {
    ReceiverCommand::Refuse {
        from_index,
        refusal,
    }
}

#[test]
fn the_next_batch_of_the_current_term_is_applied_then_acknowledged_once_durable() {
    let mut receiver = receiver();
    let batch = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 3, GENESIS_HASH));

    assert_eq!(
        receiver.step(ReceiverEvent::Batch(batch.clone())),
        vec![apply(&batch)]
    );
    assert_eq!(receiver.accepted().index, 3);
    assert_eq!(
        receiver.durable_index(),
        0,
        "nothing is acknowledged before it is durable"
    );

    let out = receiver.step(durable(&batch));
    assert_eq!(out, vec![ReceiverCommand::Ack { index: 3 }]);
    let head = LogHead {
        index: 3,
        hash: batch.entries[2].hash,
    };
    assert_eq!(receiver.durable(), head);
    assert_eq!(receiver.durable_index(), 3);
}

#[test]
fn batches_follow_each_other_and_one_commit_may_cover_several() {
    let mut receiver = receiver();
    let first = entries(&term(1, "a"), 1, 3, GENESIS_HASH);
    let second = entries(&term(1, "a"), 4, 5, first[2].hash);
    let first = Batch::new(term(1, "a"), first);
    let second = Batch::new(term(1, "a"), second);

    assert_eq!(
        receiver.step(ReceiverEvent::Batch(first.clone())),
        vec![apply(&first)]
    );
    assert_eq!(
        receiver.step(ReceiverEvent::Batch(second.clone())),
        vec![apply(&second)]
    );
    let out = receiver.step(durable(&second));
    assert_eq!(out, vec![ReceiverCommand::Ack { index: 5 }]);
    assert_eq!(receiver.step(durable(&second)), vec![]);
    assert_eq!(
        receiver.step(durable(&first)),
        vec![],
        "an older report changes nothing"
    );
}

#[test]
fn a_batch_from_a_newer_term_persists_that_term_before_it_is_applied() {
    let mut receiver = receiver();
    // The new active ships entries still written in the old term.
    let batch = Batch::new(term(2, "b"), entries(&term(1, "a"), 1, 2, GENESIS_HASH));

    let out = receiver.step(ReceiverEvent::Batch(batch.clone()));

    let persist = ReceiverCommand::PersistTerm { term: term(2, "b") };
    assert_eq!(out, vec![persist, apply(&batch)]);
    assert_eq!(receiver.newest_term(), Some(&term(2, "b")));
}

#[test]
fn the_first_term_ever_seen_is_persisted() {
    let mut receiver = Receiver::new(
        LogHead {
            index: 0,
            hash: GENESIS_HASH,
        },
        None,
    );
    let batch = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 1, GENESIS_HASH));

    let out = receiver.step(ReceiverEvent::Batch(batch.clone()));

    let persist = ReceiverCommand::PersistTerm { term: term(1, "a") };
    assert_eq!(out, vec![persist, apply(&batch)]);
}

#[test]
fn a_batch_from_an_older_term_is_refused() {
    let mut receiver = receiver();
    receiver.step(ReceiverEvent::TermSeen(term(2, "b")));
    let batch = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 2, GENESIS_HASH));

    let out = receiver.step(ReceiverEvent::Batch(batch));

    let stale = Refusal::StaleTerm {
        batch_term: term(1, "a"),
        newest_term: term(2, "b"),
    };
    assert_eq!(out, vec![refuse(1, stale)]);
    assert_eq!(receiver.accepted().index, 0);
}

#[test]
fn a_batch_from_the_same_epoch_but_a_lower_rank_is_refused() {
    // Split brain: both promoted to epoch 2; (2, a) outranks (2, b).
    let mut receiver = receiver();
    receiver.step(ReceiverEvent::TermSeen(term(2, "a")));
    let batch = Batch::new(term(2, "b"), entries(&term(2, "b"), 1, 1, GENESIS_HASH));

    let out = receiver.step(ReceiverEvent::Batch(batch));

    let stale = Refusal::StaleTerm {
        batch_term: term(2, "b"),
        newest_term: term(2, "a"),
    };
    assert_eq!(out, vec![refuse(1, stale)]);
}

#[test]
fn an_older_term_seen_later_changes_nothing() {
    let mut receiver = receiver();
    receiver.step(ReceiverEvent::TermSeen(term(3, "b")));
    assert_eq!(receiver.step(ReceiverEvent::TermSeen(term(2, "a"))), vec![]);
    assert_eq!(receiver.newest_term(), Some(&term(3, "b")));
}

#[test]
fn a_batch_that_does_not_start_at_the_next_index_is_refused() {
    let mut receiver = receiver();
    let log = entries(&term(1, "a"), 1, 3, GENESIS_HASH);

    let ahead = Batch::new(term(1, "a"), log[1..].to_vec());
    let out = receiver.step(ReceiverEvent::Batch(ahead));
    assert_eq!(out, vec![refuse(2, Refusal::Gap { expected_index: 1 })]);

    let whole = Batch::new(term(1, "a"), log);
    receiver.step(ReceiverEvent::Batch(whole.clone()));
    let out = receiver.step(ReceiverEvent::Batch(whole));
    assert_eq!(out, vec![refuse(1, Refusal::Gap { expected_index: 4 })]);
}

#[test]
fn a_batch_whose_checksum_does_not_match_is_refused() {
    let mut receiver = receiver();
    let mut batch = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 2, GENESIS_HASH));
    batch.checksum ^= 1;
    assert_eq!(
        receiver.step(ReceiverEvent::Batch(batch)),
        vec![refuse(1, Refusal::BadChecksum)]
    );

    let mut damaged = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 2, GENESIS_HASH));
    damaged.entries[1].content.new_image = Some(r#"{"id":666}"#.into());
    assert_eq!(
        receiver.step(ReceiverEvent::Batch(damaged)),
        vec![refuse(1, Refusal::BadChecksum)]
    );
    assert_eq!(receiver.accepted().index, 0);
}

#[test]
fn a_batch_that_does_not_continue_this_log_is_refused() {
    let mut receiver = receiver();
    // Entries of another history: built on a different log before them.
    let diverged = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 2, 12345));

    let out = receiver.step(ReceiverEvent::Batch(diverged));

    assert_eq!(out, vec![refuse(1, Refusal::HashMismatch { index: 1 })]);
}

#[test]
fn an_entry_with_a_wrong_hash_inside_a_batch_is_refused() {
    let mut receiver = receiver();
    let mut log = entries(&term(1, "a"), 1, 3, GENESIS_HASH);
    log[1].hash ^= 1;
    let batch = Batch::new(term(1, "a"), log);

    let out = receiver.step(ReceiverEvent::Batch(batch));

    assert_eq!(out, vec![refuse(1, Refusal::HashMismatch { index: 2 })]);
}

#[test]
fn malformed_batches_are_refused() {
    let mut receiver = receiver();
    let malformed = |shape| Refusal::Malformed(shape);

    let empty = Batch::new(term(1, "a"), vec![]);
    assert_eq!(
        receiver.step(ReceiverEvent::Batch(empty)),
        vec![refuse(0, malformed(MalformedBatch::Empty))]
    );

    let skipping = chain(
        GENESIS_HASH,
        vec![content(&term(1, "a"), 1), content(&term(1, "a"), 3)],
    );
    let out = receiver.step(ReceiverEvent::Batch(Batch::new(term(1, "a"), skipping)));
    let shape = MalformedBatch::NotConsecutive { index: 3 };
    assert_eq!(out, vec![refuse(1, malformed(shape))]);

    let ahead = entries(&term(3, "a"), 1, 1, GENESIS_HASH);
    let out = receiver.step(ReceiverEvent::Batch(Batch::new(term(2, "b"), ahead)));
    let shape = MalformedBatch::EntryTermAhead { index: 1 };
    assert_eq!(out, vec![refuse(1, malformed(shape))]);

    let going_back = chain(
        GENESIS_HASH,
        vec![content(&term(2, "b"), 1), content(&term(1, "a"), 2)],
    );
    let out = receiver.step(ReceiverEvent::Batch(Batch::new(term(2, "b"), going_back)));
    let shape = MalformedBatch::EntryTermBehind { index: 2 };
    assert_eq!(out, vec![refuse(1, malformed(shape))]);

    assert_eq!(receiver.accepted().index, 0);
    assert_eq!(
        receiver.newest_term(),
        Some(&term(1, "a")),
        "refused batches teach no term"
    );
}

#[test]
fn a_new_stream_is_told_the_durable_position_and_its_hash() {
    let mut receiver = Receiver::new(LogHead { index: 41, hash: 7 }, Some(term(1, "a")));
    assert_eq!(
        receiver.step(ReceiverEvent::Connected),
        vec![ReceiverCommand::Position { index: 41, hash: 7 }]
    );
}

#[test]
fn a_new_stream_is_told_only_what_is_durable() {
    let mut receiver = receiver();
    let batch = Batch::new(term(1, "a"), entries(&term(1, "a"), 1, 3, GENESIS_HASH));
    receiver.step(ReceiverEvent::Batch(batch));

    // Accepted, still being applied: not announced.
    let out = receiver.step(ReceiverEvent::Connected);
    let genesis = ReceiverCommand::Position {
        index: 0,
        hash: GENESIS_HASH,
    };
    assert_eq!(out, vec![genesis]);
}

#[test]
#[should_panic(expected = "beyond the last accepted entry")]
fn a_durable_report_past_what_was_accepted_is_a_bug() {
    receiver().step(ReceiverEvent::Durable { index: 1, hash: 0 });
}

/// The active's log, its shipper and the passive's receiver, wired by hand.
struct Pair {
    active: Active,
    log: Vec<HashedEntry>,
    receiver: Receiver,
}

impl Pair {
    /// Runs shipper commands: batches go to the receiver, whose commands run at once; returns
    /// the shipper commands that are not batches (the answers to writes, and so on).
    fn run(&mut self, commands: Vec<ShipperCommand>) -> Vec<ShipperCommand> {
        let mut rest = Vec::new();
        for command in commands {
            let ShipperCommand::SendBatch {
                from_index,
                to_index,
            } = command
            else {
                rest.push(command);
                continue;
            };
            let entries = self.log[(from_index - 1) as usize..to_index as usize].to_vec();
            let batch = Batch::new(term(1, "a"), entries);
            for passive in self.receiver.step(ReceiverEvent::Batch(batch)) {
                let ReceiverCommand::Apply { batch } = passive else {
                    panic!("refused: {passive:?}");
                };
                let index = batch.last_index();
                let acks = self.receiver.step(durable(&batch));
                assert_eq!(acks, vec![ReceiverCommand::Ack { index }]);
                let out = self.active.ack(index);
                rest.extend(self.run(out));
            }
        }
        rest
    }
}

#[test]
fn a_sync_write_round_trips_through_the_receiver() {
    let mut pair = Pair {
        active: Active::new(config()),
        log: Vec::new(),
        receiver: receiver(),
    };
    pair.active.peer_state(true, false);
    let [ReceiverCommand::Position { index, hash }] =
        pair.receiver.step(ReceiverEvent::Connected)[..]
    else {
        panic!("the receiver announces its position");
    };
    assert_eq!(
        (index, hash),
        (0, GENESIS_HASH),
        "the driver compares with its log"
    );
    assert_eq!(pair.active.position(index), vec![]);

    for write_id in 1..=3 {
        let previous = pair.log.last().map_or(GENESIS_HASH, |entry| entry.hash);
        let index = write_id;
        pair.log
            .push(HashedEntry::chain(previous, content(&term(1, "a"), index)));
        let mut out = pair.active.commit(1);
        out.extend(
            pair.active
                .step(ShipperEvent::WriteWaiting { write_id, index }),
        );

        assert_eq!(pair.run(out), vec![ack_writes(&[write_id])]);
    }
    assert_eq!(pair.receiver.durable_index(), 3);
    assert_eq!(pair.receiver.accepted().hash, pair.log[2].hash);
}
