//! The file path checks: `RelPath::parse` on any text a peer may send, then `resolve` under a
//! replicated directory made once per process, with a symlink to a directory outside it planted
//! as `link`, a symlink to a file outside as `file_link` and a regular file as `plain`.
//!
//! Input: a flags byte (bit 0: `resolve` creates missing directories), then the path as UTF-8.
//! Besides "no panic", it checks that a parsed path is relative and plain, that a resolved path
//! lies under the directory, that every part of it that exists is a real directory or file under
//! the directory (never reached through a link), and that nothing is created outside.
#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_replication::files::path::{RelPath, resolve};

struct Dirs {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let scratch = tandem_fuzz::scratch_dir("tandem-fuzz-paths-");
        let root = scratch.path().join("root");
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(outside.join("d")).unwrap();
        std::fs::write(outside.join("f"), b"outside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("file_link")).unwrap();
        std::fs::write(root.join("plain"), b"plain").unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        Dirs {
            _scratch: scratch,
            root: root.canonicalize().unwrap(),
            outside,
        }
    })
}

fn check_parsed(path: &RelPath) {
    let as_path = Path::new(path.as_str());
    assert!(as_path.is_relative(), "{path} is not relative");
    for component in as_path.components() {
        assert!(
            matches!(component, Component::Normal(_)),
            "{path} has the component {component:?}"
        );
    }
    assert!(!path.file_name().is_empty());
    // The conflict-copy name of the same file must parse or fail cleanly.
    let _ = path.with_file_name(&format!("{}.conflict", path.file_name()));
}

fn check_resolved(root: &Path, path: &RelPath, resolved: &Path) {
    assert!(
        resolved.starts_with(root),
        "{path} resolved to {} outside {}",
        resolved.display(),
        root.display()
    );
    // Every existing ancestor is a real directory under the root, not reached through a link.
    let mut current = resolved.parent();
    while let Some(dir) = current {
        if dir == root || !dir.starts_with(root) {
            break;
        }
        if let Ok(meta) = std::fs::symlink_metadata(dir) {
            assert!(meta.is_dir(), "{path} passes through {}", dir.display());
            let canonical = dir.canonicalize().unwrap();
            assert!(
                canonical.starts_with(root),
                "{path} leaves through {}",
                dir.display()
            );
        }
        current = dir.parent();
    }
    if let Ok(meta) = std::fs::symlink_metadata(resolved) {
        assert!(
            !meta.file_type().is_symlink(),
            "{path} resolved to a symlink"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(path) = RelPath::parse(text) else {
        return;
    };
    check_parsed(&path);
    let dirs = dirs();
    let create_dirs = flags & 1 != 0;
    if let Ok(resolved) = resolve(&dirs.root, &path, create_dirs) {
        check_resolved(&dirs.root, &path, &resolved);
    }
    let outside = tandem_fuzz::tree(&dirs.outside);
    assert_eq!(
        outside.len(),
        2,
        "something was created outside: {outside:?}"
    );
    if create_dirs {
        tandem_fuzz::empty_dir_except(&dirs.root, &["link", "file_link", "plain", "dir"]);
        tandem_fuzz::empty_dir_except(&dirs.root.join("dir"), &[]);
    }
});
