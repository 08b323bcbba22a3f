//! `SnapshotReader`: cuts a snapshot file into checksummed chunks, then gives the manifest.
//!
//! Holds one chunk in memory at a time. Blocking file IO: async callers run it on
//! `spawn_blocking`. Not the transport.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use ring::digest;

use super::SnapshotError;
use super::chunk::{CHUNK_SIZE_MAX_BYTES, CHUNK_SIZE_MIN_BYTES, Chunk, Manifest, finish_sha256};
use super::create::SnapshotInfo;

pub struct SnapshotReader {
    file: File,
    /// For error messages.
    path: PathBuf,
    /// Bounded by `CHUNK_SIZE_MIN_BYTES..=CHUNK_SIZE_MAX_BYTES`: the memory one chunk takes.
    chunk_size_bytes: usize,
    /// What `create_snapshot` measured; the stream must match it or the file changed.
    info: SnapshotInfo,
    /// The whole file's hash, built as chunks go out so the file is read once.
    hash: digest::Context,
    offset: u64,
    chunk_count: u64,
}

impl SnapshotReader {
    pub fn open(
        info: &SnapshotInfo,
        chunk_size_bytes: usize,
    ) -> Result<SnapshotReader, SnapshotError> {
        if !(CHUNK_SIZE_MIN_BYTES..=CHUNK_SIZE_MAX_BYTES).contains(&chunk_size_bytes) {
            return Err(SnapshotError::ChunkSizeOutOfRange {
                requested: chunk_size_bytes,
                min: CHUNK_SIZE_MIN_BYTES,
                max: CHUNK_SIZE_MAX_BYTES,
            });
        }
        let file = File::open(&info.path).map_err(SnapshotError::io("open", &info.path))?;
        Ok(SnapshotReader {
            file,
            path: info.path.clone(),
            chunk_size_bytes,
            info: info.clone(),
            hash: digest::Context::new(&digest::SHA256),
            offset: 0,
            chunk_count: 0,
        })
    }

    /// The size the receiver should expect, for its progress.
    pub fn total_bytes(&self) -> u64 {
        self.info.bytes
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SnapshotError> {
        let mut bytes = vec![0u8; self.chunk_size_bytes];
        let mut filled = 0;
        while filled < bytes.len() {
            let read = self
                .file
                .read(&mut bytes[filled..])
                .map_err(SnapshotError::io("read", &self.path))?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Ok(None);
        }
        bytes.truncate(filled);
        self.hash.update(&bytes);
        let chunk = Chunk::new(self.offset, bytes);
        self.offset += filled as u64;
        self.chunk_count += 1;
        Ok(Some(chunk))
    }

    /// The manifest, once `next_chunk` has returned `None`. Refuses if the file differs from
    /// what `create_snapshot` measured.
    pub fn finish(self) -> Result<Manifest, SnapshotError> {
        let sha256 = finish_sha256(self.hash);
        if self.offset != self.info.bytes || sha256 != self.info.sha256 {
            return Err(SnapshotError::SourceChanged { path: self.path });
        }
        Ok(Manifest {
            total_bytes: self.offset,
            sha256,
            last_log_idx: self.info.last_log_idx,
            chunk_count: self.chunk_count,
        })
    }
}
