//! The manifests of a node's replicated directories, in `files.db` beside `state.db`.
//!
//! One row per (entry, path): the current version (or a deletion), the key both nodes agreed on
//! at the last sync, and the term of the last change. `files.db` is this node's own, like
//! `state.db`: never replicated and never replaced by a snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

use super::path::RelPath;
use super::plan::{Row, Version};

#[derive(Debug, thiserror::Error)]
#[error("files.db: {0}")]
pub struct ManifestError(String);

impl From<sqlx::Error> for ManifestError {
    fn from(error: sqlx::Error) -> Self {
        ManifestError(error.to_string())
    }
}

/// The manifests; cheap to clone.
#[derive(Clone)]
pub struct Manifest {
    pool: SqlitePool,
}

impl Manifest {
    pub async fn open(data_dir: &Path) -> Result<Manifest, ManifestError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(ManifestError::from)?
            .filename(data_dir.join("files.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS file_manifest (
                entry TEXT NOT NULL,
                path TEXT NOT NULL,
                present INTEGER NOT NULL,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                mode INTEGER NOT NULL,
                hash TEXT NOT NULL,
                synced TEXT,
                term INTEGER NOT NULL,
                PRIMARY KEY (entry, path)
            ) WITHOUT ROWID",
        )
        .execute(&pool)
        .await?;
        Ok(Manifest { pool })
    }

    /// Every row of `entry`. A row whose path no longer parses (an older version's) is skipped.
    pub async fn load(&self, entry: &str) -> Result<BTreeMap<RelPath, Row>, ManifestError> {
        let rows = sqlx::query(
            "SELECT path, present, size, mtime_ns, mode, hash, synced, term
             FROM file_manifest WHERE entry = ?",
        )
        .bind(entry)
        .fetch_all(&self.pool)
        .await?;
        let mut manifest = BTreeMap::new();
        for row in rows {
            let path: String = row.try_get("path")?;
            let Ok(path) = RelPath::parse(&path) else {
                continue;
            };
            let present: i64 = row.try_get("present")?;
            let current = (present != 0).then(|| -> Result<Version, sqlx::Error> {
                Ok(Version {
                    size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                    mtime_ns: row.try_get("mtime_ns")?,
                    mode: u32::try_from(row.try_get::<i64, _>("mode")?).unwrap_or(0),
                    hash: row.try_get("hash")?,
                })
            });
            manifest.insert(
                path,
                Row {
                    current: current.transpose()?,
                    synced: row.try_get("synced")?,
                    term: u64::try_from(row.try_get::<i64, _>("term")?).unwrap_or(0),
                },
            );
        }
        Ok(manifest)
    }

    /// Stores these rows (`None` removes the path's row), in one transaction.
    pub async fn store(
        &self,
        entry: &str,
        rows: &[(RelPath, Option<Row>)],
    ) -> Result<(), ManifestError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (path, row) in rows {
            match row {
                None => {
                    sqlx::query("DELETE FROM file_manifest WHERE entry = ? AND path = ?")
                        .bind(entry)
                        .bind(path.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                Some(row) => {
                    let version = row.current.clone().unwrap_or(Version {
                        size: 0,
                        mtime_ns: 0,
                        mode: 0,
                        hash: String::new(),
                    });
                    sqlx::query(
                        "INSERT OR REPLACE INTO file_manifest
                         (entry, path, present, size, mtime_ns, mode, hash, synced, term)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(entry)
                    .bind(path.as_str())
                    .bind(i64::from(row.current.is_some()))
                    .bind(i64::try_from(version.size).unwrap_or(i64::MAX))
                    .bind(version.mtime_ns)
                    .bind(i64::from(version.mode))
                    .bind(&version.hash)
                    .bind(&row.synced)
                    .bind(i64::try_from(row.term).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_round_trip_and_removals_remove() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::open(dir.path()).await.unwrap();
        let path = RelPath::parse("vm/a.wav").unwrap();
        let gone = RelPath::parse("old.wav").unwrap();
        let row = Row {
            current: Some(Version {
                size: 5,
                mtime_ns: 1_700_000_000_123_456_789,
                mode: 0o640,
                hash: "ab".into(),
            }),
            synced: Some("ab:640".into()),
            term: 4,
        };
        let tombstone = Row {
            current: None,
            synced: Some("cd:644".into()),
            term: 5,
        };
        manifest
            .store(
                "vm",
                &[
                    (path.clone(), Some(row.clone())),
                    (gone.clone(), Some(tombstone.clone())),
                ],
            )
            .await
            .unwrap();
        let loaded = manifest.load("vm").await.unwrap();
        assert_eq!(loaded[&path], row);
        assert_eq!(loaded[&gone], tombstone);
        assert!(manifest.load("other").await.unwrap().is_empty());
        manifest.store("vm", &[(gone.clone(), None)]).await.unwrap();
        assert_eq!(manifest.load("vm").await.unwrap().len(), 1);
        manifest.close().await;
        let reopened = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(reopened.load("vm").await.unwrap()[&path], row);
    }
}
