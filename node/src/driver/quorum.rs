//! Witness mode in the driver (DESIGN.md §12): the two votes a node needs to admit clients.
//!
//! - **The peer's vote.** A passive that sees the active promises, in each heartbeat, not to
//!   ask the witness for a promotion until one lease has passed since it received the heartbeat
//!   it acknowledges. The active counts that promise from the instant it *sent* that heartbeat,
//!   less twice the drift, so it lapses on the active before it can on the passive.
//! - **The witness's vote.** Renewed on the witness stream while this node is active; it counts
//!   from the instant the renewal was sent, less twice the drift.
//! - **The gate.** The admission gate closes when both have lapsed (`Admission::set_votes_until`),
//!   checked on every client request, so an active cut off from both stops admitting on its own
//!   clock, before the witness could give the vote to the other node.
//! - **Taking over.** In witness mode every takeover of the role machine goes through its fence
//!   step (`Command::FencePeer`): the driver waits out its own promise (unless the fast path
//!   proved the active's process gone), asks the witness, and answers `FenceResult` with the
//!   vote. A `fence_peer` hook, if any, runs after the vote.
//!
//! Without `[witness]` none of this exists and the gate has no vote deadline: pair mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event_loop::Driver;
use super::handle::Input;
use crate::config::WitnessSettings;
use crate::role::{DiskState, Role};
use crate::witness::client::{
    EtcdTarget, PromoteRequest, RenewTerm, WitnessClient, WitnessReport, WitnessTarget,
};
use crate::witness::grantor::{Answer, Disk, WitnessTerm};

/// A fast-path promotion the witness cannot grant yet (its own proof of the active's end is
/// still running) is asked again after this pause, within one lease.
const FAST_PATH_RETRY: Duration = Duration::from_millis(50);

/// The driver's witness state.
pub(super) struct Quorum {
    pub(super) settings: WitnessSettings,
    pub(super) client: WitnessClient,
    /// `None` while the link is up; why it is down otherwise. `Some` until first connected.
    pub(super) link_down: Option<String>,
    /// The witness's vote lasts until then (on this node's clock).
    pub(super) witness_until: Option<Instant>,
    /// The peer's vote lasts until then.
    pub(super) peer_until: Option<Instant>,
    /// This passive promised not to seek a promotion before then.
    pub(super) promise_until: Option<Instant>,
    /// A promotion request is on its way; no promises meanwhile.
    pub(super) seeking: bool,
    /// The last refusal recorded as an event, so a repeated one is not recorded again.
    pub(super) last_refusal: Option<String>,
    /// The last answer, for status.
    pub(super) vote: String,
    /// The fast path proved the peer's process gone (both ports refused) since the last stream
    /// end: the promise to it no longer binds.
    pub(super) peer_gone: bool,
    /// A fast-path takeover asks again every `FAST_PATH_RETRY` until then (one lease after it
    /// first asked): the witness may learn of the holder's end after this node did.
    pub(super) fast_until: Option<Instant>,
    /// Whether the gate admitted when last looked at, for the `admission` events.
    pub(super) admitted: bool,
    /// This takeover already asked again once its refusal's lease had run out: a holder that
    /// renewed meanwhile is alive, and the takeover fails.
    pub(super) retried: bool,
    /// When (Unix ms) the role machine last opened the gate: an `admission` event names the
    /// earliest instant the gate may have admitted.
    pub(super) opened_wall: Option<i64>,
}

impl Quorum {
    /// Starts the witness client for `config` (none without `[witness]`).
    pub(super) fn start(
        config: &crate::config::Config,
        tls: Arc<rustls::ClientConfig>,
        inputs: tokio::sync::mpsc::WeakSender<Input>,
    ) -> Option<Quorum> {
        let settings = config.witness.clone()?;
        // A PEM file that cannot be read now shows as the witness link down, with why.
        let etcd = settings.etcd.as_ref().map(|etcd| etcd_target(config, etcd));
        let target = WitnessTarget {
            etcd,
            address: settings.address.clone(),
            server_name: settings.server_name.clone(),
            tls,
            cluster: config.cluster.clone(),
            node: config.node.name.clone(),
            peer_port: config.listen.peer.port(),
            client_port: config.listen.client.port(),
            lease: settings.lease,
        };
        let report = Arc::new(move |report: WitnessReport| {
            if let Some(inputs) = inputs.upgrade()
                && inputs.try_send(Input::Witness(report)).is_err()
            {
                tracing::warn!("the driver's queue is full; a witness answer is dropped");
            }
        });
        Some(Quorum {
            client: WitnessClient::start(target, report),
            settings,
            link_down: Some("not connected yet".into()),
            witness_until: None,
            peer_until: None,
            promise_until: None,
            seeking: false,
            last_refusal: None,
            vote: "none yet".into(),
            peer_gone: false,
            fast_until: None,
            admitted: false,
            retried: false,
            opened_wall: None,
        })
    }

    /// Until when this node holds a second vote.
    pub(super) fn votes_until(&self) -> Option<Instant> {
        match (self.witness_until, self.peer_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the etcd backend needs: the node's PEM files, read now.
fn etcd_target(
    config: &crate::config::Config,
    etcd: &crate::config::EtcdSettings,
) -> Result<EtcdTarget, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
    };
    Ok(EtcdTarget {
        settings: etcd.clone(),
        ca_pem: read(&config.tls.ca)?,
        cert_pem: read(&config.tls.cert)?,
        key_pem: read(&config.tls.key)?,
        cluster: config.cluster.clone(),
        node: config.node.name.clone(),
        nodes: vec![config.node.name.clone(), config.peer.name.clone()],
        lease: config
            .witness
            .as_ref()
            .map_or(crate::config::ETCD_LEASE_MIN, |w| w.lease),
    })
}

fn disk(disk: DiskState) -> Disk {
    match disk {
        DiskState::Consistent => Disk::Consistent,
        DiskState::Outdated => Disk::Outdated,
        DiskState::Inconsistent => Disk::Inconsistent,
    }
}

impl Driver {
    /// Attaches the witness client (witness mode only).
    pub fn attach_witness(&mut self, tls: Arc<rustls::ClientConfig>) {
        self.quorum = Quorum::start(&self.config, tls, self.own_inputs.clone());
        self.update_votes();
    }

    /// Whether this heartbeat carries the promise, and if so, remembers what it promised.
    pub(super) fn promise(&mut self) -> bool {
        let passive = self.machine.role() == Role::Passive;
        let received_at = self.peer.received_at;
        let Some(quorum) = self.quorum.as_mut() else {
            return false;
        };
        if !passive || quorum.seeking {
            return false;
        }
        if let Some(received_at) = received_at {
            let until = received_at + quorum.settings.lease;
            quorum.promise_until = Some(quorum.promise_until.map_or(until, |at| at.max(until)));
        }
        true
    }

    /// The peer acknowledged our heartbeat sent at `sent_at` with its promise.
    pub(super) fn peer_promised(&mut self, sent_at: Instant) {
        if let Some(quorum) = self.quorum.as_mut() {
            let until = sent_at + quorum.settings.holder_lease();
            quorum.peer_until = Some(quorum.peer_until.map_or(until, |at| at.max(until)));
            self.update_votes();
        }
    }

    /// Hands the admission gate the vote deadline, and the witness client the term to renew.
    pub(super) fn update_votes(&mut self) {
        let Some(quorum) = self.quorum.as_mut() else {
            return;
        };
        if self.machine.role() != Role::Active {
            quorum.peer_until = None;
        }
        self.admission.set_votes_until(quorum.votes_until());
        let durable = self.machine.durable();
        let renewal = match (&durable.term, self.machine.role()) {
            (Some(term), Role::Active) if term.node() == self.config.node.name => Some(RenewTerm {
                term: WitnessTerm {
                    epoch: term.epoch,
                    node: term.rank.name.clone(),
                    priority: term.rank.priority,
                },
                peer_outdated: self.replication.as_ref().is_some_and(|status| {
                    let status = status.borrow();
                    status.degraded && status.mode != "async"
                }),
                disk: disk(durable.disk),
            }),
            _ => None,
        };
        quorum.client.set_renewal(renewal);
    }

    /// `Command::FencePeer` in witness mode: a takeover's first request.
    pub(super) async fn begin_promotion(&mut self) -> Result<(), super::event_loop::DriverError> {
        if let Some(quorum) = self.quorum.as_mut() {
            quorum.retried = false;
        }
        self.seek_again().await
    }

    /// Asks the witness for the vote once the promise has run out.
    /// Without a link to the witness there is no vote to ask for: the takeover fails at once,
    /// and the event says why.
    pub(super) async fn seek_again(&mut self) -> Result<(), super::event_loop::DriverError> {
        let request = self.promote_request(false);
        let Some(quorum) = self.quorum.as_mut() else {
            return Ok(());
        };
        if let Some(why) = quorum.link_down.clone() {
            quorum.vote = format!("not asked: the witness is unreachable ({why})");
            let message = format!(
                "not taking over: the witness is unreachable ({why}), and a node promotes only \
                 with its vote"
            );
            if quorum.last_refusal.as_ref() != Some(&message) {
                quorum.last_refusal = Some(message.clone());
                self.record("witness_refused", &message).await?;
            }
            self.feedback
                .push_back(crate::role::Event::FenceResult { ok: false });
            return Ok(());
        }
        quorum.seeking = true;
        let fast_path = quorum.peer_gone;
        quorum.fast_until = fast_path.then(|| Instant::now() + quorum.settings.lease);
        let wait = if fast_path {
            Duration::ZERO
        } else {
            quorum.promise_until.map_or(Duration::ZERO, |until| {
                until.saturating_duration_since(Instant::now())
            })
        };
        let client = quorum.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            client.promote(PromoteRequest {
                fast_path,
                asked_at: Instant::now(),
                ..request
            });
        });
        Ok(())
    }

    /// A report of the witness client.
    pub(super) async fn on_witness(
        &mut self,
        report: WitnessReport,
    ) -> Result<(), super::event_loop::DriverError> {
        let Some(quorum) = self.quorum.as_mut() else {
            return Ok(());
        };
        let holder_lease = quorum.settings.holder_lease();
        match report {
            WitnessReport::Link(None) => {
                let was_down = quorum.link_down.take();
                if was_down.is_some_and(|why| why != "not connected yet") {
                    self.record("witness_ok", "the witness answers again")
                        .await?;
                }
            }
            WitnessReport::Link(Some(why)) => {
                let first = quorum
                    .link_down
                    .as_ref()
                    .is_none_or(|down| down == "not connected yet");
                quorum.link_down = Some(why.clone());
                if first {
                    let message = format!(
                        "witness {} lost: {why}; the pair keeps serving while the nodes see \
                         each other, but no automatic failover happens without it",
                        quorum.settings.address
                    );
                    self.record("witness_lost", &message).await?;
                }
            }
            WitnessReport::Renewed {
                sent_at,
                peer_outdated,
                answer,
            } => match answer {
                Answer::Granted { term, .. } => {
                    quorum.witness_until = Some(sent_at + holder_lease);
                    // The witness recorded (durably, before it answered) whether the peer is
                    // outdated: the shipper may acknowledge what it committed alone once the
                    // witness knows.
                    self.outdated_confirmed.send_if_modified(|confirmed| {
                        let now = peer_outdated.then_some(sent_at);
                        let changed = *confirmed != now;
                        *confirmed = now;
                        changed
                    });
                    quorum.vote = format!("granted in term ({}, {})", term.epoch, term.node);
                    quorum.last_refusal = None;
                    self.update_votes();
                }
                Answer::Refused {
                    reason, superseded, ..
                } => {
                    quorum.vote = format!("refused: {reason}");
                    // A new active's renewals wait out the old one's lease after a hand-over,
                    // admitting on its peer's vote meanwhile: only a refusal that costs this
                    // node its admission is worth an event.
                    let peer_vote = quorum
                        .peer_until
                        .is_some_and(|until| until > Instant::now());
                    let key: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
                    if (superseded || !peer_vote) && quorum.last_refusal.as_ref() != Some(&key) {
                        quorum.last_refusal = Some(key);
                        let message =
                            format!("the witness refused to renew this node's vote: {reason}");
                        self.record("witness_refused", &message).await?;
                    }
                }
            },
            WitnessReport::RetryPromotion => {
                if self.machine.role() == Role::Promoting && quorum.seeking {
                    self.seek_again().await?;
                    let events = std::mem::take(&mut self.feedback);
                    for event in events {
                        self.step(event).await?;
                    }
                }
            }
            WitnessReport::Promoted { sent_at, answer } => match answer {
                Answer::Granted { term, .. } => {
                    quorum.seeking = false;
                    quorum.witness_until = Some(sent_at + holder_lease);
                    quorum.vote = format!("granted in term ({}, {})", term.epoch, term.node);
                    quorum.last_refusal = None;
                    self.update_votes();
                    self.record(
                        "witness",
                        &format!(
                            "the witness gave this node the vote in term ({}, {})",
                            term.epoch, term.node
                        ),
                    )
                    .await?;
                    if let Some(result) = self.after_vote() {
                        self.step(result).await?;
                    }
                }
                Answer::Refused {
                    reason,
                    holder,
                    holder_lease_left_ms,
                    ..
                } => {
                    // This node proved the holder's process gone; the witness may not have yet:
                    // its proof is still running, or the holder's stream has not ended on its
                    // side yet (it still counts the holder connected and its lease live). Ask
                    // again shortly, for one lease. etcd proves nothing: there the lease is
                    // waited out below.
                    let held_by_peer = holder
                        .as_ref()
                        .is_some_and(|holder| holder.node != self.config.node.name);
                    let proof_pending = reason.contains("not proven gone yet")
                        || (holder_lease_left_ms > 0
                            && held_by_peer
                            && quorum.settings.etcd.is_none());
                    if quorum.peer_gone
                        && proof_pending
                        && quorum
                            .fast_until
                            .is_some_and(|until| Instant::now() < until)
                    {
                        let client = quorum.client.clone();
                        let request = self.promote_request(true);
                        tokio::spawn(async move {
                            tokio::time::sleep(FAST_PATH_RETRY).await;
                            client.promote(request);
                        });
                        return Ok(());
                    }
                    let lease_ms = quorum.settings.lease.as_millis() as u64;
                    if self.machine.role() == Role::Promoting
                        && !quorum.retried
                        && holder_lease_left_ms > 0
                        && holder_lease_left_ms <= 2 * lease_ms
                    {
                        // Refused only for the holder's lease: ask again the moment it has run
                        // out, instead of failing the takeover and waiting a whole round.
                        quorum.vote = format!("refused: {reason}");
                        quorum.retried = true;
                        let inputs = self.own_inputs.clone();
                        let wait = Duration::from_millis(holder_lease_left_ms) + FAST_PATH_RETRY;
                        tokio::spawn(async move {
                            tokio::time::sleep(wait).await;
                            if let Some(inputs) = inputs.upgrade() {
                                let _ = inputs
                                    .send(Input::Witness(WitnessReport::RetryPromotion))
                                    .await;
                            }
                        });
                        self.publish_status();
                        return Ok(());
                    }
                    quorum.seeking = false;
                    quorum.vote = format!("refused: {reason}");
                    // The same refusal again (its lease times aside) is not recorded again.
                    let key: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
                    if quorum.last_refusal.as_ref() != Some(&key) {
                        quorum.last_refusal = Some(key);
                        let message = format!("the witness refused to promote this node: {reason}");
                        self.record("witness_refused", &message).await?;
                    }
                    self.step(crate::role::Event::FenceResult { ok: false })
                        .await?;
                }
            },
        }
        self.note_admission().await?;
        self.publish_status();
        Ok(())
    }

    /// Witness mode: records each change of the gate as an `admission` event that names the
    /// instant (Unix ms) it changed: when the votes lapsed, for a gate that closed because
    /// they did, so the two nodes' timelines can be laid side by side.
    pub(super) async fn note_admission(&mut self) -> Result<(), super::event_loop::DriverError> {
        let admits = self.admission.admits();
        let role_admits = self.machine.admitting();
        let Some(quorum) = self.quorum.as_mut() else {
            return Ok(());
        };
        if admits == quorum.admitted {
            return Ok(());
        }
        quorum.admitted = admits;
        let now = Instant::now();
        let wall = crate::state::store::wall_clock_ms();
        let lapsed = quorum.votes_until().filter(|until| *until <= now);
        let message = match (admits, lapsed) {
            (true, _) => format!(
                "admitting from {}",
                quorum
                    .opened_wall
                    .take()
                    .map_or(wall, |opened| opened.min(wall))
            ),
            // The gate (checked on every request against the votes) closed when they lapsed,
            // even if this node noticed only now: after a stop, say, when the role machine
            // also stops admitting as it notices the stall.
            (false, Some(until)) => {
                let ago = i64::try_from(now.duration_since(until).as_millis()).unwrap_or(0);
                let why = if role_admits {
                    "neither the peer's nor the witness's vote holds"
                } else {
                    "the votes had lapsed"
                };
                format!("not admitting from {}: {why}", wall - ago)
            }
            (false, _) => format!("not admitting from {wall}"),
        };
        self.record("admission", &message).await
    }

    /// The role machine opens the gate now (called before it opens).
    pub(super) fn gate_opening(&mut self) {
        if let Some(quorum) = self.quorum.as_mut() {
            quorum.opened_wall = Some(crate::state::store::wall_clock_ms());
        }
    }

    /// A promotion request for this node as it is now.
    fn promote_request(&self, fast_path: bool) -> PromoteRequest {
        let durable = self.machine.durable();
        PromoteRequest {
            epoch: durable.max_epoch_seen + 1,
            priority: self.config.node.priority,
            disk: disk(durable.disk),
            max_epoch_seen: durable.max_epoch_seen,
            fast_path,
            force: false,
            asked_at: Instant::now(),
        }
    }

    /// A fast-path round: both of the peer's ports refused, so its process is gone.
    pub(super) fn peer_proven_gone(&mut self, gone: bool) {
        if let Some(quorum) = self.quorum.as_mut() {
            quorum.peer_gone = gone;
        }
    }
}
