//! Everything the role machine asks its driver to do, in order.
//!
//! The driver runs the commands of one `step` in sequence and finishes each before the next: a
//! `Persist` is durable before the `SetRole` or `Send*` that follows it.

use super::durable::Durable;
use super::term::Term;
use super::types::Role;

/// Why an event was recorded; `as_str` is the `kind` column of the events table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    RoleChange,
    Election,
    Failover,
    FailoverSuppressed,
    PeerSuspect,
    PeerFailed,
    PeerRecovered,
    SplitBrain,
    Switchover,
    Stall,
    Monitoring,
    Maintenance,
    Fence,
    Shutdown,
    Disk,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoleChange => "role_change",
            EventKind::Election => "election",
            EventKind::Failover => "failover",
            EventKind::FailoverSuppressed => "failover_suppressed",
            EventKind::PeerSuspect => "peer_suspect",
            EventKind::PeerFailed => "peer_failed",
            EventKind::PeerRecovered => "peer_recovered",
            EventKind::SplitBrain => "split_brain",
            EventKind::Switchover => "switchover",
            EventKind::Stall => "stall",
            EventKind::Monitoring => "monitoring",
            EventKind::Maintenance => "maintenance",
            EventKind::Fence => "fence",
            EventKind::Shutdown => "shutdown",
            EventKind::Disk => "disk",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Write the durable record (fsync) before running the next command.
    Persist(Durable),
    /// Append a term this node now holds to the history, with the reason.
    RecordTerm { term: Term, reason: String },
    /// The node's role changed; the driver updates status, runs hooks and tells clients.
    SetRole { role: Role, reason: String },
    /// Admit clients (true) or refuse them (false). Always emitted before a demotion is announced.
    SetAdmission(bool),
    /// Send a heartbeat now with this sequence number.
    SendHeartbeat { seq: u64 },
    /// Ask the peer to take `new_term` (switchover hand-over).
    SendHandover { new_term: Term },
    /// Answer the peer's hand-over request.
    SendHandoverReply {
        new_term: Term,
        accepted: bool,
        reason: String,
    },
    /// Ask the active peer to switch over to this node.
    SendSwitchoverRequest,
    /// Start waiting until the peer has acknowledged everything written so far; the driver
    /// answers with `Event::CaughtUp`.
    StartCatchUp,
    /// Run the `fence_peer` hook; the driver answers with `Event::FenceResult`.
    FencePeer,
    /// Record an event in `state.db` (and mail it, where configured).
    Record { kind: EventKind, message: String },
    /// Answer an admin request: `Ok(message)` or `Err(reason)`.
    Reply {
        id: u64,
        result: Result<String, String>,
    },
    /// The graceful stop is complete: exit the process.
    Exit,
}
