//! `Store`: the handle on `data.db`, and opening it.
//!
//! The other files of this module add the operations (`impl Store` blocks): migrations and
//! capture, writing, reading and applying the log, row hashes. Not here: deciding terms, stamps
//! or what to ship; the log core and the shipping driver do that.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, SqlitePool};
use tokio::sync::Mutex;

use super::entry::RollingHash;
use super::error::StoreError;
use super::options::StoreOptions;
use super::schema::SCHEMA;
use crate::raw_sqlite::OwnedDb;

/// The name of the replicated database inside a node's data directory.
pub const DATA_DB_FILE: &str = "data.db";

/// The replicated database of one node. Cloning is cheap and shares the connections.
#[derive(Clone, Debug)]
pub struct Store {
    /// sqlx's writer connection, for the store's occasional writes (migrations, capture,
    /// rewind, retention) and `Store::write`.
    pub(super) writer: SqlitePool,
    /// The store's own writer connection, for client writes (`WriteGroup`) and applied
    /// batches: no round trip to sqlx's worker thread, and statements stay prepared. Its mutex
    /// is the one write turn: every write, on either connection, holds it while it runs.
    pub(super) owned: Arc<Mutex<OwnedDb>>,
    /// Read-only connections, so that shipping, verify and queries never hold up the writer.
    pub(super) reader: SqlitePool,
    /// Tables whose changes are captured, deduplicated, in config order.
    pub(super) tables: Arc<[String]>,
    /// Chains the log's hashes; checked again on every entry applied from the peer.
    pub(super) rolling_hash: RollingHash,
    /// Set once the triggers were (re)installed through this handle: until then a write could
    /// change a replicated table without capturing it, so `write` refuses.
    pub(super) capture_installed: Arc<AtomicBool>,
    /// How long a connection waits on a lock held by another process.
    pub(super) busy_timeout: std::time::Duration,
    /// For messages.
    pub(super) path: PathBuf,
}

impl Store {
    /// Opens (or creates) `dir/data.db` in WAL mode with `synchronous=FULL`, foreign keys and
    /// recursive triggers on every connection, and creates the store's own tables. Capture is
    /// installed by `migrate` (or `install_capture`), since the tables may not exist yet.
    pub async fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let path = dir.join(DATA_DB_FILE);
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let connect_options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .pragma("recursive_triggers", "ON")
            .busy_timeout(options.busy_timeout);
        // No ping before each acquire: the connection is a file in this process, and a ping is
        // a round trip to sqlx's worker thread on every write.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(connect_options.clone())
            .await
            .map_err(open_error)?;
        writer.execute(SCHEMA).await.map_err(open_error)?;
        super::schema::upgrade(&writer).await.map_err(open_error)?;
        let owned = OwnedDb::open(&path, options.busy_timeout).map_err(|failure| {
            open_error(sqlx::Error::Protocol(format!(
                "opening the store's writer connection: {failure}"
            )))
        })?;
        // Opened after the writer: a read-only connection cannot create the file or its WAL.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers_max.max(1))
            .test_before_acquire(false)
            .acquire_timeout(options.reader_acquire_timeout)
            .connect_with(connect_options.read_only(true))
            .await
            .map_err(open_error)?;
        Ok(Store {
            writer,
            owned: Arc::new(Mutex::new(owned)),
            reader,
            tables: dedup_in_order(options.tables).into(),
            rolling_hash: options.rolling_hash,
            capture_installed: Arc::new(AtomicBool::new(false)),
            busy_timeout: options.busy_timeout,
            path,
        })
    }

    /// The read-only pool, for queries (the Data API's `Query`, `allow_stale` reads).
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The path of `data.db`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The replicated tables, as configured.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Closes every connection; further calls fail. Waits for operations in progress.
    pub async fn close(&self) {
        self.owned.lock().await.close();
        self.writer.close().await;
        self.reader.close().await;
    }

    pub(super) fn ensure_capture_installed(&self) -> Result<(), StoreError> {
        match self.capture_installed.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err(StoreError::CaptureNotInstalled),
        }
    }
}

fn dedup_in_order(tables: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tables
        .into_iter()
        .filter(|table| seen.insert(table.clone()))
        .collect()
}
