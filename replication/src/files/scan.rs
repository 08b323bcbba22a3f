//! Scanning a replicated directory into manifest rows: which files it holds now, by content.
//!
//! The scan walks the directory (recursively if the entry says so) and never follows a symlink,
//! to a file or a directory: symlinks are not replicated. It skips the receiver's temp files and
//! whatever the include/exclude globs leave out. A file whose size and modification time match
//! its row keeps its hash; any other is hashed again (SHA-256). A file that is gone becomes a
//! deletion in its row. Blocking file-system work: run it on a blocking thread.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::path::{RelPath, TEMP_PREFIX};
use super::plan::{Row, Version};

/// Which files of a directory are replicated.
#[derive(Clone, Debug)]
pub struct Filter {
    include: GlobSet,
    exclude: GlobSet,
    pub recursive: bool,
}

impl Filter {
    /// Globs match the path relative to the directory, with `/` separators; `*` stays within one
    /// component and `**` crosses them. Fails naming the glob that does not parse.
    pub fn new(include: &[String], exclude: &[String], recursive: bool) -> Result<Filter, String> {
        let build = |globs: &[String]| -> Result<GlobSet, String> {
            let mut builder = GlobSetBuilder::new();
            for glob in globs {
                let parsed = globset::GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|error| format!("{glob:?}: {error}"))?;
                builder.add(parsed);
            }
            builder.build().map_err(|error| error.to_string())
        };
        let include = if include.is_empty() {
            let mut builder = GlobSetBuilder::new();
            builder.add(Glob::new("**").map_err(|error| error.to_string())?);
            builder.build().map_err(|error| error.to_string())?
        } else {
            build(include)?
        };
        Ok(Filter {
            include,
            exclude: build(exclude)?,
            recursive,
        })
    }

    pub fn wants(&self, path: &RelPath) -> bool {
        if !self.recursive && path.as_str().contains('/') {
            return false;
        }
        self.include.is_match(path.as_str()) && !self.exclude.is_match(path.as_str())
    }
}

/// A scan's outcome: the rows as they are now, and the paths whose rows changed.
pub struct Scanned {
    pub rows: BTreeMap<RelPath, Row>,
    pub changed: Vec<RelPath>,
    /// Files skipped because they could not be read (named, with the reason).
    pub unreadable: Vec<String>,
}

/// Scans `root` against the previous rows; `term` stamps the rows that changed.
pub fn scan(
    root: &Path,
    filter: &Filter,
    previous: &BTreeMap<RelPath, Row>,
    term: u64,
) -> std::io::Result<Scanned> {
    let mut found: BTreeMap<RelPath, Version> = BTreeMap::new();
    let mut unreadable = Vec::new();
    walk(root, "", filter, previous, &mut found, &mut unreadable)?;
    let mut rows = BTreeMap::new();
    let mut changed = Vec::new();
    for (path, version) in &found {
        let row = match previous.get(path) {
            Some(row) if row.current.as_ref() == Some(version) => row.clone(),
            Some(row) => {
                changed.push(path.clone());
                Row {
                    current: Some(version.clone()),
                    synced: row.synced.clone(),
                    term,
                }
            }
            None => {
                changed.push(path.clone());
                Row {
                    current: Some(version.clone()),
                    synced: None,
                    term,
                }
            }
        };
        rows.insert(path.clone(), row);
    }
    for (path, row) in previous {
        if found.contains_key(path) || !filter.wants(path) {
            continue;
        }
        if unreadable.iter().any(|name| name == path.as_str()) {
            // Still there but unreadable now: keep what we knew.
            rows.insert(path.clone(), row.clone());
            continue;
        }
        match (&row.current, &row.synced) {
            (None, None) => changed.push(path.clone()),
            (None, Some(_)) => {
                rows.insert(path.clone(), row.clone());
            }
            (Some(_), synced) => {
                changed.push(path.clone());
                if synced.is_some() {
                    rows.insert(
                        path.clone(),
                        Row {
                            current: None,
                            synced: synced.clone(),
                            term,
                        },
                    );
                }
            }
        }
    }
    Ok(Scanned {
        rows,
        changed,
        unreadable,
    })
}

fn walk(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    previous: &BTreeMap<RelPath, Row>,
    found: &mut BTreeMap<RelPath, Version>,
    unreadable: &mut Vec<String>,
) -> std::io::Result<()> {
    let dir = if prefix.is_empty() {
        root.to_path_buf()
    } else {
        root.join(prefix)
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if !prefix.is_empty() => {
            unreadable.push(format!("{prefix}/: {error}"));
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            unreadable.push(format!("{prefix}/{:?}: not UTF-8", entry.file_name()));
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let relative = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(path) = RelPath::parse(&relative) else {
            continue;
        };
        // DirEntry::metadata does not follow symlinks.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(_) => continue,
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            if filter.recursive {
                walk(root, &relative, filter, previous, found, unreadable)?;
            }
            continue;
        }
        if !meta.is_file() || !filter.wants(&path) {
            continue;
        }
        let size = meta.len();
        let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        let mode = meta.permissions().mode() & super::MODE_BITS;
        let known = previous
            .get(&path)
            .and_then(|row| row.current.as_ref())
            .filter(|known| known.size == size && known.mtime_ns == mtime_ns);
        let hash = match known {
            Some(known) => known.hash.clone(),
            None => match hash_file(&entry.path()) {
                Ok(hash) => hash,
                Err(error) => {
                    unreadable.push(format!("{relative}: {error}"));
                    continue;
                }
            },
        };
        found.insert(
            path,
            Version {
                size,
                mtime_ns,
                mode,
                hash,
            },
        );
    }
    Ok(())
}

/// SHA-256 of a file's content, lowercase hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    Ok(hex(context.finish().as_ref()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Filter {
        Filter::new(&[], &[], true).unwrap()
    }

    #[test]
    fn a_scan_finds_files_hashes_them_and_skips_links_and_temp_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("vm/100")).unwrap();
        std::fs::write(root.path().join("vm/100/msg.wav"), b"hello").unwrap();
        std::fs::write(root.path().join(".tandem-part-1"), b"partial").unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("etc-link")).unwrap();
        std::os::unix::fs::symlink("vm/100/msg.wav", root.path().join("file-link")).unwrap();
        let scanned = scan(root.path(), &all(), &BTreeMap::new(), 7).unwrap();
        let paths: Vec<&str> = scanned.rows.keys().map(RelPath::as_str).collect();
        assert_eq!(paths, ["vm/100/msg.wav"]);
        let row = &scanned.rows[&RelPath::parse("vm/100/msg.wav").unwrap()];
        assert_eq!(row.term, 7);
        assert_eq!(
            row.current.as_ref().unwrap().hash,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(scanned.changed.len(), 1);
    }

    #[test]
    fn an_unchanged_file_keeps_its_row_and_a_deleted_one_becomes_a_deletion() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.wav"), b"a").unwrap();
        std::fs::write(root.path().join("b.wav"), b"b").unwrap();
        let mut first = scan(root.path(), &all(), &BTreeMap::new(), 1).unwrap().rows;
        for row in first.values_mut() {
            row.synced = row.current.as_ref().map(Version::key);
        }
        std::fs::remove_file(root.path().join("b.wav")).unwrap();
        let second = scan(root.path(), &all(), &first, 2).unwrap();
        assert_eq!(second.changed, [RelPath::parse("b.wav").unwrap()]);
        let a = &second.rows[&RelPath::parse("a.wav").unwrap()];
        assert_eq!((a.term, a.changed()), (1, false));
        let b = &second.rows[&RelPath::parse("b.wav").unwrap()];
        assert!(b.current.is_none() && b.changed() && b.term == 2);
    }

    #[test]
    fn globs_and_recursion_choose_the_files() {
        let filter = Filter::new(
            &["**/*.wav".to_string(), "**/*.vox".to_string()],
            &["tmp/**".to_string()],
            true,
        )
        .unwrap();
        let wants = |path: &str| filter.wants(&RelPath::parse(path).unwrap());
        assert!(wants("a.wav") && wants("x/y/b.vox"));
        assert!(!wants("a.txt") && !wants("tmp/c.wav"));
        let flat = Filter::new(&[], &[], false).unwrap();
        assert!(!flat.wants(&RelPath::parse("x/a.wav").unwrap()));
        let error = Filter::new(&["a[".to_string()], &[], true).unwrap_err();
        assert!(error.contains("a["), "{error}");
    }
}
