//! Replication batches as the passive takes them (node/src/repl/receive.rs): each `ShipMessage`
//! is decoded, a batch converted by `repl::convert::batch_from_pb` and stepped through the log
//! core's `Receiver`; what it accepts goes through `bridge::stored_of`, the store's image
//! decoding, the HLC observe and the durable report, all without SQLite.
//!
//! Input: a flags byte, then length-delimited `ShipMessage`s. Flag bits repair what the fuzzer
//! cannot forge: `FIX_CHECKSUMS` recomputes each batch checksum, `FIX_HASHES` re-chains the
//! entries' rolling hashes onto the receiver's log, and bit 2 renumbers the entries to follow it.
//! Besides "no panic", it checks that every batch the receiver accepts would pass the store's
//! own continuity checks (`Store::apply_entries`): next index, the store's rolling hash, and
//! epochs that never go back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{FIX_CHECKSUMS, FIX_HASHES};
use tandem_node::repl::convert;
use tandem_proto::peer as pb;
use tandem_replication::bridge::{entry_rolling_hash, stored_of};
use tandem_replication::log::{
    Batch, GENESIS_HASH, HashedEntry, HlcClock, LogHead, Receiver, ReceiverCommand, ReceiverEvent,
    batch_checksum, rolling_hash,
};

const FIX_INDICES: u8 = 4;
/// The wall clock the passive observes stamps at: a fixed, realistic time.
const WALL_MS: u64 = 1_760_000_000_000;

/// What the store would hold: the hash and the epoch at every index.
struct FakeStore {
    entries: Vec<(u64, u64)>,
}

impl FakeStore {
    fn head(&self) -> LogHead {
        LogHead {
            index: self.entries.len() as u64,
            hash: self.entries.last().map_or(GENESIS_HASH, |(hash, _)| *hash),
        }
    }

    fn last_epoch(&self) -> u64 {
        self.entries.last().map_or(0, |(_, epoch)| *epoch)
    }
}

fn repair(batch: &mut Batch, flags: u8, head: LogHead) {
    if flags & FIX_INDICES != 0 {
        for (offset, entry) in batch.entries.iter_mut().enumerate() {
            entry.content.index = head.index.wrapping_add(1).wrapping_add(offset as u64);
        }
    }
    if flags & FIX_HASHES != 0 {
        let mut hash = head.hash;
        for entry in &mut batch.entries {
            hash = rolling_hash(hash, &entry.content.encode());
            entry.hash = hash;
        }
    }
    if flags & FIX_CHECKSUMS != 0 {
        batch.checksum = batch_checksum(&batch.term, &batch.entries);
    }
}

/// As `Store::apply_entries` would see the batch, without SQLite. False when the store refuses
/// it (an entry's epoch goes back): the node then ends the stream.
fn apply(store: &mut FakeStore, entries: &[HashedEntry], clock: &mut HlcClock) -> bool {
    let (mut index, mut hash, mut epoch) =
        (store.head().index, store.head().hash, store.last_epoch());
    let mut stored_entries = Vec::with_capacity(entries.len());
    for entry in entries {
        let stored = stored_of(entry);
        assert_eq!(stored.idx, index + 1, "accepted out of order");
        if stored.term_epoch < epoch {
            return false;
        }
        assert_eq!(
            entry_rolling_hash(hash, &stored),
            stored.hash,
            "the receiver and the store disagree on the hash of entry {}",
            stored.idx
        );
        // The store decodes the images when it applies; a bad one is an error, never a panic.
        let _ = stored.pk_values();
        let _ = stored.new_values();
        let _ = stored.old_values();
        let _ = stored.approx_size_bytes();
        (index, hash, epoch) = (stored.idx, stored.hash, stored.term_epoch);
        stored_entries.push((stored.hash, stored.term_epoch));
    }
    store.entries.extend(stored_entries);
    if let Some(last) = entries.last() {
        clock.observe(&last.content.hlc, WALL_MS);
    }
    true
}

fn on_batch(
    receiver: &mut Receiver,
    store: &mut FakeStore,
    clock: &mut HlcClock,
    flags: u8,
    wire: pb::LogBatch,
) -> bool {
    let Ok(mut batch) = convert::batch_from_pb(wire) else {
        return true;
    };
    repair(&mut batch, flags, receiver.accepted());
    let mut events = vec![ReceiverEvent::Batch(batch)];
    while let Some(event) = events.pop() {
        for command in receiver.step(event) {
            match command {
                ReceiverCommand::Apply { batch } => {
                    if !apply(store, &batch.entries, clock) {
                        return false;
                    }
                    let head = store.head();
                    events.push(ReceiverEvent::Durable {
                        index: head.index,
                        hash: head.hash,
                    });
                }
                ReceiverCommand::Refuse {
                    from_index,
                    refusal,
                } => {
                    let _ = convert::refusal_to_pb(from_index, &refusal);
                }
                ReceiverCommand::PersistTerm { .. }
                | ReceiverCommand::Ack { .. }
                | ReceiverCommand::Position { .. } => {}
            }
        }
    }
    true
}

/// `Rewind` as the passive runs it: only to an index whose hash it holds, then a fresh receiver.
fn on_rewind(receiver: &mut Receiver, store: &mut FakeStore, rewind: pb::Rewind) {
    let held = usize::try_from(rewind.to_index)
        .ok()
        .and_then(|index| index.checked_sub(1))
        .and_then(|at| store.entries.get(at).map(|(hash, _)| *hash));
    let ours = if rewind.to_index == 0 {
        Some(GENESIS_HASH)
    } else {
        held
    };
    if ours != Some(rewind.hash) {
        return;
    }
    store.entries.truncate(rewind.to_index as usize);
    let newest = receiver.newest_term().cloned();
    *receiver = Receiver::new(store.head(), newest);
    receiver.step(ReceiverEvent::Connected);
}

fuzz_target!(|data: &[u8]| {
    let (flags, messages) = tandem_fuzz::flags_and_messages::<pb::ShipMessage>(data);
    let mut store = FakeStore {
        entries: Vec::new(),
    };
    let mut receiver = Receiver::new(store.head(), None);
    let mut clock = HlcClock::new("b", 500);
    receiver.step(ReceiverEvent::Connected);
    use pb::ship_message::Body;
    for message in messages {
        match message.body {
            Some(Body::Hello(hello)) => {
                if let Ok(term) = convert::term_from_pb(hello.term.as_ref(), "hello term") {
                    receiver.step(ReceiverEvent::TermSeen(term));
                }
            }
            Some(Body::Batch(batch)) => {
                if !on_batch(&mut receiver, &mut store, &mut clock, flags, batch) {
                    return;
                }
            }
            Some(Body::Rewind(rewind)) => on_rewind(&mut receiver, &mut store, rewind),
            Some(Body::Disk(verdict)) => {
                let _ = pb::DiskState::try_from(verdict.disk);
            }
            Some(Body::Probe(_))
            | Some(Body::SnapshotBegin(_))
            | Some(Body::SnapshotChunk(_))
            | Some(Body::SnapshotEnd(_))
            | None => {}
        }
    }
});
