//! `Replication`: the handle the servers, the driver and the tasks of the replicated database
//! share, with what every task needs of it (the live store, the status, events, the clock).
//! Not here: starting the tasks (`start`), or what any task does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_replication::data_api::Limits;
use tandem_replication::log::HlcClock;
use tandem_replication::snapshot::SnapshotError;
use tandem_replication::store::{Store, StoreError};
use tokio::sync::{mpsc, watch};

use super::messages::{ShipInput, WriteRequest};
use crate::admin::status::ReplicationStatus;
use crate::config::{Config, ReplicationMode};
use crate::driver::handle::DriverHandle;

/// How often a node whose data.db was damaged asks the active again for a full copy.
const RECOVERY_ASK_EVERY: Duration = Duration::from_secs(2);

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
    pub writes: mpsc::Sender<WriteRequest>,
    pub ship: mpsc::Sender<ShipInput>,
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

    /// Moves this node's clock past every stamp in the live log, so each stamp it issues is
    /// newer whatever its wall clock says after a restart or a snapshot (`newest` merges compare
    /// stamps).
    pub(crate) async fn follow_log_stamps(&self) -> Result<(), StoreError> {
        let Some((ms, logical, node)) = self.store().newest_stamp().await? else {
            return Ok(());
        };
        let newest = tandem_replication::log::Hlc::new(ms, logical, node);
        let mut clock = match self.inner.hlc.lock() {
            Ok(clock) => clock,
            Err(poisoned) => poisoned.into_inner(),
        };
        clock.observe(&newest, Self::wall_ms());
        Ok(())
    }

    pub fn status(&self) -> watch::Receiver<ReplicationStatus> {
        self.inner.status.subscribe()
    }

    pub(crate) fn update_status(&self, change: impl FnOnce(&mut ReplicationStatus)) {
        self.inner.status.send_modify(change);
    }

    /// Records an event through the driver (which writes events in order, off its loop).
    pub(crate) async fn record(&self, kind: &str, message: &str) {
        let input = crate::driver::handle::Input::Record {
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
