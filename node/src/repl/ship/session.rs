//! `Session`: shipping in one term: the `Shipper`, the writes waiting for release, the stream to
//! the peer, and what happened on it. Its inputs (the writer's commits, waits, the stream's
//! replies) come in here; the shipper's commands run in `commands`.

use std::collections::HashMap;
use std::time::Instant;

use tandem_proto::peer as pb;
use tandem_replication::log::{LogTerm, Shipper, ShipperEvent};
use tandem_replication::merge::DivergenceSearch;
use tokio::sync::{mpsc, watch};

use super::ack_gate::AckGate;
use super::recent::RecentEntries;
use super::stream::{connect_loop, shipper_config};
use crate::admin::status::Status;
use crate::repl::convert;
use crate::repl::handle::Replication;
use crate::repl::messages::{ShipInput, WriteDone, WriteFailure, WriteReply};

pub(super) struct Session {
    pub(super) repl: Replication,
    pub(super) term: LogTerm,
    pub(super) shipper: Shipper,
    pub(super) origin: Instant,
    pub(super) waiting: HashMap<u64, (WriteDone, WriteReply)>,
    pub(super) next_write_id: u64,
    pub(super) last_wait_index: u64,
    pub(super) generation: u64,
    pub(super) out: Option<mpsc::Sender<pb::ShipMessage>>,
    pub(super) connector: tokio::task::JoinHandle<()>,
    pub(super) search: Option<DivergenceSearch>,
    /// A rewind or a snapshot was sent: the peer's next position starts over.
    pub(super) restart_on_position: bool,
    /// A snapshot is being sent on the current stream, by this task.
    pub(super) snapshotting: bool,
    pub(super) snapshot_task: Option<tokio::task::JoinHandle<()>>,
    /// The peer was told it is consistent on this stream, once caught up.
    pub(super) consistent_sent: bool,
    /// The peer's position on this stream was proven to be on our log (hash or acknowledgement).
    pub(super) position_ok: bool,
    pub(super) peer_failed: bool,
    pub(super) snapshot_reported: bool,
    /// The newest committed entries, as the writer handed them over, so a batch of them is
    /// shipped without reading the log back.
    pub(super) recent: RecentEntries,
    /// Witness mode with `mode = "sync"`: the acknowledgements held back while degraded.
    pub(super) ack_gate: Option<AckGate>,
    /// Read barriers for an index not yet reported `Appended` (the read saw a commit whose
    /// report is still on its way), in index order.
    pub(super) pending_reads: Vec<(u64, WriteReply)>,
}

impl Session {
    pub(super) async fn start(repl: &Replication, term: LogTerm) -> Result<Session, String> {
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
        crate::repl::merge::reapply_local(repl);
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
            ack_gate: AckGate::new(repl),
            pending_reads: Vec::new(),
        })
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) async fn run(
        &mut self,
        inputs: &mut mpsc::Receiver<ShipInput>,
        status: &mut watch::Receiver<Status>,
    ) {
        let interval = self.repl.inner.config.timers.keepalive_interval;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut confirmed = self.ack_gate.as_ref().map(|gate| gate.confirmed.clone());
        loop {
            tokio::select! {
                biased;
                true = crate::watching::next_change(&mut confirmed) => self.release_held(),
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

    /// A read that saw the log up to `index`: answered at once if the peer has it (also while
    /// writes are refused under `sync_strict`), else released like a write.
    async fn read_barrier(&mut self, index: u64, reply: WriteReply) {
        if index <= self.shipper.peer_acked_index() {
            let _ = reply.send(Ok(read_done()));
        } else {
            self.wait_for(index, read_done(), reply).await;
        }
    }

    /// Hands the shipper a wait for `index` (a write's, or a read barrier's).
    async fn wait_for(&mut self, index: u64, done: WriteDone, reply: WriteReply) {
        let index = index.max(self.last_wait_index);
        self.last_wait_index = index;
        let write_id = self.next_write_id;
        self.next_write_id += 1;
        self.waiting.insert(write_id, (done, reply));
        self.step(ShipperEvent::WriteWaiting { write_id, index })
            .await;
    }

    pub(super) fn end(mut self) {
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
        for (_, reply) in self.pending_reads.drain(..) {
            let _ = reply.send(Err(WriteFailure::OutcomeUnknown(reason.into())));
        }
        self.repl.update_status(|status| {
            status.peer_acked_index = 0;
            status.lag_entries = 0;
            status.snapshot_progress = None;
        });
        tracing::info!(term = %self.term, "shipping ends");
    }

    pub(super) async fn on_tick(&mut self) {
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

    pub(super) async fn on_input(&mut self, input: ShipInput) {
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
                let appended = self.shipper.last_index();
                let ready = self
                    .pending_reads
                    .partition_point(|(index, _)| *index <= appended);
                let reads: Vec<_> = self.pending_reads.drain(..ready).collect();
                for (index, reply) in reads {
                    self.read_barrier(index, reply).await;
                }
            }
            ShipInput::ReadBarrier { index, reply } => {
                if index > self.shipper.last_index() {
                    let at = self
                        .pending_reads
                        .partition_point(|(queued, _)| *queued <= index);
                    self.pending_reads.insert(at, (index, reply));
                } else {
                    self.read_barrier(index, reply).await;
                }
            }
            ShipInput::Wait { index, done, reply } => {
                if index > self.shipper.last_index() {
                    let _ = reply.send(Err(WriteFailure::OutcomeUnknown(
                        "the write committed outside this node's term".into(),
                    )));
                    return;
                }
                self.wait_for(index, done, reply).await;
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
    pub(super) async fn start_snapshot(
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
            let result = crate::repl::snapshot_send::send(&repl, &out, &reason, keep_old_as).await;
            let _ = repl
                .inner
                .ship
                .send(ShipInput::SnapshotSent { generation, result })
                .await;
        }));
        Ok("snapshot started; `tandemctl status` shows its progress".into())
    }

    pub(super) async fn on_reply(&mut self, reply: pb::ShipReply) {
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
                crate::repl::merge::reapply(&self.repl, orphans).await;
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

    pub(super) async fn drop_stream(&mut self) {
        self.out = None;
        let failed = self.peer_failed;
        Box::pin(self.step(ShipperEvent::PeerState {
            connected: false,
            failed,
        }))
        .await;
        // The connector notices the closed sender and dials again.
    }

    pub(super) async fn halted(&self, message: String) {
        self.repl.update_status(|status| {
            if status.halted != message {
                status.halted = message.clone();
            }
        });
        self.repl.record("replication_halted", &message).await;
    }

    pub(super) async fn step(&mut self, event: ShipperEvent) {
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
}

/// What a read barrier is answered with: it wrote nothing.
fn read_done() -> WriteDone {
    WriteDone {
        rows_affected: Vec::new(),
        last_insert_rowid: 0,
        log_index: 0,
        replayed: false,
    }
}

pub(super) fn active_term(status: &Status) -> Option<LogTerm> {
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
