//! `SnapshotError`: everything taking, streaming, verifying and installing a snapshot can fail with.
//!
//! Every message names the file or directory at fault, so an operator can act on it without
//! reading code. Bad input from the peer (a corrupt chunk, a gap, a short stream) has its own
//! variants; `Io` and `Sql` are the disk or SQLite failing. Not for gRPC status mapping: that
//! happens at the gRPC edge.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite on {path}: {source}")]
    Sql { path: PathBuf, source: sqlx::Error },
    #[error("path {path} is not valid UTF-8; SQLite needs it as text")]
    NonUtf8Path { path: PathBuf },
    #[error("snapshot {path} has no _tandem_log table; it is not a tandem data.db")]
    NoLogTable { path: PathBuf },
    #[error("snapshot {path} failed PRAGMA integrity_check: {report}")]
    IntegrityCheck { path: PathBuf, report: String },

    #[error("chunk size {requested} bytes is outside {min}..={max} bytes")]
    ChunkSizeOutOfRange {
        requested: usize,
        min: usize,
        max: usize,
    },
    #[error("chunk at offset {offset} for {path} holds {len} bytes, more than the {max} allowed")]
    ChunkTooLarge {
        path: PathBuf,
        offset: u64,
        len: usize,
        max: usize,
    },
    #[error("chunk at offset {offset} for {path} fails its checksum")]
    ChunkChecksum { path: PathBuf, offset: u64 },
    #[error("chunk for {path} starts at offset {got}, expected {expected} (a gap or out of order)")]
    ChunkOutOfOrder {
        path: PathBuf,
        expected: u64,
        got: u64,
    },
    #[error(
        "chunk at offset {offset} ({len} bytes) for {path} runs past the announced {total_bytes} bytes"
    )]
    ChunkPastEnd {
        path: PathBuf,
        offset: u64,
        len: usize,
        total_bytes: u64,
    },
    #[error("snapshot {path} is truncated: {received_bytes} of {total_bytes} bytes received")]
    Truncated {
        path: PathBuf,
        received_bytes: u64,
        total_bytes: u64,
    },
    #[error("snapshot {path}: {what} is {got}, the manifest says {expected}")]
    ManifestMismatch {
        path: PathBuf,
        what: &'static str,
        expected: String,
        got: String,
    },
    #[error("snapshot {path} was refused earlier; start a new transfer")]
    WriterFailedEarlier { path: PathBuf },
    #[error("snapshot {path} changed while it was being streamed")]
    SourceChanged { path: PathBuf },

    #[error("pointer file {path} holds {content:?}, not a generation directory name like db-1")]
    CurrentInvalid { path: PathBuf, content: String },
    #[error("pointer file {pointer} names {target}, which does not exist")]
    CurrentTargetMissing { pointer: PathBuf, target: PathBuf },
    #[error("data directory {data_dir} has an unexpected layout: {reason}")]
    UnexpectedLayout { data_dir: PathBuf, reason: String },
    #[error("snapshot was received into {received_in}, but install was asked for {data_dir}")]
    WrongDataDir {
        received_in: PathBuf,
        data_dir: PathBuf,
    },
    /// Only the crash-simulation hook of the tests produces this.
    #[error("simulated crash before install step {step:?}")]
    SimulatedCrash { step: super::install::InstallStep },
}

impl SnapshotError {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn sql(path: &std::path::Path) -> impl FnOnce(sqlx::Error) -> Self {
        let path = path.to_path_buf();
        move |source| SnapshotError::Sql { path, source }
    }
}
