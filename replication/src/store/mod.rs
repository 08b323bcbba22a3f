//! The `data.db` store: the replicated SQLite database and its change capture (DESIGN.md §4).
//!
//! # Layout
//! - `handle`: `Store` and `Store::open` (WAL, `synchronous=FULL`, foreign keys, recursive
//!   triggers; one writer connection, a read-only pool).
//! - `schema`: the store's own tables: `_tandem_log`, `_tandem_migrations`,
//!   `_tandem_applying`, `_tandem_capture_ctx`.
//! - `migrations`: `Store::migrate` over `NNN_name.sql` files.
//! - `table_shape`, `capture`: the capture triggers on the replicated tables.
//! - `image`, `base64`, `value`: how row values travel as JSON (BLOBs as base64, reals exact).
//! - `context`, `write`, `write_group`, `pending_write`, `finish`: `Store::write`, and
//!   `WriteGroup` with its `PendingWrite`s for group commit: client writes stamped with a
//!   `CaptureContext`, their entries hashed before the commit.
//! - `client_write`: `WriteGroup::write_client`, a Data API write with its request id in one
//!   synchronous stretch (the node's write path).
//! - `writer_transaction`: every write's transaction on the one writer connection.
//! - `entry`, `log_table`, `apply`: log entries; reading, retention and applying the peer's.
//! - `row_hash`: per-table row hashes for `verify`.
//!
//! # Invariants
//! - A change to a replicated table and its log entry commit in the same transaction.
//! - Log indexes are consecutive; every entry's hash chains from the one before.
//! - Entries applied from the peer are stored unchanged and never captured again.
//!
//! Not here: terms, clocks, acknowledgements and what to ship when (the `log` core and the
//! drivers), snapshots, merge-back, the Data API.

mod apply;
pub mod base64;
mod capture;
mod client_write;
mod context;
pub mod damage;
mod entry;
mod error;
mod finish;
mod handle;
mod image;
mod log_table;
mod migrations;
mod options;
mod pending_write;
mod rewind;
mod row_hash;
mod schema;
mod sql_text;
mod table_shape;
mod transaction_reads;
mod value;
mod write;
mod write_group;
mod writer_transaction;

#[cfg(test)]
mod tests;

pub use client_write::{ClientWrite, ClientWriteOutcome, REQUESTS_SQL, REQUESTS_TABLE, WritePlan};
pub use context::CaptureContext;
pub use entry::{ChangeOp, LogEntry, RollingHash};
pub use error::StoreError;
pub use handle::{DATA_DB_FILE, Store};
pub use image::decode_image;
pub use log_table::LogPosition;
pub use migrations::MigrationFile;
pub use options::StoreOptions;
pub use pending_write::PendingWrite;
pub use rewind::KeptOrphan;
pub use row_hash::{RowHashes, TableHash};
pub use table_shape::TableShape;
pub use transaction_reads::TransactionReads;
pub use value::SqlValue;
pub use write::Written;
pub use write_group::WriteGroup;
