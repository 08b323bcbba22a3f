//! `Status` to and from its protobuf form, for the admin service and `tandemctl`.

use tandem_proto::admin as pb;

use crate::admin::status::{
    BlocksStatus, FailbackStatus, FilesStatus, NodeStatus, PeerServiceStatus, PeerStatus,
    ReplicationStatus, ServiceStatus, Status, SwitchoverStatus, TermStatus,
};

pub fn status_to_pb(status: &Status) -> pb::StatusReply {
    let node = &status.node;
    let peer = &status.peer;
    pb::StatusReply {
        cluster: status.cluster.clone(),
        node: Some(pb::NodeStatus {
            name: node.name.clone(),
            role: node.role.clone(),
            term: node.term.as_ref().map(|term| pb::Term {
                epoch: term.epoch,
                node: term.node.clone(),
            }),
            epoch: node.epoch,
            priority: node.priority,
            disk: node.disk.clone(),
            monitoring: node.monitoring.clone(),
            maintenance: node.maintenance,
            fenced: node.fenced,
            version: node.version.clone(),
            admitting: node.admitting,
            reachable: node.reachable,
        }),
        peer: Some(pb::PeerStatus {
            name: peer.name.clone(),
            state: peer.state.clone(),
            role: peer.role.clone(),
            epoch: peer.epoch,
            last_seen_ms: peer.last_seen_ms,
            clock_skew_ms: peer.clock_skew_ms,
            missed_keepalives: peer.missed_keepalives,
            rtt_ms: peer.rtt_ms,
            version_mismatch: peer.version_mismatch,
            config_mismatch: peer.config_mismatch,
            address: peer.address.clone(),
            maintenance: peer.maintenance,
            disk: peer.disk.clone(),
            services: peer
                .services
                .iter()
                .map(|service| pb::PeerServiceStatus {
                    name: service.name.clone(),
                    healthy: service.healthy,
                    state: service.state.clone(),
                })
                .collect(),
        }),
        switchover: Some(pb::SwitchoverStatus {
            state: status.switchover.state.clone(),
            waiting_calls: status.switchover.waiting_calls,
        }),
        failback: Some(pb::FailbackStatus {
            policy: status.failback.policy.clone(),
            time_left: status.failback.time_left.clone(),
            time_left_s: status.failback.time_left_s,
        }),
        blocks: Some(pb::Blocks {
            logins: status.blocks.logins,
            calls: status.blocks.calls,
        }),
        calls_active: status.calls_active,
        sessions: status.sessions,
        replication: Some(replication_to_pb(&status.replication)),
        services: status.services.iter().map(service_to_pb).collect(),
        files: status.files.iter().map(files_to_pb).collect(),
        witness: Some(pb::WitnessStatus {
            kind: status.witness.kind.clone(),
            address: status.witness.address.clone(),
            state: status.witness.state.clone(),
            lease_left_ms: status.witness.lease_left_ms,
            vote: status.witness.vote.clone(),
        }),
    }
}

fn service_to_pb(service: &ServiceStatus) -> pb::ServiceStatus {
    pb::ServiceStatus {
        name: service.name.clone(),
        state: service.state.clone(),
        healthy: service.healthy,
        pid: service.pid,
        restarts: service.restarts,
        recent_failures: service.recent_failures,
        run_on: service.run_on.clone(),
        critical: service.critical,
        last_exit: service.last_exit.clone(),
    }
}

fn service_from_pb(service: pb::ServiceStatus) -> ServiceStatus {
    ServiceStatus {
        name: service.name,
        state: service.state,
        healthy: service.healthy,
        pid: service.pid,
        restarts: service.restarts,
        recent_failures: service.recent_failures,
        run_on: service.run_on,
        critical: service.critical,
        last_exit: service.last_exit,
    }
}

fn files_to_pb(files: &FilesStatus) -> pb::FilesStatus {
    pb::FilesStatus {
        name: files.name.clone(),
        pending_files: files.pending_files,
        pending_bytes: files.pending_bytes,
        last_sync: files.last_sync,
        error: files.error.clone(),
    }
}

fn files_from_pb(files: pb::FilesStatus) -> FilesStatus {
    FilesStatus {
        name: files.name,
        pending_files: files.pending_files,
        pending_bytes: files.pending_bytes,
        last_sync: files.last_sync,
        error: files.error,
    }
}

fn replication_to_pb(replication: &ReplicationStatus) -> pb::ReplicationStatus {
    pb::ReplicationStatus {
        mode: replication.mode.clone(),
        degraded: replication.degraded,
        last_index: replication.last_index,
        peer_acked_index: replication.peer_acked_index,
        lag_entries: replication.lag_entries,
        snapshot_progress: replication.snapshot_progress,
        halted: replication.halted.clone(),
        orphans: replication.orphans,
        conflicts: replication.conflicts,
    }
}

fn replication_from_pb(replication: pb::ReplicationStatus) -> ReplicationStatus {
    ReplicationStatus {
        mode: replication.mode,
        degraded: replication.degraded,
        last_index: replication.last_index,
        peer_acked_index: replication.peer_acked_index,
        lag_entries: replication.lag_entries,
        snapshot_progress: replication.snapshot_progress,
        halted: replication.halted,
        orphans: replication.orphans,
        conflicts: replication.conflicts,
        last_term: None,
    }
}

pub fn status_from_pb(reply: pb::StatusReply) -> Status {
    let node = reply.node.unwrap_or_default();
    let peer = reply.peer.unwrap_or_default();
    let switchover = reply.switchover.unwrap_or_default();
    let replication = replication_from_pb(reply.replication.unwrap_or_default());
    let blocks = reply.blocks.unwrap_or_default();
    let failback = reply.failback.unwrap_or_default();
    Status {
        cluster: reply.cluster,
        node: NodeStatus {
            name: node.name,
            role: node.role,
            term: node.term.map(|term| TermStatus {
                epoch: term.epoch,
                node: term.node,
            }),
            epoch: node.epoch,
            priority: node.priority,
            disk: node.disk,
            monitoring: node.monitoring,
            maintenance: node.maintenance,
            fenced: node.fenced,
            admitting: node.admitting,
            version: node.version,
            reachable: node.reachable,
            took_over: false,
        },
        peer: PeerStatus {
            name: peer.name,
            address: peer.address,
            state: peer.state,
            role: peer.role,
            epoch: peer.epoch,
            last_seen_ms: peer.last_seen_ms,
            clock_skew_ms: peer.clock_skew_ms,
            missed_keepalives: peer.missed_keepalives,
            maintenance: peer.maintenance,
            disk: peer.disk,
            version_mismatch: peer.version_mismatch,
            config_mismatch: peer.config_mismatch,
            priority: 0,
            services: peer
                .services
                .into_iter()
                .map(|service| PeerServiceStatus {
                    name: service.name,
                    healthy: service.healthy,
                    state: service.state,
                })
                .collect(),
            rtt_ms: peer.rtt_ms,
        },
        switchover: SwitchoverStatus {
            state: switchover.state,
            waiting_calls: switchover.waiting_calls,
        },
        replication,
        failback: FailbackStatus {
            policy: failback.policy,
            time_left: failback.time_left,
            time_left_s: failback.time_left_s,
        },
        blocks: BlocksStatus {
            logins: blocks.logins,
            calls: blocks.calls,
        },
        calls_active: reply.calls_active,
        sessions: reply.sessions,
        services: reply.services.into_iter().map(service_from_pb).collect(),
        files: reply.files.into_iter().map(files_from_pb).collect(),
        witness: reply
            .witness
            .map(|witness| crate::admin::status::WitnessStatus {
                kind: witness.kind,
                address: witness.address,
                state: witness.state,
                lease_left_ms: witness.lease_left_ms,
                vote: witness.vote,
            })
            .unwrap_or_default(),
    }
}
