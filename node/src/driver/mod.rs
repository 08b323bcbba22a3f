//! The driver: one event loop that feeds the role machine and runs its commands.
//!
//! It selects over the keep-alive ticker and one bounded input channel (peer messages, stream
//! ends, fast-path dials, reachability, admin requests, SIGTERM). For each input it calls
//! `RoleMachine::step` and runs the returned commands in order, awaiting each: a `Persist` is on
//! disk before the next command runs. After each step it publishes the node's `Status`.
//! It is the only writer of `state.db`.

pub mod admission;
pub mod event_writer;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tandem_proto::peer as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::admin::status::{
    NodeStatus, PeerStatus, ReplicationStatus, Status, SwitchoverStatus, TermStatus,
};
use crate::config::Config;
use crate::driver::admission::Admission;
use crate::driver::event_writer::EventWriter;
use crate::peer::wire;
use crate::role::{
    AdminRequest, Command, DialOutcome, Event, LogPosition, Role, RoleConfig, RoleMachine,
    SwitchoverPhase,
};
use crate::state::store::{StateStore, StoreError, wall_clock_ms};

/// Inputs queued for the driver beyond this bound make their senders wait.
pub const INPUT_QUEUE_BOUND: usize = 1024;
/// Outbound peer messages buffered for the dialers; a slow dialer skips the oldest.
pub const OUTBOUND_BOUND: usize = 64;
/// How long a switchover may take before it is aborted.
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM on the active waits for the hand-over.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// Admin requests waiting for an answer at once; more are refused as busy.
const PENDING_ADMIN_MAX: usize = 64;
/// The admission lease, in keep-alive intervals: renewed on every tick while admitting.
const ADMISSION_LEASE_INTERVALS: u32 = 3;
/// Consecutive heartbeats beyond `max_clock_offset` before a clock-skew event: a single late
/// heartbeat (queued during a stall) is not skew.
const SKEW_SAMPLES: u32 = 3;
/// Unacknowledged heartbeats remembered for the round-trip measure (at 100 ms: 6 s of them).
const SENT_HEARTBEATS_KEPT: usize = 64;

pub type AdminReply = Result<String, String>;

/// Everything the driver reacts to besides its own ticker.
#[derive(Debug)]
pub enum Input {
    /// A message that arrived on a keep-alive stream from the peer.
    Peer(Box<pb::PeerMessage>),
    /// A keep-alive stream to or from the peer ended.
    PeerStreamEnded,
    FastPathDial {
        peer_port: DialOutcome,
        client_port: DialOutcome,
        /// The stream end this round belongs to; rounds of an older one are dropped.
        generation: u64,
    },
    Reachability(bool),
    /// An event from elsewhere in the node (replication), recorded in order with the driver's.
    Record {
        kind: String,
        message: String,
    },
    /// The active's verdict on this node's disk, from the replication stream.
    SetDisk {
        disk: crate::role::DiskState,
        reason: String,
        /// From this node's own snapshot receiving, not the active's verdict.
        local: bool,
    },
    Admin {
        request: AdminRequest,
        reply: oneshot::Sender<AdminReply>,
    },
    Shutdown,
    /// The `fence_peer` hook finished: whether it succeeded.
    FenceResult(bool),
}

/// What the servers and tasks around the driver share with it.
#[derive(Clone)]
pub struct DriverHandle {
    pub inputs: mpsc::Sender<Input>,
    pub status: watch::Receiver<Status>,
    pub store: StateStore,
    /// Outbound messages for the dialers.
    pub outbound: broadcast::Sender<pb::PeerMessage>,
    /// Set while a fast-path probe should keep dialling; only the driver writes it.
    pub fast_path_wanted: Arc<AtomicBool>,
    /// Bumped by the driver at every stream end; tags the prober's rounds.
    pub fast_path_generation: Arc<AtomicU64>,
    /// Whether this node admits clients now; the gateway and the admin status read it.
    pub admission: Arc<Admission>,
}

/// What the driver knows of the peer beyond the role machine: the edge-only fields.
#[derive(Default)]
struct PeerExtras {
    /// The peer process's incarnation; sequence numbers restart with each one.
    incarnation: Option<u64>,
    /// Highest heartbeat sequence received in this incarnation (deduplicates extra paths).
    last_seq: u64,
    clock_skew_ms: Option<i64>,
    /// Consecutive heartbeats whose skew exceeded `max_clock_offset`.
    skewed_samples: u32,
    skew_alerted: bool,
    version_mismatch: bool,
    config_mismatch: bool,
    cluster_mismatch_reported: bool,
    /// The peer's services as its last heartbeat reported them.
    services: Vec<crate::admin::status::PeerServiceStatus>,
    /// When the peer's heartbeat `last_seq` arrived (its hold time goes back in our ack).
    received_at: Option<Instant>,
    /// Our heartbeats not yet acknowledged: sequence and send time (bounded).
    sent: VecDeque<(u64, Instant)>,
    /// The last keep-alive round trip.
    rtt_ms: Option<f64>,
}

pub struct Driver {
    machine: RoleMachine,
    store: StateStore,
    config: Config,
    inputs: mpsc::Receiver<Input>,
    outbound: broadcast::Sender<pb::PeerMessage>,
    status: watch::Sender<Status>,
    /// Monotonic origin of the machine's `now_ms`.
    origin: Instant,
    /// Random per process, sent in heartbeats.
    incarnation: u64,
    peer: PeerExtras,
    /// Admin requests waiting for their `Command::Reply`.
    pending_admin: HashMap<u64, oneshot::Sender<AdminReply>>,
    next_admin_id: u64,
    /// Events the driver feeds back to the machine after the current step (e.g. `CaughtUp`).
    feedback: VecDeque<Event>,
    fast_path_wanted: Arc<AtomicBool>,
    fast_path_generation: Arc<AtomicU64>,
    admission: Arc<Admission>,
    /// Events go to `state.db` through this queue, off the loop that sends heartbeats.
    events: EventWriter,
    /// The replicated database's status, once it is attached.
    replication: Option<watch::Receiver<ReplicationStatus>>,
    /// `[[service]]`: the supervisor's view of this node's services, once it is attached.
    services: Option<watch::Receiver<Vec<crate::admin::status::ServiceStatus>>>,
    /// A switchover waits until the peer has acknowledged the whole log.
    catching_up: bool,
    /// `[[files]]`, once attached: `status.files`, and the files a switchover waits for.
    files: Option<crate::files::FileSync>,
    /// The file sync cycle a switchover's catch-up waits for.
    files_target: Option<u64>,
    /// `[hooks]`: the role hooks' queue.
    hooks: crate::ops::hooks::Hooks,
    /// The driver's own input queue, for the `fence_peer` task's answer (weak: the driver must
    /// not keep its own queue open).
    own_inputs: mpsc::WeakSender<Input>,
    exit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot persist to state.db: {0}")]
    Store(#[from] StoreError),
}

impl Driver {
    /// Builds the driver from the durable record in `store`.
    pub async fn new(
        config: Config,
        store: StateStore,
        events: EventWriter,
    ) -> Result<(Driver, DriverHandle), DriverError> {
        let durable = store.load_durable().await?;
        let log = LogPosition {
            term: durable.term.clone(),
            index: 0,
        };
        let origin = Instant::now();
        let machine = RoleMachine::new(role_config(&config), durable, log, 0);
        let (inputs_tx, inputs) = mpsc::channel(INPUT_QUEUE_BOUND);
        let (outbound, _) = broadcast::channel(OUTBOUND_BOUND);
        let (status_tx, status_rx) = watch::channel(Status::default());
        let fast_path_wanted = Arc::new(AtomicBool::new(false));
        let fast_path_generation = Arc::new(AtomicU64::new(0));
        let admission = Arc::new(Admission::default());
        let own_inputs = inputs_tx.downgrade();
        let recorder = own_inputs.clone();
        let hooks = crate::ops::hooks::Hooks::start(config.hooks.clone(), move |message| {
            if let Some(inputs) = recorder.upgrade() {
                let record = Input::Record {
                    kind: "hook".into(),
                    message,
                };
                if inputs.try_send(record).is_err() {
                    tracing::warn!("the driver's queue is full; a hook's outcome is only logged");
                }
            }
        });
        // A crash may have left this node's virtual IP up: start as a passive would.
        hooks.role_changed(
            "passive",
            crate::ops::hooks::HookEnv {
                role: "passive".into(),
                term: String::new(),
                peer: config.peer.name.clone(),
                reason: "start-up".into(),
            },
        );
        let handle = DriverHandle {
            inputs: inputs_tx,
            status: status_rx,
            store: store.clone(),
            outbound: outbound.clone(),
            fast_path_wanted: fast_path_wanted.clone(),
            fast_path_generation: fast_path_generation.clone(),
            admission: admission.clone(),
        };
        let driver = Driver {
            machine,
            store,
            config,
            inputs,
            outbound,
            status: status_tx,
            origin,
            incarnation: random_u64(),
            peer: PeerExtras::default(),
            pending_admin: HashMap::new(),
            next_admin_id: 1,
            feedback: VecDeque::new(),
            fast_path_wanted,
            fast_path_generation,
            admission,
            events,
            replication: None,
            services: None,
            files: None,
            files_target: None,
            catching_up: false,
            hooks,
            own_inputs,
            exit: false,
        };
        driver.publish_status();
        Ok((driver, handle))
    }

    /// Feeds the replicated database's status to the machine (log position, catch-up) and to
    /// `status`.
    pub fn attach_replication(&mut self, status: watch::Receiver<ReplicationStatus>) {
        self.replication = Some(status);
    }

    /// Marks this node's disk `inconsistent` before the driver runs (a damaged `data.db` was
    /// set aside at start): persisted, recorded, and in force before any election.
    pub async fn mark_disk_inconsistent(&mut self, reason: &str) -> Result<(), DriverError> {
        self.step(Event::DiskVerdict {
            disk: crate::role::DiskState::Inconsistent,
            reason: reason.to_string(),
            local: true,
        })
        .await
    }

    /// Sends this node's services' health in heartbeats and shows it in `status`.
    pub fn attach_services(
        &mut self,
        services: watch::Receiver<Vec<crate::admin::status::ServiceStatus>>,
    ) {
        self.services = Some(services);
    }

    /// Shows the file replication in `status` and makes switchovers wait for its pending files.
    pub fn attach_files(&mut self, files: crate::files::FileSync) {
        self.files = Some(files);
    }

    /// Whether the file cycle a switchover asked for is done (or there is nothing to wait for).
    fn files_caught_up(&self) -> bool {
        match (&self.files, self.files_target) {
            (Some(files), Some(target)) => files.synced_through(target),
            _ => true,
        }
    }

    fn own_services(&self) -> Vec<crate::admin::status::ServiceStatus> {
        self.services
            .as_ref()
            .map(|services| services.borrow().clone())
            .unwrap_or_default()
    }

    /// The log position for the machine, and whether a switchover's catch-up is complete.
    fn replication_progress(&self) -> Option<(LogPosition, bool)> {
        let replication = self.replication.as_ref()?.borrow();
        let term = replication.last_term.as_ref().map(|term| {
            let priority = if term.node == self.config.node.name {
                self.config.node.priority
            } else {
                self.machine
                    .peer_heartbeat()
                    .map_or(0, |heartbeat| heartbeat.priority)
            };
            crate::role::Term::new(term.epoch, &term.node, priority)
        });
        let position = LogPosition {
            term: term.or_else(|| self.machine.durable().term.clone()),
            index: replication.last_index,
        };
        let caught_up = replication.peer_acked_index >= replication.last_index;
        Some((position, caught_up))
    }

    /// Runs until the machine says `Exit` or every input sender is gone.
    pub async fn run(mut self) -> Result<(), DriverError> {
        let mut ticker = tokio::time::interval(self.config.timers.keepalive_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A service's state shows in `status` as soon as the supervisor changes it, not at the
        // next tick. Changes come before inputs, so an event the supervisor records after a
        // change never shows before the change does.
        let mut services = self.services.clone();
        while !self.exit {
            tokio::select! {
                biased;
                _ = ticker.tick() => self.on_tick().await?,
                changed = async {
                    match services.as_mut() {
                        Some(services) => services.changed().await,
                        None => std::future::pending().await,
                    }
                } => match changed {
                    Ok(()) => self.publish_status(),
                    Err(_) => services = None,
                },
                input = self.inputs.recv() => match input {
                    Some(input) => self.on_input(input).await?,
                    None => break,
                },
            }
        }
        for (_, reply) in self.pending_admin.drain() {
            let _ = reply.send(Err("the node is stopping".into()));
        }
        tracing::info!("driver stopped");
        Ok(())
    }

    fn admission_lease(&self) -> Duration {
        self.config.timers.keepalive_interval * ADMISSION_LEASE_INTERVALS
    }

    /// A tick: the machine first (it may close the gate after a stall), then renew the lease.
    async fn on_tick(&mut self) -> Result<(), DriverError> {
        if let Some((position, caught_up)) = self.replication_progress() {
            if &position != self.machine.log_position() {
                self.step(Event::LogPosition(position)).await?;
            }
            if self.catching_up && caught_up && self.files_caught_up() {
                self.catching_up = false;
                self.files_target = None;
                self.step(Event::CaughtUp).await?;
            }
        }
        self.step(Event::Tick).await?;
        if self.machine.admitting() {
            self.admission.renew(self.admission_lease());
        }
        // Callers that gave up waiting leave a closed channel behind.
        self.pending_admin.retain(|_, reply| !reply.is_closed());
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn step(&mut self, event: Event) -> Result<(), DriverError> {
        self.feedback.push_back(event);
        while let Some(event) = self.feedback.pop_front() {
            let commands = self.machine.step(event, self.now_ms());
            for command in commands {
                self.run_command(command).await?;
            }
        }
        self.publish_status();
        Ok(())
    }

    async fn on_input(&mut self, input: Input) -> Result<(), DriverError> {
        match input {
            Input::Peer(message) => self.on_peer_message(*message).await,
            Input::PeerStreamEnded => {
                self.fast_path_generation.fetch_add(1, Ordering::SeqCst);
                self.fast_path_wanted.store(true, Ordering::SeqCst);
                self.step(Event::PeerStreamEnded).await
            }
            Input::FastPathDial {
                peer_port,
                client_port,
                generation,
            } => {
                if generation != self.fast_path_generation.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if peer_port == DialOutcome::Connected || client_port == DialOutcome::Connected {
                    self.fast_path_wanted.store(false, Ordering::SeqCst);
                }
                self.step(Event::FastPathDial {
                    peer_port,
                    client_port,
                })
                .await
            }
            Input::Reachability(reachable) => {
                if reachable != self.machine.reachable() {
                    let message = if reachable {
                        "reachability targets answer again"
                    } else {
                        "reachability targets do not answer"
                    };
                    self.record("reachability", message).await?;
                }
                self.step(Event::Reachability(reachable)).await
            }
            Input::Admin { request, reply } => {
                if self.pending_admin.len() >= PENDING_ADMIN_MAX {
                    let _ = reply.send(Err("busy: too many admin commands waiting".into()));
                    return Ok(());
                }
                let id = self.next_admin_id;
                self.next_admin_id += 1;
                self.pending_admin.insert(id, reply);
                self.step(Event::Admin { id, request }).await
            }
            Input::Shutdown => self.step(Event::Shutdown).await,
            Input::FenceResult(ok) => self.step(Event::FenceResult { ok }).await,
            Input::Record { kind, message } => self.record(&kind, &message).await,
            Input::SetDisk {
                disk,
                reason,
                local,
            } => {
                self.step(Event::DiskVerdict {
                    disk,
                    reason,
                    local,
                })
                .await
            }
        }
    }

    async fn on_peer_message(&mut self, message: pb::PeerMessage) -> Result<(), DriverError> {
        use pb::peer_message::Body;
        match message.body {
            Some(Body::Heartbeat(heartbeat)) => self.on_heartbeat(heartbeat).await,
            Some(Body::Handover(request)) => {
                match request.new_term.as_ref().map(wire::term_from_pb) {
                    Some(Ok(new_term)) => self.step(Event::HandoverRequested { new_term }).await,
                    _ => {
                        tracing::warn!("ignoring a hand-over request without a valid term");
                        Ok(())
                    }
                }
            }
            Some(Body::HandoverReply(reply)) => {
                match reply.new_term.as_ref().map(wire::term_from_pb) {
                    Some(Ok(new_term)) => {
                        // Only a hand-over this node offered: a refusal can also reach a node
                        // that never started one (the peer answers whoever sent it a term).
                        let offered = self.machine.switchover_phase()
                            == Some(crate::role::SwitchoverPhase::HandingOver);
                        if !reply.accepted && offered {
                            let message = format!("peer refused the hand-over: {}", reply.reason);
                            self.record("switchover", &message).await?;
                        }
                        let accepted = reply.accepted;
                        self.step(Event::HandoverReplied { new_term, accepted })
                            .await
                    }
                    _ => {
                        tracing::warn!("ignoring a hand-over reply without a valid term");
                        Ok(())
                    }
                }
            }
            Some(Body::SwitchoverRequest(_)) => self.step(Event::SwitchoverRequested).await,
            None => Ok(()),
        }
    }

    async fn on_heartbeat(&mut self, heartbeat: pb::Heartbeat) -> Result<(), DriverError> {
        if heartbeat.cluster_id != self.config.cluster {
            if !self.peer.cluster_mismatch_reported {
                self.peer.cluster_mismatch_reported = true;
                let message = format!(
                    "ignoring heartbeats from cluster {:?}; this node is in {:?}",
                    heartbeat.cluster_id, self.config.cluster
                );
                self.record("cluster_mismatch", &message).await?;
            }
            return Ok(());
        }
        if self.peer.incarnation == Some(heartbeat.incarnation)
            && heartbeat.seq <= self.peer.last_seq
        {
            return Ok(());
        }
        let mut domain = match wire::heartbeat_from_pb(&heartbeat) {
            Ok(domain) => domain,
            Err(reason) => {
                tracing::warn!(%reason, "ignoring a malformed heartbeat");
                return Ok(());
            }
        };
        if heartbeat.ack_incarnation != self.incarnation {
            // The peer has not heard this process yet: its ack counts our previous life's
            // heartbeats and must not close a stall's round trip.
            domain.ack_seq = 0;
        }
        self.peer.incarnation = Some(heartbeat.incarnation);
        self.peer.last_seq = heartbeat.seq;
        self.peer.received_at = Some(Instant::now());
        if domain.ack_seq != 0 {
            self.measure_round_trip(heartbeat.ack_seq, heartbeat.ack_delay_us);
        }
        self.peer.services = heartbeat
            .services
            .iter()
            .map(|service| crate::admin::status::PeerServiceStatus {
                name: service.name.clone(),
                healthy: service.healthy,
                state: service.state.clone(),
            })
            .collect();
        self.fast_path_wanted.store(false, Ordering::SeqCst);
        self.check_peer_settings(&heartbeat).await?;
        let outdates_us = heartbeat.peer_outdated
            && domain.role == Role::Active
            && domain.term.is_some()
            && domain.term == self.machine.durable().term;
        self.step(Event::Heartbeat(domain)).await?;
        if outdates_us && self.machine.role() == Role::Passive {
            self.step(Event::DiskVerdict {
                disk: crate::role::DiskState::Outdated,
                reason: "the active degraded to async; this node misses acknowledged writes".into(),
                local: false,
            })
            .await?;
        }
        Ok(())
    }

    /// A heartbeat of ours came back acknowledged: its round trip, less the peer's hold time.
    fn measure_round_trip(&mut self, ack_seq: u64, ack_delay_us: u64) {
        let sent = self
            .peer
            .sent
            .iter()
            .find(|(seq, _)| *seq == ack_seq)
            .map(|(_, at)| *at);
        self.peer.sent.retain(|(seq, _)| *seq > ack_seq);
        let Some(sent) = sent else { return };
        let rtt = sent
            .elapsed()
            .saturating_sub(Duration::from_micros(ack_delay_us));
        crate::http::metrics::global().keepalive_rtt.observe(rtt);
        self.peer.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
    }

    /// Version, config digest and clock skew: shown in status, recorded as events on change.
    async fn check_peer_settings(&mut self, heartbeat: &pb::Heartbeat) -> Result<(), DriverError> {
        let version_mismatch = heartbeat.version != crate::VERSION;
        if version_mismatch != self.peer.version_mismatch {
            self.peer.version_mismatch = version_mismatch;
            if version_mismatch {
                let message = format!(
                    "peer runs version {}, this node {}",
                    heartbeat.version,
                    crate::VERSION
                );
                self.record("version_mismatch", &message).await?;
            }
        }
        let config_mismatch = heartbeat.config_digest != self.config.digest();
        if config_mismatch != self.peer.config_mismatch {
            self.peer.config_mismatch = config_mismatch;
            if config_mismatch {
                let message = "peer's shared settings (cluster, timers, max_clock_offset) differ from this node's";
                self.record("config_mismatch", message).await?;
            }
        }
        let skew = heartbeat.wall_clock_ms.saturating_sub(wall_clock_ms());
        self.peer.clock_skew_ms = Some(skew);
        let limit = u64::try_from(self.config.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
        if skew.unsigned_abs() <= limit {
            self.peer.skewed_samples = 0;
            self.peer.skew_alerted = false;
            return Ok(());
        }
        self.peer.skewed_samples = self.peer.skewed_samples.saturating_add(1);
        if self.peer.skewed_samples >= SKEW_SAMPLES && !self.peer.skew_alerted {
            self.peer.skew_alerted = true;
            let message =
                format!("clock skew to the peer is {skew} ms, above max_clock_offset {limit} ms");
            self.record("clock_skew", &message).await?;
        }
        Ok(())
    }

    async fn record(&self, kind: &str, message: &str) -> Result<(), DriverError> {
        tracing::info!(kind, "{message}");
        self.events.record(kind, message).await;
        Ok(())
    }

    async fn run_command(&mut self, command: Command) -> Result<(), DriverError> {
        match command {
            Command::Persist(durable) => self.store.save_durable(&durable).await?,
            Command::RecordTerm { term, reason } => self.store.record_term(&term, &reason).await?,
            Command::SetRole { role, reason } => {
                self.record(
                    "role_change",
                    &format!("{} is {}: {reason}", self.config.node.name, role.as_str()),
                )
                .await?;
                let term = self
                    .machine
                    .durable()
                    .term
                    .as_ref()
                    .map_or_else(String::new, |term| {
                        format!("{},{}", term.epoch, term.node())
                    });
                self.hooks.role_changed(
                    role.as_str(),
                    crate::ops::hooks::HookEnv {
                        role: role.as_str().into(),
                        term,
                        peer: self.config.peer.name.clone(),
                        reason,
                    },
                );
            }
            Command::SetAdmission(admit) => {
                self.admission.set(admit, self.admission_lease());
                tracing::info!(admit, "admission changed");
            }
            Command::SendHeartbeat { seq } => {
                if self.peer.sent.len() >= SENT_HEARTBEATS_KEPT {
                    self.peer.sent.pop_front();
                }
                self.peer.sent.push_back((seq, Instant::now()));
                self.send(pb::peer_message::Body::Heartbeat(self.heartbeat(seq)))
            }
            Command::SendHandover { new_term } => {
                self.send(pb::peer_message::Body::Handover(pb::HandoverRequest {
                    new_term: Some(wire::term_to_pb(&new_term)),
                    log: Some(wire::log_to_pb(self.machine.log_position())),
                }))
            }
            Command::SendHandoverReply {
                new_term,
                accepted,
                reason,
            } => self.send(pb::peer_message::Body::HandoverReply(pb::HandoverReply {
                new_term: Some(wire::term_to_pb(&new_term)),
                accepted,
                reason,
            })),
            Command::SendSwitchoverRequest => self.send(pb::peer_message::Body::SwitchoverRequest(
                pb::SwitchoverRequest {
                    reason: "failover-now".into(),
                },
            )),
            // Without a replicated database the passive has everything the moment we fence;
            // with one, the tick reports `CaughtUp` once the peer acknowledged the whole log.
            // The files too: a fresh sync cycle must finish before the hand-over.
            Command::StartCatchUp => {
                self.files_target = self
                    .files
                    .as_ref()
                    .map(crate::files::FileSync::request_sync);
                match self.replication_progress() {
                    None | Some((_, true)) if self.files_target.is_none() => {
                        self.feedback.push_back(Event::CaughtUp)
                    }
                    _ => self.catching_up = true,
                }
            }
            Command::FencePeer => match self.hooks.config().command("fence_peer") {
                Some(command) => {
                    let command = command.to_string();
                    let timeout = self.hooks.config().timeout;
                    let inputs = self.own_inputs.clone();
                    let env = crate::ops::hooks::HookEnv {
                        role: self.machine.role().as_str().into(),
                        term: String::new(),
                        peer: self.config.peer.name.clone(),
                        reason: "fence the peer before taking over".into(),
                    };
                    tokio::spawn(async move {
                        let outcome =
                            crate::ops::hooks::run_hook("fence_peer", &command, &env, timeout)
                                .await;
                        let Some(inputs) = inputs.upgrade() else {
                            return;
                        };
                        let message = match &outcome {
                            Ok(line) | Err(line) => line.clone(),
                        };
                        let _ = inputs
                            .send(Input::Record {
                                kind: "fence".into(),
                                message,
                            })
                            .await;
                        let _ = inputs.send(Input::FenceResult(outcome.is_ok())).await;
                    });
                }
                None => {
                    tracing::error!("fence_peer requested but no fence hook is configured");
                    self.feedback.push_back(Event::FenceResult { ok: false });
                }
            },
            Command::Record { kind, message } => self.record(kind.as_str(), &message).await?,
            Command::Reply { id, result } => {
                if let Some(reply) = self.pending_admin.remove(&id) {
                    // The admin caller may have gone away; the outcome is in the events.
                    let _ = reply.send(result);
                }
            }
            Command::Exit => self.exit = true,
        }
        Ok(())
    }

    fn send(&self, body: pb::peer_message::Body) {
        // No dialer connected is normal while the peer is down.
        let _ = self.outbound.send(pb::PeerMessage { body: Some(body) });
    }

    fn heartbeat(&self, seq: u64) -> pb::Heartbeat {
        let durable = self.machine.durable();
        pb::Heartbeat {
            cluster_id: self.config.cluster.clone(),
            node: self.config.node.name.clone(),
            version: crate::VERSION.to_string(),
            schema_version: 0,
            config_digest: self.config.digest(),
            role: wire::role_to_pb(self.machine.role()) as i32,
            term: durable.term.as_ref().map(wire::term_to_pb),
            max_epoch_seen: durable.max_epoch_seen,
            disk: wire::disk_to_pb(durable.disk) as i32,
            log: Some(wire::log_to_pb(self.machine.log_position())),
            wall_clock_ms: wall_clock_ms(),
            active_calls: 0,
            sessions: 0,
            block_logins: false,
            block_calls: false,
            monitoring: wire::monitoring_to_pb(durable.monitoring) as i32,
            monitoring_stamp: durable.monitoring_stamp,
            maintenance: durable.maintenance,
            services: self
                .own_services()
                .into_iter()
                .map(|service| pb::ServiceHealth {
                    name: service.name,
                    healthy: service.healthy,
                    state: service.state,
                })
                .collect(),
            seq,
            ack_seq: self.peer.last_seq,
            fenced: self.machine.fenced(),
            priority: self.config.node.priority,
            reachable: self.machine.reachable(),
            incarnation: self.incarnation,
            ack_incarnation: self.peer.incarnation.unwrap_or(0),
            ack_delay_us: self.peer.received_at.map_or(0, |at| {
                u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX)
            }),
            peer_outdated: self.machine.role() == Role::Active
                && self.replication.as_ref().is_some_and(|status| {
                    let status = status.borrow();
                    status.degraded && status.mode != "async"
                }),
        }
    }

    fn publish_status(&self) {
        let status = self.build_status();
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    fn build_status(&self) -> Status {
        let machine = &self.machine;
        let durable = machine.durable();
        let peer_heartbeat = machine.peer_heartbeat();
        let now_ms = self.now_ms();
        Status {
            cluster: self.config.cluster.clone(),
            node: NodeStatus {
                name: self.config.node.name.clone(),
                role: machine.role().as_str().to_string(),
                term: durable.term.as_ref().map(|term| TermStatus {
                    epoch: term.epoch,
                    node: term.node().to_string(),
                }),
                epoch: durable.max_epoch_seen,
                priority: self.config.node.priority,
                disk: durable.disk.as_str().to_string(),
                monitoring: durable.monitoring.as_str().to_string(),
                maintenance: durable.maintenance,
                fenced: machine.role() == Role::Active && machine.fenced(),
                admitting: self.admission.admits(),
                version: crate::VERSION.to_string(),
                reachable: machine.reachable(),
                took_over: machine.took_over(),
            },
            peer: PeerStatus {
                name: self.config.peer.name.clone(),
                address: self.config.peer.address.clone(),
                state: machine.peer_view().as_str().to_string(),
                role: peer_heartbeat
                    .map_or("unknown", |hb| hb.role.as_str())
                    .to_string(),
                epoch: peer_heartbeat
                    .and_then(|hb| hb.term.as_ref())
                    .map_or(0, |term| term.epoch),
                last_seen_ms: machine
                    .last_heard_ms()
                    .map(|heard| now_ms.saturating_sub(heard)),
                clock_skew_ms: self.peer.clock_skew_ms,
                missed_keepalives: machine.missed_keepalives(),
                maintenance: peer_heartbeat.is_some_and(|hb| hb.maintenance),
                disk: peer_heartbeat
                    .map_or("unknown", |hb| hb.disk.as_str())
                    .to_string(),
                version_mismatch: self.peer.version_mismatch,
                config_mismatch: self.peer.config_mismatch,
                priority: peer_heartbeat.map_or(0, |hb| hb.priority),
                services: self.peer.services.clone(),
                rtt_ms: self.peer.rtt_ms,
            },
            switchover: SwitchoverStatus {
                state: match machine.switchover_phase() {
                    None => "idle",
                    Some(SwitchoverPhase::CatchingUp) => "catching_up",
                    Some(SwitchoverPhase::HandingOver) => "handing_over",
                }
                .to_string(),
                waiting_calls: 0,
            },
            replication: self
                .replication
                .as_ref()
                .map(|status| status.borrow().clone())
                .unwrap_or_default(),
            services: self.own_services(),
            files: self
                .files
                .as_ref()
                .map(crate::files::FileSync::current)
                .unwrap_or_default(),
            ..Status::default()
        }
    }
}

pub fn role_config(config: &Config) -> RoleConfig {
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    RoleConfig {
        name: config.node.name.clone(),
        priority: config.node.priority,
        peer_name: config.peer.name.clone(),
        keepalive_interval_ms: millis(config.timers.keepalive_interval),
        warn_after_misses: config.timers.warn_after_misses,
        failover_after_misses: config.timers.failover_after_misses,
        startup_failover_after_misses: config.timers.startup_failover_after_misses,
        min_failover_interval_ms: millis(config.timers.min_failover_interval),
        fence_peer: config.hooks.command("fence_peer").is_some(),
        switchover_timeout_ms: millis(SWITCHOVER_TIMEOUT),
        shutdown_timeout_ms: millis(SHUTDOWN_TIMEOUT),
    }
}

/// A random 64-bit value from the OS, for the incarnation id.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return u64::try_from(wall_clock_ms()).unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}
