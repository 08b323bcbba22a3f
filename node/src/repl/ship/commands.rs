//! Running the shipper's commands for a session: send batches (from the recent entries or the
//! log), release waiting writes, degrade and tell the peer its verdict, refuse writes, truncate,
//! start a snapshot.

use tandem_proto::peer as pb;
use tandem_replication::bridge::hashed_of;
use tandem_replication::log::{Batch, ShipperCommand, WriteRefusal};

use super::session::Session;
use super::stream::unavailable_text;
use crate::repl::convert;
use crate::repl::messages::WriteFailure;

impl Session {
    pub(super) async fn run_command(&mut self, command: ShipperCommand) {
        match command {
            ShipperCommand::SendBatch {
                from_index,
                to_index,
            } => self.send_batch(from_index, to_index).await,
            ShipperCommand::AckWrites { write_ids } => {
                if self.hold(&write_ids) {
                    return;
                }
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
                self.note_degraded(true);
                self.verdict(pb::DiskState::Outdated, &message).await;
                self.repl.record("replication_degraded", &message).await;
            }
            ShipperCommand::Resync => {
                self.note_degraded(false);
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

    pub(super) async fn verdict(&self, disk: pb::DiskState, reason: &str) {
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

    pub(super) async fn send_batch(&mut self, from_index: u64, to_index: u64) {
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
}
