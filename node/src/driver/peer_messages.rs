//! Reading the peer's messages on the driver: heartbeats (deduplicated across paths, with the
//! round trip and the peer's settings checked), hand-over messages; and building this node's
//! heartbeat.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tandem_proto::peer as pb;

use super::event_loop::{Driver, DriverError, SKEW_SAMPLES};
use crate::peer::wire;
use crate::role::{Event, Role};
use crate::state::store::wall_clock_ms;

impl Driver {
    pub(super) async fn on_peer_message(
        &mut self,
        message: pb::PeerMessage,
    ) -> Result<(), DriverError> {
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

    pub(super) async fn on_heartbeat(
        &mut self,
        heartbeat: pb::Heartbeat,
    ) -> Result<(), DriverError> {
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
            if heartbeat.promise
                && let Some(sent) = self.sent_at(heartbeat.ack_seq)
            {
                self.peer_promised(sent);
            }
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

    /// When our heartbeat `seq` was sent, if it is still remembered.
    pub(super) fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.peer
            .sent
            .iter()
            .find(|(sent, _)| *sent == seq)
            .map(|(_, at)| *at)
    }

    /// A heartbeat of ours came back acknowledged: its round trip, less the peer's hold time.
    pub(super) fn measure_round_trip(&mut self, ack_seq: u64, ack_delay_us: u64) {
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
    pub(super) async fn check_peer_settings(
        &mut self,
        heartbeat: &pb::Heartbeat,
    ) -> Result<(), DriverError> {
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

    pub(super) fn heartbeat(&self, seq: u64) -> pb::Heartbeat {
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
            promise: false,
        }
    }
}
