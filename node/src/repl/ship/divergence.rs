//! A halt for divergence: the bisecting search for the last common index with hash probes, then
//! the rewind the peer is asked for (or a snapshot when the point is past retention).

use tandem_proto::peer as pb;
use tandem_replication::log::{HaltReason, ShipperEvent};
use tandem_replication::merge::{DivergenceOutcome, DivergenceSearch, ProbeAnswer, SearchStep};

use super::session::Session;

impl Session {
    pub(super) async fn on_halt(&mut self, reason: HaltReason) {
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

    pub(super) async fn next_probe(&mut self) {
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

    pub(super) async fn on_hash_at(&mut self, answer: pb::HashAt) {
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
    pub(super) async fn restart_position(&mut self) {
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
