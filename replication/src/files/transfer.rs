//! Moving one file: the sender's chunked reader and the receiver's temp-file writer.
//!
//! The receiver writes into a temp file in the target's own directory (created exclusively,
//! named with [`TEMP_PREFIX`]), checks each chunk's SHA-256 and its offset as it comes, and at
//! the end checks the size and the whole file's SHA-256, fsyncs it, sets its permissions and
//! modification time, renames it over the target and fsyncs the directory. A reader never sees a
//! half-written file, and a transfer that breaks off leaves nothing behind (the temp file is
//! removed when the writer is dropped). The sender hashes while it reads and gives up if the
//! file changed under it (size or modification time), so a file still being written is not
//! shipped half done. Blocking file-system work: run it on a blocking thread.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::path::{PathError, RelPath, TEMP_PREFIX, resolve};
use super::plan::Version;
use super::scan::hex;

/// Bytes per chunk on the wire.
pub const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{path}: chunk at offset {offset} fails its checksum")]
    ChunkChecksum { path: String, offset: u64 },
    #[error("{path}: chunk at offset {offset} does not follow the {received} bytes received")]
    ChunkOrder {
        path: String,
        offset: u64,
        received: u64,
    },
    #[error("{path}: {received} bytes received, {size} announced")]
    Size {
        path: String,
        received: u64,
        size: u64,
    },
    #[error("{path}: the content's SHA-256 is {actual}, {expected} announced")]
    Hash {
        path: String,
        actual: String,
        expected: String,
    },
    #[error("{path} changed while it was read; it is sent again once it is still")]
    Changed { path: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

fn io_error(path: &RelPath, what: &str, error: std::io::Error) -> TransferError {
    TransferError::Io {
        path: path.to_string(),
        message: format!("{what}: {error}"),
    }
}

/// SHA-256 of one chunk, as it travels with the chunk.
pub fn chunk_checksum(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The version of the file at `path` as it is on disk now (hash not computed).
pub fn stat(root: &Path, path: &RelPath) -> Result<Option<(u64, i64, u32)>, TransferError> {
    let full = resolve(root, path, false)?;
    match std::fs::symlink_metadata(&full) {
        Ok(meta) if meta.is_file() => Ok(Some((
            meta.len(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            meta.permissions().mode() & super::MODE_BITS,
        ))),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(path, "stat", error)),
    }
}

/// One chunk on the wire: its offset, its bytes and their SHA-256.
pub struct Chunk {
    pub offset: u64,
    pub data: Vec<u8>,
    pub checksum: Vec<u8>,
}

/// Reads a file for sending, chunk by chunk, hashing as it goes.
pub struct OutgoingFile {
    path: RelPath,
    file: File,
    full: PathBuf,
    pub version: Version,
    offset: u64,
    context: ring::digest::Context,
}

impl OutgoingFile {
    /// Opens `path` and checks it still is the scanned `version` (size and modification time).
    pub fn open(
        root: &Path,
        path: &RelPath,
        version: &Version,
    ) -> Result<OutgoingFile, TransferError> {
        let full = resolve(root, path, false)?;
        let file = File::open(&full).map_err(|error| io_error(path, "open", error))?;
        let meta = file
            .metadata()
            .map_err(|error| io_error(path, "stat", error))?;
        let now = (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec());
        if now != (version.size, version.mtime_ns) {
            return Err(TransferError::Changed {
                path: path.to_string(),
            });
        }
        Ok(OutgoingFile {
            path: path.clone(),
            file,
            full,
            version: version.clone(),
            offset: 0,
            context: ring::digest::Context::new(&ring::digest::SHA256),
        })
    }

    /// The next chunk; `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, TransferError> {
        let left = self.version.size.saturating_sub(self.offset);
        if left == 0 {
            return Ok(None);
        }
        let want = usize::try_from(left)
            .unwrap_or(CHUNK_BYTES)
            .min(CHUNK_BYTES);
        let mut data = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let read = self
                .file
                .read(&mut data[filled..])
                .map_err(|error| io_error(&self.path, "read", error))?;
            if read == 0 {
                return Err(TransferError::Changed {
                    path: self.path.to_string(),
                });
            }
            filled += read;
        }
        self.context.update(&data);
        let offset = self.offset;
        self.offset += want as u64;
        let checksum = chunk_checksum(&data);
        Ok(Some(Chunk {
            offset,
            data,
            checksum,
        }))
    }

    /// After the last chunk: the content's hash, if the file did not change while it was read.
    pub fn finish(self) -> Result<String, TransferError> {
        let meta = std::fs::symlink_metadata(&self.full)
            .map_err(|error| io_error(&self.path, "stat", error))?;
        let now = (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec());
        if now != (self.version.size, self.version.mtime_ns) {
            return Err(TransferError::Changed {
                path: self.path.to_string(),
            });
        }
        Ok(hex(self.context.finish().as_ref()))
    }
}

/// A file being received into a temp file beside its target.
pub struct IncomingFile {
    path: RelPath,
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    size: u64,
    mtime_ns: i64,
    mode: u32,
    received: u64,
    context: ring::digest::Context,
}

impl IncomingFile {
    /// Creates the temp file (and any missing directories) for `path` under `root`.
    pub fn begin(
        root: &Path,
        path: &RelPath,
        size: u64,
        mtime_ns: i64,
        mode: u32,
    ) -> Result<IncomingFile, TransferError> {
        let target = resolve(root, path, true)?;
        let dir = target.parent().unwrap_or(root).to_path_buf();
        let mut attempt = 0u32;
        let (temp, file) = loop {
            let temp = dir.join(format!(
                "{TEMP_PREFIX}{}-{}",
                std::process::id(),
                unique_suffix(attempt)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(file) => break (temp, file),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(error) => return Err(io_error(path, "create the temp file", error)),
            }
        };
        Ok(IncomingFile {
            path: path.clone(),
            target,
            temp,
            file: Some(file),
            size,
            mtime_ns,
            mode: mode & super::MODE_BITS,
            received: 0,
            context: ring::digest::Context::new(&ring::digest::SHA256),
        })
    }

    pub fn write_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
        checksum: &[u8],
    ) -> Result<(), TransferError> {
        if offset != self.received {
            return Err(TransferError::ChunkOrder {
                path: self.path.to_string(),
                offset,
                received: self.received,
            });
        }
        if chunk_checksum(data) != checksum {
            return Err(TransferError::ChunkChecksum {
                path: self.path.to_string(),
                offset,
            });
        }
        let after = self.received + data.len() as u64;
        if after > self.size {
            return Err(TransferError::Size {
                path: self.path.to_string(),
                received: after,
                size: self.size,
            });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io_error(
                &self.path,
                "write",
                std::io::Error::other("closed"),
            ));
        };
        file.write_all(data)
            .map_err(|error| io_error(&self.path, "write", error))?;
        self.context.update(data);
        self.received = after;
        Ok(())
    }

    /// Checks size and hash, fsyncs, sets mode and mtime, renames into place, fsyncs the dir.
    pub fn finish(mut self, hash: &str) -> Result<Version, TransferError> {
        if self.received != self.size {
            return Err(TransferError::Size {
                path: self.path.to_string(),
                received: self.received,
                size: self.size,
            });
        }
        let context = std::mem::replace(
            &mut self.context,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        let actual = hex(context.finish().as_ref());
        if actual != hash {
            return Err(TransferError::Hash {
                path: self.path.to_string(),
                actual,
                expected: hash.to_string(),
            });
        }
        let Some(file) = self.file.take() else {
            return Err(io_error(
                &self.path,
                "finish",
                std::io::Error::other("closed"),
            ));
        };
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|error| io_error(&self.path, "chmod", error))?;
        let mtime = system_time(self.mtime_ns);
        file.set_modified(mtime)
            .map_err(|error| io_error(&self.path, "set the modification time", error))?;
        file.sync_all()
            .map_err(|error| io_error(&self.path, "fsync", error))?;
        drop(file);
        // The target may have become a symlink since `begin`: never rename over one.
        if let Ok(meta) = std::fs::symlink_metadata(&self.target)
            && meta.file_type().is_symlink()
        {
            return Err(TransferError::Path(PathError::Symlink {
                path: self.path.to_string(),
                link: self.target.display().to_string(),
            }));
        }
        std::fs::rename(&self.temp, &self.target)
            .map_err(|error| io_error(&self.path, "rename into place", error))?;
        sync_dir(self.target.parent())
            .map_err(|error| io_error(&self.path, "fsync the directory", error))?;
        // Renamed: nothing to remove on drop.
        self.temp = PathBuf::new();
        Ok(Version {
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode: self.mode,
            hash: actual,
        })
    }
}

impl Drop for IncomingFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Deletes `path` under `root` (a missing file is not an error) and fsyncs its directory.
pub fn remove(root: &Path, path: &RelPath) -> Result<(), TransferError> {
    let full = resolve(root, path, false)?;
    match std::fs::remove_file(&full) {
        Ok(()) => {
            sync_dir(full.parent()).map_err(|error| io_error(path, "fsync the directory", error))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path, "delete", error)),
    }
}

/// Renames `from` to `to` within `root` (for a conflict copy) and fsyncs the directory.
pub fn rename_within(root: &Path, from: &RelPath, to: &RelPath) -> Result<(), TransferError> {
    let source = resolve(root, from, false)?;
    let target = resolve(root, to, true)?;
    std::fs::rename(&source, &target).map_err(|error| io_error(from, "rename", error))?;
    sync_dir(target.parent()).map_err(|error| io_error(to, "fsync the directory", error))
}

/// Removes temp files a crash left behind, anywhere under `root`.
pub fn sweep_temp_files(root: &Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

fn sync_dir(dir: Option<&Path>) -> std::io::Result<()> {
    match dir {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn system_time(mtime_ns: i64) -> SystemTime {
    if mtime_ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime_ns.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(mtime_ns.unsigned_abs())
    }
}

fn unique_suffix(attempt: u32) -> String {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    format!("{}{attempt}", hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scan::hash_file;

    fn version_of(root: &Path, path: &RelPath) -> Version {
        let (size, mtime_ns, mode) = stat(root, path).unwrap().unwrap();
        Version {
            size,
            mtime_ns,
            mode,
            hash: hash_file(&root.join(path.as_str())).unwrap(),
        }
    }

    fn send(from: &Path, to: &Path, path: &RelPath) -> Result<Version, TransferError> {
        let version = version_of(from, path);
        let mut outgoing = OutgoingFile::open(from, path, &version)?;
        let mut incoming =
            IncomingFile::begin(to, path, version.size, version.mtime_ns, version.mode)?;
        while let Some(chunk) = outgoing.next_chunk()? {
            incoming.write_chunk(chunk.offset, &chunk.data, &chunk.checksum)?;
        }
        let hash = outgoing.finish()?;
        incoming.finish(&hash)
    }

    #[test]
    fn a_file_arrives_identical_with_its_mode_and_mtime() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let path = RelPath::parse("vm/100/msg.wav").unwrap();
        std::fs::create_dir_all(from.path().join("vm/100")).unwrap();
        let content: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(from.path().join(path.as_str()), &content).unwrap();
        std::fs::set_permissions(
            from.path().join(path.as_str()),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let received = send(from.path(), to.path(), &path).unwrap();
        assert_eq!(received, version_of(from.path(), &path));
        assert_eq!(
            std::fs::read(to.path().join(path.as_str())).unwrap(),
            content
        );
        let leftovers: Vec<_> = std::fs::read_dir(to.path().join("vm/100"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left");
    }

    #[test]
    fn set_id_and_sticky_bits_are_neither_sent_nor_set() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let path = RelPath::parse("bin/tool").unwrap();
        std::fs::create_dir_all(from.path().join("bin")).unwrap();
        std::fs::write(from.path().join(path.as_str()), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            from.path().join(path.as_str()),
            std::fs::Permissions::from_mode(0o6755),
        )
        .unwrap();
        assert_eq!(
            version_of(from.path(), &path).mode,
            0o755,
            "the scan's view"
        );
        // A peer that sends the bits anyway: they are not set.
        let mut incoming = IncomingFile::begin(to.path(), &path, 10, 0, 0o7755).unwrap();
        incoming
            .write_chunk(0, b"#!/bin/sh\n", &chunk_checksum(b"#!/bin/sh\n"))
            .unwrap();
        let received = incoming
            .finish(&hash_file(&from.path().join(path.as_str())).unwrap())
            .unwrap();
        assert_eq!(received.mode, 0o755);
        let mode = std::fs::metadata(to.path().join(path.as_str()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn a_bad_chunk_or_hash_leaves_the_target_untouched_and_no_temp_file() {
        let to = tempfile::tempdir().unwrap();
        let path = RelPath::parse("a.wav").unwrap();
        std::fs::write(to.path().join("a.wav"), b"old").unwrap();
        let mut incoming = IncomingFile::begin(to.path(), &path, 3, 0, 0o644).unwrap();
        let error = incoming
            .write_chunk(0, b"new", &chunk_checksum(b"bad"))
            .unwrap_err();
        assert!(
            matches!(error, TransferError::ChunkChecksum { .. }),
            "{error}"
        );
        drop(incoming);
        let mut incoming = IncomingFile::begin(to.path(), &path, 3, 0, 0o644).unwrap();
        incoming
            .write_chunk(0, b"new", &chunk_checksum(b"new"))
            .unwrap();
        let error = incoming.finish("0000").unwrap_err();
        assert!(matches!(error, TransferError::Hash { .. }), "{error}");
        assert_eq!(std::fs::read(to.path().join("a.wav")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(to.path()).unwrap().count(), 1);
        let mut incoming = IncomingFile::begin(to.path(), &path, 2, 0, 0o644).unwrap();
        let error = incoming
            .write_chunk(0, b"new", &chunk_checksum(b"new"))
            .unwrap_err();
        assert!(matches!(error, TransferError::Size { .. }), "{error}");
        let error = incoming
            .write_chunk(5, b"n", &chunk_checksum(b"n"))
            .unwrap_err();
        assert!(matches!(error, TransferError::ChunkOrder { .. }), "{error}");
    }

    #[test]
    fn a_file_that_changes_while_read_is_not_sent() {
        let from = tempfile::tempdir().unwrap();
        let path = RelPath::parse("growing.wav").unwrap();
        std::fs::write(from.path().join("growing.wav"), vec![1u8; 1000]).unwrap();
        let version = version_of(from.path(), &path);
        let mut outgoing = OutgoingFile::open(from.path(), &path, &version).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(from.path().join("growing.wav"))
            .unwrap()
            .write_all(b"more")
            .unwrap();
        while outgoing.next_chunk().unwrap().is_some() {}
        assert!(matches!(
            outgoing.finish(),
            Err(TransferError::Changed { .. })
        ));
    }

    #[test]
    fn remove_rename_and_sweep() {
        let root = tempfile::tempdir().unwrap();
        let a = RelPath::parse("d/a.wav").unwrap();
        let b = RelPath::parse("d/b.wav").unwrap();
        std::fs::create_dir_all(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/a.wav"), b"a").unwrap();
        std::fs::write(root.path().join(format!("d/{TEMP_PREFIX}x")), b"junk").unwrap();
        rename_within(root.path(), &a, &b).unwrap();
        assert!(root.path().join("d/b.wav").is_file());
        remove(root.path(), &b).unwrap();
        remove(root.path(), &b).unwrap();
        assert_eq!(sweep_temp_files(root.path()), 1);
        assert_eq!(std::fs::read_dir(root.path().join("d")).unwrap().count(), 0);
    }
}
