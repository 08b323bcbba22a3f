//! DNS names of TLS peers: a configured or dialled name turned into the `DnsName` rustls checks
//! (`dns_name`), and the names a presented certificate carries ([`peer_cert_names`]), for logs
//! and status.
//!
//! No IO, and no authorization: deciding whether a name may connect is `verifiers.rs`'s job.

use rustls_pki_types::{CertificateDer, DnsName};

use super::error::TlsError;

/// The DNS names of the end-entity certificate in `certs` (e.g. from `Request::peer_certs()`),
/// for logs and status. Not for authorization: the handshake has done that already.
pub fn peer_cert_names(certs: &[CertificateDer<'_>]) -> Vec<String> {
    let Some(end_entity) = certs.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(end_entity) {
        Ok(cert) => cert.valid_dns_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

pub(super) fn dns_name(name: &str) -> Result<DnsName<'static>, TlsError> {
    DnsName::try_from(name.to_string()).map_err(|e| TlsError::InvalidName {
        name: name.to_string(),
        reason: e.to_string(),
    })
}
