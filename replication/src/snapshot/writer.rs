//! `SnapshotWriter`: the receiving side. Writes chunks in order to a temp file in a fresh
//! `incoming-*` directory inside the data directory, checks each chunk and then the manifest,
//! and fsyncs before handing out a `VerifiedSnapshot`.
//!
//! Anything refused leaves nothing installed: the temp directory is removed when the writer is
//! dropped, and one left by a crash is removed by `cleanup_old_generations`. Blocking file IO:
//! async callers run it on `spawn_blocking`. Not the install: see `install`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::digest;
use tempfile::TempDir;

use super::SnapshotError;
use super::chunk::{CHUNK_SIZE_MAX_BYTES, Chunk, Manifest, Sha256, finish_sha256, hex};
use super::durable::{sync_dir, sync_file};
use super::generation::{DB_FILE_NAME, INCOMING_PREFIX};

/// How far a transfer has got, for `replication.snapshot_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotProgress {
    pub bytes_received: u64,
    pub total_bytes: u64,
}

impl SnapshotProgress {
    /// From 0.0 to 1.0; an empty file counts as done.
    pub fn fraction(&self) -> f64 {
        if self.total_bytes == 0 {
            return 1.0;
        }
        self.bytes_received as f64 / self.total_bytes as f64
    }
}

pub struct SnapshotWriter {
    /// Removed on drop, so a refused transfer leaves nothing behind.
    dir: TempDir,
    /// `dir/data.db`, the file being written.
    path: PathBuf,
    file: File,
    /// Where the directory was made: install must rename within the same data directory.
    data_dir: PathBuf,
    /// Announced before the first chunk: bounds the disk this transfer may use.
    total_bytes: u64,
    bytes_received: u64,
    chunk_count: u64,
    hash: digest::Context,
    /// Set on the first refusal: a transfer with a hole in it is never completed.
    failed: bool,
}

impl SnapshotWriter {
    /// Starts receiving a snapshot of `total_bytes` into a new directory in `data_dir`.
    pub fn begin(data_dir: &Path, total_bytes: u64) -> Result<SnapshotWriter, SnapshotError> {
        let dir = tempfile::Builder::new()
            .prefix(INCOMING_PREFIX)
            .tempdir_in(data_dir)
            .map_err(SnapshotError::io(
                "create an incoming directory in",
                data_dir,
            ))?;
        let path = dir.path().join(DB_FILE_NAME);
        let file = File::create_new(&path).map_err(SnapshotError::io("create", &path))?;
        Ok(SnapshotWriter {
            dir,
            path,
            file,
            data_dir: data_dir.to_path_buf(),
            total_bytes,
            bytes_received: 0,
            chunk_count: 0,
            hash: digest::Context::new(&digest::SHA256),
            failed: false,
        })
    }

    pub fn progress(&self) -> SnapshotProgress {
        SnapshotProgress {
            bytes_received: self.bytes_received,
            total_bytes: self.total_bytes,
        }
    }

    /// Checks and appends one chunk. After a refusal every later call is refused too.
    pub fn write_chunk(&mut self, chunk: &Chunk) -> Result<SnapshotProgress, SnapshotError> {
        self.refuse_if_failed()?;
        let result = self.check_and_append(chunk);
        self.failed = result.is_err();
        result.map(|()| self.progress())
    }

    fn check_and_append(&mut self, chunk: &Chunk) -> Result<(), SnapshotError> {
        let path = self.path.clone();
        if chunk.offset != self.bytes_received {
            return Err(SnapshotError::ChunkOutOfOrder {
                path,
                expected: self.bytes_received,
                got: chunk.offset,
            });
        }
        if chunk.bytes.len() > CHUNK_SIZE_MAX_BYTES {
            return Err(SnapshotError::ChunkTooLarge {
                path,
                offset: chunk.offset,
                len: chunk.bytes.len(),
                max: CHUNK_SIZE_MAX_BYTES,
            });
        }
        if chunk.bytes.len() as u64 > self.total_bytes - self.bytes_received {
            return Err(SnapshotError::ChunkPastEnd {
                path,
                offset: chunk.offset,
                len: chunk.bytes.len(),
                total_bytes: self.total_bytes,
            });
        }
        if !chunk.checksum_ok() {
            return Err(SnapshotError::ChunkChecksum {
                path,
                offset: chunk.offset,
            });
        }
        self.file
            .write_all(&chunk.bytes)
            .map_err(SnapshotError::io("write", &path))?;
        self.hash.update(&chunk.bytes);
        self.bytes_received += chunk.bytes.len() as u64;
        self.chunk_count += 1;
        Ok(())
    }

    /// Checks the manifest against what arrived, fsyncs the file and its directory.
    pub fn finish(mut self, manifest: &Manifest) -> Result<VerifiedSnapshot, SnapshotError> {
        self.refuse_if_failed()?;
        self.check_manifest(manifest)?;
        self.file
            .sync_all()
            .map_err(SnapshotError::io("fsync", &self.path))?;
        drop(self.file);
        sync_file(&self.path)?;
        sync_dir(self.dir.path())?;
        Ok(VerifiedSnapshot {
            dir: self.dir,
            path: self.path,
            data_dir: self.data_dir,
            total_bytes: manifest.total_bytes,
            sha256: manifest.sha256,
            last_log_idx: manifest.last_log_idx,
        })
    }

    fn check_manifest(&mut self, manifest: &Manifest) -> Result<(), SnapshotError> {
        let path = self.path.clone();
        if manifest.total_bytes != self.total_bytes {
            return Err(mismatch(
                &path,
                "announced size",
                self.total_bytes,
                manifest.total_bytes,
            ));
        }
        if self.bytes_received != self.total_bytes {
            return Err(SnapshotError::Truncated {
                path,
                received_bytes: self.bytes_received,
                total_bytes: self.total_bytes,
            });
        }
        if manifest.chunk_count != self.chunk_count {
            return Err(mismatch(
                &path,
                "chunk count",
                self.chunk_count,
                manifest.chunk_count,
            ));
        }
        let context = std::mem::replace(&mut self.hash, digest::Context::new(&digest::SHA256));
        let sha256 = finish_sha256(context);
        if sha256 != manifest.sha256 {
            return Err(mismatch(
                &path,
                "sha256",
                hex(&sha256),
                hex(&manifest.sha256),
            ));
        }
        Ok(())
    }

    fn refuse_if_failed(&self) -> Result<(), SnapshotError> {
        if self.failed {
            return Err(SnapshotError::WriterFailedEarlier {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

fn mismatch(
    path: &Path,
    what: &'static str,
    got: impl ToString,
    expected: impl ToString,
) -> SnapshotError {
    SnapshotError::ManifestMismatch {
        path: path.to_path_buf(),
        what,
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

/// A received snapshot whose every byte matched the manifest, fsync'd in its `incoming-*`
/// directory. Only `SnapshotWriter::finish` makes one; `install` consumes it. Dropping it
/// without installing removes it.
pub struct VerifiedSnapshot {
    /// Removed on drop once `install` has moved the file out (or if it never does).
    pub(crate) dir: TempDir,
    pub(crate) path: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) total_bytes: u64,
    pub(crate) sha256: Sha256,
    pub(crate) last_log_idx: u64,
}

impl VerifiedSnapshot {
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
    pub fn sha256(&self) -> Sha256 {
        self.sha256
    }
    pub fn last_log_idx(&self) -> u64 {
        self.last_log_idx
    }
}
