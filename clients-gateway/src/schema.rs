//! The gateway's replicated tables, created by its own migration (DESIGN.md §5).
//!
//! Keys are ULIDs, except a CDR's, which is its call id: two versions of one call (a real end on
//! one side of a split, `failover` on the other) meet as one conflict in merge-back, and the real
//! end wins (see `cdr_image_wins`). Request ids of the starts and ends travel with the rows, so a
//! retried request finds what the first one did. Not here: the SQL the requests run (`calls`,
//! `sessions`).

/// The migration's name in `_tandem_migrations`.
pub const MIGRATION_NAME: &str = "tandem_100_gateway";

/// The gateway's tables; the node always replicates them.
pub const TABLES: [&str; 5] = ["users", "sessions", "calls", "cdrs", "gateway_blocks"];

/// Tables that hold secrets (password and token hashes): clients' Data API requests may neither
/// read nor write them.
pub const SECRET_TABLES: [&str; 2] = ["users", "sessions"];

/// The CDR table, whose merge conflicts the gateway decides.
pub const CDRS_TABLE: &str = "cdrs";

/// The cause of the CDRs of calls closed because the node that ran them failed.
pub const FAILOVER_CAUSE: &str = "failover";

pub const MIGRATION_SQL: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    client_kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    node TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_request ON sessions (request_id);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_ms);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    from_party TEXT NOT NULL,
    to_party TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    node TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    start_request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_user ON calls (user_id);
CREATE INDEX IF NOT EXISTS calls_start_request ON calls (start_request_id);
CREATE TABLE IF NOT EXISTS cdrs (
    call_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    from_party TEXT NOT NULL,
    to_party TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    cause TEXT NOT NULL,
    node TEXT NOT NULL,
    ended_by TEXT NOT NULL,
    start_request_id TEXT NOT NULL,
    end_request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cdrs_start_request ON cdrs (start_request_id);
CREATE TABLE IF NOT EXISTS gateway_blocks (
    what TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
";

/// Whether a conflicting CDR image wins over the other: a real end beats `failover`, whatever
/// the stamps say (DESIGN.md §5). `None` when the causes do not decide (both real, or both
/// `failover`): the table's policy decides then. Images are the JSON objects of the log.
pub fn cdr_image_wins(candidate_cause: Option<&str>, other_cause: Option<&str>) -> Option<bool> {
    let candidate_failover = candidate_cause == Some(FAILOVER_CAUSE);
    let other_failover = other_cause == Some(FAILOVER_CAUSE);
    match (candidate_cause, other_cause) {
        (Some(_), Some(_)) if candidate_failover != other_failover => Some(other_failover),
        // A deleted CDR never beats a written one.
        (None, Some(_)) => Some(false),
        (Some(_), None) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_end_beats_failover_either_way_round() {
        assert_eq!(cdr_image_wins(Some("normal"), Some("failover")), Some(true));
        assert_eq!(cdr_image_wins(Some("failover"), Some("busy")), Some(false));
    }

    #[test]
    fn equal_kinds_leave_it_to_the_policy() {
        assert_eq!(cdr_image_wins(Some("normal"), Some("busy")), None);
        assert_eq!(cdr_image_wins(Some("failover"), Some("failover")), None);
        assert_eq!(cdr_image_wins(None, None), None);
    }

    #[test]
    fn a_written_cdr_beats_a_missing_one() {
        assert_eq!(cdr_image_wins(None, Some("failover")), Some(false));
        assert_eq!(cdr_image_wins(Some("failover"), None), Some(true));
    }
}
