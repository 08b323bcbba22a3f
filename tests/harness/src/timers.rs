//! The `[timers]` section the harness writes into every node's config.

use std::time::Duration;

/// Failure-detection timers, the same for both nodes. The defaults are the product's, except
/// `min_failover_interval`: the product damps flapping for 5 minutes, which would forbid a second
/// failover in any test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// `keepalive_interval`: how often each node sends a heartbeat.
    pub keepalive_interval: Duration,
    /// `warn_after_misses`: missed heartbeats before the peer is `suspect`.
    pub warn_after_misses: u32,
    /// `failover_after_misses`: missed heartbeats before the passive takes over.
    pub failover_after_misses: u32,
    /// `startup_failover_after_misses`: how long (in intervals) a starting node waits for its
    /// peer before it decides alone.
    pub startup_failover_after_misses: u32,
    /// `min_failover_interval`: the flap damping; 0 in tests.
    pub min_failover_interval: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            keepalive_interval: Duration::from_millis(100),
            warn_after_misses: 3,
            failover_after_misses: 8,
            startup_failover_after_misses: 50,
            min_failover_interval: Duration::ZERO,
        }
    }
}
