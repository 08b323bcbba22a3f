//! fsync helpers: a file's contents and a directory's entries, each named in errors.
//!
//! A rename or a new file only survives a crash once its directory is fsync'd too, so every
//! step that must survive calls `sync_dir` on the directory it changed.

use std::fs::File;
use std::path::Path;

use super::SnapshotError;

pub(crate) fn sync_file(path: &Path) -> Result<(), SnapshotError> {
    let file = File::open(path).map_err(SnapshotError::io("open for fsync", path))?;
    file.sync_all().map_err(SnapshotError::io("fsync", path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    let handle = File::open(dir).map_err(SnapshotError::io("open directory for fsync", dir))?;
    handle
        .sync_all()
        .map_err(SnapshotError::io("fsync directory", dir))
}

/// A path as text for SQLite, refused rather than lossily converted.
pub(crate) fn utf8(path: &Path) -> Result<&str, SnapshotError> {
    path.to_str().ok_or_else(|| SnapshotError::NonUtf8Path {
        path: path.to_path_buf(),
    })
}
