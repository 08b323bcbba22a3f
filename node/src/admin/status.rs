//! The status of a node as `tandemctl status --json` prints it (DESIGN.md §9).
//!
//! The driver publishes one `Status` after every step; the admin service reads it and converts it
//! to protobuf; `tandemctl` converts it back and prints it. Fields that later issues add
//! (replication, files, blocks, calls) join this struct with them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub cluster: String,
    pub node: NodeStatus,
    pub peer: PeerStatus,
    pub switchover: SwitchoverStatus,
    pub replication: ReplicationStatus,
    /// `auto_failback` and the time left before this (preferred) node takes the role back.
    #[serde(default)]
    pub failback: FailbackStatus,
    /// The clients gateway's blocks (replicated), and its counts as this node's database has them.
    #[serde(default)]
    pub blocks: BlocksStatus,
    #[serde(default)]
    pub calls_active: u32,
    /// Sessions not yet expired.
    #[serde(default)]
    pub sessions: u32,
    /// `[[service]]`: this node's supervised services.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// `[[files]]`: the replicated directories (DESIGN.md §7).
    #[serde(default)]
    pub files: Vec<FilesStatus>,
    /// `[witness]` (DESIGN.md §12).
    #[serde(default)]
    pub witness: WitnessStatus,
}

/// The witness as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStatus {
    /// "witness", or "none" in pair mode.
    pub kind: String,
    pub address: String,
    /// "ok" | "lost" | "none"
    pub state: String,
    /// How long this node still holds a second vote (its peer's or the witness's); 0 when
    /// it holds none.
    pub lease_left_ms: u64,
    /// The witness's last answer: "granted in term (3, a)", "refused: ...".
    pub vote: String,
}

impl Default for WitnessStatus {
    fn default() -> Self {
        WitnessStatus {
            kind: "none".into(),
            address: String::new(),
            state: "none".into(),
            lease_left_ms: 0,
            vote: String::new(),
        }
    }
}

/// One supervised service (`[[service]]`, DESIGN.md §6).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// "stopped" (not wanted in this role) | "starting" | "running" | "unhealthy" |
    /// "backoff" (waiting to restart) | "ready" (`run_on = "active"` on a passive that could
    /// run it) | "failed" (it cannot start)
    pub state: String,
    /// Running and passing its health check; on a passive, for a `run_on = "active"` service:
    /// able to start it (the peer's view in a critical hand-over).
    pub healthy: bool,
    pub pid: Option<u32>,
    /// Restarts since the node started.
    pub restarts: u64,
    /// Failures within `restart_window`.
    pub recent_failures: u32,
    /// "active" | "both"
    pub run_on: String,
    pub critical: bool,
    /// How the last run ended, or why it failed ("" if nothing to say).
    pub last_exit: String,
}

/// One `[[files]]` entry's replication (DESIGN.md §7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesStatus {
    pub name: String,
    pub pending_files: u64,
    pub pending_bytes: u64,
    /// Wall-clock milliseconds of the last complete sync, if any.
    pub last_sync: Option<u64>,
    /// The last error, "" if none.
    pub error: String,
}

/// `failback` in `tandemctl status` (DESIGN.md §9).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailbackStatus {
    /// "never" | "when_idle" | the configured delay ("10 minutes").
    pub policy: String,
    /// The time left in the largest whole unit ("5 minutes", "0 seconds"), or why it waits
    /// ("when no call runs"); empty when no failback is pending.
    pub time_left: String,
    pub time_left_s: Option<u64>,
}

/// `blocks` in `tandemctl status`: what `tandemctl block` turned away.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlocksStatus {
    pub logins: bool,
    pub calls: bool,
}

/// `replication` in `tandemctl status` (DESIGN.md §9).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// "sync" | "sync_strict" | "async"
    pub mode: String,
    /// Writes are not replicated synchronously: degraded to async, or refused (`sync_strict`).
    pub degraded: bool,
    pub last_index: u64,
    pub peer_acked_index: u64,
    pub lag_entries: u64,
    /// 0.0 to 1.0 while a snapshot is received.
    pub snapshot_progress: Option<f64>,
    /// Why shipping to the peer stopped, if it did.
    pub halted: String,
    /// Entries this node rewound and keeps for merge-back.
    pub orphans: u64,
    /// Rows in the conflicts table.
    pub conflicts: u64,
    /// Term of the last log entry, for the role machine (not shown).
    #[serde(skip)]
    pub last_term: Option<TermStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TermStatus {
    pub epoch: u64,
    pub node: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: String,
    /// The term held or followed; absent before the first election.
    pub term: Option<TermStatus>,
    /// Highest epoch seen.
    pub epoch: u64,
    pub priority: u32,
    pub disk: String,
    pub monitoring: String,
    pub maintenance: bool,
    /// Active but admitting nothing (a stall or a switchover fence).
    pub fenced: bool,
    /// True while this node admits clients.
    pub admitting: bool,
    pub version: String,
    /// The reachability targets answer (true when none are configured).
    pub reachable: bool,
    /// The active term was taken over (failover, start-up), not handed over (not shown).
    #[serde(skip)]
    pub took_over: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub address: String,
    /// "ok" | "suspect" | "failed" | "unknown"
    pub state: String,
    /// The peer's role as last heard, or "unknown".
    pub role: String,
    pub epoch: u64,
    /// Milliseconds since the last heartbeat; absent if never heard.
    pub last_seen_ms: Option<u64>,
    /// Peer's wall clock minus ours, at the last heartbeat.
    pub clock_skew_ms: Option<i64>,
    pub missed_keepalives: u32,
    /// The peer's disk state as last heard, or "unknown".
    #[serde(default)]
    pub disk: String,
    /// The peer's configured priority as last heard (not shown).
    #[serde(skip)]
    pub priority: u32,
    pub maintenance: bool,
    pub version_mismatch: bool,
    pub config_mismatch: bool,
    /// The peer's services as its last heartbeat reported them.
    #[serde(default)]
    pub services: Vec<PeerServiceStatus>,
    /// The last keep-alive round trip (a heartbeat out, its acknowledgement back), in ms.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
}

/// A service's health as the peer reports it in its heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerServiceStatus {
    pub name: String,
    pub healthy: bool,
    pub state: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SwitchoverStatus {
    /// "idle" | "waiting_idle" (a `--when-idle` switchover waits for calls to end) |
    /// "catching_up" | "handing_over"
    pub state: String,
    pub waiting_calls: u32,
}
