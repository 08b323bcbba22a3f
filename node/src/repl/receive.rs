//! The passive's side of shipping: the `Replicate` handler.
//!
//! One stream at a time applies. It answers the opening hello with the durable position, then
//! runs the log core's `Receiver` on every batch: fencing by term, gaps, checksums and hashes.
//! An accepted batch is applied in one transaction (`Store::apply_entries`) and acknowledged
//! once committed. It also answers hash probes, rewinds a diverged suffix into the orphans table
//! when the active asks, hands the orphans to the active, and passes the active's verdict on
//! this node's disk (`outdated`, `consistent`) to the driver, which persists it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_proto::peer as pb;
use tandem_replication::bridge::{hashed_of, stored_of};
use tandem_replication::log::{
    LogHead, LogTerm, Receiver, ReceiverCommand, ReceiverEvent, Refusal,
};
use tandem_replication::snapshot::{
    Chunk, Manifest, SnapshotWriter, cleanup_old_generations, install,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::convert;
use super::handle::Replication;
use crate::driver::handle::Input;
use crate::role::DiskState;

/// Largest message on a `Replicate` stream (a batch carries whole transactions).
pub const SHIP_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Replies queued for the active at once.
const REPLY_QUEUE_BOUND: usize = 64;
/// How long a new stream waits for the previous one to let go.
const RECEIVE_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Orphans per message, cut between transactions (the stream takes up to 64 MiB).
const ORPHAN_CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// How long a disk-state change may take to reach `state.db`.
const DISK_STATE_WAIT: Duration = Duration::from_secs(10);

pub type ReplyStream = ReceiverStream<Result<pb::ShipReply, Status>>;

pub async fn replicate(
    repl: Replication,
    mut incoming: Streaming<pb::ShipMessage>,
) -> Result<ReplyStream, Status> {
    let hello = match incoming.message().await? {
        Some(pb::ShipMessage {
            body: Some(pb::ship_message::Body::Hello(hello)),
        }) => hello,
        _ => {
            return Err(Status::invalid_argument(
                "a Replicate stream starts with a hello",
            ));
        }
    };
    let term = convert::term_from_pb(hello.term.as_ref(), "hello term")
        .map_err(Status::invalid_argument)?;
    let newest = {
        let status = repl.inner.driver.status.borrow();
        if status.node.role == "active" {
            return Err(Status::failed_precondition(format!(
                "{} is active; it does not receive a log",
                status.node.name
            )));
        }
        status
            .node
            .term
            .as_ref()
            .map(|t| LogTerm::new(t.epoch, t.node.clone(), repl.priority_of(&t.node)))
    };
    if let Some(newest) = &newest
        && term.epoch < newest.epoch
    {
        return Err(Status::failed_precondition(format!(
            "stream from term {term}, older than term {newest}"
        )));
    }
    let guard = tokio::time::timeout(
        RECEIVE_LOCK_WAIT,
        repl.inner.receive_lock.clone().lock_owned(),
    )
    .await
    .map_err(|_| Status::unavailable("another Replicate stream is still applying"))?;
    let head = repl
        .store()
        .last_log_position()
        .await
        .map_err(|error| Status::internal(error.to_string()))?;
    let receiver = Receiver::new(
        LogHead {
            index: head.idx,
            hash: head.hash,
        },
        newest,
    );
    let (replies, replies_rx) = mpsc::channel(REPLY_QUEUE_BOUND);
    tracing::info!(from = %hello.node, term = %term, index = head.idx, "receiving the log");
    tokio::spawn(async move {
        let _guard = guard;
        let mut stream = Stream {
            repl: repl.clone(),
            receiver,
            replies,
            snapshot: None,
            keep_old_as: None,
            clamp_reported: false,
        };
        repl.inner.receiving.store(true, Ordering::SeqCst);
        if let Err(reason) = stream.run(&mut incoming).await {
            tracing::info!(%reason, "replication stream ended");
            // Tell the sender why (a refused snapshot chunk, a failed apply), rather than end
            // the stream as if all were well. `try_send`: a sender that reads no replies must
            // not keep the receive lock.
            let _ = stream.replies.try_send(Err(Status::aborted(reason)));
        }
        repl.inner.receiving.store(false, Ordering::SeqCst);
        if stream.snapshot.is_some() {
            let message = "the snapshot stopped before it was complete; this node stays \
                           inconsistent until a snapshot completes";
            repl.update_status(|status| status.snapshot_progress = None);
            repl.record("snapshot", message).await;
        }
    });
    Ok(ReceiverStream::new(replies_rx))
}

struct Stream {
    repl: Replication,
    receiver: Receiver,
    replies: mpsc::Sender<Result<pb::ShipReply, Status>>,
    /// A snapshot being received, and the name to keep the replaced database under.
    snapshot: Option<SnapshotWriter>,
    keep_old_as: Option<String>,
    /// A clamped stamp was reported on this stream (once is enough).
    clamp_reported: bool,
}

impl Stream {
    async fn send(&self, body: pb::ship_reply::Body) -> Result<(), String> {
        self.replies
            .send(Ok(pb::ShipReply { body: Some(body) }))
            .await
            .map_err(|_| "the active went away".to_string())
    }

    async fn run(&mut self, incoming: &mut Streaming<pb::ShipMessage>) -> Result<(), String> {
        self.step(ReceiverEvent::Connected).await?;
        self.send_orphans().await?;
        if self.repl.inner.driver.status.borrow().node.disk == "inconsistent" {
            // Only a completed snapshot makes an inconsistent node whole again.
            let reason = "this node is inconsistent (a snapshot did not complete)".to_string();
            self.send(pb::ship_reply::Body::WantSnapshot(reason))
                .await?;
        }
        loop {
            let next = tokio::select! {
                next = incoming.message() => next,
                _ = self.repl.inner.want_snapshot.notified() => {
                    let reason = "resync --from-peer".to_string();
                    self.send(pb::ship_reply::Body::WantSnapshot(reason)).await?;
                    continue;
                }
            };
            let message = match next {
                Ok(Some(message)) => message,
                Ok(None) => return Err("the active ended the stream".into()),
                Err(status) => return Err(format!("stream failed: {}", status.message())),
            };
            if self.repl.inner.driver.status.borrow().node.role == "active" {
                return Err("this node became active".into());
            }
            use pb::ship_message::Body;
            match message.body {
                Some(Body::Batch(batch)) => match convert::batch_from_pb(batch) {
                    Ok(batch) => self.step(ReceiverEvent::Batch(batch)).await?,
                    Err(reason) => {
                        self.refuse_not_receiving(0, &format!("malformed batch: {reason}"))
                            .await?
                    }
                },
                Some(Body::Disk(verdict)) => self.on_verdict(verdict).await,
                Some(Body::Probe(probe)) => {
                    let hash = self.repl.store().hash_at(probe.index).await.ok().flatten();
                    self.send(pb::ship_reply::Body::HashAt(pb::HashAt {
                        index: probe.index,
                        hash: hash.unwrap_or(0),
                        found: hash.is_some(),
                    }))
                    .await?;
                }
                Some(Body::Rewind(rewind)) => self.rewind(rewind).await?,
                Some(Body::SnapshotBegin(begin)) => self.snapshot_begin(begin).await?,
                Some(Body::SnapshotChunk(chunk)) => self.snapshot_chunk(chunk).await?,
                Some(Body::SnapshotEnd(end)) => self.snapshot_end(end).await?,
                Some(Body::Hello(_)) | None => {}
            }
        }
    }

    async fn step(&mut self, event: ReceiverEvent) -> Result<(), String> {
        let commands = self.receiver.step(event);
        for command in commands {
            match command {
                ReceiverCommand::PersistTerm { term } => {
                    tracing::debug!(term = %term, "newest term seen on the log")
                }
                ReceiverCommand::Apply { batch } => {
                    let entries: Vec<_> = batch.entries.iter().map(stored_of).collect();
                    let Some(last) = batch.entries.last() else {
                        continue;
                    };
                    let (index, hash) = (last.index(), last.hash);
                    if let Err(error) = self.repl.store().apply_entries(&entries).await {
                        let message = format!(
                            "cannot apply entries {}..={index}: {error}",
                            batch.first_index()
                        );
                        self.repl.record("replication_apply_failed", &message).await;
                        self.refuse_not_receiving(batch.first_index(), &message)
                            .await?;
                        return Err(message);
                    }
                    self.observe_stamps(&batch.entries).await;
                    super::merge::on_applied(&self.repl, &entries).await;
                    self.repl.update_status(|status| {
                        status.last_index = index;
                        status.last_term = Some(crate::admin::status::TermStatus {
                            epoch: last.content.term.epoch,
                            node: last.content.term.node.clone(),
                        });
                    });
                    Box::pin(self.step(ReceiverEvent::Durable { index, hash })).await?;
                }
                ReceiverCommand::Refuse {
                    from_index,
                    refusal,
                } => {
                    tracing::warn!(from_index, %refusal, "refusing a batch");
                    self.send(pb::ship_reply::Body::Refused(convert::refusal_to_pb(
                        from_index, &refusal,
                    )))
                    .await?;
                    if matches!(refusal, Refusal::StaleTerm { .. }) {
                        return Err(format!("refused a stale term: {refusal}"));
                    }
                }
                ReceiverCommand::Ack { index } => {
                    self.send(pb::ship_reply::Body::Ack(index)).await?;
                }
                ReceiverCommand::Position { index, hash } => {
                    self.send(pb::ship_reply::Body::Position(pb::LogPosition {
                        term: None,
                        index,
                        rolling_hash: hash,
                    }))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// HLC stamps from the active move our clock; a stamp too far ahead is clamped and alerted.
    async fn observe_stamps(&mut self, entries: &[tandem_replication::log::HashedEntry]) {
        // The newest stamp, not the last: a re-applied orphan keeps its older one.
        let Some(last) = entries
            .iter()
            .max_by(|a, b| a.content.hlc.cmp(&b.content.hlc))
        else {
            return;
        };
        let observed = match self.repl.inner.hlc.lock() {
            Ok(mut clock) => clock.observe(&last.content.hlc, Replication::wall_ms()),
            Err(poisoned) => poisoned
                .into_inner()
                .observe(&last.content.hlc, Replication::wall_ms()),
        };
        if observed.clamped && !self.clamp_reported {
            self.clamp_reported = true;
            let message = format!(
                "a stamp from {} is more than max_clock_offset ahead of this clock; clamped \
                 (reported once per stream)",
                last.content.hlc.node
            );
            self.repl.record("clock_skew", &message).await;
        }
    }

    async fn refuse_not_receiving(&self, from_index: u64, message: &str) -> Result<(), String> {
        self.send(pb::ship_reply::Body::Refused(pb::ShipRefusal {
            from_index,
            kind: pb::RefusalKind::NotReceiving as i32,
            message: message.to_string(),
            ..pb::ShipRefusal::default()
        }))
        .await
    }

    async fn on_verdict(&self, verdict: pb::DiskVerdict) {
        let disk = match pb::DiskState::try_from(verdict.disk) {
            Ok(pb::DiskState::Outdated) => DiskState::Outdated,
            Ok(pb::DiskState::Consistent) => DiskState::Consistent,
            _ => return,
        };
        let input = Input::SetDisk {
            disk,
            reason: verdict.reason,
            local: false,
        };
        let _ = self.repl.inner.driver.inputs.send(input).await;
    }

    async fn rewind(&mut self, rewind: pb::Rewind) -> Result<(), String> {
        let ours = self
            .repl
            .store()
            .hash_at(rewind.to_index)
            .await
            .ok()
            .flatten();
        if ours != Some(rewind.hash) {
            let message = format!(
                "asked to rewind to index {}, but this log's hash there differs",
                rewind.to_index
            );
            self.refuse_not_receiving(rewind.to_index, &message).await?;
            return Err(message);
        }
        let (orphans, head) = match self.repl.store().rewind_after(rewind.to_index).await {
            Ok(rewound) => rewound,
            Err(error) => {
                let message = format!("cannot rewind to index {}: {error}", rewind.to_index);
                self.refuse_not_receiving(rewind.to_index, &message).await?;
                return Err(message);
            }
        };
        let message = format!(
            "rewound {} entries after index {} into the orphans table for merge-back",
            orphans.len(),
            rewind.to_index
        );
        self.repl.record("merge", &message).await;
        self.repl.refresh_counts().await;
        self.repl
            .update_status(|status| status.last_index = head.idx);
        let newest = self.receiver.newest_term().cloned();
        self.receiver = Receiver::new(
            LogHead {
                index: head.idx,
                hash: head.hash,
            },
            newest,
        );
        self.step(ReceiverEvent::Connected).await?;
        self.send_orphans().await
    }

    /// Persists a disk state through the driver and waits until it is on disk.
    async fn set_disk(&self, disk: DiskState, reason: &str) -> Result<(), String> {
        let input = Input::SetDisk {
            disk,
            reason: reason.to_string(),
            local: true,
        };
        self.repl
            .inner
            .driver
            .inputs
            .send(input)
            .await
            .map_err(|_| "the node is stopping".to_string())?;
        let mut status = self.repl.inner.driver.status.clone();
        let wanted = disk.as_str();
        tokio::time::timeout(
            DISK_STATE_WAIT,
            status.wait_for(|status| status.node.disk == wanted),
        )
        .await
        .map_err(|_| format!("the disk state did not become {wanted}"))?
        .map_err(|_| "the node is stopping".to_string())?;
        Ok(())
    }

    async fn snapshot_begin(&mut self, begin: pb::SnapshotBegin) -> Result<(), String> {
        // Inconsistent first: from here until the swap this node must not promote.
        let reason = format!(
            "receiving a snapshot of {} bytes at log index {} ({})",
            begin.total_bytes, begin.last_index, begin.reason
        );
        self.set_disk(DiskState::Inconsistent, &reason).await?;
        let data_dir = self.repl.inner.config.node.data_dir.clone();
        let writer = SnapshotWriter::begin(&data_dir, begin.total_bytes)
            .map_err(|error| format!("cannot receive the snapshot: {error}"))?;
        self.snapshot = Some(writer);
        self.keep_old_as = keep_name(&begin.keep_old_as)?;
        let orphans = self.repl.store().orphans().await.map_or(0, |o| o.len());
        if self.keep_old_as.is_none() && orphans > 0 {
            // Orphans not merged yet live only in this database: keep it.
            self.keep_old_as = Some(format!("diverged-orphans-{}.db", Replication::wall_ms()));
        }
        self.repl
            .update_status(|status| status.snapshot_progress = Some(0.0));
        self.repl.record("snapshot", &reason).await;
        Ok(())
    }

    async fn snapshot_chunk(&mut self, chunk: pb::SnapshotChunk) -> Result<(), String> {
        let Some(writer) = self.snapshot.as_mut() else {
            return Err("a snapshot chunk arrived outside a snapshot".into());
        };
        let checksum: [u8; 32] = chunk
            .checksum
            .as_slice()
            .try_into()
            .map_err(|_| "a snapshot chunk's checksum is not 32 bytes".to_string())?;
        let progress = writer
            .write_chunk(&Chunk {
                offset: chunk.offset,
                bytes: chunk.data,
                checksum,
            })
            .map_err(|error| format!("snapshot chunk refused: {error}"))?;
        self.repl
            .update_status(|status| status.snapshot_progress = Some(progress.fraction()));
        Ok(())
    }

    async fn snapshot_end(&mut self, end: pb::SnapshotEnd) -> Result<(), String> {
        let Some(writer) = self.snapshot.take() else {
            return Err("a snapshot ended that never began".into());
        };
        let sha256: [u8; 32] = end
            .sha256
            .as_slice()
            .try_into()
            .map_err(|_| "the snapshot digest is not 32 bytes".to_string())?;
        let manifest = Manifest {
            total_bytes: end.total_bytes,
            sha256,
            last_log_idx: end.last_index,
            chunk_count: end.chunk_count,
        };
        let verified = writer
            .finish(&manifest)
            .map_err(|error| format!("the snapshot does not verify: {error}"))?;
        let data_dir = self.repl.inner.config.node.data_dir.clone();
        if let Some(name) = self.keep_old_as.take() {
            // Copied before the pointer moves: a crash from here on leaves the old generation
            // live, or the copy complete.
            let kept = self.keep_old_database(&data_dir, &name).await?;
            let message = format!(
                "the replaced database was kept as {}: its changes after the last common index \
                 were not merged; inspect it",
                kept.display()
            );
            self.repl.record("diverged", &message).await;
        }
        let installed = install(&data_dir, verified)
            .await
            .map_err(|error| format!("cannot install the snapshot: {error}"))?;
        let store = super::schema::open_store(&self.repl.inner.config, &installed.generation.dir)
            .await
            .map_err(|error| format!("cannot open the installed snapshot: {error}"))?;
        let old = self.repl.replace_store(store);
        old.close().await;
        if let Err(error) = self.repl.follow_log_stamps().await {
            tracing::warn!(%error, "cannot read the installed log's newest stamp");
        }
        if let Err(error) = cleanup_old_generations(&data_dir) {
            tracing::warn!(%error, "cannot remove the old generation");
        }
        // The copy carries the active's own orphans table; those are the active's to merge.
        if let Err(error) = self.repl.store().clear_orphans().await {
            tracing::warn!(%error, "cannot clear the copied orphans table");
        }
        let head = self
            .repl
            .store()
            .last_log_position()
            .await
            .map_err(|error| error.to_string())?;
        self.repl.update_status(|status| {
            status.snapshot_progress = None;
            status.last_index = head.idx;
            status.last_term = (head.idx > 0).then(|| crate::admin::status::TermStatus {
                epoch: head.term_epoch,
                node: head.term_node.clone(),
            });
        });
        self.repl.refresh_counts().await;
        let message = format!(
            "snapshot installed as {} at log index {}; the log continues from there",
            installed.generation.dir.display(),
            head.idx
        );
        self.repl.record("snapshot", &message).await;
        // Whole but behind: outdated until the active says it caught up.
        self.set_disk(
            DiskState::Outdated,
            "snapshot installed; catching up from the log",
        )
        .await?;
        let newest = self.receiver.newest_term().cloned();
        self.receiver = Receiver::new(
            LogHead {
                index: head.idx,
                hash: head.hash,
            },
            newest,
        );
        self.step(ReceiverEvent::Connected).await
    }

    /// Copies the live database (a consistent `VACUUM INTO`) to `name` in the data directory,
    /// never over an existing file.
    async fn keep_old_database(
        &self,
        data_dir: &std::path::Path,
        name: &str,
    ) -> Result<std::path::PathBuf, String> {
        let mut kept = data_dir.join(name);
        if kept.exists() {
            let stem = name.trim_end_matches(".db");
            kept = data_dir.join(format!("{stem}-{}.db", Replication::wall_ms()));
        }
        // `incoming-*` directories are removed at start-up if a crash leaves one behind.
        let scratch = tempfile::Builder::new()
            .prefix("incoming-keep-")
            .tempdir_in(data_dir)
            .map_err(|error| format!("cannot keep the old database: {error}"))?;
        let source = self.repl.store().path().to_path_buf();
        let copy = tandem_replication::snapshot::create_snapshot(&source, scratch.path())
            .await
            .map_err(|error| format!("cannot keep the old database: {error}"))?;
        std::fs::rename(&copy.path, &kept).map_err(|error| {
            format!(
                "cannot keep the old database as {}: {error}",
                kept.display()
            )
        })?;
        std::fs::File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| format!("cannot sync {}: {error}", data_dir.display()))?;
        Ok(kept)
    }

    /// Hands every kept orphan to the active, oldest first, in messages of bounded size; those
    /// whose merge is already in this log are dropped instead.
    async fn send_orphans(&self) -> Result<(), String> {
        super::merge::drop_already_merged(&self.repl).await;
        let orphans = match self.repl.store().orphans().await {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!(%error, "cannot read the orphans table");
                return Ok(());
            }
        };
        let repl = &self.repl;
        let mut chunk = Vec::new();
        let mut diverged_after = Vec::new();
        let mut bytes = 0usize;
        let mut previous_txid = None;
        for orphan in &orphans {
            let entry = &orphan.entry;
            // Chunks end only between transactions: the active merges a transaction whole.
            if bytes > ORPHAN_CHUNK_BYTES && previous_txid != Some(entry.txid) {
                self.send_orphan_chunk(
                    std::mem::take(&mut chunk),
                    std::mem::take(&mut diverged_after),
                )
                .await?;
                bytes = 0;
            }
            bytes += entry.approx_size_bytes();
            previous_txid = Some(entry.txid);
            chunk.push(hashed_of(entry, |node| repl.priority_of(node)));
            diverged_after.push(orphan.diverged_after);
        }
        if !chunk.is_empty() {
            self.send_orphan_chunk(chunk, diverged_after).await?;
        }
        Ok(())
    }

    async fn send_orphan_chunk(
        &self,
        entries: Vec<tandem_replication::log::HashedEntry>,
        diverged_after: Vec<u64>,
    ) -> Result<(), String> {
        let batch = tandem_replication::log::Batch {
            term: LogTerm::new(0, "orphans", 0),
            checksum: 0,
            entries,
        };
        let entries = convert::batch_to_pb(&batch).entries;
        self.send(pb::ship_reply::Body::Orphans(pb::OrphanBatch {
            entries,
            diverged_after,
        }))
        .await
    }
}

/// The file name a replaced database is kept under: a plain name in the data directory. Public
/// for the fuzz targets.
#[doc(hidden)]
pub fn keep_name(name: &str) -> Result<Option<String>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    let plain = name.starts_with("diverged-")
        && name.ends_with(".db")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !plain {
        return Err(format!("refusing to keep the old database as {name:?}"));
    }
    Ok(Some(name.to_string()))
}
