//! Publishing the node's `Status` after each step, built from the machine, the peer's extras and
//! the attached parts (replication, services, files).

use super::event_loop::Driver;
use crate::admin::status::{NodeStatus, PeerStatus, Status, SwitchoverStatus, TermStatus};
use crate::role::{Role, SwitchoverPhase};

impl Driver {
    pub(super) fn publish_status(&self) {
        let status = self.build_status();
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    pub(super) fn build_status(&self) -> Status {
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
            witness: self.witness_status(),
            ..Status::default()
        }
    }

    fn witness_status(&self) -> crate::admin::status::WitnessStatus {
        let Some(quorum) = &self.quorum else {
            return crate::admin::status::WitnessStatus::default();
        };
        crate::admin::status::WitnessStatus {
            kind: quorum.settings.kind().into(),
            address: quorum.settings.address.clone(),
            state: if quorum.link_down.is_some() {
                "lost"
            } else {
                "ok"
            }
            .into(),
            lease_left_ms: self.admission.votes_left_ms().unwrap_or(0),
            vote: quorum.vote.clone(),
        }
    }
}
