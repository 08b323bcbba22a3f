//! The files of a TLS end — CA, certificate, key ([`TlsFiles`]) — and reading them: PEM
//! certificates and keys, the root store of the cluster CA, and the startup check that a
//! certificate chains to that CA. Every error names the file at fault; a key file's contents are
//! never echoed.
//!
//! Reads files, never writes them (`certs.rs` creates certificates). Not here: holding the loaded
//! material and swapping it on reload (`credentials.rs`), building configurations (`acceptor.rs`,
//! `dialer.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::error::TlsError;
use super::provider::ring_provider;

/// The `[tls]` section of a node's configuration, or `tandemctl --ca --cert --key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA: the only issuer trusted, for servers and for client certificates.
    pub ca: PathBuf,
    /// This end's certificate chain (end entity first), presented to the other end.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        // Never echo the file's contents: it is a secret.
        e => TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

pub(crate) fn certificate_key_error(files: &TlsFiles, source: rustls::Error) -> TlsError {
    TlsError::CertificateKey {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    }
}

pub(crate) fn root_store(
    ca_path: &Path,
    cas: &[CertificateDer<'static>],
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca.clone()).map_err(|e| TlsError::BadCa {
            path: ca_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Refuses at startup a certificate every peer would refuse, with a message naming both files.
pub(crate) fn check_signed_by_ca(
    files: &TlsFiles,
    chain: &[CertificateDer<'static>],
    cas: &[CertificateDer<'static>],
    usage: webpki::KeyUsage,
) -> Result<(), TlsError> {
    let bad_ca = |e: webpki::Error| TlsError::BadCa {
        path: files.ca.clone(),
        reason: e.to_string(),
    };
    let rejected = |reason: String| TlsError::CertificateRejected {
        cert: files.cert.clone(),
        ca: files.ca.clone(),
        reason,
    };
    let anchors = cas
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map_err(bad_ca))
        .collect::<Result<Vec<_>, _>>()?;
    let end_entity =
        webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| rejected(e.to_string()))?;
    let algorithms = ring_provider().signature_verification_algorithms.all;
    let intermediates = &chain[1..];
    let now = UnixTime::now();
    match end_entity.verify_for_usage(algorithms, &anchors, intermediates, now, usage, None, None) {
        Ok(_) => Ok(()),
        // Every tandem CA has the same name, so another pair's CA fails on the signature.
        Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
            Err(TlsError::NotSignedByCa {
                cert: files.cert.clone(),
                ca: files.ca.clone(),
            })
        }
        Err(e) => Err(rejected(e.to_string())),
    }
}
