//! The receiver: the passive side of shipping, sans-IO.
//!
//! `Receiver::step(event) -> Vec<ReceiverCommand>` decides whether a batch from the active may be
//! applied: it is intact (checksum), comes from a term not older than the newest this node has seen
//! (fencing, DESIGN.md §3), starts exactly at the next index, is well formed, and continues this
//! node's log (rolling hashes). It then tracks the durable index the driver reports and
//! acknowledges it; on a new stream it announces its durable position with the hash there, so the
//! active can check that the two logs agree before it trusts it. It has no timers, so `step` takes
//! no `now_ms`.
//!
//! It deliberately does no IO and does not apply anything: the driver runs the transaction. On an
//! apply error (an operating error: disk full, say) the driver closes the stream and builds a fresh
//! `Receiver` from the store's durable position, so this core never has to unwind an accepted
//! batch. Divergence is only detected here (`Refusal::HashMismatch`); merge-back is elsewhere.

mod command;
mod event;
mod refusal;

pub use command::ReceiverCommand;
pub use event::ReceiverEvent;
pub use refusal::{MalformedBatch, Refusal};

use super::batch::{Batch, HashedEntry};
use super::hash::rolling_hash;
use super::term::LogTerm;

/// Where a log ends: its last index and the rolling hash there (`GENESIS_HASH` at index 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogHead {
    /// The last entry's index: the next batch must start right after it.
    pub index: u64,
    /// The rolling hash at that entry: the next batch's first entry must continue it.
    pub hash: u64,
}

/// The passive side of shipping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// The newest term seen, in a batch or elsewhere: batches from older terms are refused.
    /// `None` until any term is known.
    newest_term: Option<LogTerm>,
    /// The last entry accepted (handed to the driver to apply, durable or not): the next batch
    /// must start right after it and continue its hash.
    accepted: LogHead,
    /// The last entry the driver reported durable: the only position ever acknowledged or
    /// announced.
    durable: LogHead,
}

impl Receiver {
    /// A receiver for a log that is durable up to `head`, on a node that has seen `newest_term`.
    pub fn new(head: LogHead, newest_term: Option<LogTerm>) -> Receiver {
        Receiver {
            newest_term,
            accepted: head,
            durable: head,
        }
    }

    pub fn step(&mut self, event: ReceiverEvent) -> Vec<ReceiverCommand> {
        match event {
            ReceiverEvent::Batch(batch) => self.on_batch(batch),
            ReceiverEvent::Durable { index, hash } => self.on_durable(LogHead { index, hash }),
            ReceiverEvent::Connected => vec![ReceiverCommand::Position {
                index: self.durable.index,
                hash: self.durable.hash,
            }],
            ReceiverEvent::TermSeen(term) => {
                if self.is_newest(&term) {
                    self.newest_term = Some(term);
                }
                Vec::new()
            }
        }
    }

    pub fn newest_term(&self) -> Option<&LogTerm> {
        self.newest_term.as_ref()
    }

    /// The last entry accepted for applying.
    pub fn accepted(&self) -> LogHead {
        self.accepted
    }

    /// The last entry reported durable.
    pub fn durable(&self) -> LogHead {
        self.durable
    }

    pub fn durable_index(&self) -> u64 {
        self.durable.index
    }

    fn on_batch(&mut self, batch: Batch) -> Vec<ReceiverCommand> {
        let head = match self.check(&batch) {
            Ok(head) => head,
            Err(refusal) => {
                return vec![ReceiverCommand::Refuse {
                    from_index: batch.first_index(),
                    refusal,
                }];
            }
        };
        let mut out = Vec::new();
        if self.is_newest(&batch.term) {
            self.newest_term = Some(batch.term.clone());
            out.push(ReceiverCommand::PersistTerm {
                term: batch.term.clone(),
            });
        }
        self.accepted = head;
        out.push(ReceiverCommand::Apply { batch });
        out
    }

    /// `term` is newer than any seen so far.
    fn is_newest(&self, term: &LogTerm) -> bool {
        self.newest_term.as_ref().is_none_or(|newest| term > newest)
    }

    /// All the checks, cheapest and most telling first; the new head if the batch is accepted.
    fn check(&self, batch: &Batch) -> Result<LogHead, Refusal> {
        // A damaged batch can look like anything else, so its checksum is checked first.
        if !batch.checksum_matches() {
            return Err(Refusal::BadChecksum);
        }
        if batch.entries.is_empty() {
            return Err(Refusal::Malformed(MalformedBatch::Empty));
        }
        if let Some(newest) = self
            .newest_term
            .as_ref()
            .filter(|newest| batch.term < **newest)
        {
            return Err(Refusal::StaleTerm {
                batch_term: batch.term.clone(),
                newest_term: newest.clone(),
            });
        }
        let expected_index = self.accepted.index + 1;
        if batch.first_index() != expected_index {
            return Err(Refusal::Gap { expected_index });
        }
        check_shape(batch).map_err(Refusal::Malformed)?;
        let hash = check_chain(self.accepted.hash, &batch.entries)?;
        Ok(LogHead {
            index: batch.last_index(),
            hash,
        })
    }

    fn on_durable(&mut self, head: LogHead) -> Vec<ReceiverCommand> {
        assert!(
            head.index <= self.accepted.index,
            "durable index {} reported beyond the last accepted entry {}",
            head.index,
            self.accepted.index
        );
        if head.index <= self.durable.index {
            // A report the driver repeated, or one older than the position a stream announced.
            return Vec::new();
        }
        self.durable = head;
        vec![ReceiverCommand::Ack { index: head.index }]
    }
}

/// Consecutive indices, and entry terms that never go back and are never newer than the sender's.
fn check_shape(batch: &Batch) -> Result<(), MalformedBatch> {
    for pair in batch.entries.windows(2) {
        let (previous, entry) = (&pair[0].content, &pair[1].content);
        if entry.index != previous.index + 1 {
            return Err(MalformedBatch::NotConsecutive { index: entry.index });
        }
        if entry.term < previous.term {
            return Err(MalformedBatch::EntryTermBehind { index: entry.index });
        }
    }
    match batch
        .entries
        .iter()
        .find(|entry| entry.content.term > batch.term)
    {
        Some(entry) => Err(MalformedBatch::EntryTermAhead {
            index: entry.index(),
        }),
        None => Ok(()),
    }
}

/// Each entry's hash continues the one before, starting from `previous`; the last hash if so.
fn check_chain(previous: u64, entries: &[HashedEntry]) -> Result<u64, Refusal> {
    let mut hash = previous;
    for entry in entries {
        hash = rolling_hash(hash, &entry.content.encode());
        if hash != entry.hash {
            return Err(Refusal::HashMismatch {
                index: entry.index(),
            });
        }
    }
    Ok(hash)
}
