//! The client side: [`client_config`] / [`client_config_from`] build a dialer's configuration
//! (trust only the cluster CA, present this end's certificate where a port requires one),
//! [`connect`] and [`connect_lazy`] dial a tandem listener and return a tonic `Channel` over one
//! HTTP/2 connection, and [`presented_certificates`] handshakes only, to see which certificate a
//! listener serves.
//!
//! IO: TCP connections and TLS handshakes to other nodes; reads the `[tls]` files. Not here:
//! listeners (`acceptor.rs`), choosing whom to dial or retrying (the callers do), gRPC calls.

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client};
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::credentials::{CertUse, Credentials, CurrentCertificate, CurrentServerVerifier};
use super::error::{TlsError, error_chain};
use super::files::{TlsFiles, load_certs, root_store};
use super::names::dns_name;
use super::provider::{ALPN_H2, ring_provider};

/// The URI tonic's channel puts in requests. It is never resolved: the dialer decides where to go.
const CHANNEL_URI: &str = "http://tandem";

/// HTTP/2 pings on every dialled connection: a connection into a black hole (no RST ever comes)
/// is closed after `HTTP2_KEEPALIVE_TIMEOUT` without an answer, so the dialer reconnects.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

fn endpoint() -> Endpoint {
    Endpoint::from_static(CHANNEL_URI)
        .http2_keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
}

/// Builds a dialer's configuration: trusts only the cluster CA, ALPN `h2`, and presents this
/// end's certificate when `with_client_cert` (peer and admin ports).
pub fn client_config(
    files: &TlsFiles,
    with_client_cert: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    if with_client_cert {
        return Ok(client_config_from(&Credentials::load(
            files,
            CertUse::Client,
        )?));
    }
    let cas = load_certs(&files.ca, "CA certificate")?;
    let roots = root_store(&files.ca, &cas)?;
    let mut config = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A dialer's configuration that presents the certificate `credentials` holds at each
/// handshake and trusts the CA it holds then, so a reload reaches new connections.
pub fn client_config_from(credentials: &Arc<Credentials>) -> Arc<ClientConfig> {
    // "dangerous" only in name: the verifier is rustls's webpki verifier for the current CA.
    let mut config = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CurrentServerVerifier(credentials.clone())))
        .with_client_cert_resolver(Arc::new(CurrentCertificate(credentials.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Arc::new(config)
}

/// Dials `addr` (host:port) with TLS, checking that the server's certificate is valid for
/// `server_name`, and returns a channel over that one HTTP/2 connection.
///
/// Fails if the TCP connection or the TLS handshake does not succeed within `connect_timeout`.
/// With TLS 1.3 the server checks our certificate after our side of the handshake is over, so a
/// server that refuses it fails the first call rather than this one. If the connection later
/// breaks, the channel's next call dials again.
pub async fn connect(
    addr: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    let dialer = Dialer::new(addr, server_name, config, connect_timeout)?;
    endpoint()
        .connect_with_connector(tower::service_fn(move |_: Uri| dialer.clone().dial()))
        .await
        .map_err(|source| TlsError::Connect {
            addr: addr.to_string(),
            reason: source
                .source()
                .map_or_else(|| source.to_string(), error_chain),
            source,
        })
}

/// Like [`connect`], but dials only when the channel is first used, and again whenever the
/// connection has broken. Fails only if `server_name` is not a DNS name.
pub fn connect_lazy(
    addr: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    let dialer = Dialer::new(addr, server_name, config, connect_timeout)?;
    let connector = tower::service_fn(move |_: Uri| dialer.clone().dial());
    Ok(endpoint().connect_with_connector_lazy(connector))
}

/// Handshakes with the TLS listener at `addr` (checking its certificate for `server_name`) and
/// returns the chain it presents, end entity first: which certificate a node serves, e.g. after
/// a reload. The connection is closed right after the handshake; no gRPC is spoken.
pub async fn presented_certificates(
    addr: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let dialer = Dialer::new(addr, server_name, config, connect_timeout)?;
    let handshake_error = |source| TlsError::Handshake {
        addr: addr.to_string(),
        source,
    };
    let stream = dialer.dial().await.map_err(handshake_error)?.into_inner();
    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
    Ok(chain.iter().map(|cert| cert.clone().into_owned()).collect())
}

/// Opens the single connection behind a channel; cloned for every (re)connection.
#[derive(Clone)]
struct Dialer {
    /// host:port, resolved on every dial so a changed DNS entry is followed.
    addr: Arc<str>,
    /// The name the server's certificate must be valid for.
    server_name: ServerName<'static>,
    /// Runs the client side of the handshake.
    tls: TlsConnector,
    /// Bounds TCP connect plus TLS handshake.
    connect_timeout: Duration,
}

impl Dialer {
    fn new(
        addr: &str,
        server_name: &str,
        config: Arc<ClientConfig>,
        connect_timeout: Duration,
    ) -> Result<Self, TlsError> {
        Ok(Dialer {
            addr: addr.into(),
            server_name: ServerName::DnsName(dns_name(server_name)?),
            tls: TlsConnector::from(config),
            connect_timeout,
        })
    }

    /// Keeps the `io::Error` (and its kind) so callers can tell a refused connection apart.
    async fn dial(self) -> io::Result<TokioIo<client::TlsStream<TcpStream>>> {
        let dial = async {
            let tcp = TcpStream::connect(&*self.addr).await?;
            tcp.set_nodelay(true)?;
            self.tls.connect(self.server_name.clone(), tcp).await
        };
        match tokio::time::timeout(self.connect_timeout, dial).await {
            Ok(result) => result.map(TokioIo::new),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS connection within {:?}", self.connect_timeout),
            )),
        }
    }
}
