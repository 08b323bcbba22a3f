//! Random values from the operating system (ring's `SystemRandom`): incarnation ids, transaction
//! ids, request ids. Not for keys (`tls::certs` and the gateway's secrets have their own).

/// A random 64-bit value from the OS; the wall clock if the OS has none to give.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return u64::try_from(crate::state::store::wall_clock_ms()).unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}
