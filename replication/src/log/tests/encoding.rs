//! The canonical encoding of an entry, the rolling hash over it, and the batch checksum: pinned by
//! values computed outside Rust (Python's hashlib over the documented layout), and checked for
//! sensitivity by properties.

use proptest::prelude::*;

use super::*;

/// An update of row 42 of `extensions`, written by `a` in term (3, a).
pub(super) fn sample_entry() -> EntryContent {
    EntryContent {
        term: LogTerm::new(3, "a", 100),
        index: 7,
        table: "extensions".into(),
        primary_key: "[42]".into(),
        operation: Operation::Update,
        new_image: Some(r#"{"id":42,"name":"x"}"#.into()),
        old_image: Some(r#"{"id":42,"name":"y"}"#.into()),
        hlc: Hlc::new(1_700_000_000_000, 2, "a"),
        origin: "a".into(),
        txid: 99,
    }
}

#[test]
fn the_rolling_hash_is_the_first_eight_bytes_of_sha256_little_endian() {
    // sha256(8 zero bytes || "abc") and sha256(le(0x0102030405060708)), from Python's hashlib.
    assert_eq!(rolling_hash(0, b"abc"), 0x99bb_38e9_4c2e_65f3);
    assert_eq!(
        rolling_hash(0x0102_0304_0506_0708, b""),
        0xe7a3_b786_0898_0b38
    );
}

#[test]
fn the_encoding_of_an_entry_is_pinned() {
    // Computed in Python from the layout documented on `EntryContent::encode`: a change here
    // must bump ENTRY_ENCODING_VERSION, or two versions of tandem disagree on every hash.
    let bytes = sample_entry().encode();
    assert_eq!(bytes.len(), 153);
    assert_eq!(bytes[0], ENTRY_ENCODING_VERSION);
    assert_eq!(rolling_hash(GENESIS_HASH, &bytes), 0x6430_ae37_019f_563f);
}

#[test]
fn the_term_priority_is_not_hashed() {
    let mut other = sample_entry();
    other.term.priority = 1;
    assert_eq!(other.encode(), sample_entry().encode());
}

#[test]
fn absent_and_empty_images_encode_differently() {
    let mut absent = sample_entry();
    absent.old_image = None;
    let mut empty = sample_entry();
    empty.old_image = Some(String::new());
    assert_ne!(absent.encode(), empty.encode());
}

#[test]
fn the_batch_checksum_covers_the_term_the_entries_and_their_order() {
    let first = HashedEntry::chain(GENESIS_HASH, sample_entry());
    let second = HashedEntry::chain(
        first.hash,
        EntryContent {
            index: 8,
            ..sample_entry()
        },
    );
    let term = LogTerm::new(3, "a", 100);
    let checksum = batch_checksum(&term, &[first.clone(), second.clone()]);

    assert_ne!(
        checksum,
        batch_checksum(&LogTerm::new(4, "a", 100), &[first.clone(), second.clone()])
    );
    assert_ne!(
        checksum,
        batch_checksum(&LogTerm::new(3, "a", 99), &[first.clone(), second.clone()])
    );
    assert_ne!(
        checksum,
        batch_checksum(&term, &[second.clone(), first.clone()])
    );
    assert_ne!(
        checksum,
        batch_checksum(&term, std::slice::from_ref(&first))
    );
    assert!(Batch::new(term, vec![first, second]).checksum_matches());
}

fn text() -> impl Strategy<Value = String> {
    "[a-z\\[\\]{}\":0-9]{0,12}"
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Insert),
        Just(Operation::Update),
        Just(Operation::Delete)
    ]
}

prop_compose! {
    fn entry()(
        epoch in 0u64..4, node in "[ab]", index in 0u64..4, table in text(), primary_key in text(),
        operation in operation(), new_image in proptest::option::of(text()),
        old_image in proptest::option::of(text()), ms in 0u64..4, logical in 0u32..4,
        hlc_node in "[ab]", origin in "[ab]", txid in 0u64..4,
    ) -> EntryContent {
        EntryContent {
            term: LogTerm::new(epoch, node, 100),
            index, table, primary_key, operation, new_image, old_image,
            hlc: Hlc::new(ms, logical, hlc_node), origin, txid,
        }
    }
}

proptest! {
    /// Two entries that differ in any field (priority aside) encode differently: the encoding
    /// is unambiguous, so the hash sees every field.
    #[test]
    fn different_entries_encode_differently(a in entry(), b in entry()) {
        prop_assert_eq!(a == b, a.encode() == b.encode());
    }

    /// Flipping any one bit of an entry's bytes changes the rolling hash.
    #[test]
    fn the_rolling_hash_sees_every_bit(
        previous in any::<u64>(),
        bytes in proptest::collection::vec(any::<u8>(), 1..64),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut flipped = bytes.clone();
        flipped[position.index(bytes.len())] ^= 1 << bit;
        prop_assert_ne!(rolling_hash(previous, &bytes), rolling_hash(previous, &flipped));
    }

    /// The same entry on two different logs (different previous hashes) hashes differently.
    #[test]
    fn the_rolling_hash_sees_the_log_before(
        a in any::<u64>(), b in any::<u64>(), bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(rolling_hash(a, &bytes), rolling_hash(b, &bytes));
    }
}
