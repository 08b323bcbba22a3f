//! The rolling hash of the log: `rolling_hash(previous, entry_bytes)`.
//!
//! The hash of entry `i` covers the whole log up to and including `i`, so two nodes whose hashes
//! agree at an index hold the same log up to it; comparing hashes finds the last common index after
//! a split brain (DESIGN.md §4). It is the first 8 bytes of SHA-256 (`ring`), read as a
//! little-endian u64: not a defence against an attacker (the peer link is mTLS), but collisions by
//! accident are out of reach.
//!
//! This module only hashes; it deliberately does not decide what to do on a mismatch.

use ring::digest;

/// The hash "before the first entry": the `previous` of the entry at index 1.
pub const GENESIS_HASH: u64 = 0;

/// The hash of the log up to an entry: SHA-256 of `previous` (little-endian) followed by the
/// entry's canonical bytes (`EntryContent::encode`), truncated to its first 8 bytes.
pub fn rolling_hash(previous: u64, entry_bytes: &[u8]) -> u64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&previous.to_le_bytes());
    context.update(entry_bytes);
    first_eight_bytes(context.finish())
}

/// The first 8 bytes of a digest as a little-endian u64.
pub(super) fn first_eight_bytes(digest: digest::Digest) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_le_bytes(head)
}
