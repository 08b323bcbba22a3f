//! Test databases with a `_tandem_log` table shaped like the store's, and stream helpers.

use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::snapshot::{
    CHUNK_SIZE_MIN_BYTES, Chunk, Manifest, SnapshotInfo, SnapshotReader, SnapshotWriter,
    current_db_path,
};

/// The store's `_tandem_log` columns (store/schema.rs).
const LOG_TABLE: &str = "CREATE TABLE _tandem_log (
    idx INTEGER PRIMARY KEY, term_epoch INTEGER NOT NULL, term_node TEXT NOT NULL,
    txid INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    new_image TEXT, old_image TEXT, hlc_ms INTEGER NOT NULL, hlc_logical INTEGER NOT NULL,
    hlc_node TEXT NOT NULL, origin TEXT NOT NULL, hash INTEGER)";

pub type Item = (i64, String, Vec<u8>);

/// `count` rows whose BLOBs hold every byte value, tagged so two databases differ.
pub fn items(tag: &str, count: i64) -> Vec<Item> {
    (1..=count)
        .map(|id| {
            let payload: Vec<u8> = (0..300).map(|n| ((n * 7 + id) % 256) as u8).collect();
            (id, format!("{tag}-{id}"), payload)
        })
        .collect()
}

pub async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .expect("open test database")
}

/// A WAL-mode database like `data.db`: an `items` table and `log_entries` log rows.
pub async fn make_db(path: &Path, rows: &[Item], log_entries: i64) {
    let mut connection = connect(path).await;
    sqlx::query(LOG_TABLE)
        .execute(&mut connection)
        .await
        .expect("log table");
    sqlx::query(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .expect("items table");
    for (id, name, payload) in rows {
        sqlx::query("INSERT INTO items (id, name, payload) VALUES (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(payload)
            .execute(&mut connection)
            .await
            .expect("insert item");
    }
    for idx in 1..=log_entries {
        sqlx::query(
            "INSERT INTO _tandem_log (idx, term_epoch, term_node, txid, tbl, pk, op, new_image,
             hlc_ms, hlc_logical, hlc_node, origin, hash)
             VALUES (?, 1, 'a', ?, 'items', '[1]', 'insert', '{}', 1, 0, 'a', 'a', 0)",
        )
        .bind(idx)
        .bind(idx)
        .execute(&mut connection)
        .await
        .expect("insert log entry");
    }
    connection.close().await.expect("close");
}

pub async fn read_items(path: &Path) -> Vec<Item> {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .connect()
        .await
        .expect("open database to read");
    let rows: Vec<Item> = sqlx::query_as("SELECT id, name, payload FROM items ORDER BY id")
        .fetch_all(&mut connection)
        .await
        .expect("read items");
    connection.close().await.expect("close");
    rows
}

/// The items of whatever database `CURRENT` names.
pub async fn read_current_items(data_dir: &Path) -> Vec<Item> {
    let path = current_db_path(data_dir).expect("resolve CURRENT");
    read_items(&path).await
}

pub fn read_pointer(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("CURRENT")).expect("read CURRENT")
}

/// A data directory whose live generation (`db-1`) holds `old` rows and 3 log entries.
pub async fn data_dir_with(root: &Path, old: &[Item]) -> PathBuf {
    let data_dir = root.join("data");
    std::fs::create_dir(&data_dir).expect("create data dir");
    let db_path = current_db_path(&data_dir).expect("first use");
    make_db(&db_path, old, 3).await;
    data_dir
}

pub fn all_chunks(info: &SnapshotInfo, chunk_size_bytes: usize) -> (Vec<Chunk>, Manifest) {
    let mut reader = SnapshotReader::open(info, chunk_size_bytes).expect("open reader");
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.next_chunk().expect("read chunk") {
        chunks.push(chunk);
    }
    (chunks, reader.finish().expect("manifest"))
}

pub const SMALL_CHUNK_BYTES: usize = 4 * CHUNK_SIZE_MIN_BYTES;

/// Streams `info` through a reader and a writer in 4 KiB chunks.
pub fn receive(info: &SnapshotInfo, data_dir: &Path) -> crate::snapshot::VerifiedSnapshot {
    let (chunks, manifest) = all_chunks(info, SMALL_CHUNK_BYTES);
    let mut writer = SnapshotWriter::begin(data_dir, info.bytes).expect("begin");
    for chunk in &chunks {
        writer.write_chunk(chunk).expect("write chunk");
    }
    writer.finish(&manifest).expect("finish")
}

/// Names in `dir` starting with `prefix`.
pub fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf8")
        })
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}
