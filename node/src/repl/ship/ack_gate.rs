//! Witness mode's fence on acknowledgements (DESIGN.md §12): with `mode = "sync"`, a write the
//! active committed alone (degraded) is acknowledged only after a renewal sent after the degrade
//! has had the witness record the peer outdated (`DriverHandle::outdated_confirmed`).

use std::time::Instant;

use tokio::sync::watch;

use super::session::Session;
use crate::config::ReplicationMode;
use crate::repl::handle::Replication;

/// Witness mode's fence on acknowledgements (DESIGN.md §12): a write this node committed alone
/// (degraded) is acknowledged only once the witness has recorded the peer outdated, so the
/// witness can never promote a peer that lacks it. Until then its acknowledgement waits; if
/// this node stops being the active first, the write's outcome is unknown to its client.
pub(super) struct AckGate {
    pub(super) confirmed: watch::Receiver<Option<Instant>>,
    /// When the shipper degraded (`None` while synchronous).
    degraded_at: Option<Instant>,
    /// Write ids acknowledged by the shipper, held here (still in `waiting`).
    held: Vec<u64>,
}

impl AckGate {
    pub(super) fn new(repl: &Replication) -> Option<AckGate> {
        let config = &repl.inner.config;
        (config.witness.is_some() && config.replication.mode == ReplicationMode::Sync).then(|| {
            AckGate {
                confirmed: repl.inner.driver.outdated_confirmed.clone(),
                degraded_at: None,
                held: Vec::new(),
            }
        })
    }

    /// Degraded, and no renewal sent since then has had the witness record the peer outdated.
    fn holding(&self) -> bool {
        self.degraded_at.is_some_and(|degraded_at| {
            self.confirmed
                .borrow()
                .is_none_or(|sent_at| sent_at < degraded_at)
        })
    }
}

impl Session {
    /// The shipper degraded (or caught up again): the gate starts (or stops) holding.
    pub(super) fn note_degraded(&mut self, degraded: bool) {
        if let Some(gate) = self.ack_gate.as_mut() {
            if !degraded {
                gate.degraded_at = None;
            } else if gate.degraded_at.is_none() {
                gate.degraded_at = Some(Instant::now());
            }
        }
        self.release_held();
    }

    /// Acknowledges the held writes, once the gate no longer holds them.
    pub(super) fn release_held(&mut self) {
        let Some(gate) = self.ack_gate.as_mut() else {
            return;
        };
        if gate.holding() || gate.held.is_empty() {
            return;
        }
        tracing::info!(
            writes = gate.held.len(),
            "the witness recorded the peer outdated: acknowledging the writes committed alone"
        );
        for id in gate.held.drain(..) {
            if let Some((done, reply)) = self.waiting.remove(&id) {
                let _ = reply.send(Ok(done));
            }
        }
    }

    /// Whether the gate holds `write_ids`' acknowledgements back (it keeps them, if so).
    pub(super) fn hold(&mut self, write_ids: &[u64]) -> bool {
        match self.ack_gate.as_mut() {
            Some(gate) if gate.holding() => {
                gate.held.extend_from_slice(write_ids);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gate(confirmed: watch::Receiver<Option<Instant>>, degraded_at: Option<Instant>) -> AckGate {
        AckGate {
            confirmed,
            degraded_at,
            held: Vec::new(),
        }
    }

    #[test]
    fn only_a_renewal_sent_after_the_degrade_releases_the_writes_committed_alone() {
        let (tx, rx) = watch::channel(None);
        let now = Instant::now();
        assert!(
            !gate(rx.clone(), None).holding(),
            "synchronous: nothing held"
        );
        let degraded = gate(rx.clone(), Some(now));
        assert!(
            degraded.holding(),
            "the witness has not recorded the peer outdated"
        );
        // A confirmation left over from an earlier degrade does not count.
        tx.send_replace(Some(now - Duration::from_millis(5)));
        assert!(degraded.holding());
        tx.send_replace(Some(now + Duration::from_millis(5)));
        assert!(!degraded.holding());
        // A later renewal that said the peer is not outdated withdraws it.
        tx.send_replace(None);
        assert!(degraded.holding());
    }
}
