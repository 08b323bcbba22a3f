//! What every tandem rustls configuration is built on: ring as the crypto provider
//! ([`install_crypto_provider`] for the process, `ring_provider` for each configuration this folder
//! builds) and ALPN `h2`, on the listeners' side and on the dialers' alike.
//!
//! No IO and no configuration building: `acceptor.rs` and `dialer.rs` build the configurations.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// Both ends speak gRPC, which is HTTP/2 only.
pub(super) const ALPN_H2: &[u8] = b"h2";

/// Installs ring as the process's rustls crypto provider. Call it first thing in `main`: a
/// library that builds a rustls configuration without naming a provider uses this one. Calling it
/// again does nothing.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
