//! The custom client-certificate verifier of the peer and admin ports: [`NamedClientVerifier`]
//! lets in only a certificate from the cluster CA that is also valid for one of a few names (the
//! configured peer; or `admin`, this node and its peer).
//!
//! Pure checks on certificates handed over by rustls, no IO. Not here: the verifiers that follow
//! a reload and check the chain to the current CA (`credentials.rs`: `CurrentClientVerifier`,
//! `CurrentServerVerifier`), which this one wraps; choosing which listener uses which
//! (`acceptor.rs`).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certs;
use super::error::TlsError;
use super::names::dns_name;

/// Requires a certificate from the cluster CA (checked by rustls's webpki verifier) that is also
/// valid for one DNS name, so that on the peer port only the configured peer gets through.
#[derive(Debug)]
pub(super) struct NamedClientVerifier {
    /// Checks the chain to the cluster CA, the validity period and the client-auth usage.
    cluster: Arc<dyn ClientCertVerifier>,
    /// The names the client's certificate may carry (one of them).
    names: Vec<ServerName<'static>>,
}

impl NamedClientVerifier {
    pub(super) fn new(
        cluster: Arc<dyn ClientCertVerifier>,
        name: String,
    ) -> Result<Self, TlsError> {
        // Every node certificate also carries "tandem-node" and "localhost": a peer name that
        // matched those would let any node in.
        if let Err(e) = certs::check_node_name(&name) {
            let reason = match e {
                certs::CertError::InvalidNodeName { reason, .. } => reason.to_string(),
                other => other.to_string(),
            };
            return Err(TlsError::InvalidName { name, reason });
        }
        let names = vec![ServerName::DnsName(dns_name(&name)?)];
        Ok(NamedClientVerifier { cluster, names })
    }

    /// The witness's: any of `names` (checked as names by the witness's config).
    pub(super) fn any_of(
        cluster: Arc<dyn ClientCertVerifier>,
        names: &[String],
    ) -> Result<Self, TlsError> {
        let names = names
            .iter()
            .map(|name| Ok(ServerName::DnsName(dns_name(name)?)))
            .collect::<Result<Vec<_>, TlsError>>()?;
        Ok(NamedClientVerifier { cluster, names })
    }

    /// The admin port's: `admin`, this node or its peer.
    pub(super) fn admin(
        cluster: Arc<dyn ClientCertVerifier>,
        node: &str,
        peer: &str,
    ) -> Result<Self, TlsError> {
        let mut verifier = NamedClientVerifier::new(cluster, node.to_string())?;
        for name in [peer, certs::ADMIN_NAME] {
            verifier.names.push(ServerName::DnsName(dns_name(name)?));
        }
        Ok(verifier)
    }
}

impl ClientCertVerifier for NamedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.cluster.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .cluster
            .verify_client_cert(end_entity, intermediates, now)?;
        check_cert_name(end_entity, &self.names)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.cluster.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.cluster.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.cluster.supported_verify_schemes()
    }
}

/// The refusal names what was expected and what was presented, so the server's log says why.
fn check_cert_name(
    cert: &CertificateDer<'_>,
    names: &[ServerName<'static>],
) -> Result<(), rustls::Error> {
    let bad_encoding = rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let end_entity = webpki::EndEntityCert::try_from(cert).map_err(|_| bad_encoding)?;
    if names
        .iter()
        .any(|name| end_entity.verify_is_valid_for_subject_name(name).is_ok())
    {
        return Ok(());
    }
    let presented: Vec<String> = end_entity.valid_dns_names().map(str::to_string).collect();
    if let [expected] = names {
        let error = CertificateError::NotValidForNameContext {
            expected: expected.clone(),
            presented,
        };
        return Err(rustls::Error::InvalidCertificate(error));
    }
    let expected: Vec<String> = names
        .iter()
        .map(|name| name.to_str().into_owned())
        .collect();
    Err(rustls::Error::General(format!(
        "the client certificate is for {presented:?}; this port takes only {}",
        expected.join(", ")
    )))
}
