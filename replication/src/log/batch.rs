//! `Batch`: the unit the active ships to the passive, with its checksum, and `HashedEntry`, an
//! entry as it travels (content plus rolling hash).
//!
//! The checksum catches a batch damaged on the way (`batch_checksum`); the rolling hashes catch a
//! batch that is intact but does not continue the receiver's log. This module builds and checks
//! batches; it deliberately does not decide which entries go in one (the shipper does) nor frame
//! them on the wire (the peer link's protobuf does).

use ring::digest;

use super::entry::EntryContent;
use super::hash::{first_eight_bytes, rolling_hash};
use super::term::LogTerm;

/// One entry as shipped: its content and the rolling hash of the log up to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HashedEntry {
    /// The replicated content, hashed through `EntryContent::encode`.
    pub content: EntryContent,
    /// `rolling_hash(hash of the previous entry, content.encode())`: lets the receiver check that
    /// the entry continues its own log.
    pub hash: u64,
}

impl HashedEntry {
    /// Hashes `content` onto a log whose last hash is `previous`.
    pub fn chain(previous: u64, content: EntryContent) -> HashedEntry {
        let hash = rolling_hash(previous, &content.encode());
        HashedEntry { content, hash }
    }

    pub fn index(&self) -> u64 {
        self.content.index
    }
}

/// Consecutive entries sent in one message; the receiver applies them in one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch {
    /// The sender's term when it sent the batch (not the entries' terms, which may be older):
    /// the receiver refuses a batch from a term older than the newest it has seen.
    pub term: LogTerm,
    /// Consecutive entries, oldest first; never empty when built by `Batch::new`.
    pub entries: Vec<HashedEntry>,
    /// `batch_checksum(term, entries)`, computed by the sender.
    pub checksum: u64,
}

impl Batch {
    /// A batch from the sender in `term`, with its checksum.
    pub fn new(term: LogTerm, entries: Vec<HashedEntry>) -> Batch {
        let checksum = batch_checksum(&term, &entries);
        Batch {
            term,
            entries,
            checksum,
        }
    }

    /// Index of the first entry (0 for an empty batch, which the receiver refuses).
    pub fn first_index(&self) -> u64 {
        self.entries.first().map_or(0, HashedEntry::index)
    }

    /// Index of the last entry (0 for an empty batch).
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(0, HashedEntry::index)
    }

    /// The checksum recomputed from the batch's term and entries matches the one it carries.
    pub fn checksum_matches(&self) -> bool {
        batch_checksum(&self.term, &self.entries) == self.checksum
    }
}

/// First 8 bytes of SHA-256 over the sender's term (epoch, priority, node), the entry count, and
/// each entry's canonical bytes (length-prefixed) followed by its rolling hash.
pub fn batch_checksum(term: &LogTerm, entries: &[HashedEntry]) -> u64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&term.epoch.to_le_bytes());
    context.update(&term.priority.to_le_bytes());
    context.update(&(term.node.len() as u64).to_le_bytes());
    context.update(term.node.as_bytes());
    context.update(&(entries.len() as u64).to_le_bytes());
    for entry in entries {
        let bytes = entry.content.encode();
        context.update(&(bytes.len() as u64).to_le_bytes());
        context.update(&bytes);
        context.update(&entry.hash.to_le_bytes());
    }
    first_eight_bytes(context.finish())
}
