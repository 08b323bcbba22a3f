//! The sans-IO core of the replication log (DESIGN.md §3 terms, §4 replicated database).
//!
//! # Layout
//! - `term`: `LogTerm`, the term entries and batches carry, ordered as the role machine orders
//!   terms; fencing compares them.
//! - `hlc`: `Hlc` stamps and the `HlcClock` that issues them, clamping remote stamps too far ahead.
//! - `entry`: `EntryContent`, the replicated content of an entry, and its canonical bytes.
//! - `hash`: `rolling_hash` over those bytes.
//! - `batch`: `Batch` and `HashedEntry`, what travels to the passive, with `batch_checksum`.
//! - `shipper`: the active side, `Shipper::step(event, now_ms) -> Vec<ShipperCommand>`: the window
//!   of batches in flight, waiting writes, sync/async/degraded/strict, snapshots and retention.
//! - `receiver`: the passive side, `Receiver::step(event) -> Vec<ReceiverCommand>`: fencing by term,
//!   gaps, checksums and hashes, durable index and acknowledgements.
//!
//! It deliberately does no IO: no tokio, no sqlx, no clock. Time comes in as `now_ms` (monotonic)
//! and the wall clock as `wall_ms`; the driver runs the returned commands in order. Its types are
//! its own: the store's `LogEntry` (a row of the log table) and the role machine's `Term` are
//! converted by the driver, so this module can be tested, and reasoned about, alone.

mod batch;
mod entry;
mod hash;
mod hlc;
mod receiver;
mod shipper;
mod term;

#[cfg(test)]
mod tests;

pub use batch::{Batch, HashedEntry, batch_checksum};
pub use entry::{ENTRY_ENCODING_VERSION, EntryContent, Operation};
pub use hash::{GENESIS_HASH, rolling_hash};
pub use hlc::{Hlc, HlcClock, Observed};
pub use receiver::{LogHead, MalformedBatch, Receiver, ReceiverCommand, ReceiverEvent, Refusal};
pub use shipper::{
    BATCH_BYTES_LIMIT, BATCH_ENTRIES_LIMIT, BATCHES_IN_FLIGHT_LIMIT, ConfigError, HaltReason, Mode,
    REFUSALS_LIMIT, RETENTION_ENTRIES_LIMIT, Shipper, ShipperCommand, ShipperConfig, ShipperEvent,
    SyncState, Unavailable, WAITING_WRITES_LIMIT, WriteRefusal,
};
pub use term::LogTerm;
