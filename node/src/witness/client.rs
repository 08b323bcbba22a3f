//! A node's side of the witness (DESIGN.md §12): one task that keeps a `Vote` stream open to
//! `[witness] address` (or a connection to the etcd cluster of `[witness] etcd`, `etcd`), renews the term the driver hands it (every quarter lease while there is
//! one), asks for a promotion when the driver wants one, and reports every answer with the
//! instant its request was sent: a vote counts from the send on the holder's clock, so it ends
//! before the grantor's side of it.
//!
//! It decides nothing: the driver reads the reports (`WitnessReport`) and keeps the leases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_proto::witness as pb;
use tandem_proto::witness::witness_client::WitnessClient as GrpcClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

#[cfg(feature = "etcd")]
use super::etcd::EtcdSession;
use super::grantor::{Answer, Disk, Request, WitnessTerm};

/// Why a build without the `etcd` feature cannot use `[witness] etcd` (config refuses it first).
pub const NO_ETCD: &str = "this tandemd was built without the etcd witness backend (cargo feature \
                           `etcd`); build it with default features, or use `tandemd witness`";

/// A redial after a failed dial or a lost stream waits this long.
const REDIAL_PAUSE: Duration = Duration::from_millis(500);

/// What the task reports to the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum WitnessReport {
    /// The stream is open (`None`) or lost, and why.
    Link(Option<String>),
    /// The answer to a renewal sent at `sent_at`.
    Renewed {
        sent_at: Instant,
        /// The renewal told the witness the peer is outdated.
        peer_outdated: bool,
        answer: Answer,
    },
    /// The answer to a promotion request sent at `sent_at`.
    Promoted { sent_at: Instant, answer: Answer },
    /// The driver's own reminder: the holder's lease it was refused for has run out, ask again.
    RetryPromotion,
}

/// The term to renew, with what the witness checks of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RenewTerm {
    pub term: WitnessTerm,
    pub peer_outdated: bool,
    pub disk: Disk,
}

/// A promotion request.
#[derive(Clone, Debug, PartialEq)]
pub struct PromoteRequest {
    pub epoch: u64,
    pub priority: u32,
    pub disk: Disk,
    pub max_epoch_seen: u64,
    pub fast_path: bool,
    pub force: bool,
    /// When the driver asked: a request that waited a lease for the link is dropped, since the
    /// takeover it was for has been given up by then.
    pub asked_at: Instant,
}

/// Where the etcd backend connects, and as whom.
#[derive(Clone)]
pub struct EtcdTarget {
    pub settings: crate::config::EtcdSettings,
    /// PEM files of the node: the cluster CA (which must have issued the members'
    /// certificates), the node's certificate and key (which the members must trust).
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cluster: String,
    pub node: String,
    /// Both nodes of the pair.
    pub nodes: Vec<String>,
    pub lease: Duration,
}

/// Where the task dials, and as whom.
#[derive(Clone)]
pub struct WitnessTarget {
    /// The etcd backend instead of `tandemd witness` at `address` (or why it cannot be used).
    pub etcd: Option<Result<EtcdTarget, String>>,
    pub address: String,
    pub server_name: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub cluster: String,
    pub node: String,
    pub peer_port: u16,
    pub client_port: u16,
    pub lease: Duration,
}

/// The driver's handle on the task.
#[derive(Clone)]
pub struct WitnessClient {
    renew: watch::Sender<Option<RenewTerm>>,
    promote: mpsc::Sender<PromoteRequest>,
}

impl WitnessClient {
    /// Starts the task; `report` gets every report (it must not block).
    pub fn start(
        target: WitnessTarget,
        report: Arc<dyn Fn(WitnessReport) + Send + Sync>,
    ) -> WitnessClient {
        let (renew, renew_rx) = watch::channel(None);
        let (promote, promote_rx) = mpsc::channel(4);
        tokio::spawn(run(target, renew_rx, promote_rx, report));
        WitnessClient { renew, promote }
    }

    /// The term to keep renewing, or `None` to stop renewing (this node is not active).
    pub fn set_renewal(&self, term: Option<RenewTerm>) {
        self.renew.send_if_modified(|current| {
            if *current == term {
                return false;
            }
            *current = term;
            true
        });
    }

    /// Asks for a promotion; the answer comes as `WitnessReport::Promoted`.
    pub fn promote(&self, request: PromoteRequest) {
        if self.promote.try_send(request).is_err() {
            tracing::warn!("a promotion request to the witness is already waiting");
        }
    }
}

async fn run(
    target: WitnessTarget,
    mut renew: watch::Receiver<Option<RenewTerm>>,
    mut promote: mpsc::Receiver<PromoteRequest>,
    report: Arc<dyn Fn(WitnessReport) + Send + Sync>,
) {
    let mut reported_down: Option<String> = None;
    loop {
        if renew.has_changed().is_err() {
            return;
        }
        let mut link = match open(&target).await {
            Ok(link) => link,
            Err(why) => {
                link_down(&target, why, &mut reported_down, &report);
                tokio::time::sleep(REDIAL_PAUSE).await;
                continue;
            }
        };
        reported_down = None;
        tracing::info!(address = %target.address, "witness link up");
        report(WitnessReport::Link(None));
        let why = link.serve(&target, &mut renew, &mut promote, &report).await;
        link_down(&target, why, &mut reported_down, &report);
        tokio::time::sleep(REDIAL_PAUSE).await;
    }
}

/// Reports the link down, once per reason.
fn link_down(
    target: &WitnessTarget,
    why: String,
    reported: &mut Option<String>,
    report: &Arc<dyn Fn(WitnessReport) + Send + Sync>,
) {
    if reported.as_deref() != Some(why.as_str()) {
        tracing::warn!(address = %target.address, "witness link lost: {why}");
        report(WitnessReport::Link(Some(why.clone())));
        *reported = Some(why);
    }
}

/// The `Vote` stream to `tandemd witness`, or a connection to the etcd cluster.
enum Link {
    Witness(Box<Stream>),
    #[cfg(feature = "etcd")]
    Etcd(Box<EtcdSession>),
}

struct Stream {
    requests: mpsc::Sender<pb::VoteRequest>,
    replies: Streaming<pb::VoteReply>,
    seq: u64,
}

async fn open(target: &WitnessTarget) -> Result<Link, String> {
    match &target.etcd {
        Some(Err(why)) => Err(why.clone()),
        #[cfg(feature = "etcd")]
        Some(Ok(etcd)) => tokio::time::timeout(target.lease * 2, EtcdSession::open(etcd))
            .await
            .map_err(|_| format!("etcd at {} did not answer", target.address))?
            .map(|session| Link::Etcd(Box::new(session))),
        #[cfg(not(feature = "etcd"))]
        Some(Ok(_)) => Err(NO_ETCD.into()),
        None => open_stream(target)
            .await
            .map(|stream| Link::Witness(Box::new(stream))),
    }
}

async fn open_stream(target: &WitnessTarget) -> Result<Stream, String> {
    let channel = crate::tls::connect(
        &target.address,
        &target.server_name,
        target.tls.clone(),
        Duration::from_secs(1),
    )
    .await
    .map_err(|error| format!("cannot reach {}: {error}", target.address))?;
    let (requests, requests_rx) = mpsc::channel(8);
    let hello = pb::VoteRequest {
        seq: 0,
        body: Some(pb::vote_request::Body::Hello(pb::Hello {
            cluster: target.cluster.clone(),
            node: target.node.clone(),
            peer_port: u32::from(target.peer_port),
            client_port: u32::from(target.client_port),
            lease_ms: target.lease.as_millis() as u64,
        })),
    };
    requests
        .send(hello)
        .await
        .map_err(|_| "the stream closed".to_string())?;
    let replies = tokio::time::timeout(
        Duration::from_secs(2),
        GrpcClient::new(channel).vote(ReceiverStream::new(requests_rx)),
    )
    .await
    .map_err(|_| "the witness did not answer the stream's opening".to_string())?
    .map_err(|status| format!("the witness refused this node: {}", status.message()))?
    .into_inner();
    Ok(Stream {
        requests,
        replies,
        seq: 0,
    })
}

impl Link {
    /// Renews and promotes on this link until it fails; returns why.
    async fn serve(
        &mut self,
        target: &WitnessTarget,
        renew: &mut watch::Receiver<Option<RenewTerm>>,
        promote: &mut mpsc::Receiver<PromoteRequest>,
        report: &Arc<dyn Fn(WitnessReport) + Send + Sync>,
    ) -> String {
        let mut ticker = tokio::time::interval(target.lease / 4);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let Some(term) = renew.borrow_and_update().clone() else { continue };
                    let request = Request::Renew {
                        term: term.term.clone(),
                        peer_outdated: term.peer_outdated,
                        disk: term.disk,
                    };
                    match self.ask(request, target.lease).await {
                        Ok((sent_at, answer)) => report(WitnessReport::Renewed {
                            sent_at,
                            peer_outdated: term.peer_outdated,
                            answer,
                        }),
                        Err(why) => return why,
                    }
                }
                changed = renew.changed() => {
                    if changed.is_err() {
                        return "the node is stopping".into();
                    }
                    // A new term to renew: at once, not at the next tick.
                    ticker.reset_immediately();
                }
                request = promote.recv() => {
                    let Some(request) = request else { return "the node is stopping".into() };
                    if request.asked_at.elapsed() > target.lease {
                        let answer = Answer::Refused {
                            reason: "the request waited too long for the witness's link".into(),
                            holder: None,
                            holder_lease_left_ms: 0,
                            superseded: false,
                        };
                        report(WitnessReport::Promoted { sent_at: Instant::now(), answer });
                        continue;
                    }
                    let request = Request::Promote {
                        epoch: request.epoch,
                        priority: request.priority,
                        disk: request.disk,
                        max_epoch_seen: request.max_epoch_seen,
                        fast_path: request.fast_path,
                        force: request.force,
                    };
                    match self.ask(request, target.lease).await {
                        Ok((sent_at, answer)) => report(WitnessReport::Promoted { sent_at, answer }),
                        Err(why) => {
                            let answer = Answer::Refused {
                                reason: format!("the witness did not answer: {why}"),
                                holder: None,
                                holder_lease_left_ms: 0,
                                superseded: false,
                            };
                            report(WitnessReport::Promoted { sent_at: Instant::now(), answer });
                            return why;
                        }
                    }
                }
            }
        }
    }

    /// Sends one request and waits (at most `timeout`) for its answer; returns the instant it
    /// was sent with the answer.
    async fn ask(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<(Instant, Answer), String> {
        match self {
            Link::Witness(stream) => stream.ask(request_to_wire(request), timeout).await,
            #[cfg(feature = "etcd")]
            Link::Etcd(session) => {
                let sent_at = Instant::now();
                let answer = tokio::time::timeout(timeout, session.ask(request))
                    .await
                    .map_err(|_| {
                        format!("etcd gave no answer within {} ms", timeout.as_millis())
                    })??;
                Ok((sent_at, answer))
            }
        }
    }
}

impl Stream {
    /// Sends one request and waits (at most `timeout`) for its answer.
    async fn ask(
        &mut self,
        body: pb::vote_request::Body,
        timeout: Duration,
    ) -> Result<(Instant, Answer), String> {
        self.seq += 1;
        let seq = self.seq;
        let sent_at = Instant::now();
        self.requests
            .send(pb::VoteRequest {
                seq,
                body: Some(body),
            })
            .await
            .map_err(|_| "the stream closed".to_string())?;
        let reply = tokio::time::timeout(timeout, self.replies.message())
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
            .map_err(|status| format!("the witness ended the stream: {}", status.message()))?
            .ok_or_else(|| "the witness ended the stream".to_string())?;
        if reply.seq != seq {
            return Err(format!("an answer to {} for request {seq}", reply.seq));
        }
        match reply.body {
            Some(pb::vote_reply::Body::Granted(granted)) => {
                let term = granted.term.ok_or("a grant without a term")?;
                Ok((
                    sent_at,
                    Answer::Granted {
                        term: WitnessTerm {
                            epoch: term.epoch,
                            node: term.node,
                            priority: term.priority,
                        },
                        lease_ms: granted.lease_ms,
                    },
                ))
            }
            Some(pb::vote_reply::Body::Refused(refused)) => Ok((
                sent_at,
                Answer::Refused {
                    reason: refused.reason,
                    holder: refused.holder.map(|term| WitnessTerm {
                        epoch: term.epoch,
                        node: term.node,
                        priority: term.priority,
                    }),
                    holder_lease_left_ms: refused.holder_lease_left_ms,
                    superseded: refused.superseded,
                },
            )),
            None => Err("an answer without a body".into()),
        }
    }
}

fn request_to_wire(request: Request) -> pb::vote_request::Body {
    match request {
        Request::Renew {
            term,
            peer_outdated,
            disk,
        } => pb::vote_request::Body::Renew(pb::Renew {
            term: Some(term_to_wire(&term)),
            peer_outdated,
            disk: disk_to_wire(disk) as i32,
        }),
        Request::Promote {
            epoch,
            priority,
            disk,
            max_epoch_seen,
            fast_path,
            force,
        } => pb::vote_request::Body::Promote(pb::Promote {
            epoch,
            priority,
            disk: disk_to_wire(disk) as i32,
            max_epoch_seen,
            fast_path,
            force,
        }),
    }
}

fn term_to_wire(term: &WitnessTerm) -> pb::Term {
    pb::Term {
        epoch: term.epoch,
        node: term.node.clone(),
        priority: term.priority,
    }
}

fn disk_to_wire(disk: Disk) -> pb::DiskState {
    match disk {
        Disk::Consistent => pb::DiskState::Consistent,
        Disk::Outdated => pb::DiskState::Outdated,
        Disk::Inconsistent => pb::DiskState::Inconsistent,
    }
}
