//! tandem-replication: the replicated database of a pair (DESIGN.md §4).
//!
//! # Layout
//! - `store`: `data.db` (SQLite through sqlx): pragmas, migrations, change-capture triggers, the
//!   replication log table, group commit, and applying a peer's changes without capturing them
//!   again.
//! - `log`: the sans-IO core of the replication log: positions, rolling hash, hybrid logical
//!   clock, retention, acknowledgements and the sync/async decisions.
//! - `data_api`: the statement guard of the Data API: limits, and a SQLite authorizer that
//!   refuses DDL, PRAGMA, ATTACH and writes to internal tables.
//! - `snapshot`: catch-up by snapshot: `VACUUM INTO`, checksummed chunks, verification, and the
//!   generation swap behind an fsync'd `CURRENT` pointer.
//! - `merge`: the sans-IO core of divergence and merge-back: the search for the last common index,
//!   per-table conflict decisions and conflict records, and the restartable plan of re-applying
//!   orphans.
//! - `files`: file replication's sans-network parts: path checks, scans, the three-way plan,
//!   manifests and chunked transfers.
//! - `raw_sqlite`: SQLite through `libsqlite3-sys` under sqlx's handle lock, for the Data API's
//!   guarded statements and the store's one-stretch client writes.
//! - `bridge`: one entry, two shapes: the store's log rows and the log core's entries, hashed the
//!   same way.
//!
//! Not here: the drivers that ship batches over the peer link and run catch-up, divergence and
//! merge-back, `verify` and the gRPC Data service; they are `tandem-node`'s `repl` module.

pub mod bridge;
pub mod data_api;
pub mod files;
pub mod log;
pub mod merge;
mod raw_sqlite;
pub mod snapshot;
pub mod store;
