//! Shared set-up for the store tests: stores in temp dirs with a migrations directory, capture
//! contexts, writing SQL, shipping A's log to B, and reading rows back.

use std::path::Path;

use sqlx::SqliteConnection;
use tempfile::TempDir;

use crate::store::{CaptureContext, LogEntry, SqlValue, Store, StoreError, StoreOptions, Written};

/// A store in its own temp dir; the dir lives as long as the node.
pub struct Node {
    pub dir: TempDir,
    pub store: Store,
}

/// The application schema most tests use: a keyed table with every storage class, a parent and
/// a child with a foreign key, and a composite-key table.
pub const SCHEMA: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, data BLOB);
CREATE TABLE parents (id TEXT PRIMARY KEY, label TEXT);
CREATE TABLE children (id INTEGER PRIMARY KEY,
                       parent_id TEXT NOT NULL REFERENCES parents(id) ON DELETE CASCADE);
CREATE TABLE pairs (a TEXT, b INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
";

pub const TABLES: [&str; 4] = ["items", "parents", "children", "pairs"];

pub fn write_migrations(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

/// A store with `SCHEMA` migrated and capture on `TABLES`, plus `extra` migrations.
pub async fn node() -> Node {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(&migrations, &[("001_schema.sql", SCHEMA)]);
    let tables = TABLES.iter().map(|t| t.to_string()).collect();
    let store = Store::open(dir.path(), StoreOptions::new(tables))
        .await
        .unwrap();
    store.migrate(&migrations).await.unwrap();
    Node { dir, store }
}

pub fn context(txid: u64) -> CaptureContext {
    CaptureContext {
        term_epoch: 3,
        term_node: "a".to_owned(),
        txid,
        hlc_ms: 1_700_000_000_000 + txid,
        hlc_logical: 7,
        hlc_node: "a".to_owned(),
        origin: "a".to_owned(),
    }
}

/// Runs `sql` (one or more statements) as one write transaction stamped with `txid`.
pub async fn write_sql(store: &Store, txid: u64, sql: &str) -> Result<Written<()>, StoreError> {
    store
        .write(&context(txid), async |connection: &mut SqliteConnection| {
            sqlx::raw_sql(sql).execute(&mut *connection).await?;
            Ok::<_, StoreError>(())
        })
        .await
}

/// Every entry of `store`'s log.
pub async fn all_entries(store: &Store) -> Vec<LogEntry> {
    store.read_log(0, usize::MAX, usize::MAX).await.unwrap()
}

/// Ships whatever `to` lacks of `from`'s log, in one batch.
pub async fn ship(from: &Store, to: &Store) -> Result<usize, StoreError> {
    let after = to.last_log_position().await?.idx;
    let entries = from.read_log(after, 100_000, usize::MAX).await?;
    to.apply_entries(&entries).await?;
    Ok(entries.len())
}

/// Every row of `sql`'s result, with storage classes.
pub async fn rows(store: &Store, sql: &str) -> Vec<Vec<SqlValue>> {
    let rows = sqlx::query(sql).fetch_all(store.reader()).await.unwrap();
    rows.iter()
        .map(|row| {
            let width = sqlx::Row::len(row);
            (0..width)
                .map(|i| SqlValue::from_row(row, i).unwrap())
                .collect()
        })
        .collect()
}

pub fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}
