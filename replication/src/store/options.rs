//! `StoreOptions`: how `Store::open` sets up `data.db`.
//!
//! Built by the node from its config (`[replication] tables` plus the gateway's tables, which
//! always replicate). Not the config parser: this is the already-validated shape.

use std::time::Duration;

use super::entry::RollingHash;

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Tables whose changes are captured and shipped: `[replication] tables` plus the tables
    /// the caller always replicates. Duplicates are ignored.
    pub tables: Vec<String>,
    /// Read-only connections at once (log shipping, verify, queries). More readers wait up to
    /// `reader_acquire_timeout`, then get an error, so a read storm cannot exhaust the host.
    pub readers_max: u32,
    pub reader_acquire_timeout: Duration,
    /// How long a connection waits on a lock held by another (a snapshot's `VACUUM INTO`, a
    /// manual `sqlite3` session) before failing with SQLITE_BUSY.
    pub busy_timeout: Duration,
    /// The rolling hash chained through the log; both nodes must use the same one.
    pub rolling_hash: RollingHash,
}

impl StoreOptions {
    /// Defaults for `tables`: 4 readers, 5 s timeouts, the SHA-256 rolling hash.
    pub fn new(tables: Vec<String>) -> StoreOptions {
        StoreOptions {
            tables,
            readers_max: 4,
            reader_acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            rolling_hash: crate::bridge::entry_rolling_hash,
        }
    }
}
