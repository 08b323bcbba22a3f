//! Which kinds of event are mailed. Events are recorded by kind (`role_change`, `failover`,
//! ...) in `state.db`; the mailed ones enter the alert outbox in the same transaction
//! (`store::StateStore::record_event`), which `ops::alerts` then sends.

/// Event kinds that are mailed: what an operator must hear about without watching the log
/// (every kind DESIGN.md §6 lists, and a few more).
pub const MAILED_KINDS: &[&str] = &[
    "role_change",
    "peer_suspect",
    "service_restart",
    "service_failed",
    "service_handover",
    "failback",
    "failover",
    "failover_suppressed",
    "split_brain",
    "peer_failed",
    "fence",
    "switchover",
    "replication_degraded",
    "replication_halted",
    "replication_apply_failed",
    "replication_refusing",
    "replication_resynced",
    "diverged",
    "disk_damaged",
    "merge",
    "clock_skew",
    "verify_differs",
    "calls_closed",
    "cert_expiry",
    "cert_reload_failed",
    "witness_lost",
    "witness_refused",
];

/// Whether events of `kind` are mailed.
pub fn is_mailed(kind: &str) -> bool {
    MAILED_KINDS.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailed_kinds_include_failover_and_exclude_routine_events() {
        assert!(is_mailed("failover"));
        assert!(is_mailed("replication_degraded"));
        assert!(is_mailed("role_change") && is_mailed("service_restart"));
        assert!(is_mailed("disk_damaged"));
        assert!(!is_mailed("block"));
        assert!(!is_mailed("hook") && !is_mailed("user"));
    }
}
