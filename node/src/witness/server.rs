//! `tandemd witness`: the witness process around the `Grantor`. It serves the `Witness` gRPC
//! service on `[listen] witness` with mTLS (only the nodes of the pairs in `witness.toml`,
//! `admin` and the witness itself get through the handshake; a refused one is logged), keeps one
//! `Vote` stream per node, writes every grant that changes a pair's holder to `witness.db`
//! (fsync'd) before it answers, and proves a holder's process gone when its stream ends by
//! dialling its peer and client ports.
//!
//! Requests are decided one at a time under one lock, which also covers the write to
//! `witness.db`: no other request is decided on a record that is not yet on disk.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tandem_proto::witness as pb;
use tandem_proto::witness::witness_server::{Witness, WitnessServer};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::WitnessConfig;
use crate::tls::{self, ClientAuth};

use super::grantor::{Answer, Disk, Grantor, Request as GrantRequest, WitnessTerm};
use super::store::{WitnessStore, WitnessStoreError};

/// A node must say who it is this soon after opening its stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Each dial of the prover.
const PROBE_DIAL_TIMEOUT: Duration = Duration::from_millis(500);
/// Replies waiting for a slow node; past this its stream is ended.
const REPLY_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error(transparent)]
    Store(#[from] WitnessStoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on [listen] witness {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the witness's server stopped: {0}")]
    Serve(String),
}

/// The shared state of the service.
struct Shared {
    name: String,
    lease_ms: u64,
    grantor: Mutex<Grantor>,
    store: WitnessStore,
    started: Instant,
    /// Set when a record could not be written: the grantor's memory is then ahead of the disk,
    /// and a restart (which reads the disk) is the only way back to granting.
    poisoned: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The `Witness` service.
#[derive(Clone)]
pub struct WitnessService {
    shared: Arc<Shared>,
}

impl WitnessService {
    /// Opens `witness.db` and resumes from it (every recorded holder counts as just renewed).
    pub async fn open(config: &WitnessConfig) -> Result<WitnessService, WitnessError> {
        let store = WitnessStore::open(&config.data_dir).await?;
        let records = store.load().await?;
        let pairs: Vec<(String, Vec<String>)> = config
            .pairs
            .iter()
            .map(|pair| (pair.cluster.clone(), pair.nodes.clone()))
            .collect();
        let lease_ms = config.lease.as_millis() as u64;
        let grantor = Grantor::new(lease_ms, config.max_drift, &pairs, records, 0);
        Ok(WitnessService {
            shared: Arc::new(Shared {
                name: config.name.clone(),
                lease_ms,
                grantor: Mutex::new(grantor),
                store,
                started: Instant::now(),
                poisoned: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

/// Who opened a stream, once its Hello was accepted.
#[derive(Clone, Debug)]
struct Voter {
    cluster: String,
    node: String,
    host: Option<IpAddr>,
    peer_port: u16,
    client_port: u16,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<pb::VoteReply, Status>> + Send>>;

#[tonic::async_trait]
impl Witness for WitnessService {
    type VoteStream = ReplyStream;

    async fn vote(
        &self,
        request: Request<Streaming<pb::VoteRequest>>,
    ) -> Result<Response<Self::VoteStream>, Status> {
        let names = request
            .peer_certs()
            .map(|certs| tls::peer_cert_names(&certs))
            .unwrap_or_default();
        let host = request.remote_addr().map(|address| address.ip());
        let mut requests = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, requests.next()).await {
            Ok(Some(Ok(pb::VoteRequest {
                body: Some(pb::vote_request::Body::Hello(hello)),
                ..
            }))) => hello,
            Ok(Some(Err(status))) => return Err(status),
            Ok(_) => return Err(Status::invalid_argument("a Vote stream starts with Hello")),
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "no Hello within 5 s of opening the Vote stream",
                ));
            }
        };
        let voter = self.admit(&hello, &names, host).await?;
        tracing::info!(cluster = %voter.cluster, node = %voter.node, "node connected");
        let (replies, replies_rx) = mpsc::channel(REPLY_QUEUE);
        let service = self.clone();
        tokio::spawn(async move {
            service.serve_stream(&voter, requests, replies).await;
            service.stream_ended(voter).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(replies_rx))))
    }

    async fn status(
        &self,
        _request: Request<pb::WitnessStatusRequest>,
    ) -> Result<Response<pb::WitnessStatusReply>, Status> {
        let now_ms = self.shared.now_ms();
        let views = self.shared.grantor.lock().await.view(now_ms);
        let pairs = views
            .into_iter()
            .map(|view| pb::PairStatus {
                cluster: view.cluster,
                nodes: view.nodes,
                active: view
                    .holder
                    .as_ref()
                    .map(|term| term.node.clone())
                    .unwrap_or_default(),
                term: view.holder.map(term_to_wire),
                lease_left_ms: view.lease_left_ms,
                connected: view.connected,
                outdated: view.outdated,
            })
            .collect();
        Ok(Response::new(pb::WitnessStatusReply {
            pairs,
            witness: self.shared.name.clone(),
        }))
    }
}

impl WitnessService {
    /// Checks a Hello against the certificate that opened the stream and the pairs served.
    async fn admit(
        &self,
        hello: &pb::Hello,
        cert_names: &[String],
        host: Option<IpAddr>,
    ) -> Result<Voter, Status> {
        let refuse = |message: String| {
            tracing::warn!(cluster = %hello.cluster, node = %hello.node, "refused: {message}");
            Status::permission_denied(message)
        };
        if !cert_names.iter().any(|name| name == &hello.node) {
            return Err(refuse(format!(
                "the certificate presented ({}) is not {:?}'s",
                cert_names.join(", "),
                hello.node
            )));
        }
        if !self
            .shared
            .grantor
            .lock()
            .await
            .serves(&hello.cluster, &hello.node)
        {
            return Err(refuse(format!(
                "this witness serves no node {:?} in a pair {:?}",
                hello.node, hello.cluster
            )));
        }
        if hello.lease_ms != self.shared.lease_ms {
            return Err(refuse(format!(
                "the node's [witness] lease is {} ms, this witness's lease is {} ms: set both \
                 to the same value",
                hello.lease_ms, self.shared.lease_ms
            )));
        }
        let port = |value: u32, what: &str| {
            u16::try_from(value)
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| Status::invalid_argument(format!("Hello: {what} {value}")))
        };
        let voter = Voter {
            cluster: hello.cluster.clone(),
            node: hello.node.clone(),
            host,
            peer_port: port(hello.peer_port, "peer_port")?,
            client_port: port(hello.client_port, "client_port")?,
        };
        self.shared
            .grantor
            .lock()
            .await
            .connected(&voter.cluster, &voter.node);
        Ok(voter)
    }

    /// Answers the stream's requests in order until it ends.
    async fn serve_stream(
        &self,
        voter: &Voter,
        mut requests: Streaming<pb::VoteRequest>,
        replies: mpsc::Sender<Result<pb::VoteReply, Status>>,
    ) {
        while let Some(Ok(request)) = requests.next().await {
            let seq = request.seq;
            let reply = match request.body.map(request_from_wire) {
                Some(Ok(grant_request)) => self.decide(voter, grant_request).await,
                Some(Err(message)) => Err(Status::invalid_argument(message)),
                None => Err(Status::invalid_argument("a VoteRequest without a body")),
            };
            let reply = reply.map(|body| pb::VoteReply {
                seq,
                body: Some(body),
            });
            let fatal = reply.is_err();
            if replies.try_send(reply).is_err() || fatal {
                return;
            }
        }
    }

    /// Decides one request, with its record on disk before the answer leaves.
    async fn decide(
        &self,
        voter: &Voter,
        request: GrantRequest,
    ) -> Result<pb::vote_reply::Body, Status> {
        use std::sync::atomic::Ordering;
        let mut grantor = self.shared.grantor.lock().await;
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the witness could not record a vote and refuses every request until it is \
                 restarted",
            ));
        }
        let now_ms = self.shared.now_ms();
        let outcome = grantor.request(&voter.cluster, &voter.node, request, now_ms);
        if let Some(record) = &outcome.persist
            && let Err(error) = self.shared.store.save(record).await
        {
            tracing::error!(cluster = %voter.cluster,
                "cannot record a vote, refusing every request until restarted: {error}");
            self.shared.poisoned.store(true, Ordering::SeqCst);
            return Err(Status::unavailable(format!(
                "the witness cannot record the vote ({error}); it refuses until restarted"
            )));
        }
        drop(grantor);
        Ok(match outcome.answer {
            Answer::Granted { term, lease_ms } => {
                if outcome.persist.is_some() {
                    tracing::info!(cluster = %voter.cluster, node = %term.node, epoch = term.epoch, "vote granted");
                }
                pb::vote_reply::Body::Granted(pb::Granted {
                    term: Some(term_to_wire(term)),
                    lease_ms,
                })
            }
            Answer::Refused {
                reason,
                holder,
                holder_lease_left_ms,
                superseded,
            } => {
                tracing::info!(cluster = %voter.cluster, node = %voter.node, "vote refused: {reason}");
                pb::vote_reply::Body::Refused(pb::Refused {
                    reason,
                    holder: holder.map(term_to_wire),
                    holder_lease_left_ms,
                    superseded,
                })
            }
        })
    }

    /// A node's stream ended; if it held its pair's term, find out whether its process is gone.
    async fn stream_ended(&self, voter: Voter) {
        tracing::info!(cluster = %voter.cluster, node = %voter.node, "node's stream ended");
        let held = self
            .shared
            .grantor
            .lock()
            .await
            .disconnected(&voter.cluster, &voter.node);
        let Some(host) = voter.host.filter(|_| held) else {
            return;
        };
        let peer = SocketAddr::new(host, voter.peer_port);
        let client = SocketAddr::new(host, voter.client_port);
        let (peer_refused, client_refused) = tokio::join!(refused(peer), refused(client));
        if peer_refused && client_refused {
            tracing::info!(cluster = %voter.cluster, node = %voter.node,
                "both of the holder's ports refuse: its process is gone");
            self.shared
                .grantor
                .lock()
                .await
                .holder_gone(&voter.cluster, &voter.node);
        } else {
            tracing::info!(cluster = %voter.cluster, node = %voter.node,
                "the holder's ports do not both refuse: its process may be alive, its lease runs on");
        }
    }
}

/// Whether a TCP dial to `address` is refused (nothing listens there), as opposed to answered
/// or unanswered.
async fn refused(address: SocketAddr) -> bool {
    match tokio::time::timeout(PROBE_DIAL_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

fn term_to_wire(term: WitnessTerm) -> pb::Term {
    pb::Term {
        epoch: term.epoch,
        node: term.node,
        priority: term.priority,
    }
}

fn term_from_wire(term: Option<pb::Term>) -> Result<WitnessTerm, String> {
    let term = term.ok_or("Renew without a term")?;
    if term.node.is_empty() {
        return Err("a term without a node".into());
    }
    Ok(WitnessTerm {
        epoch: term.epoch,
        node: term.node,
        priority: term.priority,
    })
}

fn disk_from_wire(disk: i32) -> Result<Disk, String> {
    match pb::DiskState::try_from(disk) {
        Ok(pb::DiskState::Consistent) => Ok(Disk::Consistent),
        Ok(pb::DiskState::Outdated) => Ok(Disk::Outdated),
        Ok(pb::DiskState::Inconsistent) => Ok(Disk::Inconsistent),
        _ => Err(format!("unknown disk state {disk}")),
    }
}

fn request_from_wire(body: pb::vote_request::Body) -> Result<GrantRequest, String> {
    use pb::vote_request::Body;
    match body {
        Body::Hello(_) => Err("Hello sent twice on one stream".into()),
        Body::Renew(renew) => Ok(GrantRequest::Renew {
            term: term_from_wire(renew.term)?,
            peer_outdated: renew.peer_outdated,
            disk: disk_from_wire(renew.disk)?,
        }),
        Body::Promote(promote) => Ok(GrantRequest::Promote {
            epoch: promote.epoch,
            priority: promote.priority,
            disk: disk_from_wire(promote.disk)?,
            max_epoch_seen: promote.max_epoch_seen,
            fast_path: promote.fast_path,
            force: promote.force,
        }),
    }
}

/// Runs the witness until SIGTERM or SIGINT.
pub async fn run(config: WitnessConfig) -> Result<(), WitnessError> {
    let service = WitnessService::open(&config).await?;
    let mut names: Vec<String> = config
        .pairs
        .iter()
        .flat_map(|pair| pair.nodes.iter().cloned())
        .collect();
    names.push(crate::tls::certs::ADMIN_NAME.to_string());
    names.push(config.name.clone());
    let server_tls = tls::server_config(&config.tls, ClientAuth::AnyOf(names))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| WitnessError::Bind {
            address: config.listen,
            source,
        })?;
    tracing::info!(address = %config.listen, pairs = config.pairs.len(), "witness listening");
    let store = service.shared.store.clone();
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(2)))
        .add_service(WitnessServer::new(service))
        .serve_with_incoming_shutdown(
            tls::tls_incoming(listener, server_tls, "witness"),
            stop_signal(),
        )
        .await;
    store.close().await;
    result.map_err(|error| WitnessError::Serve(error.to_string()))
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers");
            std::future::pending::<()>().await;
        }
    }
    tracing::info!("stopping");
}
