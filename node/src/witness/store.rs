//! `witness.db`: what the witness must not forget, one row per pair it serves: which node holds
//! the pair's term (and the term), and which nodes the active reported outdated. SQLite in WAL
//! mode with `synchronous=FULL`, so a grant's row is on disk before the grant is answered. The
//! leases themselves are not kept: after a restart every recorded holder counts as just renewed
//! (`Grantor::new`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::grantor::{PairRecord, WitnessTerm};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS pairs (
    cluster TEXT PRIMARY KEY NOT NULL,
    holder_epoch INTEGER,
    holder_node TEXT,
    holder_priority INTEGER,
    outdated TEXT NOT NULL DEFAULT ''
) STRICT;";

#[derive(Debug, thiserror::Error)]
pub enum WitnessStoreError {
    #[error("witness.db at {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("witness.db: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("witness.db holds an invalid value in {column}: {value}")]
    Corrupt { column: &'static str, value: String },
}

/// The open `witness.db`; one connection, so writes are in order.
#[derive(Clone)]
pub struct WitnessStore {
    pool: SqlitePool,
}

impl WitnessStore {
    /// Opens (or creates) `data_dir/witness.db`, creating `data_dir` if needed.
    pub async fn open(data_dir: &Path) -> Result<WitnessStore, WitnessStoreError> {
        let path = data_dir.join("witness.db");
        let open_error = |source| WitnessStoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|error| open_error(sqlx::Error::Io(error)))?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(open_error)?;
        Ok(WitnessStore { pool })
    }

    /// Every pair's record.
    pub async fn load(&self) -> Result<Vec<PairRecord>, WitnessStoreError> {
        let rows = sqlx::query("SELECT * FROM pairs ORDER BY cluster")
            .fetch_all(&self.pool)
            .await?;
        let mut records = Vec::new();
        for row in rows {
            let epoch: Option<i64> = row.try_get("holder_epoch")?;
            let node: Option<String> = row.try_get("holder_node")?;
            let priority: Option<i64> = row.try_get("holder_priority")?;
            let holder = match (epoch, node, priority) {
                (Some(epoch), Some(node), Some(priority)) => Some(WitnessTerm {
                    epoch: u64::try_from(epoch).map_err(|_| WitnessStoreError::Corrupt {
                        column: "holder_epoch",
                        value: epoch.to_string(),
                    })?,
                    node,
                    priority: u32::try_from(priority).map_err(|_| WitnessStoreError::Corrupt {
                        column: "holder_priority",
                        value: priority.to_string(),
                    })?,
                }),
                _ => None,
            };
            let outdated: String = row.try_get("outdated")?;
            records.push(PairRecord {
                cluster: row.try_get("cluster")?,
                holder,
                outdated: outdated
                    .split(',')
                    .filter(|node| !node.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
        Ok(records)
    }

    /// Writes `record` durably (the commit is fsync'd before this returns).
    pub async fn save(&self, record: &PairRecord) -> Result<(), WitnessStoreError> {
        let holder = record.holder.as_ref();
        let outdated: Vec<&str> = record.outdated.iter().map(String::as_str).collect();
        sqlx::query(
            "INSERT INTO pairs (cluster, holder_epoch, holder_node, holder_priority, outdated)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (cluster) DO UPDATE SET holder_epoch = ?2, holder_node = ?3,
                 holder_priority = ?4, outdated = ?5",
        )
        .bind(&record.cluster)
        .bind(holder.map(|term| term.epoch as i64))
        .bind(holder.map(|term| term.node.clone()))
        .bind(holder.map(|term| i64::from(term.priority)))
        .bind(outdated.join(","))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
