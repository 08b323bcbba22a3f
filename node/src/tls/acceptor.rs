//! The server side of every tandem listener: [`server_config`] / [`server_config_from`] build a
//! listener's configuration, [`ClientAuth`] says which client certificate it requires, and
//! [`tls_incoming`] turns a `TcpListener` into a stream of established TLS connections for tonic,
//! handshaking concurrently within bounds (256 per listener, `inflight.rs` per address) and
//! logging every refused handshake.
//!
//! IO: accepts TCP connections and runs TLS handshakes on them; reads the `[tls]` files only
//! through `credentials.rs`. Not here: dialing (`dialer.rs`), the name checks of the peer and
//! admin ports (`verifiers.rs`), gRPC services (they get connections already authorized).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::{TlsAcceptor, server};
use tokio_stream::wrappers::ReceiverStream;

use super::credentials::{CertUse, Credentials, CurrentCertificate, CurrentClientVerifier};
use super::error::TlsError;
use super::files::TlsFiles;
use super::inflight::InFlight;
use super::provider::{ALPN_H2, ring_provider};
use super::verifiers::NamedClientVerifier;

/// A client that has not finished its handshake by then is dropped, so a slow or silent client
/// cannot hold one of the handshake slots for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many handshakes run at once per listener. At the bound the listener stops
/// accepting; new connections wait in the kernel's listen backlog, which refuses them when full.
/// One remote address holds at most `inflight::PER_ADDRESS_MAX` of them.
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;

/// Established connections waiting for the server to take them. When full, finished handshakes
/// wait (holding their slot), which in turn stops the listener from accepting.
const ESTABLISHED_QUEUE_LEN: usize = 64;

/// After an accept error such as EMFILE, accepting again at once would spin; this pause lets
/// connections close first.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

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
    /// A certificate from the cluster CA valid for one of these names: the witness's port,
    /// where the nodes of the pairs it serves, `admin` and the witness itself may connect.
    AnyOf(Vec<String>),
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
        ClientAuth::AnyOf(names) => builder
            .with_client_cert_verifier(Arc::new(NamedClientVerifier::any_of(cluster(), &names)?)),
    };
    let mut config = builder.with_cert_resolver(Arc::new(CurrentCertificate(credentials.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
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
