//! The ship task: on the active, the log core's `Shipper` over a `Replicate` stream.
//!
//! The task idles while this node is not active. When it becomes active in a term it starts a
//! session: a `Shipper` seeded from the log's transactions, and a connector that dials the peer's
//! peer port on a connection of its own (never the keep-alive one), opens `Replicate`, and
//! forwards the replies here. The task runs the shipper's commands in order: read and send
//! batches, answer waiting writes, degrade (the peer is told it is `outdated`), refuse writes,
//! truncate, and on a halt for divergence run the divergence search and tell the peer to rewind.
//! When the node stops being active, every write still waiting is answered "outcome unknown".

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tandem_proto::peer as pb;
use tandem_proto::peer::peer_client::PeerClient;
use tandem_replication::bridge::hashed_of;
use tandem_replication::log::{
    Batch, HaltReason, LogTerm, Mode, Shipper, ShipperCommand, ShipperConfig, ShipperEvent,
    Unavailable, WriteRefusal,
};
use tandem_replication::merge::{DivergenceOutcome, DivergenceSearch, ProbeAnswer, SearchStep};
use tandem_replication::store::LogEntry;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::Replication;
use super::convert;
use super::writer::{WriteDone, WriteFailure, WriteReply};
use crate::admin::status::Status;
use crate::config::ReplicationMode;

/// Numbers every `Replicate` stream this process opens.
static STREAM_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Messages queued for one `Replicate` stream.
const STREAM_QUEUE_BOUND: usize = 64;
/// Bounds of the newest entries kept in memory for shipping (`RecentEntries`).
const RECENT_MAX_ENTRIES: usize = 4096;
const RECENT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Reconnect back-off of the replication connection.
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

pub enum ShipInput {
    /// The writer committed entries up to `last_index`: `entries`, as stored, or none if a
    /// write had too many to hand over (the shipper then reads them from the log).
    Appended {
        last_index: u64,
        bytes: u64,
        entries: Vec<LogEntry>,
    },
    /// A committed write waits for `index` to be released.
    Wait {
        index: u64,
        done: WriteDone,
        reply: WriteReply,
    },
    StreamUp {
        generation: u64,
        sender: mpsc::Sender<pb::ShipMessage>,
    },
    Reply {
        generation: u64,
        reply: pb::ShipReply,
    },
    StreamDown {
        generation: u64,
        reason: String,
    },
    /// A snapshot sent on stream `generation` finished (its last index) or failed.
    SnapshotSent {
        generation: u64,
        result: Result<u64, String>,
    },
    /// `tandemctl resync --to-peer` (or the peer's `--from-peer`).
    ForceSnapshot {
        reason: String,
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
}

pub async fn run(repl: Replication, mut inputs: mpsc::Receiver<ShipInput>) {
    let mut status = repl.inner.driver.status.clone();
    loop {
        let Some(term) = wait_until_active(&mut status, &mut inputs).await else {
            return;
        };
        let mut session = match Session::start(&repl, term).await {
            Ok(session) => session,
            Err(error) => {
                tracing::error!(%error, "cannot start shipping");
                repl.update_status(|s| s.halted = format!("cannot start shipping: {error}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        session.run(&mut inputs, &mut status).await;
        session.end();
    }
}

/// Waits until this node is active; answers stray waiting writes meanwhile.
async fn wait_until_active(
    status: &mut watch::Receiver<Status>,
    inputs: &mut mpsc::Receiver<ShipInput>,
) -> Option<LogTerm> {
    loop {
        if let Some(term) = active_term(&status.borrow_and_update()) {
            return Some(term);
        }
        tokio::select! {
            changed = status.changed() => changed.ok()?,
            input = inputs.recv() => match input? {
                ShipInput::Wait { reply, .. } => {
                    let _ = reply.send(Err(WriteFailure::OutcomeUnknown(
                        "this node stopped being the active before the peer acknowledged the write"
                            .into(),
                    )));
                }
                ShipInput::ForceSnapshot { reply: Some(reply), .. } => {
                    let _ = reply.send(Err(
                        "this node is not the active; run `resync --to-peer` on the active, or \
                         `resync --from-peer` here"
                            .into(),
                    ));
                }
                _ => {}
            },
        }
    }
}

fn active_term(status: &Status) -> Option<LogTerm> {
    if status.node.role != "active" {
        return None;
    }
    let term = status.node.term.as_ref()?;
    Some(LogTerm::new(
        term.epoch,
        term.node.clone(),
        status.node.priority,
    ))
}

struct Session {
    repl: Replication,
    term: LogTerm,
    shipper: Shipper,
    origin: Instant,
    waiting: HashMap<u64, (WriteDone, WriteReply)>,
    next_write_id: u64,
    last_wait_index: u64,
    generation: u64,
    out: Option<mpsc::Sender<pb::ShipMessage>>,
    connector: tokio::task::JoinHandle<()>,
    search: Option<DivergenceSearch>,
    /// A rewind or a snapshot was sent: the peer's next position starts over.
    restart_on_position: bool,
    /// A snapshot is being sent on the current stream, by this task.
    snapshotting: bool,
    snapshot_task: Option<tokio::task::JoinHandle<()>>,
    /// The peer was told it is consistent on this stream, once caught up.
    consistent_sent: bool,
    /// The peer's position on this stream was proven to be on our log (hash or acknowledgement).
    position_ok: bool,
    peer_failed: bool,
    snapshot_reported: bool,
    /// The newest committed entries, as the writer handed them over, so a batch of them is
    /// shipped without reading the log back.
    recent: RecentEntries,
}

impl Session {
    async fn start(repl: &Replication, term: LogTerm) -> Result<Session, String> {
        let store = repl.store();
        let first = store.first_log_idx().await.map_err(|e| e.to_string())?;
        let last = store.last_log_position().await.map_err(|e| e.to_string())?;
        let truncated = first.map_or(last.idx, |first| first.saturating_sub(1));
        let config = shipper_config(repl);
        let origin = Instant::now();
        let mut shipper = Shipper::new(config, truncated, 0).map_err(|e| e.to_string())?;
        // The retained log, transaction by transaction, so batches never split one.
        let transactions: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT max(idx), sum(64 + length(pk) + coalesce(length(new_image), 0) \
             + coalesce(length(old_image), 0)) FROM _tandem_log GROUP BY txid ORDER BY 1",
        )
        .fetch_all(store.reader())
        .await
        .map_err(|e| e.to_string())?;
        for (last_index, bytes) in transactions {
            let last_index = last_index.max(0) as u64;
            if last_index > shipper.last_index() {
                shipper.step(
                    ShipperEvent::Appended {
                        last_index,
                        bytes: bytes.max(0) as u64,
                    },
                    0,
                );
            }
        }
        // A refusal belongs to the shipper that made it; a new one starts admitting.
        if let Ok(mut refusing) = repl.inner.refusing.lock() {
            *refusing = None;
        }
        let connector = tokio::spawn(connect_loop(repl.clone(), term.clone()));
        // Orphans this node kept from an earlier rewind are merged now that it is the active.
        super::merge::reapply_local(repl);
        repl.update_status(|status| {
            status.halted.clear();
            status.degraded = false;
        });
        tracing::info!(term = %term, last_index = last.idx, "shipping starts");
        Ok(Session {
            repl: repl.clone(),
            term,
            shipper,
            origin,
            waiting: HashMap::new(),
            next_write_id: 1,
            last_wait_index: 0,
            generation: 0,
            out: None,
            connector,
            search: None,
            restart_on_position: false,
            snapshotting: false,
            snapshot_task: None,
            consistent_sent: false,
            position_ok: false,
            peer_failed: false,
            snapshot_reported: false,
            recent: RecentEntries::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(
        &mut self,
        inputs: &mut mpsc::Receiver<ShipInput>,
        status: &mut watch::Receiver<Status>,
    ) {
        let interval = self.repl.inner.config.timers.keepalive_interval;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if active_term(&status.borrow_and_update()).as_ref() != Some(&self.term) {
                        return;
                    }
                }
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input).await,
                    None => return,
                },
                _ = ticker.tick() => self.on_tick().await,
            }
        }
    }

    fn end(mut self) {
        self.connector.abort();
        if let Some(task) = self.snapshot_task.take() {
            task.abort();
        }
        if let Ok(mut refusing) = self.repl.inner.refusing.lock() {
            *refusing = None;
        }
        let reason = "this node stopped being the active before the peer acknowledged the write";
        for (_, (_, reply)) in self.waiting.drain() {
            let _ = reply.send(Err(WriteFailure::OutcomeUnknown(reason.into())));
        }
        self.repl.update_status(|status| {
            status.peer_acked_index = 0;
            status.lag_entries = 0;
            status.snapshot_progress = None;
        });
        tracing::info!(term = %self.term, "shipping ends");
    }

    async fn on_tick(&mut self) {
        let (failed, peer_disk) = {
            let status = self.repl.inner.driver.status.borrow();
            (status.peer.state == "failed", status.peer.disk.clone())
        };
        if self.consistent_sent && peer_disk == "outdated" {
            // The verdict and the heartbeats travel on different connections: an older
            // "outdated" may have landed after it. Say it again while caught up.
            self.consistent_sent = false;
        }
        if failed != self.peer_failed {
            self.peer_failed = failed;
            let connected = self.out.is_some();
            self.step(ShipperEvent::PeerState { connected, failed })
                .await;
        }
        self.step(ShipperEvent::Tick).await;
    }

    async fn on_input(&mut self, input: ShipInput) {
        match input {
            ShipInput::Appended {
                last_index,
                bytes,
                entries,
            } => {
                self.recent.push(entries, last_index);
                if last_index > self.shipper.last_index() {
                    self.step(ShipperEvent::Appended { last_index, bytes })
                        .await;
                }
            }
            ShipInput::Wait { index, done, reply } => {
                if index > self.shipper.last_index() {
                    let _ = reply.send(Err(WriteFailure::OutcomeUnknown(
                        "the write committed outside this node's term".into(),
                    )));
                    return;
                }
                let index = index.max(self.last_wait_index);
                self.last_wait_index = index;
                let write_id = self.next_write_id;
                self.next_write_id += 1;
                self.waiting.insert(write_id, (done, reply));
                self.step(ShipperEvent::WriteWaiting { write_id, index })
                    .await;
            }
            ShipInput::StreamUp { generation, sender } => {
                self.generation = generation;
                self.out = Some(sender);
                self.search = None;
                self.restart_on_position = false;
                self.snapshotting = false;
                self.consistent_sent = false;
                self.position_ok = false;
                self.snapshot_reported = false;
                let failed = self.peer_failed;
                self.step(ShipperEvent::PeerState {
                    connected: true,
                    failed,
                })
                .await;
                if self.shipper.degraded() {
                    // It degraded while the peer was away: the peer learns it is outdated first.
                    let message = "replication degraded while this node was away; it is outdated \
                                   until it catches up";
                    self.verdict(pb::DiskState::Outdated, message).await;
                }
            }
            ShipInput::StreamDown { generation, reason } => {
                if generation != self.generation || self.out.is_none() {
                    return;
                }
                tracing::debug!(%reason, "replication stream down");
                self.out = None;
                self.search = None;
                self.restart_on_position = false;
                self.snapshotting = false;
                let failed = self.peer_failed;
                self.step(ShipperEvent::PeerState {
                    connected: false,
                    failed,
                })
                .await;
            }
            ShipInput::Reply { generation, reply } => {
                if generation == self.generation && self.out.is_some() {
                    self.on_reply(reply).await;
                }
            }
            ShipInput::SnapshotSent { generation, result } => {
                if generation != self.generation {
                    return;
                }
                self.snapshotting = false;
                self.snapshot_reported = false;
                match result {
                    Ok(index) => {
                        let message = format!("snapshot at log index {index} sent to the peer");
                        self.repl.record("snapshot", &message).await;
                    }
                    Err(reason) => {
                        self.halted(format!("snapshot to the peer failed: {reason}"))
                            .await;
                        self.drop_stream().await;
                    }
                }
            }
            ShipInput::ForceSnapshot { reason, reply } => {
                let answer = self.start_snapshot(&reason, true, None).await;
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
        }
    }

    /// Starts sending a snapshot on the current stream. `forced`: the shipper is told the peer
    /// went away first, so no batch interleaves with the chunks.
    async fn start_snapshot(
        &mut self,
        reason: &str,
        forced: bool,
        keep_old_as: Option<String>,
    ) -> Result<String, String> {
        let Some(out) = self.out.clone() else {
            return Err("the peer is not connected for replication".into());
        };
        if self.snapshotting {
            return Err("a snapshot is already being sent".into());
        }
        if forced {
            let failed = self.peer_failed;
            self.step(ShipperEvent::PeerState {
                connected: false,
                failed,
            })
            .await;
        }
        self.snapshotting = true;
        self.restart_on_position = true;
        self.consistent_sent = false;
        self.position_ok = false;
        let repl = self.repl.clone();
        let generation = self.generation;
        let reason = reason.to_string();
        if let Some(old) = self.snapshot_task.take() {
            old.abort();
        }
        self.snapshot_task = Some(tokio::spawn(async move {
            let result = super::snapshot_send::send(&repl, &out, &reason, keep_old_as).await;
            let _ = repl
                .inner
                .ship
                .send(ShipInput::SnapshotSent { generation, result })
                .await;
        }));
        Ok("snapshot started; `tandemctl status` shows its progress".into())
    }

    async fn on_reply(&mut self, reply: pb::ShipReply) {
        use pb::ship_reply::Body;
        match reply.body {
            Some(Body::Position(position)) => {
                if self.restart_on_position {
                    self.restart_on_position = false;
                    self.restart_position().await;
                }
                let ours = self
                    .repl
                    .store()
                    .hash_at(position.index)
                    .await
                    .ok()
                    .flatten();
                let hash_matches = ours.map(|hash| hash == position.rolling_hash);
                self.position_ok = hash_matches == Some(true);
                if position.index <= self.shipper.last_index() && hash_matches == Some(true) {
                    self.repl.update_status(|status| status.halted.clear());
                }
                self.step(ShipperEvent::PeerPosition {
                    index: position.index,
                    hash_matches,
                })
                .await;
            }
            Some(Body::Ack(index)) => self.step(ShipperEvent::PeerAcked { index }).await,
            Some(Body::Refused(refusal)) => match convert::refusal_from_pb(&refusal) {
                Some(parsed) => {
                    self.step(ShipperEvent::PeerRefused {
                        from_index: refusal.from_index,
                        refusal: parsed,
                    })
                    .await
                }
                None => {
                    let message = format!("the peer does not receive: {}", refusal.message);
                    self.halted(message).await;
                    self.drop_stream().await;
                }
            },
            Some(Body::HashAt(answer)) => self.on_hash_at(answer).await,
            Some(Body::Orphans(orphans)) => {
                super::merge::reapply(&self.repl, orphans).await;
            }
            Some(Body::WantSnapshot(reason)) => {
                let reason = format!("the peer asked for a full copy ({reason})");
                if let Err(error) = self.start_snapshot(&reason, true, None).await {
                    tracing::warn!(%error, "cannot start the snapshot the peer asked for");
                }
            }
            None => {}
        }
    }

    async fn drop_stream(&mut self) {
        self.out = None;
        let failed = self.peer_failed;
        Box::pin(self.step(ShipperEvent::PeerState {
            connected: false,
            failed,
        }))
        .await;
        // The connector notices the closed sender and dials again.
    }

    async fn halted(&self, message: String) {
        self.repl.update_status(|status| {
            if status.halted != message {
                status.halted = message.clone();
            }
        });
        self.repl.record("replication_halted", &message).await;
    }

    async fn step(&mut self, event: ShipperEvent) {
        let now_ms = self.now_ms();
        let commands = self.shipper.step(event, now_ms);
        for command in commands {
            self.run_command(command).await;
        }
        let shipper = &self.shipper;
        let (last, acked, lag, degraded) = (
            shipper.last_index(),
            shipper.peer_acked_index(),
            shipper.lag_entries(),
            shipper.degraded(),
        );
        self.repl.update_status(|status| {
            status.last_index = last;
            status.peer_acked_index = acked;
            status.lag_entries = lag;
            status.degraded = degraded;
        });
        let caught_up = self.position_ok && acked >= last && self.shipper.halted().is_none();
        if !self.consistent_sent
            && caught_up
            && !degraded
            && !self.snapshotting
            && self.out.is_some()
        {
            self.consistent_sent = true;
            self.verdict(pb::DiskState::Consistent, "caught up with the active's log")
                .await;
        }
    }

    async fn run_command(&mut self, command: ShipperCommand) {
        match command {
            ShipperCommand::SendBatch {
                from_index,
                to_index,
            } => self.send_batch(from_index, to_index).await,
            ShipperCommand::AckWrites { write_ids } => {
                for id in write_ids {
                    if let Some((done, reply)) = self.waiting.remove(&id) {
                        let _ = reply.send(Ok(done));
                    }
                }
            }
            ShipperCommand::OutcomeUnknown { write_ids } => {
                for id in write_ids {
                    if let Some((_, reply)) = self.waiting.remove(&id) {
                        let _ = reply.send(Err(WriteFailure::OutcomeUnknown(
                            "committed on the active, but the peer's acknowledgement never came"
                                .into(),
                        )));
                    }
                }
            }
            ShipperCommand::Degrade { reason } => {
                let why = unavailable_text(reason);
                let message =
                    format!("replication degraded to async ({why}); the peer is now outdated");
                self.verdict(pb::DiskState::Outdated, &message).await;
                self.repl.record("replication_degraded", &message).await;
            }
            ShipperCommand::Resync => {
                let message = "the peer caught up; replication is synchronous again";
                self.verdict(pb::DiskState::Consistent, message).await;
                self.repl.record("replication_resynced", message).await;
            }
            ShipperCommand::RefuseWrites { reason } => {
                let text = match reason {
                    WriteRefusal::PeerUnavailable(why) => format!(
                        "writes refused: sync_strict and the peer is unavailable ({})",
                        unavailable_text(why)
                    ),
                    WriteRefusal::WaitingWritesFull => {
                        "writes refused: too many writes wait for the peer".to_string()
                    }
                };
                if let Ok(mut refusing) = self.repl.inner.refusing.lock() {
                    *refusing = Some(text.clone());
                }
                self.repl.record("replication_refusing", &text).await;
            }
            ShipperCommand::AdmitWrites => {
                if let Ok(mut refusing) = self.repl.inner.refusing.lock() {
                    *refusing = None;
                }
            }
            ShipperCommand::NeedSnapshot { peer_index } => {
                if !self.snapshot_reported && !self.snapshotting {
                    self.snapshot_reported = true;
                    let first = self.shipper.first_retained_index();
                    let mut reason = format!(
                        "the peer is at index {peer_index}, before the oldest retained entry \
                         {first}"
                    );
                    // A position below retention cannot be checked against our hashes: the
                    // peer may hold changes we never had. It keeps its old database.
                    let keep = (!self.position_ok).then(|| {
                        let keep = format!("diverged-{}.db", self.term.epoch);
                        reason.push_str(&format!(
                            "; its position could not be checked against this log, so it keeps \
                             its old database as {keep} in case it holds changes never \
                             replicated"
                        ));
                        keep
                    });
                    if let Err(error) = Box::pin(self.start_snapshot(&reason, false, keep)).await {
                        self.halted(format!("{reason}; cannot send a snapshot: {error}"))
                            .await;
                    }
                }
            }
            ShipperCommand::Truncate { before_index } => {
                if let Err(error) = self.repl.store().truncate_log_before(before_index).await {
                    tracing::warn!(%error, "cannot truncate the replication log");
                }
            }
            ShipperCommand::Halt { reason } => self.on_halt(reason).await,
        }
    }

    async fn verdict(&self, disk: pb::DiskState, reason: &str) {
        if let Some(out) = &self.out {
            let message = pb::ShipMessage {
                body: Some(pb::ship_message::Body::Disk(pb::DiskVerdict {
                    disk: disk as i32,
                    reason: reason.to_string(),
                })),
            };
            let _ = out.send(message).await;
        }
    }

    async fn send_batch(&mut self, from_index: u64, to_index: u64) {
        let Some(out) = self.out.clone() else {
            return;
        };
        let count = usize::try_from(to_index.saturating_sub(from_index) + 1).unwrap_or(usize::MAX);
        let held = self.recent.range(from_index, to_index);
        let read = match held {
            Some(entries) => Ok(entries),
            None => {
                self.repl
                    .store()
                    .read_log(from_index.saturating_sub(1), count, usize::MAX)
                    .await
            }
        };
        let entries = match read {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, from_index, to_index, "cannot read the log to ship");
                self.drop_stream().await;
                return;
            }
        };
        let repl = &self.repl;
        let hashed = entries
            .iter()
            .take_while(|entry| entry.idx <= to_index)
            .map(|entry| hashed_of(entry, |node| repl.priority_of(node)))
            .collect();
        let batch = Batch::new(self.term.clone(), hashed);
        let message = pb::ShipMessage {
            body: Some(pb::ship_message::Body::Batch(convert::batch_to_pb(&batch))),
        };
        if out.send(message).await.is_err() {
            self.drop_stream().await;
        }
    }

    async fn on_halt(&mut self, reason: HaltReason) {
        let (text, diverged_at) = match &reason {
            HaltReason::Diverged { peer_index } => (
                format!("the peer's log differs from ours at or before index {peer_index}"),
                Some(*peer_index),
            ),
            HaltReason::PeerAhead {
                peer_index,
                last_index,
            } => (
                format!("the peer's log ends at {peer_index}, after ours at {last_index}"),
                Some(*peer_index),
            ),
            HaltReason::Refused(refusal) => (format!("the peer refused a batch: {refusal}"), None),
            HaltReason::RefusedRepeatedly(refusal) => (
                format!("the peer refused a batch repeatedly: {refusal}"),
                None,
            ),
        };
        self.halted(format!("shipping halted: {text}")).await;
        if let Some(their_last) = diverged_at {
            let search = DivergenceSearch::new(self.shipper.last_index(), their_last);
            self.search = Some(search);
            self.next_probe().await;
        }
    }

    async fn next_probe(&mut self) {
        let Some(search) = &self.search else {
            return;
        };
        match search.step() {
            SearchStep::Probe { index } => {
                if let Some(out) = &self.out {
                    let probe = pb::ShipMessage {
                        body: Some(pb::ship_message::Body::Probe(pb::HashProbe { index })),
                    };
                    let _ = out.send(probe).await;
                }
            }
            SearchStep::Done(DivergenceOutcome::Common { index }) => {
                self.search = None;
                let hash = self
                    .repl
                    .store()
                    .hash_at(index)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                let message = format!(
                    "divergence: the last common index is {index}; the peer moves its entries \
                     after it to its orphans table and rewinds"
                );
                self.repl.record("merge", &message).await;
                if let Some(out) = &self.out {
                    self.restart_on_position = true;
                    let rewind = pb::ShipMessage {
                        body: Some(pb::ship_message::Body::Rewind(pb::Rewind {
                            to_index: index,
                            hash,
                        })),
                    };
                    let _ = out.send(rewind).await;
                }
            }
            SearchStep::Done(DivergenceOutcome::PastRetention { unknown_index }) => {
                self.search = None;
                let keep = format!("diverged-{}.db", self.term.epoch);
                let reason = format!(
                    "the logs diverged at or below index {unknown_index}, which is no longer \
                     retained: the peer keeps its database as {keep} and takes a full copy"
                );
                self.repl.record("diverged", &reason).await;
                if let Err(error) = Box::pin(self.start_snapshot(&reason, true, Some(keep))).await {
                    self.halted(format!("{reason}; cannot send the snapshot: {error}"))
                        .await;
                }
            }
        }
    }

    async fn on_hash_at(&mut self, answer: pb::HashAt) {
        let ours = self.repl.store().hash_at(answer.index).await.ok().flatten();
        let probe = match (ours, answer.found) {
            (Some(our_hash), true) => ProbeAnswer::Hashes {
                our_hash,
                their_hash: answer.hash,
            },
            _ => ProbeAnswer::Unknown,
        };
        let Some(search) = &mut self.search else {
            return;
        };
        if let Err(error) = search.answer(answer.index, probe) {
            tracing::warn!(%error, "dropping a stale hash answer");
            return;
        }
        self.next_probe().await;
    }

    /// After a rewind the peer reports its new position on the same stream: start over as on a
    /// new stream.
    async fn restart_position(&mut self) {
        let failed = self.peer_failed;
        self.step(ShipperEvent::PeerState {
            connected: false,
            failed,
        })
        .await;
        self.step(ShipperEvent::PeerState {
            connected: true,
            failed,
        })
        .await;
    }
}

fn unavailable_text(reason: Unavailable) -> String {
    match reason {
        Unavailable::SyncTimeout { waited_ms } => {
            format!("the oldest write waited {waited_ms} ms for the peer, above sync_timeout")
        }
        Unavailable::PeerFailed => "the peer is failed".into(),
    }
}

fn shipper_config(repl: &Replication) -> ShipperConfig {
    let config = &repl.inner.config;
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    ShipperConfig {
        mode: match config.replication.mode {
            ReplicationMode::Sync => Mode::Sync,
            ReplicationMode::Async => Mode::Async,
        },
        sync_strict: config.replication.sync_strict,
        sync_timeout_ms: millis(config.replication.sync_timeout),
        tick_interval_ms: millis(config.timers.keepalive_interval),
        batches_in_flight_max: 4,
        retention_entries: config.replication.retention_entries,
        retention_bytes: config.replication.retention_bytes,
        ..ShipperConfig::default()
    }
}

/// Dials the peer for replication until the session ends (the task is aborted).
async fn connect_loop(repl: Replication, term: LogTerm) {
    let config = &repl.inner.config;
    let inputs = repl.inner.ship.clone();
    let mut backoff = BACKOFF_FIRST;
    loop {
        // Unique across sessions, so a late message of an old session never matches.
        let generation = STREAM_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let connected = crate::tls::connect(
            &config.peer.address,
            &config.peer.name,
            repl.inner.peer_tls.clone(),
            config.timers.keepalive_interval * 5,
        )
        .await;
        match connected {
            Ok(channel) => {
                let reason = stream_on(&repl, channel, &term, generation, &inputs).await;
                let _ = inputs
                    .send(ShipInput::StreamDown { generation, reason })
                    .await;
                backoff = BACKOFF_FIRST;
            }
            Err(error) => tracing::debug!(%error, "replication dial failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn stream_on(
    repl: &Replication,
    channel: tonic::transport::Channel,
    term: &LogTerm,
    generation: u64,
    inputs: &mpsc::Sender<ShipInput>,
) -> String {
    let (sender, receiver) = mpsc::channel(STREAM_QUEUE_BOUND);
    let hello = pb::ShipMessage {
        body: Some(pb::ship_message::Body::Hello(pb::ShipHello {
            term: Some(convert::term_to_pb(term)),
            node: repl.inner.config.node.name.clone(),
            last_index: 0,
        })),
    };
    if sender.send(hello).await.is_err() {
        return "stream closed".into();
    }
    let mut client = PeerClient::new(channel)
        .max_decoding_message_size(super::receive::SHIP_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(super::receive::SHIP_MESSAGE_BYTES_MAX);
    let mut replies = match client.replicate(ReceiverStream::new(receiver)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return format!("Replicate refused: {}", status.message()),
    };
    // The session holds the only sender: when it drops it, the request stream ends, the peer
    // ends its replies, and this loop dials again.
    if inputs
        .send(ShipInput::StreamUp { generation, sender })
        .await
        .is_err()
    {
        return "ship task gone".into();
    }
    loop {
        match replies.message().await {
            Ok(Some(reply)) => {
                if inputs
                    .send(ShipInput::Reply { generation, reply })
                    .await
                    .is_err()
                {
                    return "ship task gone".into();
                }
            }
            Ok(None) => return "the peer ended the stream".into(),
            Err(status) => return format!("stream failed: {}", status.message()),
        }
    }
}

/// The newest committed entries, consecutive, as the writer handed them over. Only the writer
/// appends to the log while this node is active in a term, so these are the log's entries; a
/// gap (a write too large to hand over) starts the window afresh.
#[derive(Default)]
struct RecentEntries {
    entries: VecDeque<LogEntry>,
    bytes: usize,
}

impl RecentEntries {
    /// Adds the entries committed up to `last_index`.
    fn push(&mut self, entries: Vec<LogEntry>, last_index: u64) {
        let continues = |first: &LogEntry, held: &VecDeque<LogEntry>| {
            held.back().is_none_or(|back| back.idx + 1 == first.idx)
        };
        match entries.first() {
            Some(first) if continues(first, &self.entries) => {}
            _ => {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        if entries.last().is_none_or(|last| last.idx != last_index) {
            return;
        }
        for entry in entries {
            self.bytes += entry.approx_size_bytes();
            self.entries.push_back(entry);
        }
        while self.entries.len() > RECENT_MAX_ENTRIES || self.bytes > RECENT_MAX_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.approx_size_bytes(),
                None => break,
            }
        }
    }

    /// The entries `from..=to`, if all are held.
    fn range(&self, from: u64, to: u64) -> Option<Vec<LogEntry>> {
        let first = self.entries.front()?.idx;
        let last = self.entries.back()?.idx;
        if from < first || to > last || from > to {
            return None;
        }
        let start = usize::try_from(from - first).ok()?;
        let end = usize::try_from(to - first).ok()?;
        Some(self.entries.range(start..=end).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use tandem_replication::store::ChangeOp;

    use super::*;

    fn entry(idx: u64, image_bytes: usize) -> LogEntry {
        LogEntry {
            idx,
            term_epoch: 1,
            term_node: "a".into(),
            txid: idx,
            table: "t".into(),
            pk: format!("{{\"id\":{idx}}}"),
            op: ChangeOp::Insert,
            new_image: Some("x".repeat(image_bytes)),
            old_image: None,
            hlc_ms: 1,
            hlc_logical: 0,
            hlc_node: "a".into(),
            origin: "a".into(),
            hash: idx,
        }
    }

    fn indexes(entries: Option<Vec<LogEntry>>) -> Option<Vec<u64>> {
        entries.map(|entries| entries.iter().map(|entry| entry.idx).collect())
    }

    #[test]
    fn recent_entries_serve_only_ranges_they_hold_whole() {
        let mut recent = RecentEntries::default();
        assert_eq!(indexes(recent.range(1, 1)), None);
        recent.push(vec![entry(1, 10), entry(2, 10)], 2);
        recent.push(vec![entry(3, 10)], 3);
        assert_eq!(indexes(recent.range(1, 3)), Some(vec![1, 2, 3]));
        assert_eq!(indexes(recent.range(2, 2)), Some(vec![2]));
        assert_eq!(indexes(recent.range(2, 4)), None, "4 is not held");
        assert_eq!(indexes(recent.range(0, 2)), None, "0 is not held");

        // A write too large to hand over leaves a gap: the window starts afresh.
        recent.push(Vec::new(), 5);
        assert_eq!(indexes(recent.range(3, 3)), None);
        recent.push(vec![entry(6, 10)], 6);
        assert_eq!(indexes(recent.range(6, 6)), Some(vec![6]));
        // Entries that do not continue the window replace it.
        recent.push(vec![entry(9, 10)], 9);
        assert_eq!(indexes(recent.range(6, 6)), None);
        assert_eq!(indexes(recent.range(9, 9)), Some(vec![9]));
    }

    #[test]
    fn recent_entries_are_bounded_by_count_and_bytes() {
        let mut recent = RecentEntries::default();
        for idx in 1..=(RECENT_MAX_ENTRIES as u64 + 10) {
            recent.push(vec![entry(idx, 1)], idx);
        }
        assert_eq!(recent.entries.len(), RECENT_MAX_ENTRIES);
        assert_eq!(recent.entries.front().map(|e| e.idx), Some(11));

        let mut recent = RecentEntries::default();
        let big = RECENT_MAX_BYTES / 3;
        for idx in 1..=4 {
            recent.push(vec![entry(idx, big)], idx);
        }
        assert!(recent.bytes <= RECENT_MAX_BYTES, "{}", recent.bytes);
        assert_eq!(indexes(recent.range(4, 4)), Some(vec![4]));
        assert_eq!(indexes(recent.range(1, 1)), None, "the oldest went first");
    }
}
