//! Paths inside a replicated directory: what a peer may name, and how it is resolved on disk
//! without leaving the directory.
//!
//! A [`RelPath`] is relative, `/`-separated, and made of plain components: no empty component,
//! no `.` or `..`, no NUL, nothing absolute, and no component that starts with the receiver's
//! temp-file prefix. [`resolve`] walks it under the root and refuses a symlink or a non-directory
//! on the way, so a path cannot leave the directory through a link an attacker planted.

use std::fmt;
use std::path::{Path, PathBuf};

/// The receiver's temp files start with this; scans skip them and peers may not name them.
pub const TEMP_PREFIX: &str = ".tandem-part-";
/// The longest path a peer may name, in bytes.
pub const PATH_BYTES_MAX: usize = 4096;
/// The longest component, in bytes (the usual file-system limit).
const COMPONENT_BYTES_MAX: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path {0:?} is empty")]
    Empty(String),
    #[error("path {0:?} is longer than {PATH_BYTES_MAX} bytes")]
    TooLong(String),
    #[error("path {0:?} is absolute")]
    Absolute(String),
    #[error("path {0:?} has an empty, \".\" or \"..\" component")]
    Escapes(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {0:?} has a component longer than {COMPONENT_BYTES_MAX} bytes")]
    ComponentTooLong(String),
    #[error("path {0:?} names a transfer's temp file")]
    TempName(String),
    #[error("path {path:?} passes through the symlink {link}, which is not followed")]
    Symlink { path: String, link: String },
    #[error("path {path:?} passes through {blocker}, which is not a directory")]
    NotADirectory { path: String, blocker: String },
    #[error("path {path:?}: {message}")]
    Io { path: String, message: String },
}

/// A validated path relative to a replicated directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(text: &str) -> Result<RelPath, PathError> {
        let owned = || text.to_string();
        if text.is_empty() {
            return Err(PathError::Empty(owned()));
        }
        if text.len() > PATH_BYTES_MAX {
            return Err(PathError::TooLong(text.chars().take(64).collect()));
        }
        if text.contains('\0') {
            return Err(PathError::Nul(owned()));
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute(owned()));
        }
        for component in text.split('/') {
            if component.is_empty() || component == "." || component == ".." {
                return Err(PathError::Escapes(owned()));
            }
            if component.len() > COMPONENT_BYTES_MAX {
                return Err(PathError::ComponentTooLong(owned()));
            }
            if component.starts_with(TEMP_PREFIX) {
                return Err(PathError::TempName(owned()));
            }
        }
        Ok(RelPath(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The same directory with another last component (already a valid component).
    pub fn with_file_name(&self, name: &str) -> Result<RelPath, PathError> {
        match self.0.rsplit_once('/') {
            Some((dir, _)) => RelPath::parse(&format!("{dir}/{name}")),
            None => RelPath::parse(name),
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where `path` lives under `root`. Every directory on the way must be a real directory (not a
/// symlink); missing ones are created when `create_dirs` is set. The final component, if it
/// exists, must not be a symlink either.
pub fn resolve(root: &Path, path: &RelPath, create_dirs: bool) -> Result<PathBuf, PathError> {
    let io = |message: String| PathError::Io {
        path: path.to_string(),
        message,
    };
    let mut current = root.to_path_buf();
    let components: Vec<&str> = path.as_str().split('/').collect();
    let (last, dirs) = components
        .split_last()
        .ok_or_else(|| PathError::Empty(path.to_string()))?;
    for dir in dirs {
        current.push(dir);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(PathError::Symlink {
                    path: path.to_string(),
                    link: current.display().to_string(),
                });
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(PathError::NotADirectory {
                    path: path.to_string(),
                    blocker: current.display().to_string(),
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && create_dirs => {
                match std::fs::create_dir(&current) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(error) => {
                        return Err(io(format!("cannot create {}: {error}", current.display())));
                    }
                }
            }
            Err(error) => return Err(io(format!("{}: {error}", current.display()))),
        }
    }
    current.push(last);
    if let Ok(meta) = std::fs::symlink_metadata(&current)
        && meta.file_type().is_symlink()
    {
        return Err(PathError::Symlink {
            path: path.to_string(),
            link: current.display().to_string(),
        });
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_parse() {
        for ok in ["a.wav", "vm/100/msg0001.wav", "with space/ü.vox", ".hidden"] {
            assert_eq!(RelPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn escaping_and_odd_paths_are_refused_by_name() {
        let cases = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "\"..\""),
            ("a/../../x", "\"..\""),
            ("a//b", "empty"),
            ("a/./b", "\"..\""),
            ("a/", "empty"),
            ("a\0b", "NUL"),
            (".tandem-part-123", "temp file"),
        ];
        for (path, word) in cases {
            let error = RelPath::parse(path).unwrap_err().to_string();
            assert!(error.contains(word), "{path:?}: {error}");
        }
        assert!(matches!(
            RelPath::parse(&"x".repeat(5000)),
            Err(PathError::TooLong(_))
        ));
        assert!(matches!(
            RelPath::parse(&"x".repeat(300)),
            Err(PathError::ComponentTooLong(_))
        ));
    }

    #[test]
    fn resolve_refuses_symlinks_and_creates_directories() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let error = resolve(root.path(), &RelPath::parse("link/x").unwrap(), true).unwrap_err();
        assert!(matches!(error, PathError::Symlink { .. }), "{error}");
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("file-link")).unwrap();
        let error = resolve(root.path(), &RelPath::parse("file-link").unwrap(), true).unwrap_err();
        assert!(matches!(error, PathError::Symlink { .. }), "{error}");
        std::fs::write(root.path().join("plain"), b"x").unwrap();
        let error = resolve(root.path(), &RelPath::parse("plain/x").unwrap(), true).unwrap_err();
        assert!(matches!(error, PathError::NotADirectory { .. }), "{error}");
        let deep = resolve(root.path(), &RelPath::parse("a/b/c.wav").unwrap(), true).unwrap();
        assert_eq!(deep, root.path().join("a/b/c.wav"));
        assert!(root.path().join("a/b").is_dir());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn conflict_names_stay_in_the_same_directory() {
        let path = RelPath::parse("vm/100/msg.wav").unwrap();
        assert_eq!(path.file_name(), "msg.wav");
        assert_eq!(
            path.with_file_name("msg.conflict.wav").unwrap().as_str(),
            "vm/100/msg.conflict.wav"
        );
    }
}
