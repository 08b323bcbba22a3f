//! `data.db`'s node-owned tables and opening it: the replicated request ids and merge-back
//! conflicts (built-in migrations), the gateway's schema, the application's migrations, and
//! setting a damaged file aside.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_replication::store::{Store, StoreOptions};

use super::handle::{ReplError, Replication};
use crate::config::Config;

/// The node's own replicated table of request ids (see `tandem_replication::store`).
pub use tandem_replication::store::REQUESTS_TABLE;
const REQUESTS_MIGRATION: &str = "tandem_000_requests";
/// The index pruning finds old request ids by (see `prune`).
const REQUESTS_AGE_MIGRATION: &str = "tandem_002_requests_age";
const REQUESTS_AGE_SQL: &str =
    "CREATE INDEX IF NOT EXISTS tandem_requests_age ON tandem_requests (at_ms);";
use tandem_replication::store::REQUESTS_SQL;
/// Conflicts of merge-back: the losing image of each. Replicated, so both nodes list them.
pub const CONFLICTS_TABLE: &str = "tandem_conflicts";
const CONFLICTS_MIGRATION: &str = "tandem_001_conflicts";
const CONFLICTS_SQL: &str = "CREATE TABLE IF NOT EXISTS tandem_conflicts (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    reason TEXT NOT NULL,
    losing_image TEXT,
    kept_image TEXT
);";
/// The stamps of both sides of a conflict (JSON `{"ms", "logical", "node"}`), and whether the
/// active's side was written while the merge ran (issue 26).
const CONFLICTS_STAMPS_MIGRATION: &str = "tandem_003_conflicts_stamps";
const CONFLICTS_STAMPS_SQL: &str = "ALTER TABLE tandem_conflicts ADD COLUMN losing_hlc TEXT;
ALTER TABLE tandem_conflicts ADD COLUMN kept_hlc TEXT;
ALTER TABLE tandem_conflicts ADD COLUMN during_merge INTEGER NOT NULL DEFAULT 0;";

/// Opens `data.db` in `dir` with the configured tables and migrations (also used by tests and
/// the bench to open a stopped node's database).
/// Moves a damaged `db` (and its WAL and shared-memory files) to `data_dir/damaged-<ms>.db`;
/// returns the event's message. Nothing is deleted: the operator may want to inspect it.
pub(super) fn set_aside(data_dir: &Path, db: &Path, problem: &str) -> Result<String, ReplError> {
    let kept = data_dir.join(format!("damaged-{}.db", Replication::wall_ms()));
    std::fs::rename(db, &kept).map_err(|error| {
        ReplError::Io(format!(
            "cannot set the damaged {} aside: {error}",
            db.display()
        ))
    })?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{suffix}", kept.display()));
        }
    }
    let message = format!(
        "{} is damaged ({problem}); it is kept as {} and this node takes a full copy from its peer",
        db.display(),
        kept.display()
    );
    tracing::error!("{message}");
    Ok(message)
}

pub async fn open_store(config: &Config, dir: &Path) -> Result<Store, ReplError> {
    let mut tables = config.replication.tables.clone();
    tables.push(REQUESTS_TABLE.into());
    tables.push(CONFLICTS_TABLE.into());
    tables.extend(tandem_gateway::schema::TABLES.iter().map(|t| t.to_string()));
    let mut options = StoreOptions::new(tables);
    options.busy_timeout = Duration::from_secs(10);
    let store = Store::open(dir, options).await?;
    store
        .migrate_builtin(REQUESTS_MIGRATION, REQUESTS_SQL)
        .await?;
    store
        .migrate_builtin(CONFLICTS_MIGRATION, CONFLICTS_SQL)
        .await?;
    store
        .migrate_builtin(REQUESTS_AGE_MIGRATION, REQUESTS_AGE_SQL)
        .await?;
    store
        .migrate_builtin(CONFLICTS_STAMPS_MIGRATION, CONFLICTS_STAMPS_SQL)
        .await?;
    store
        .migrate_builtin(
            tandem_gateway::schema::MIGRATION_NAME,
            tandem_gateway::schema::MIGRATION_SQL,
        )
        .await?;
    match &config.replication.migrations {
        Some(dir) => {
            store.migrate(dir).await?;
        }
        None => {
            store.install_capture().await?;
        }
    }
    Ok(store)
}
