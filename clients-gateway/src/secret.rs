//! Random ids and tokens, and the hashes stored in their place.
//!
//! Session tokens are 32 random bytes (hex); only their SHA-256 is stored, so a copy of the
//! database does not hand out sessions. Not here: password hashing (`password`).

use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
#[error("the system's random source failed")]
pub struct RandomError;

/// `N` bytes from the system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(bytes)
}

/// A new session token: 64 hex characters.
pub fn new_token() -> Result<String, RandomError> {
    Ok(hex(&random_bytes::<32>()?))
}

/// The hex SHA-256 of `token`, as stored in `sessions.token_hash`.
pub fn token_hash(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// A ULID stamped with `now_ms`: sortable by creation time, unique by its 80 random bits.
pub fn new_ulid(now_ms: u64) -> Result<String, RandomError> {
    let random = u128::from_be_bytes(random_bytes::<16>()?);
    Ok(ulid::Ulid::from_parts(now_ms, random).to_string())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hashes_are_stable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        // SHA-256 of "abc", a published test vector.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ulids_sort_by_time() {
        let early = new_ulid(1_000).unwrap();
        let late = new_ulid(2_000).unwrap();
        assert_eq!(early.len(), 26);
        assert!(early < late);
    }
}
