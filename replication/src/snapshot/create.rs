//! Taking a snapshot: `VACUUM INTO` a fresh file, fsync it, then read its own log index.
//!
//! `VACUUM INTO` cannot run inside an open transaction, so it runs on a connection of its own
//! that never begins one; it reads the source as one consistent read transaction, so writers
//! and other readers carry on meanwhile. The copy's `_tandem_log` gives its index, so the
//! index and the data always agree. Not streaming: see `reader`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::SnapshotError;
use super::chunk::{Sha256, finish_sha256};
use super::durable::{sync_dir, sync_file, utf8};

/// The file name of a snapshot inside the caller's `out_dir`; one snapshot per directory.
pub const SNAPSHOT_FILE_NAME: &str = "snapshot.db";

/// A snapshot file on disk, fsync'd, with what a receiver needs to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: Sha256,
    /// The largest `_tandem_log.idx` in the copy, 0 when its log is empty.
    pub last_log_idx: u64,
}

/// Copies the database at `source_db` into `out_dir/snapshot.db` and fsyncs it.
///
/// A stale `snapshot.db` left in `out_dir` by an earlier crash is replaced.
pub async fn create_snapshot(
    source_db: &Path,
    out_dir: &Path,
) -> Result<SnapshotInfo, SnapshotError> {
    let path = out_dir.join(SNAPSHOT_FILE_NAME);
    remove_stale(&path)?;
    vacuum_into(source_db, &path).await?;
    let last_log_idx = read_last_log_idx(&path).await?;
    sync_file(&path)?;
    sync_dir(out_dir)?;
    let (bytes, sha256) = hash_file_blocking(path.clone()).await?;
    Ok(SnapshotInfo {
        path,
        bytes,
        sha256,
        last_log_idx,
    })
}

fn remove_stale(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SnapshotError::io("remove stale snapshot", path)(error)),
    }
}

async fn vacuum_into(source_db: &Path, target: &Path) -> Result<(), SnapshotError> {
    let options = SqliteConnectOptions::new()
        .filename(source_db)
        .create_if_missing(false);
    let mut connection = options
        .connect()
        .await
        .map_err(SnapshotError::sql(source_db))?;
    let statement = format!("VACUUM INTO {}", sql_string_literal(utf8(target)?));
    let result = sqlx::query(&statement).execute(&mut connection).await;
    // Closing is best effort: the copy is already complete or already failed.
    let _ = connection.close().await;
    result.map_err(SnapshotError::sql(source_db))?;
    Ok(())
}

/// `text` as an SQL string literal: single quotes doubled, nothing else is special inside one.
pub(crate) fn sql_string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Opens a database file that must already exist, without changing its journal mode.
pub(crate) async fn open_existing(path: &Path) -> Result<SqliteConnection, SnapshotError> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(SnapshotError::sql(path))
}

pub(crate) async fn read_last_log_idx(path: &Path) -> Result<u64, SnapshotError> {
    let mut connection = open_existing(path).await?;
    let result = last_log_idx_on(&mut connection, path).await;
    let _ = connection.close().await;
    result
}

async fn last_log_idx_on(
    connection: &mut SqliteConnection,
    path: &Path,
) -> Result<u64, SnapshotError> {
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_tandem_log'",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(SnapshotError::sql(path))?;
    if tables == 0 {
        return Err(SnapshotError::NoLogTable {
            path: path.to_path_buf(),
        });
    }
    let max: Option<i64> = sqlx::query_scalar("SELECT max(idx) FROM _tandem_log")
        .fetch_one(&mut *connection)
        .await
        .map_err(SnapshotError::sql(path))?;
    // idx is an INTEGER PRIMARY KEY the store numbers from 1; a negative one is not ours.
    Ok(max.map_or(0, |idx| idx.max(0) as u64))
}

async fn hash_file_blocking(path: PathBuf) -> Result<(u64, Sha256), SnapshotError> {
    let join_path = path.clone();
    tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(|error| SnapshotError::Io {
            action: "hash",
            path: join_path,
            source: std::io::Error::other(error),
        })?
}

/// Size and SHA-256 of a file, read through a fixed 64 KiB buffer.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, Sha256), SnapshotError> {
    let mut file = File::open(path).map_err(SnapshotError::io("open", path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total_bytes = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(SnapshotError::io("read", path))?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
        total_bytes += read as u64;
    }
    Ok((total_bytes, finish_sha256(context)))
}
