//! `Driver`: the event loop. It selects over the keep-alive ticker and one bounded input channel
//! (peer messages, stream ends, fast-path dials, reachability, admin requests, SIGTERM); for
//! each input it calls `RoleMachine::step` and runs the returned commands in order (`commands`),
//! awaiting each, then publishes the status (`publish`). Peer messages are read in
//! `peer_messages`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tandem_proto::peer as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::admission::Admission;
use super::event_writer::EventWriter;
use super::handle::{AdminReply, DriverHandle, INPUT_QUEUE_BOUND, Input, OUTBOUND_BOUND};
use super::peer_extras::PeerExtras;
use crate::admin::status::{ReplicationStatus, Status};
use crate::config::Config;
use crate::role::{DialOutcome, Event, LogPosition, RoleConfig, RoleMachine};
use crate::state::store::{StateStore, StoreError};

/// How long a switchover may take before it is aborted.
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM on the active waits for the hand-over.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// Admin requests waiting for an answer at once; more are refused as busy.
pub(super) const PENDING_ADMIN_MAX: usize = 64;
/// The admission lease, in keep-alive intervals: renewed on every tick while admitting.
pub(super) const ADMISSION_LEASE_INTERVALS: u32 = 3;
/// Consecutive heartbeats beyond `max_clock_offset` before a clock-skew event: a single late
/// heartbeat (queued during a stall) is not skew.
pub(super) const SKEW_SAMPLES: u32 = 3;
/// Unacknowledged heartbeats remembered for the round-trip measure (at 100 ms: 6 s of them).
pub(super) const SENT_HEARTBEATS_KEPT: usize = 64;

pub struct Driver {
    pub(super) machine: RoleMachine,
    pub(super) store: StateStore,
    pub(super) config: Config,
    pub(super) inputs: mpsc::Receiver<Input>,
    pub(super) outbound: broadcast::Sender<pb::PeerMessage>,
    pub(super) status: watch::Sender<Status>,
    /// Monotonic origin of the machine's `now_ms`.
    pub(super) origin: Instant,
    /// Random per process, sent in heartbeats.
    pub(super) incarnation: u64,
    pub(super) peer: PeerExtras,
    /// Admin requests waiting for their `Command::Reply`.
    pub(super) pending_admin: HashMap<u64, oneshot::Sender<AdminReply>>,
    pub(super) next_admin_id: u64,
    /// Events the driver feeds back to the machine after the current step (e.g. `CaughtUp`).
    pub(super) feedback: VecDeque<Event>,
    pub(super) fast_path_wanted: Arc<AtomicBool>,
    pub(super) fast_path_generation: Arc<AtomicU64>,
    pub(super) admission: Arc<Admission>,
    /// Events go to `state.db` through this queue, off the loop that sends heartbeats.
    pub(super) events: EventWriter,
    /// The replicated database's status, once it is attached.
    pub(super) replication: Option<watch::Receiver<ReplicationStatus>>,
    /// `[[service]]`: the supervisor's view of this node's services, once it is attached.
    pub(super) services: Option<watch::Receiver<Vec<crate::admin::status::ServiceStatus>>>,
    /// A switchover waits until the peer has acknowledged the whole log.
    pub(super) catching_up: bool,
    /// `[[files]]`, once attached: `status.files`, and the files a switchover waits for.
    pub(super) files: Option<crate::files::FileSync>,
    /// The file sync cycle a switchover's catch-up waits for.
    pub(super) files_target: Option<u64>,
    /// `[hooks]`: the role hooks' queue.
    pub(super) hooks: crate::ops::hooks::Hooks,
    /// The driver's own input queue, for the `fence_peer` task's answer (weak: the driver must
    /// not keep its own queue open).
    pub(super) own_inputs: mpsc::WeakSender<Input>,
    /// Witness mode: see `DriverHandle::outdated_confirmed`.
    pub(super) outdated_confirmed: watch::Sender<Option<Instant>>,
    /// `[witness]`: the votes of witness mode, once attached.
    pub(super) quorum: Option<super::quorum::Quorum>,
    pub(super) exit: bool,
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
        let (outdated_confirmed, outdated_confirmed_rx) = watch::channel(None);
        let handle = DriverHandle {
            inputs: inputs_tx,
            status: status_rx,
            store: store.clone(),
            outbound: outbound.clone(),
            fast_path_wanted: fast_path_wanted.clone(),
            fast_path_generation: fast_path_generation.clone(),
            admission: admission.clone(),
            outdated_confirmed: outdated_confirmed_rx,
        };
        let driver = Driver {
            machine,
            store,
            config,
            inputs,
            outbound,
            status: status_tx,
            origin,
            incarnation: crate::random::random_u64(),
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
            quorum: None,
            outdated_confirmed,
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
    pub(super) fn files_caught_up(&self) -> bool {
        match (&self.files, self.files_target) {
            (Some(files), Some(target)) => files.synced_through(target),
            _ => true,
        }
    }

    pub(super) fn own_services(&self) -> Vec<crate::admin::status::ServiceStatus> {
        self.services
            .as_ref()
            .map(|services| services.borrow().clone())
            .unwrap_or_default()
    }

    /// The log position for the machine, and whether a switchover's catch-up is complete.
    pub(super) fn replication_progress(&self) -> Option<(LogPosition, bool)> {
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
        // Witness mode: the witness learns at once that replication degraded or caught up
        // (the renewal's `peer_outdated`), not at the next tick. A passive left marked outdated
        // for a tick after it caught up could not be promoted if the active froze meanwhile;
        // the shipper holds degraded writes' acknowledgements until the witness knows.
        let mut replication = self
            .quorum
            .is_some()
            .then(|| self.replication.clone())
            .flatten();
        while !self.exit {
            tokio::select! {
                biased;
                _ = ticker.tick() => self.on_tick().await?,
                true = crate::watching::next_change(&mut replication) => self.update_votes(),
                true = crate::watching::next_change(&mut services) => self.publish_status(),
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

    pub(super) fn admission_lease(&self) -> Duration {
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
        self.note_admission().await?;
        // Callers that gave up waiting leave a closed channel behind.
        self.pending_admin.retain(|_, reply| !reply.is_closed());
        Ok(())
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) async fn step(&mut self, event: Event) -> Result<(), DriverError> {
        self.feedback.push_back(event);
        while let Some(event) = self.feedback.pop_front() {
            let commands = self.machine.step(event, self.now_ms());
            for command in commands {
                self.run_command(command).await?;
            }
        }
        self.update_votes();
        self.note_admission().await?;
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
                self.peer_proven_gone(
                    peer_port == DialOutcome::Refused && client_port == DialOutcome::Refused,
                );
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
            Input::Witness(report) => self.on_witness(report).await,
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
        // In witness mode every takeover waits for the witness's vote in the fence step.
        fence_peer: config.hooks.command("fence_peer").is_some() || config.witness.is_some(),
        switchover_timeout_ms: millis(SWITCHOVER_TIMEOUT),
        shutdown_timeout_ms: millis(SHUTDOWN_TIMEOUT),
    }
}
