//! Everything that can happen to the role machine. The driver turns IO into these.

use super::term::{LogPosition, Term};
use super::types::{DialOutcome, DiskState, Monitoring, Role};

/// What the role machine needs from a peer heartbeat (the domain form of the protobuf message).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerHeartbeat {
    /// The peer's role as it announced it.
    pub role: Role,
    /// The term the peer holds or follows.
    pub term: Option<Term>,
    /// The highest epoch the peer has seen.
    pub max_epoch_seen: u64,
    /// The peer's configured priority, for ranking it in the start-up election.
    pub priority: u32,
    pub disk: DiskState,
    /// The peer's last log position, for the start-up election and switchover catch-up.
    pub log: LogPosition,
    pub monitoring: Monitoring,
    pub monitoring_stamp: u64,
    pub maintenance: bool,
    /// False while one of the peer's reachability targets does not answer.
    pub reachable: bool,
    /// Sequence number of this heartbeat.
    pub seq: u64,
    /// Highest heartbeat sequence of ours that the peer has received: closes a round trip.
    pub ack_seq: u64,
}

/// An administrator's request, answered with `Command::Reply` carrying the same id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AdminRequest {
    /// `tandemctl switchover`: hand over to the passive.
    Switchover,
    /// `tandemctl failover-now [--force]`, run against the passive.
    FailoverNow { force: bool },
    /// `tandemctl monitoring suspend|resume|stop`.
    SetMonitoring(Monitoring),
    /// `tandemctl maintenance on|off`.
    SetMaintenance(bool),
}

/// The closed set of inputs of the role machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The keep-alive timer fired; the machine sends a heartbeat and counts misses.
    Tick,
    /// A heartbeat arrived from the peer.
    Heartbeat(PeerHeartbeat),
    /// A keep-alive stream to or from the peer ended (EOF or RST): arms the fast path.
    PeerStreamEnded,
    /// One fast-path round: a dial of the peer port and of the client port.
    FastPathDial {
        peer_port: DialOutcome,
        client_port: DialOutcome,
    },
    /// The reachability targets were probed: true if they answer (or none are configured).
    Reachability(bool),
    /// The `fence_peer` hook finished.
    FenceResult { ok: bool },
    /// The local log position moved (replication; until then the driver reports the term).
    LogPosition(LogPosition),
    /// The passive has acknowledged everything up to the switchover fence.
    CaughtUp,
    /// The active asks this node to take `new_term`.
    HandoverRequested { new_term: Term },
    /// The passive answered our handover.
    HandoverReplied { new_term: Term, accepted: bool },
    /// The passive asks this active to switch over to it (`failover-now` on the passive).
    SwitchoverRequested,
    /// An administrator's command.
    Admin { id: u64, request: AdminRequest },
    /// SIGTERM: on the active, switch over and then exit.
    Shutdown,
    /// A verdict on this node's disk: from the active over the replication stream (`outdated`
    /// when it degraded to async, `consistent` once this node caught up again), or `local` from
    /// this node's own receiving of a snapshot. Ignored while this node is active; the active's
    /// verdicts never clear a local `inconsistent` (only an installed snapshot does).
    DiskVerdict {
        disk: DiskState,
        reason: String,
        local: bool,
    },
}
