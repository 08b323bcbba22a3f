//! The small enums of the role machine: roles, the peer view, disk state and monitoring.

/// What a node is doing (DESIGN.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Waiting for the peer after a start, before the start-up election.
    Starting,
    /// Following the active node; refuses clients.
    Passive,
    /// Serving clients.
    Active,
    /// Decided to take over, waiting for `fence_peer` to succeed.
    Promoting,
    /// Handed over to the peer, waiting to see it active.
    Demoting,
    /// Cannot serve: disk inconsistent, or no healthy way to serve.
    Fault,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Passive => "passive",
            Role::Active => "active",
            Role::Promoting => "promoting",
            Role::Demoting => "demoting",
            Role::Fault => "fault",
        }
    }
}

/// How this node sees its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerView {
    /// Never heard from since this node started.
    Unknown,
    /// Heartbeats arrive.
    Ok,
    /// At least `warn_after_misses` heartbeats missed.
    Suspect,
    /// `failover_after_misses` missed, or the fast path proved the process gone.
    Failed,
}

impl PeerView {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerView::Unknown => "unknown",
            PeerView::Ok => "ok",
            PeerView::Suspect => "suspect",
            PeerView::Failed => "failed",
        }
    }
}

/// Persisted disk state, as DRBD keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskState {
    Consistent,
    /// The peer has acknowledged data this node lacks; promotes only on `failover-now --force`.
    Outdated,
    /// A snapshot or resync is in progress, or the database failed its check; never promotes.
    Inconsistent,
}

impl DiskState {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Consistent => "consistent",
            DiskState::Outdated => "outdated",
            DiskState::Inconsistent => "inconsistent",
        }
    }

    pub fn parse(text: &str) -> Option<DiskState> {
        match text {
            "consistent" => Some(DiskState::Consistent),
            "outdated" => Some(DiskState::Outdated),
            "inconsistent" => Some(DiskState::Inconsistent),
            _ => None,
        }
    }
}

/// The pair-wide monitoring mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Monitoring {
    On,
    /// No automatic failover; replication continues.
    Suspended,
    /// No failover and no replication.
    Stopped,
}

impl Monitoring {
    pub fn as_str(self) -> &'static str {
        match self {
            Monitoring::On => "on",
            Monitoring::Suspended => "suspended",
            Monitoring::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Monitoring> {
        match text {
            "on" | "resume" | "resumed" => Some(Monitoring::On),
            "suspended" | "suspend" => Some(Monitoring::Suspended),
            "stopped" | "stop" => Some(Monitoring::Stopped),
            _ => None,
        }
    }
}

/// Outcome of one TCP dial made for the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DialOutcome {
    /// The port accepted the connection: the host and a process answer.
    Connected,
    /// ECONNREFUSED: the host answers, nothing listens.
    Refused,
    /// Timeout, unreachable or another error: proves nothing.
    Failed,
}
