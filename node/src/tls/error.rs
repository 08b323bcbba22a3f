//! Why TLS failed: [`TlsError`], the one error type of the folder's configuration builders and
//! dialers, and helpers that read an error's chain of sources ([`is_connection_refused`],
//! `error_chain`).
//!
//! Only types and pure functions: no IO, no rustls configuration. Not here: the errors of
//! creating certificates (`certs::CertError`).

use std::error::Error;
use std::io;
use std::path::PathBuf;

/// Why a TLS configuration could not be built or a connection could not be made. Configuration
/// errors name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("no certificate found in {path}")]
    NoCertificate { path: PathBuf },
    /// A key file holds no PEM private key.
    #[error("no private key found in {path}")]
    NoPrivateKey { path: PathBuf },
    /// A file holds PEM that could not be decoded.
    #[error("cannot parse {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    /// The CA file holds something that cannot be a trust anchor.
    #[error("CA certificate {path} cannot be used: {reason}")]
    BadCa { path: PathBuf, reason: String },
    /// The node's own certificate does not chain to the cluster CA, so every peer would refuse it.
    #[error("certificate {cert} is not signed by CA {ca}")]
    NotSignedByCa { cert: PathBuf, ca: PathBuf },
    /// The node's own certificate chains to the CA but is unusable (expired, wrong key usage...).
    #[error("certificate {cert} cannot be used with CA {ca}: {reason}")]
    CertificateRejected {
        cert: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    /// The certificate and the private key do not belong together, or rustls cannot use the key.
    #[error("cannot use certificate {cert} with private key {key}: {source}")]
    CertificateKey {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    /// A name to check or dial is not a usable DNS name.
    #[error("{name:?} cannot be a TLS peer name: {reason}")]
    InvalidName { name: String, reason: String },
    /// A TLS handshake on its own (`presented_certificates`) failed.
    #[error("no TLS handshake with {addr}: {source}")]
    Handshake { addr: String, source: io::Error },
    /// Dialing failed. `is_connection_refused` tells a refused connection apart.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        addr: String,
        reason: String,
        source: tonic::transport::Error,
    },
}

/// True if `err` or any of its sources is an `io::Error` of kind `ConnectionRefused`: nothing
/// listens at the address (the peer's process is down, not its host or the network).
pub fn is_connection_refused(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io_err) = err.downcast_ref::<io::Error>()
            && io_err.kind() == io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// Joins the messages of `err` and its sources, which say what happened below tonic's bare
/// "transport error".
pub(super) fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let message = err.to_string();
        // Wrappers often repeat their source's message; say each thing once.
        if !messages.last().is_some_and(|last| last.contains(&message)) {
            messages.push(message);
        }
        next = err.source();
    }
    messages.join(": ")
}
