//! The peer link: keep-alive streams in both directions, the fast-path dials and reachability.
//!
//! Each node dials the other (once per configured address) and streams its own messages on the
//! call it dialed; it serves the peer's call on its peer port. Each dialer owns one HTTP/2
//! connection used for nothing else, so bulk transfers never delay a heartbeat. This module moves
//! bytes and reports what it saw to the driver; it decides nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_proto::peer as pb;
use tandem_proto::peer::peer_client::PeerClient;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::Config;
use crate::driver::handle::{DriverHandle, Input};
use crate::role::DialOutcome;

/// Keep-alive streams served at once; more are refused (each path of each peer needs one).
const INBOUND_STREAMS_MAX: usize = 8;
/// Messages queued for one dialed stream; when full, the newest heartbeat is dropped (the next
/// one follows within an interval).
const STREAM_QUEUE_BOUND: usize = 16;
/// Reconnect back-off: first delay and cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Fast path: delay between dial rounds, per-dial timeout and a bound on rounds per stream end.
const FAST_PATH_ROUND: Duration = Duration::from_millis(35);
const FAST_PATH_DIAL_TIMEOUT: Duration = Duration::from_millis(250);
const FAST_PATH_ROUNDS_MAX: u32 = 60;

/// Serves the peer's keep-alive stream on the peer port.
pub struct PeerService {
    pub handle: DriverHandle,
    /// Bounds concurrent inbound streams.
    pub streams: Arc<Semaphore>,
    /// The replicated database: the passive's end of `Replicate`, and `RowHashes`.
    pub replication: crate::repl::Replication,
}

impl PeerService {
    pub fn new(handle: DriverHandle, replication: crate::repl::Replication) -> PeerService {
        PeerService {
            handle,
            streams: Arc::new(Semaphore::new(INBOUND_STREAMS_MAX)),
            replication,
        }
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    type ReplicateStream = crate::repl::receive::ReplyStream;

    async fn replicate(
        &self,
        request: Request<Streaming<pb::ShipMessage>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        crate::repl::receive::replicate(self.replication.clone(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn row_hashes(
        &self,
        _: Request<pb::RowHashesRequest>,
    ) -> Result<Response<pb::RowHashesReply>, Status> {
        let hashes = self
            .replication
            .store()
            .row_hashes()
            .await
            .map_err(|error| Status::unavailable(format!("data.db: {error}")))?;
        Ok(Response::new(pb::RowHashesReply {
            last_index: hashes.last_idx,
            tables: hashes
                .tables
                .into_iter()
                .map(|table| pb::TableRowHash {
                    table: table.table,
                    rows: table.rows,
                    hash: table.hash,
                })
                .collect(),
        }))
    }

    async fn keep_alive(
        &self,
        request: Request<Streaming<pb::PeerMessage>>,
    ) -> Result<Response<pb::KeepAliveClosed>, Status> {
        let Ok(_permit) = self.streams.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted("too many keep-alive streams"));
        };
        let mut stream = request.into_inner();
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    if self
                        .handle
                        .inputs
                        .send(Input::Peer(Box::new(message)))
                        .await
                        .is_err()
                    {
                        return Err(Status::unavailable("node is stopping"));
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "inbound keep-alive stream broke");
                    break;
                }
            }
        }
        // The peer's stream ended: EOF or RST. The driver decides whether to run the fast path.
        let _ = self.handle.inputs.send(Input::PeerStreamEnded).await;
        Ok(Response::new(pb::KeepAliveClosed {}))
    }
}

/// Starts one dialer per peer address (the main one and `extra_addresses`).
pub fn spawn_dialers(config: &Config, tls: Arc<rustls::ClientConfig>, handle: &DriverHandle) {
    let addresses =
        std::iter::once(config.peer.address.clone()).chain(config.peer.extra_addresses.clone());
    for address in addresses {
        let dialer = Dialer {
            address,
            peer_name: config.peer.name.clone(),
            tls: tls.clone(),
            connect_timeout: config.timers.keepalive_interval * 5,
            handle: handle.clone(),
        };
        tokio::spawn(dialer.run());
    }
}

struct Dialer {
    address: String,
    /// The name the peer's certificate must carry.
    peer_name: String,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    handle: DriverHandle,
}

impl Dialer {
    async fn run(self) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match crate::tls::connect(
                &self.address,
                &self.peer_name,
                self.tls.clone(),
                self.connect_timeout,
            )
            .await
            {
                Ok(channel) => {
                    backoff = BACKOFF_FIRST;
                    // Subscribe only now: messages queued before the connection are stale (the
                    // next heartbeat follows within an interval; hand-overs are resent).
                    let mut outbound = self.handle.outbound.subscribe();
                    self.stream_on(channel, &mut outbound).await;
                    if self
                        .handle
                        .inputs
                        .send(Input::PeerStreamEnded)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => tracing::debug!(address = %self.address, %error, "peer dial failed"),
            }
            if self.handle.inputs.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Streams outbound messages on one keep-alive call until it ends.
    async fn stream_on(
        &self,
        channel: tonic::transport::Channel,
        outbound: &mut broadcast::Receiver<pb::PeerMessage>,
    ) {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE_BOUND);
        let mut client = PeerClient::new(channel);
        let call = client.keep_alive(ReceiverStream::new(receiver));
        tokio::pin!(call);
        loop {
            tokio::select! {
                result = &mut call => {
                    if let Err(status) = result {
                        tracing::debug!(address = %self.address, %status, "keep-alive call ended");
                    }
                    return;
                }
                message = outbound.recv() => match message {
                    Ok(message) => {
                        if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send(message) {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Dials the peer port and the client port in rounds while the driver wants the fast path,
/// reporting each round tagged with the stream end it belongs to. Runs as one task; it only
/// reads `fast_path_wanted` (the driver clears it) and dials at most `FAST_PATH_ROUNDS_MAX`
/// rounds per stream end.
pub fn spawn_fast_path_prober(config: &Config, handle: DriverHandle) {
    let peer_address = config.peer.address.clone();
    let client_address = config.peer.client_address.clone();
    tokio::spawn(async move {
        let mut rounds_left = 0u32;
        let mut last_generation = None;
        let mut ticker = tokio::time::interval(FAST_PATH_ROUND);
        loop {
            ticker.tick().await;
            if !handle.fast_path_wanted.load(Ordering::SeqCst) {
                continue;
            }
            let generation = handle.fast_path_generation.load(Ordering::SeqCst);
            if last_generation != Some(generation) {
                last_generation = Some(generation);
                rounds_left = FAST_PATH_ROUNDS_MAX;
            }
            if rounds_left == 0 {
                continue;
            }
            rounds_left -= 1;
            let (peer_port, client_port) = tokio::join!(dial(&peer_address), dial(&client_address));
            let input = Input::FastPathDial {
                peer_port,
                client_port,
                generation,
            };
            if handle.inputs.send(input).await.is_err() {
                return;
            }
        }
    });
}

async fn dial(address: &str) -> DialOutcome {
    match tokio::time::timeout(FAST_PATH_DIAL_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(_)) => DialOutcome::Connected,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            DialOutcome::Refused
        }
        _ => DialOutcome::Failed,
    }
}

/// Probes the reachability targets: at least one must answer. With none configured, always true.
pub async fn probe_reachability(targets: &[String]) -> bool {
    if targets.is_empty() {
        return true;
    }
    let probes = targets.iter().map(|target| dial(target));
    futures::future::join_all(probes)
        .await
        .into_iter()
        .any(|outcome| outcome == DialOutcome::Connected)
}

/// Re-probes the reachability targets every `every` and reports each result to the driver.
pub fn spawn_reachability_prober(targets: Vec<String>, every: Duration, handle: DriverHandle) {
    if targets.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let reachable = probe_reachability(&targets).await;
            if handle
                .inputs
                .send(Input::Reachability(reachable))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}
