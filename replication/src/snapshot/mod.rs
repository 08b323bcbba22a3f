//! Snapshots for catch-up (DESIGN.md §4 "Catch-up"): when the log no longer holds the peer's
//! position, the active copies `data.db`, streams the copy in checksummed chunks, and the
//! passive verifies it and swaps it in as a new directory behind an fsync'd pointer.
//!
//! # Layout
//! - `create`: `VACUUM INTO` a consistent copy, fsync it, read its own `_tandem_log` index.
//! - `chunk`: the wire shapes, `Chunk` and `Manifest`, and the bounds on chunk size.
//! - `reader`: cuts a snapshot into chunks and builds the manifest (sending side).
//! - `writer`: checks chunks and the manifest into an `incoming-*` directory (receiving side).
//! - `generation`: `data_dir/db-<n>/data.db` behind `data_dir/CURRENT`; resolving the pointer,
//!   first use, the legacy flat `data_dir/data.db`, and cleanup.
//! - `install`: a verified snapshot becomes `db-<n+1>`, then `CURRENT` flips atomically.
//!
//! Not here: the transport over the peer link, the `inconsistent` disk state around the swap,
//! and reopening the store (the caller closes it before `install` and reopens it after).

mod chunk;
mod create;
mod durable;
mod error;
mod generation;
mod install;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use chunk::{
    CHUNK_SIZE_DEFAULT_BYTES, CHUNK_SIZE_MAX_BYTES, CHUNK_SIZE_MIN_BYTES, Chunk, Manifest, Sha256,
    sha256,
};
pub use create::{SNAPSHOT_FILE_NAME, SnapshotInfo, create_snapshot};
pub use error::SnapshotError;
pub use generation::{
    CURRENT_FILE_NAME, CleanupReport, DB_FILE_NAME, Generation, cleanup_old_generations,
    current_db_path, current_generation,
};
pub use install::{InstallStep, NewGeneration, install};
pub use reader::SnapshotReader;
pub use writer::{SnapshotProgress, SnapshotWriter, VerifiedSnapshot};
