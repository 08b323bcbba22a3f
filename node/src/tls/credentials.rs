//! The TLS material a node uses — the cluster CA, its certificate and its key — held so that it
//! can be replaced while the node runs (SIGHUP, `cert_reload.rs`).
//!
//! [`Credentials`] keeps the material loaded from `[tls]`; [`Credentials::reload`] reads the same
//! files again and swaps the new material in only if all of it is usable. rustls asks for the
//! material on every handshake through the hooks here: [`CurrentCertificate`] (our certificate,
//! as server and as client), [`CurrentClientVerifier`] (the CA that client certificates must
//! chain to) and [`CurrentServerVerifier`] (the CA a server we dial must chain to). A connection
//! keeps what it was established with: reloading never touches an open connection.
//!
//! Not here: building listener and dialer configurations (`acceptor.rs`, `dialer.rs`), deciding
//! when to reload or warn about expiry (`cert_reload.rs`).

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::cert_summary::CertSummary;
use super::error::TlsError;
use super::files::{
    TlsFiles, certificate_key_error, check_signed_by_ca, load_certs, load_key, root_store,
};
use super::provider::ring_provider;

/// What a certificate is checked for when it is loaded, so that a certificate every other end
/// would refuse is refused here first, naming the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUse {
    /// Presented by a listener.
    Server,
    /// Presented by a dialer (`admin`, or a node dialing its peer).
    Client,
    /// Both: a node's certificate, used by its listeners and by its dialers.
    ServerAndClient,
}

/// One consistent set of CA, certificate and key, with the verifiers built from that CA.
#[derive(Debug)]
pub struct Material {
    /// Our chain and signing key, checked to belong together and to chain to `ca`.
    pub certified_key: Arc<CertifiedKey>,
    /// Checks client certificates against this CA.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// Checks the certificates of servers we dial against this CA.
    pub server_verifier: Arc<dyn ServerCertVerifier>,
    /// Our certificate's subject, serial and expiry, for events and the expiry check.
    pub cert: CertSummary,
    /// The same for every certificate in the CA file.
    pub cas: Vec<CertSummary>,
}

impl Material {
    /// Reads and checks the three files. Every error names the file at fault.
    pub fn load(files: &TlsFiles, usage: CertUse) -> Result<Material, TlsError> {
        let cas = load_certs(&files.ca, "CA certificate")?;
        let chain = load_certs(&files.cert, "certificate")?;
        let key = load_key(&files.key)?;
        if usage != CertUse::Client {
            let server = webpki::KeyUsage::server_auth();
            check_signed_by_ca(files, &chain, &cas, server)?;
        }
        if usage != CertUse::Server {
            let client = webpki::KeyUsage::client_auth();
            check_signed_by_ca(files, &chain, &cas, client)?;
        }
        let cert = summary(&files.cert, &chain[0])?;
        let ca_summaries = cas
            .iter()
            .map(|ca| summary(&files.ca, ca))
            .collect::<Result<Vec<_>, _>>()?;
        let certified_key = CertifiedKey::from_der(chain, key, &ring_provider())
            .map_err(|source| certificate_key_error(files, source))?;
        let roots = Arc::new(root_store(&files.ca, &cas)?);
        let bad_ca = |reason: String| TlsError::BadCa {
            path: files.ca.clone(),
            reason,
        };
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), ring_provider())
                .build()
                .map_err(|e| bad_ca(e.to_string()))?;
        let server_verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, ring_provider())
                .build()
                .map_err(|e| bad_ca(e.to_string()))?;
        Ok(Material {
            certified_key: Arc::new(certified_key),
            client_verifier,
            server_verifier,
            cert,
            cas: ca_summaries,
        })
    }
}

fn summary(path: &std::path::Path, cert: &CertificateDer<'_>) -> Result<CertSummary, TlsError> {
    CertSummary::from_der(cert).map_err(|reason| TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })
}

/// The material in use, and the files it comes from.
#[derive(Debug)]
pub struct Credentials {
    /// `[tls]` as the node started with it: a reload reads these same paths.
    files: TlsFiles,
    /// What the certificate must be usable for; a reload checks the same.
    usage: CertUse,
    /// Read on every handshake, replaced whole by a successful reload.
    current: RwLock<Arc<Material>>,
    /// The client-certificate hint the listeners send, taken from the CA at start. Every CA
    /// `tandemctl certs init` makes has the same name, so a reloaded CA has the same hint; and
    /// clients need not follow it anyway.
    root_hints: Vec<DistinguishedName>,
}

impl Credentials {
    /// Loads `files`; fails, naming the file, if they are not usable for `usage`.
    pub fn load(files: &TlsFiles, usage: CertUse) -> Result<Arc<Credentials>, TlsError> {
        let material = Material::load(files, usage)?;
        let root_hints = material.client_verifier.root_hint_subjects().to_vec();
        Ok(Arc::new(Credentials {
            files: files.clone(),
            usage,
            current: RwLock::new(Arc::new(material)),
            root_hints,
        }))
    }

    /// Reads the files again. On success new handshakes use the new material, which is
    /// returned; on failure the material in use stays and the error names the file at fault.
    pub fn reload(&self) -> Result<Arc<Material>, TlsError> {
        let material = Arc::new(Material::load(&self.files, self.usage)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = material.clone();
        Ok(material)
    }

    /// The material new handshakes use.
    pub fn current(&self) -> Arc<Material> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Presents the current certificate, as a server and as a client.
#[derive(Debug)]
pub struct CurrentCertificate(pub Arc<Credentials>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key.clone())
    }
}

impl ResolvesClientCert for CurrentCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Requires a client certificate from the current CA.
#[derive(Debug)]
pub struct CurrentClientVerifier(pub Arc<Credentials>);

impl ClientCertVerifier for CurrentClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.0.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verifier = self.0.current().client_verifier.clone();
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.0.current().client_verifier.clone();
        verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.0.current().client_verifier.clone();
        verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().client_verifier.supported_verify_schemes()
    }
}

/// Requires the server's certificate to chain to the current CA.
#[derive(Debug)]
pub struct CurrentServerVerifier(pub Arc<Credentials>);

impl ServerCertVerifier for CurrentServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = self.0.current().server_verifier.clone();
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.0.current().server_verifier.clone();
        verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.0.current().server_verifier.clone();
        verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().server_verifier.supported_verify_schemes()
    }
}
