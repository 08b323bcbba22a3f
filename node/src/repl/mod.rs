//! The replicated database inside `tandemd` (DESIGN.md §4): the drivers around
//! `tandem-replication`.
//!
//! # Layout
//! - `writer`: the one writer task; client writes are grouped so many share one commit (fsync).
//! - `ship`: on the active, the task that runs the log core's `Shipper` over a `Replicate` stream
//!   to the passive, on a connection of its own.
//! - `receive`: on the passive, the `Replicate` handler that runs the `Receiver` and applies
//!   batches; and the rewind of a diverged suffix into the orphans table.
//! - `merge`: on the active, re-applying the peer's orphans as new writes, with conflicts;
//!   `merge_plan`: the decision for each orphan, made inside the write that re-applies it.
//! - `prune`: on the active, forgetting request ids older than `request_retention`.
//! - `scheduled_verify`: on the active, `verify` every `verify_every`, recorded as an event.
//! - `data_service`: the gRPC `Data` service on the client port; `convert`: protobuf edges.
//!
//! # Rules
//! - A write is refused before it commits unless this node admits clients (it is the active and
//!   its lease is fresh), and while the shipper refuses writes (`sync_strict`).
//! - A committed write is answered only after the shipper releases it (sync: the peer's
//!   acknowledgement; async or degraded: at once). A write committed on a node that stops being
//!   active before its acknowledgement is answered UNAVAILABLE, "outcome unknown".

pub mod admin_ops;
pub mod convert;
pub mod data_service;
pub mod merge;
mod merge_plan;
mod prune;
pub mod receive;
mod scheduled_verify;
pub mod ship;
pub mod snapshot_send;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_replication::data_api::Limits;
use tandem_replication::log::HlcClock;
use tandem_replication::snapshot::{SnapshotError, cleanup_old_generations, current_generation};
use tandem_replication::store::{Store, StoreError, StoreOptions};
use tokio::sync::{mpsc, watch};

use crate::admin::status::ReplicationStatus;
use crate::config::{Config, ReplicationMode};
use crate::driver::DriverHandle;

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

/// Writes waiting for the writer task at once; more wait for room.
const WRITE_QUEUE_BOUND: usize = 4096;
/// Orphan messages waiting for the merge task.
const MERGE_QUEUE_BOUND: usize = 16;
/// How often a node whose data.db was damaged asks the active again for a full copy.
const RECOVERY_ASK_EVERY: Duration = Duration::from_secs(2);
/// Inputs of the ship task queued at once.
const SHIP_QUEUE_BOUND: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("replication: {0}")]
    Store(#[from] StoreError),
    #[error("replication: {0}")]
    Generation(#[from] SnapshotError),
    #[error("replication: {0}")]
    Io(String),
}

impl ReplError {
    /// True when the cause is the config or its migrations (exit status 2), not the disk.
    pub fn is_config(&self) -> bool {
        let ReplError::Store(error) = self else {
            return false;
        };
        matches!(
            error,
            StoreError::MigrationsDir { .. }
                | StoreError::MigrationName { .. }
                | StoreError::MigrationDuplicate { .. }
                | StoreError::Migration { .. }
                | StoreError::TableMissing { .. }
                | StoreError::NotATable { .. }
                | StoreError::NoPrimaryKey { .. }
                | StoreError::InternalTable { .. }
                | StoreError::WideTableColumnName { .. }
        )
    }
}

/// The handle the servers and the driver share.
#[derive(Clone)]
pub struct Replication {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Replaced whole when a snapshot is installed as a new generation.
    pub store: std::sync::RwLock<Store>,
    pub config: Config,
    pub writes: mpsc::Sender<writer::WriteRequest>,
    pub ship: mpsc::Sender<ship::ShipInput>,
    pub status: watch::Sender<ReplicationStatus>,
    /// Set while the shipper refuses writes before commit (`sync_strict`, too many waiting).
    pub refusing: Mutex<Option<String>>,
    pub hlc: Mutex<HlcClock>,
    /// One `Replicate` stream applies at a time.
    pub receive_lock: Arc<tokio::sync::Mutex<()>>,
    /// One merge-back runs at a time.
    pub merge_lock: tokio::sync::Mutex<()>,
    /// Orphans from the peer, for the merge task, in order.
    pub merges: mpsc::Sender<tandem_proto::peer::OrphanBatch>,
    /// `resync --from-peer`: the receiving stream asks the active for a snapshot.
    pub want_snapshot: tokio::sync::Notify,
    /// True while a `Replicate` stream from the active is open here.
    pub receiving: std::sync::atomic::AtomicBool,
    pub driver: DriverHandle,
    pub peer_tls: Arc<rustls::ClientConfig>,
    pub limits: Limits,
    /// Why `data.db` was set aside as damaged at start, if it was.
    pub damaged: Option<String>,
}

impl Replication {
    /// Opens `data.db`, runs the node's and the application's migrations, installs capture and
    /// starts the writer and ship tasks.
    pub async fn start(
        config: &Config,
        driver: DriverHandle,
        peer_tls: Arc<rustls::ClientConfig>,
    ) -> Result<Replication, ReplError> {
        let generation = current_generation(&config.node.data_dir)?;
        cleanup_old_generations(&config.node.data_dir)?;
        // A damaged data.db (truncated, corrupt pages) is set aside, never served: the node
        // starts on an empty one, `inconsistent`, and takes a full copy from its peer.
        let damaged = match tandem_replication::store::damage::damage(&generation.db_path).await {
            Some(problem) => Some(set_aside(
                &config.node.data_dir,
                &generation.db_path,
                &problem,
            )?),
            None => None,
        };
        let store = open_store(config, &generation.dir).await?;
        let last = store.last_log_position().await?;
        let last_term = (last.idx > 0).then(|| crate::admin::status::TermStatus {
            epoch: last.term_epoch,
            node: last.term_node.clone(),
        });
        let offset_ms = u64::try_from(config.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
        let hlc = HlcClock::new(config.node.name.clone(), offset_ms);
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE_BOUND);
        let (ship, ship_rx) = mpsc::channel(SHIP_QUEUE_BOUND);
        let (merges, merge_rx) = mpsc::channel(MERGE_QUEUE_BOUND);
        let (status, _) = watch::channel(ReplicationStatus {
            mode: mode_name(config).into(),
            last_index: last.idx,
            last_term,
            ..ReplicationStatus::default()
        });
        let replication = Replication {
            inner: Arc::new(Inner {
                store: std::sync::RwLock::new(store),
                config: config.clone(),
                writes,
                ship,
                status,
                refusing: Mutex::new(None),
                hlc: Mutex::new(hlc),
                receive_lock: Arc::new(tokio::sync::Mutex::new(())),
                merge_lock: tokio::sync::Mutex::new(()),
                merges,
                want_snapshot: tokio::sync::Notify::new(),
                receiving: std::sync::atomic::AtomicBool::new(false),
                driver,
                peer_tls,
                limits: client_limits(),
                damaged: damaged.clone(),
            }),
        };
        replication.refresh_counts().await;
        tokio::spawn(writer::run(replication.clone(), write_rx));
        tokio::spawn(ship::run(replication.clone(), ship_rx));
        tokio::spawn(merge::run(replication.clone(), merge_rx));
        tokio::spawn(prune::run(replication.clone()));
        tokio::spawn(scheduled_verify::run(replication.clone()));
        Ok(replication)
    }

    /// Why `data.db` was found damaged and set aside at start: the daemon marks the disk
    /// `inconsistent` with it before the node takes any role.
    pub fn damaged(&self) -> Option<&str> {
        self.inner.damaged.as_deref()
    }

    /// After a damaged data.db was set aside and the disk marked `inconsistent` (before the
    /// driver ran): records the event, then asks the active for a full copy whenever a stream
    /// from it is open, until the disk is no longer inconsistent.
    pub fn spawn_damage_recovery(&self) {
        if let Some(message) = self.inner.damaged.clone() {
            tokio::spawn(self.clone().recover_from_damage(message));
        }
    }

    async fn recover_from_damage(self, message: String) {
        self.record("disk_damaged", &message).await;
        let mut status = self.inner.driver.status.clone();
        loop {
            // Marked inconsistent before this task started: anything else means a full copy
            // landed (later states, such as outdated, are the log's business).
            if status.borrow_and_update().node.disk != "inconsistent" {
                return;
            }
            if self
                .inner
                .receiving
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                // Ignored by the active while it already sends one; asked again until a copy
                // has landed.
                self.inner.want_snapshot.notify_one();
            }
            // A timeout asks again; a closed watch means the node is stopping.
            if let Ok(Err(_)) = tokio::time::timeout(RECOVERY_ASK_EVERY, status.changed()).await {
                return;
            }
        }
    }

    /// The live `data.db` (a cheap handle: its pools are shared).
    pub fn store(&self) -> Store {
        match self.inner.store.read() {
            Ok(store) => store.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `store` in place of the live one and returns the old one (to close).
    pub(crate) fn replace_store(&self, store: Store) -> Store {
        let mut live = match self.inner.store.write() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *live, store)
    }

    pub fn status(&self) -> watch::Receiver<ReplicationStatus> {
        self.inner.status.subscribe()
    }

    pub(crate) fn update_status(&self, change: impl FnOnce(&mut ReplicationStatus)) {
        self.inner.status.send_modify(change);
    }

    /// Records an event through the driver (which writes events in order, off its loop).
    pub(crate) async fn record(&self, kind: &str, message: &str) {
        let input = crate::driver::Input::Record {
            kind: kind.to_string(),
            message: message.to_string(),
        };
        if self.inner.driver.inputs.send(input).await.is_err() {
            tracing::warn!(kind, "the node is stopping; event not recorded: {message}");
        }
    }

    /// Orphans and conflicts, for status.
    pub(crate) async fn refresh_counts(&self) {
        let store = self.store();
        let orphans: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM _tandem_orphans")
            .fetch_one(store.reader())
            .await;
        let conflicts: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM tandem_conflicts")
            .fetch_one(store.reader())
            .await;
        self.update_status(|status| {
            status.orphans = orphans.map_or(0, |n| n.max(0) as u64);
            status.conflicts = conflicts.map_or(0, |n| n.max(0) as u64);
        });
    }

    /// The priority of a term's node, for the log core's term order.
    pub(crate) fn priority_of(&self, node: &str) -> u32 {
        if node == self.inner.config.node.name {
            self.inner.config.node.priority
        } else {
            0
        }
    }

    pub(crate) fn wall_ms() -> u64 {
        u64::try_from(crate::state::store::wall_clock_ms()).unwrap_or(0)
    }
}

/// The Data API's bounds, with the gateway's tables kept from clients: sessions and users hold
/// hashes of secrets, and only the gateway writes calls, CDRs and blocks. Public for the fuzz
/// targets, which check requests against the same bounds.
#[doc(hidden)]
pub fn client_limits() -> Limits {
    let private = tandem_gateway::schema::SECRET_TABLES;
    Limits {
        private_tables: private
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .into(),
        node_only_tables: tandem_gateway::schema::TABLES
            .iter()
            .filter(|table| !private.contains(table))
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .into(),
        ..Limits::default()
    }
}

pub fn mode_name(config: &Config) -> &'static str {
    match (config.replication.mode, config.replication.sync_strict) {
        (ReplicationMode::Sync, false) => "sync",
        (ReplicationMode::Sync, true) => "sync_strict",
        (ReplicationMode::Async, _) => "async",
    }
}

/// Opens `data.db` in `dir` with the configured tables and migrations (also used by tests and
/// the bench to open a stopped node's database).
/// Moves a damaged `db` (and its WAL and shared-memory files) to `data_dir/damaged-<ms>.db`;
/// returns the event's message. Nothing is deleted: the operator may want to inspect it.
fn set_aside(data_dir: &Path, db: &Path, problem: &str) -> Result<String, ReplError> {
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
