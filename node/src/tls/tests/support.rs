//! What the handshake tests share: a pair's certificates in a temporary directory ([`Pki`]) and
//! a listener on them that greets every client it lets in ([`serve`], [`greeting`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::tls::files::{load_certs, load_key, root_store};
use crate::tls::provider::ring_provider;
use crate::tls::{
    ClientAuth, TlsFiles, certs, client_config, install_crypto_provider, peer_cert_names,
    server_config, tls_incoming,
};

pub(super) const TIMEOUT: Duration = Duration::from_secs(5);

/// A pair's certificates in a temporary directory: a CA, nodes a and b, and admin.
pub(super) struct Pki {
    pub(super) dir: tempfile::TempDir,
}

impl Pki {
    pub(super) fn new() -> Self {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        certs::init_certs(dir.path(), &["a".to_string(), "b".to_string()]).unwrap();
        Pki { dir }
    }

    pub(super) fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            ca: self.dir.path().join("ca.pem"),
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    pub(super) fn client(&self, name: &str) -> Arc<ClientConfig> {
        client_config(&self.files(name), true).unwrap()
    }

    /// Trusts this CA but presents `name`'s certificate from `other`, which `client_config`
    /// would refuse to build.
    pub(super) fn client_with_foreign_cert(&self, other: &Pki, name: &str) -> Arc<ClientConfig> {
        let cas = load_certs(&self.files(name).ca, "CA").unwrap();
        let foreign = other.files(name);
        let config = ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(root_store(&foreign.ca, &cas).unwrap())
            .with_client_auth_cert(
                load_certs(&foreign.cert, "cert").unwrap(),
                load_key(&foreign.key).unwrap(),
            )
            .unwrap();
        Arc::new(config)
    }
}

/// Serves `tls_incoming` on node a's certificate; sends the peer names of every connection
/// it yields, then greets the client with "ok".
pub(super) async fn serve(
    pki: &Pki,
    auth: ClientAuth,
) -> (SocketAddr, mpsc::Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(&pki.files("a"), auth).unwrap();
    let mut incoming = tls_incoming(listener, config, "test");
    let (names_tx, names_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
            let mut stream = stream.expect("tls_incoming never yields errors");
            let certs = stream.get_ref().1.peer_certificates().unwrap_or_default();
            names_tx.send(peer_cert_names(certs)).await.unwrap();
            stream.write_all(b"ok").await.unwrap();
        }
    });
    (addr, names_rx)
}

/// Handshakes as a client of node a and reads the greeting. With TLS 1.3 the client's
/// handshake ends before the server has checked the client certificate, so a refusal shows
/// up as an alert on this first read.
pub(super) async fn greeting(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from("a").unwrap();
    let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
    let mut greeting = vec![0; 2];
    tls.read_exact(&mut greeting).await?;
    Ok(greeting)
}

pub(super) fn assert_refused(result: io::Result<Vec<u8>>, who: &str) {
    let err = result.expect_err(who);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{who}: {err}");
}
