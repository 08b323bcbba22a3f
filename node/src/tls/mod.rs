//! Mutual TLS for every tandem listener and dialer (DESIGN.md §8): rustls with ring only.
//!
//! - [`server_config`] builds a listener's configuration; [`ClientAuth`] says who may connect:
//!   anyone (client port, where users log in with passwords), any holder of a cluster certificate
//!   (admin port) or only the configured peer (peer port).
//! - [`tls_incoming`] turns a `TcpListener` into a stream of established TLS connections for
//!   `tonic::transport::Server::serve_with_incoming`, handshaking concurrently and logging every
//!   refused handshake.
//! - [`client_config`], [`connect`] and [`connect_lazy`] dial a tandem listener and return a tonic
//!   `Channel`.
//!
//! Authorization happens in the handshake: a connection a service sees has already presented the
//! right certificate. A service can still read the chain with `tonic::Request::peer_certs()`
//! (tonic fills it for `tokio_rustls::server::TlsStream<TcpStream>`), e.g. to log
//! [`peer_cert_names`]. A node's listeners and dialers take their certificate and CA from
//! [`Credentials`] at each handshake (`server_config_from`, `client_config_from`), so a reload
//! (`tls_credentials.rs`) reaches every new connection and no open one. This module does not
//! create certificates (`certs.rs` does) or check revocation: the pair has its own private CA.

pub mod certs;
pub mod credentials;
pub mod inflight;

use std::error::Error;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

pub use crate::tls::credentials::{CertUse, Credentials};
use crate::tls::credentials::{CurrentCertificate, CurrentClientVerifier, CurrentServerVerifier};
use crate::tls::inflight::InFlight;

/// Both ends speak gRPC, which is HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

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

/// A client that has not finished its handshake by then is dropped, so a slow or silent client
/// cannot hold one of the handshake slots for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many handshakes run at once per listener. At the bound the listener stops
/// accepting; new connections wait in the kernel's listen backlog, which refuses them when full.
/// One remote address holds at most `tls_inflight::PER_ADDRESS_MAX` of them.
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;

/// Established connections waiting for the server to take them. When full, finished handshakes
/// wait (holding their slot), which in turn stops the listener from accepting.
const ESTABLISHED_QUEUE_LEN: usize = 64;

/// After an accept error such as EMFILE, accepting again at once would spin; this pause lets
/// connections close first.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

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

/// Installs ring as the process's rustls crypto provider. Call it first thing in `main`: a
/// library that builds a rustls configuration without naming a provider uses this one. Calling it
/// again does nothing.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

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

/// Which client certificate a listener requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate: the client port, where users log in with passwords.
    None,
    /// The admin port: a certificate from the cluster CA for `admin`, for this node or for its
    /// peer (`tandemctl --config` presents the node's own). Another node's certificate from
    /// the same CA (a CA shared by several pairs) is refused.
    Admin { node: String, peer: String },
    /// A certificate from the cluster CA that is valid for this DNS name: the peer port, where
    /// only the configured peer may connect.
    Named(String),
}

/// Builds a listener's configuration: this node's certificate, the client certificates `auth`
/// requires, ALPN `h2`. Fails, naming the file, if the certificate is not usable with the CA.
pub fn server_config(files: &TlsFiles, auth: ClientAuth) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from(&Credentials::load(files, CertUse::Server)?, auth)
}

/// Like [`server_config`], but every handshake uses the material `credentials` holds at that
/// moment, so a reload reaches new connections. Fails only on a bad peer name.
pub fn server_config_from(
    credentials: &Arc<Credentials>,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let cluster = || Arc::new(CurrentClientVerifier(credentials.clone()));
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Admin { node, peer } => builder.with_client_cert_verifier(Arc::new(
            NamedClientVerifier::admin(cluster(), &node, &peer)?,
        )),
        ClientAuth::Named(name) => {
            builder.with_client_cert_verifier(Arc::new(NamedClientVerifier::new(cluster(), name)?))
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(CurrentCertificate(credentials.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
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

/// Accepts TCP connections on `listener` and yields those whose TLS handshake succeeds, ready
/// for `tonic::transport::Server::serve_with_incoming[_shutdown]`.
///
/// Handshakes run concurrently in their own tasks, at most 256 at once (see
/// `HANDSHAKES_IN_FLIGHT_MAX`) and 32 from one address (a new one ends that address's oldest),
/// each within 5 s. Every refused handshake is logged with `label`
/// and the remote address. The stream never yields an error (the `Result` is what tonic wants):
/// accept errors are logged and retried. Dropping the stream closes the listener. Must be called
/// inside a tokio runtime.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    label: &'static str,
) -> impl Stream<Item = Result<server::TlsStream<TcpStream>, io::Error>> + Send + Unpin + 'static {
    let (established, established_rx) = mpsc::channel(ESTABLISHED_QUEUE_LEN);
    let acceptor = Acceptor {
        listener,
        tls: TlsAcceptor::from(config),
        label,
        handshake_slots: Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX)),
        in_flight: Arc::new(InFlight::default()),
        established,
    };
    tokio::spawn(acceptor.run());
    ReceiverStream::new(established_rx)
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

/// The accept loop behind [`tls_incoming`].
struct Acceptor {
    /// Where connections arrive; closed when the loop ends.
    listener: TcpListener,
    /// Runs the server side of the handshake.
    tls: TlsAcceptor,
    /// Names the listener (peer, admin, client) in logs.
    label: &'static str,
    /// Bounds handshakes in flight; a slot is held until the connection is handed over.
    handshake_slots: Arc<Semaphore>,
    /// Bounds handshakes in flight per remote address (a new one ends the oldest).
    in_flight: Arc<InFlight>,
    /// Hands established connections to the server; closed when the server drops the stream,
    /// which ends the loop.
    established: mpsc::Sender<io::Result<server::TlsStream<TcpStream>>>,
}

impl Acceptor {
    async fn run(self) {
        loop {
            // Take a slot before accepting, so that at the bound connections wait in the backlog
            // rather than in a task.
            let slot = tokio::select! {
                () = self.established.closed() => return,
                slot = self.handshake_slots.clone().acquire_owned() => {
                    slot.expect("the handshake semaphore is never closed")
                }
            };
            let accepted = tokio::select! {
                () = self.established.closed() => return,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, remote)) => self.spawn_handshake(tcp, remote, slot),
                Err(e) => self.recover_from_accept_error(e).await,
            }
        }
    }

    fn spawn_handshake(&self, tcp: TcpStream, remote: SocketAddr, slot: OwnedSemaphorePermit) {
        let tls = self.tls.clone();
        let label = self.label;
        let established = self.established.clone();
        let in_flight = self.in_flight.clone();
        let address = remote.ip();
        let evicted = self.in_flight.spawn(address, move |id| async move {
            let result = handshake(&tls, tcp).await;
            in_flight.done(address, id);
            match result {
                // A send error means the server has stopped; dropping the stream closes it.
                Ok(stream) => drop(established.send(Ok(stream)).await),
                // A connection closed before it sent anything is a port probe (the peer's fast
                // path, a health check), not an attack: keep it out of the warnings.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => tracing::debug!(
                    listener = label,
                    remote = %remote,
                    "connection closed before the TLS handshake"
                ),
                Err(e) => tracing::warn!(
                    listener = label,
                    remote = %remote,
                    error = %e,
                    "TLS handshake refused"
                ),
            }
            drop(slot);
        });
        if evicted {
            tracing::warn!(
                listener = label,
                remote = %remote,
                "{} handshakes in flight from {address}: its oldest was dropped",
                crate::tls::inflight::PER_ADDRESS_MAX
            );
        }
    }

    async fn recover_from_accept_error(&self, e: io::Error) {
        let kind = e.kind();
        if kind == io::ErrorKind::ConnectionAborted || kind == io::ErrorKind::ConnectionReset {
            // That one connection is gone; the next accept is fine.
            tracing::debug!(listener = self.label, error = %e, "connection gone before accept");
            return;
        }
        tracing::warn!(listener = self.label, error = %e, "cannot accept a connection; pausing");
        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}

async fn handshake(tls: &TlsAcceptor, tcp: TcpStream) -> io::Result<server::TlsStream<TcpStream>> {
    // tonic ignores `Server::tcp_nodelay` with `serve_with_incoming`; gRPC messages are small
    // and latency matters for keep-alives.
    tcp.set_nodelay(true)?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
        )),
    }
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

/// Requires a certificate from the cluster CA (checked by rustls's webpki verifier) that is also
/// valid for one DNS name, so that on the peer port only the configured peer gets through.
#[derive(Debug)]
struct NamedClientVerifier {
    /// Checks the chain to the cluster CA, the validity period and the client-auth usage.
    cluster: Arc<dyn ClientCertVerifier>,
    /// The names the client's certificate may carry (one of them).
    names: Vec<ServerName<'static>>,
}

impl NamedClientVerifier {
    fn new(cluster: Arc<dyn ClientCertVerifier>, name: String) -> Result<Self, TlsError> {
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

    /// The admin port's: `admin`, this node or its peer.
    fn admin(
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

pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn dns_name(name: &str) -> Result<DnsName<'static>, TlsError> {
    DnsName::try_from(name.to_string()).map_err(|e| TlsError::InvalidName {
        name: name.to_string(),
        reason: e.to_string(),
    })
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

/// Joins the messages of `err` and its sources, which say what happened below tonic's bare
/// "transport error".
fn error_chain(err: &(dyn Error + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::body::Body;
    use tonic::codegen::http;
    use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
    use tower::Service;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A pair's certificates in a temporary directory: a CA, nodes a and b, and admin.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Self {
            install_crypto_provider();
            let dir = tempfile::tempdir().unwrap();
            certs::init_certs(dir.path(), &["a".to_string(), "b".to_string()]).unwrap();
            Pki { dir }
        }

        fn files(&self, name: &str) -> TlsFiles {
            TlsFiles {
                ca: self.dir.path().join("ca.pem"),
                cert: self.dir.path().join(format!("{name}.pem")),
                key: self.dir.path().join(format!("{name}.key")),
            }
        }

        fn client(&self, name: &str) -> Arc<ClientConfig> {
            client_config(&self.files(name), true).unwrap()
        }

        /// Trusts this CA but presents `name`'s certificate from `other`, which `client_config`
        /// would refuse to build.
        fn client_with_foreign_cert(&self, other: &Pki, name: &str) -> Arc<ClientConfig> {
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
    async fn serve(pki: &Pki, auth: ClientAuth) -> (SocketAddr, mpsc::Receiver<Vec<String>>) {
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
    async fn greeting(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Vec<u8>> {
        let tcp = TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from("a").unwrap();
        let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
        let mut greeting = vec![0; 2];
        tls.read_exact(&mut greeting).await?;
        Ok(greeting)
    }

    fn assert_refused(result: io::Result<Vec<u8>>, who: &str) {
        let err = result.expect_err(who);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{who}: {err}");
    }

    #[tokio::test]
    async fn one_address_holds_a_bounded_number_of_silent_handshakes() {
        let pki = Pki::new();
        let (addr, mut names) = serve(&pki, ClientAuth::None).await;
        // Silent connections: TCP only, never a ClientHello.
        let mut silent = Vec::new();
        for _ in 0..crate::tls::inflight::PER_ADDRESS_MAX {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        // The next connection from the same address ends the oldest silent one; it still gets
        // through itself.
        let anonymous = client_config(&pki.files("b"), false).unwrap();
        assert_eq!(greeting(addr, anonymous).await.unwrap(), b"ok");
        assert!(names.recv().await.unwrap().is_empty());
        let mut byte = [0u8; 1];
        let ended = silent[0].read(&mut byte).await;
        assert!(
            matches!(ended, Ok(0) | Err(_)),
            "the oldest silent connection was closed: {ended:?}"
        );
    }

    #[tokio::test]
    async fn peer_port_accepts_only_the_named_peer() {
        let pki = Pki::new();
        let other_pki = Pki::new();
        let (addr, mut names) = serve(&pki, ClientAuth::Named("b".to_string())).await;

        tracing::info!("--- the configured peer b gets in");
        assert_eq!(greeting(addr, pki.client("b")).await.unwrap(), b"ok");
        assert_eq!(
            names.recv().await.unwrap(),
            ["b", "tandem-node", "localhost"]
        );

        tracing::info!("--- a, admin, b from another CA and a client without certificate do not");
        assert_refused(greeting(addr, pki.client("a")).await, "a");
        assert_refused(greeting(addr, pki.client("admin")).await, "admin");
        let foreign_b = pki.client_with_foreign_cert(&other_pki, "b");
        assert_refused(greeting(addr, foreign_b).await, "b of another CA");
        let anonymous = client_config(&pki.files("b"), false).unwrap();
        assert_refused(greeting(addr, anonymous).await, "no certificate");
        assert!(
            names.try_recv().is_err(),
            "a refused connection was yielded"
        );
    }

    #[tokio::test]
    async fn admin_port_accepts_admin_this_node_and_its_peer_from_the_cluster_ca() {
        let pki = Pki::new();
        let other_pki = Pki::new();
        let admin = ClientAuth::Admin {
            node: "a".into(),
            peer: "b".into(),
        };
        let (addr, mut names) = serve(&pki, admin).await;

        assert_eq!(greeting(addr, pki.client("admin")).await.unwrap(), b"ok");
        assert_eq!(names.recv().await.unwrap(), ["admin"]);
        assert_eq!(greeting(addr, pki.client("b")).await.unwrap(), b"ok");
        assert_eq!(
            names.recv().await.unwrap(),
            ["b", "tandem-node", "localhost"]
        );

        assert_eq!(greeting(addr, pki.client("a")).await.unwrap(), b"ok");
        assert_eq!(
            names.recv().await.unwrap(),
            ["a", "tandem-node", "localhost"]
        );

        // A node of another pair that shares this CA: the right CA, not an admin.
        certs::issue_cert(pki.dir.path(), "c", 30).unwrap();
        assert_refused(greeting(addr, pki.client("c")).await, "another pair's node");
        let foreign_admin = pki.client_with_foreign_cert(&other_pki, "admin");
        assert_refused(greeting(addr, foreign_admin).await, "admin of another CA");
        let anonymous = client_config(&pki.files("admin"), false).unwrap();
        assert_refused(greeting(addr, anonymous).await, "no certificate");
        assert!(
            names.try_recv().is_err(),
            "a refused connection was yielded"
        );
    }

    #[tokio::test]
    async fn client_port_needs_no_client_certificate() {
        let pki = Pki::new();
        let (addr, mut names) = serve(&pki, ClientAuth::None).await;

        let anonymous = client_config(&pki.files("b"), false).unwrap();
        assert_eq!(greeting(addr, anonymous).await.unwrap(), b"ok");
        assert!(names.recv().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn client_refuses_a_server_of_another_cluster() {
        let pki = Pki::new();
        let other_pki = Pki::new();
        let (addr, _names) = serve(&other_pki, ClientAuth::None).await;

        let client = client_config(&pki.files("b"), false).unwrap();
        assert_refused(greeting(addr, client).await, "server of another CA");
    }

    #[test]
    fn peer_name_must_be_a_node_name() {
        let pki = Pki::new();
        for name in ["localhost", "tandem-node", "127.0.0.1", "a b", ""] {
            let auth = ClientAuth::Named(name.to_string());
            let err = server_config(&pki.files("a"), auth).unwrap_err();
            assert!(matches!(err, TlsError::InvalidName { .. }), "{name}: {err}");
        }
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_is_connection_refused() {
        let pki = Pki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);

        let err = connect(&addr, "a", pki.client("b"), TIMEOUT)
            .await
            .unwrap_err();

        assert!(is_connection_refused(&err), "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn connect_checks_the_server_name() {
        let pki = Pki::new();
        let (addr, _names) = serve(&pki, ClientAuth::None).await;

        let err = connect(&addr.to_string(), "b", pki.client("b"), TIMEOUT)
            .await
            .unwrap_err();

        assert!(!is_connection_refused(&err), "{err}");
        assert!(err.to_string().contains("not valid for name"), "{err}");
    }

    /// tonic's `Request::peer_certs()` looks for exactly this connect info.
    fn assert_peer_certs_reach_requests<T>()
    where
        T: Connected<ConnectInfo = TlsConnectInfo<TcpConnectInfo>>,
    {
    }

    #[tokio::test]
    async fn tonic_serves_tls_incoming_and_requests_see_the_peer() {
        assert_peer_certs_reach_requests::<server::TlsStream<TcpStream>>();
        let pki = Pki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = server_config(&pki.files("a"), ClientAuth::Named("b".to_string())).unwrap();
        let incoming = tls_incoming(listener, config, "test");
        // Answers every call with the caller's certificate names in a header.
        let service = tower::service_fn(|request: http::Request<Body>| async move {
            let certs = tonic::Request::from_http(request)
                .peer_certs()
                .unwrap_or_default();
            let response = http::Response::builder()
                .header("grpc-status", "0")
                .header("x-peer", peer_cert_names(&certs).join(","))
                .body(Body::empty())
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder().serve_with_incoming_shutdown(
                service,
                incoming,
                async {
                    let _ = stopped.await;
                },
            ),
        );

        let mut channel = connect(&addr, "a", pki.client("b"), TIMEOUT).await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri("http://tandem/test.Test/Peer")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .unwrap();
        let response = channel.call(request).await.unwrap();
        assert_eq!(response.headers()["x-peer"], "b,tandem-node,localhost");

        drop(channel);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    /// With TLS 1.3 the client's handshake is over before the server checks the client
    /// certificate, so `connect` succeeds and the refusal arrives with the first call.
    #[tokio::test]
    async fn a_refused_client_certificate_fails_at_the_latest_on_the_first_call() {
        let pki = Pki::new();
        let (addr, _names) = serve(&pki, ClientAuth::Named("b".to_string())).await;

        let outcome = match connect(&addr.to_string(), "a", pki.client("a"), TIMEOUT).await {
            Err(err) => err.to_string(),
            Ok(mut channel) => {
                let request = http::Request::builder()
                    .uri("http://tandem/test.Test/Peer")
                    .body(Body::empty())
                    .unwrap();
                let ready = std::future::poll_fn(|cx| channel.poll_ready(cx)).await;
                let err = match ready {
                    Err(err) => err,
                    Ok(()) => channel.call(request).await.unwrap_err(),
                };
                error_chain(&err)
            }
        };

        assert!(outcome.contains("BadCertificate"), "{outcome}");
    }

    #[tokio::test]
    async fn connect_lazy_dials_on_first_use() {
        let pki = Pki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);

        let mut channel = connect_lazy(&addr, "a", pki.client("b"), TIMEOUT).unwrap();
        let request = http::Request::builder()
            .uri("http://tandem/test.Test/Peer")
            .body(Body::empty())
            .unwrap();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .unwrap();
        let err = channel.call(request).await.unwrap_err();
        assert!(is_connection_refused(&err), "{err}");
    }

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
}
