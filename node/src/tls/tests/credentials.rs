//! Loading and reloading the `[tls]` files: what a reload reaches, CA bundles, and errors that
//! name the file at fault.

use std::fs;
use std::net::SocketAddr;

use futures::StreamExt;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::support::{Pki, TIMEOUT};
use crate::tls::files::load_certs;
use crate::tls::{
    CertUse, ClientAuth, Credentials, TlsError, TlsFiles, certs, client_config,
    presented_certificates, server_config, server_config_from, tls_incoming,
};

/// The end-entity certificate a server at `addr` presents to a fresh handshake.
async fn served_certificate(addr: SocketAddr, pki: &Pki) -> CertificateDer<'static> {
    let config = client_config(&pki.files("b"), false).unwrap();
    let config_b = config.clone();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from("a").unwrap();
    let tls = TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let presented = presented_certificates(&addr.to_string(), "a", config_b, TIMEOUT).await;
    assert_eq!(presented.unwrap()[0], served);
    served
}

#[tokio::test]
async fn a_reload_reaches_new_handshakes_and_a_bad_one_keeps_the_old_certificate() {
    let pki = Pki::new();
    let credentials = Credentials::load(&pki.files("a"), CertUse::ServerAndClient).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config_from(&credentials, ClientAuth::None).unwrap();
    let mut incoming = tls_incoming(listener, config, "test");
    tokio::spawn(async move { while incoming.next().await.is_some() {} });
    let old = load_certs(&pki.files("a").cert, "cert").unwrap().remove(0);
    assert_eq!(served_certificate(addr, &pki).await, old);

    tracing::info!("--- a new certificate: served once reloaded, not before");
    certs::issue_cert(pki.dir.path(), "a", 60).unwrap();
    let new = load_certs(&pki.files("a").cert, "cert").unwrap().remove(0);
    assert_ne!(new, old);
    assert_eq!(served_certificate(addr, &pki).await, old);
    let material = credentials.reload().unwrap();
    assert_eq!(served_certificate(addr, &pki).await, new);
    assert_eq!(material.cert.subject, "a");

    tracing::info!("--- a key of another certificate: refused, the new certificate stays");
    fs::copy(pki.files("b").key, pki.files("a").key).unwrap();
    let err = credentials.reload().unwrap_err();
    assert!(matches!(err, TlsError::CertificateKey { .. }), "{err}");
    assert_eq!(served_certificate(addr, &pki).await, new);
    fs::write(pki.files("a").cert, "garbage").unwrap();
    let err = credentials.reload().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no certificate found in {}", pki.files("a").cert.display())
    );
    assert_eq!(served_certificate(addr, &pki).await, new);
}

/// Rotating the CA goes through a CA file that holds the old and the new CA.
#[test]
fn a_ca_file_may_hold_two_cas() {
    let (old, new) = (Pki::new(), Pki::new());
    let bundle = old.dir.path().join("both.pem");
    let mut pem = fs::read(old.files("a").ca).unwrap();
    pem.extend(fs::read(new.files("a").ca).unwrap());
    fs::write(&bundle, pem).unwrap();
    for pki in [&old, &new] {
        let files = TlsFiles {
            ca: bundle.clone(),
            ..pki.files("a")
        };
        let credentials = Credentials::load(&files, CertUse::ServerAndClient).unwrap();
        assert_eq!(credentials.current().cas.len(), 2);
    }
}

#[test]
fn configuration_errors_name_the_file() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let files = pki.files("a");

    let missing = TlsFiles {
        cert: pki.dir.path().join("missing.pem"),
        ..files.clone()
    };
    let err = server_config(&missing, ClientAuth::None).unwrap_err();
    let expected = format!("cannot read certificate file {}: ", missing.cert.display());
    assert!(err.to_string().starts_with(&expected), "{err}");

    let no_key = TlsFiles {
        key: files.cert.clone(),
        ..files.clone()
    };
    let err = server_config(&no_key, ClientAuth::None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no private key found in {}", files.cert.display())
    );

    let mismatched = TlsFiles {
        key: pki.files("b").key,
        ..files.clone()
    };
    let err = client_config(&mismatched, true).unwrap_err();
    assert!(matches!(err, TlsError::CertificateKey { .. }), "{err}");

    let foreign = TlsFiles {
        ca: other_pki.files("a").ca,
        ..files.clone()
    };
    let err = server_config(&foreign, ClientAuth::None).unwrap_err();
    let expected = format!(
        "certificate {} is not signed by CA {}",
        foreign.cert.display(),
        foreign.ca.display()
    );
    assert_eq!(err.to_string(), expected);

    tracing::info!("--- admin's certificate is for clients only");
    let err = server_config(&pki.files("admin"), ClientAuth::None).unwrap_err();
    assert!(matches!(err, TlsError::CertificateRejected { .. }), "{err}");
}
