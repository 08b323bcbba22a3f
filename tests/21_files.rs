//! `[[files]]`: files written on the active reach the passive complete and identical (mode and
//! modification time too); deletions and renames propagate; files changed while the passive was
//! down arrive when it returns; after a failover the new active's files travel back; after a
//! split brain files created on either side end up on both, and a path changed on both keeps the
//! newer version with the other beside it; a crafted path outside the directory is refused.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use tandem_harness::{Cluster, ClusterSpec, Mode};

struct Dirs {
    _root: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Dirs {
    fn new() -> anyhow::Result<Dirs> {
        let root = tempfile::tempdir()?;
        let (a, b) = (root.path().join("vm-a"), root.path().join("vm-b"));
        std::fs::create_dir_all(&a)?;
        std::fs::create_dir_all(&b)?;
        Ok(Dirs { _root: root, a, b })
    }

    fn of(&self, node: &str) -> &Path {
        if node == "a" { &self.a } else { &self.b }
    }

    fn spec(&self, spec: ClusterSpec) -> ClusterSpec {
        let entry = |dir: &Path| {
            format!(
                "[[files]]\nname = \"voicemail\"\ndir = \"{}\"\ninclude = [\"**/*.wav\", \"**/*.txt\"]\nscan_interval = \"2s\"\n",
                dir.display()
            )
        };
        spec.extra_toml("a", &entry(&self.a))
            .extra_toml("b", &entry(&self.b))
    }
}

/// Every file under `dir` (relative path → content, mode, mtime), temp files included.
fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32, i64)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let content = std::fs::read(&path).unwrap_or_default();
                files.insert(
                    relative,
                    (content, meta.permissions().mode() & 0o7777, meta.mtime()),
                );
            }
        }
    }
    files
}

fn wait_same(cluster: &Cluster, dirs: &Dirs, what: &str) -> anyhow::Result<()> {
    cluster.wait_until(WAIT, what, |_| {
        let (a, b) = (tree(&dirs.a), tree(&dirs.b));
        Ok((a == b).then_some(()))
    })
}

fn write(dir: &Path, path: &str, content: &[u8]) -> anyhow::Result<()> {
    let full = dir.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(full, content)?;
    Ok(())
}

#[test]
fn files_follow_the_active_with_deletions_renames_and_outages() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let mut cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("a file written on the active arrives complete, with its mode and mtime");
    write(&dirs.a, "100/msg0001.wav", &vec![7u8; 700_000])?;
    std::fs::set_permissions(
        dirs.a.join("100/msg0001.wav"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    write(&dirs.a, "greeting.txt", b"hello")?;
    write(&dirs.a, "ignored.tmp", b"not replicated")?;
    cluster.wait_until(WAIT, "both files on b, identical", |_| {
        let (a, b) = (tree(&dirs.a), tree(&dirs.b));
        let arrived = ["100/msg0001.wav", "greeting.txt"]
            .iter()
            .all(|name| b.contains_key(*name) && b.get(*name) == a.get(*name));
        Ok((arrived && b.len() == 2).then_some(()))
    })?;
    assert_eq!(tree(&dirs.b)["100/msg0001.wav"].1, 0o640);
    let (a, b) = (tree(&dirs.a), tree(&dirs.b));
    assert_eq!(a["100/msg0001.wav"], b["100/msg0001.wav"]);
    assert_eq!(a["greeting.txt"], b["greeting.txt"]);
    assert!(!b.contains_key("ignored.tmp"));

    phase("a rename and a deletion propagate");
    std::fs::rename(dirs.a.join("greeting.txt"), dirs.a.join("100/greeting.txt"))?;
    std::fs::remove_file(dirs.a.join("100/msg0001.wav"))?;
    std::fs::remove_file(dirs.a.join("ignored.tmp"))?;
    wait_same(&cluster, &dirs, "the rename and the deletion on b")?;
    assert_eq!(
        tree(&dirs.b).keys().collect::<Vec<_>>(),
        ["100/greeting.txt"]
    );
    let status = cluster.status("a")?;
    let files = &status["files"][0];
    assert_eq!(files["name"], "voicemail");
    assert!(files["last_sync"].as_u64().is_some(), "{files}");
    assert_eq!(files["error"], "", "{files}");

    phase("files changed while b was down arrive when it returns");
    cluster.node_mut("b").kill()?;
    write(&dirs.a, "200/msg0002.wav", b"while b was down")?;
    std::fs::remove_file(dirs.a.join("100/greeting.txt"))?;
    cluster.node_mut("b").restart()?;
    wait_steady(&cluster, "a")?;
    wait_same(&cluster, &dirs, "b to catch up with a's files")?;
    assert!(tree(&dirs.b).contains_key("200/msg0002.wav"));

    phase("resync --files scans and reports");
    let out = cluster.ctl_ok("a", &["resync", "--files"])?;
    assert!(out.contains("in sync"), "{out}");
    let refused = cluster.ctl("b", &["resync", "--files"])?;
    assert_eq!(refused.status.code(), Some(1));

    phase("after a failover, files written on the new active travel back to a");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    write(&dirs.b, "300/after-failover.wav", b"written on b")?;
    // a wrote this just before it died; it never reached b.
    write(&dirs.a, "300/last-words.wav", b"written on a")?;
    cluster.node_mut("a").restart()?;
    wait_steady(&cluster, "b")?;
    wait_same(&cluster, &dirs, "both nodes to hold both files")?;
    let a = tree(&dirs.a);
    assert!(a.contains_key("300/after-failover.wav") && a.contains_key("300/last-words.wav"));
    Ok(())
}

#[test]
fn after_a_split_brain_files_from_both_sides_are_kept() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let spec = dirs.spec(ClusterSpec::new().with_proxies(true));
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    write(&dirs.a, "shared.wav", b"before the split")?;
    wait_same(&cluster, &dirs, "shared.wav on both")?;

    phase("partition: both nodes active, both write");
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    cluster.wait_until(WAIT, "both active", |c| {
        Ok((c.active_nodes().len() == 2).then_some(()))
    })?;
    write(&dirs.a, "from-a.wav", b"created on a")?;
    write(&dirs.b, "from-b.wav", b"created on b")?;
    write(&dirs.a, "shared.wav", b"changed on a first")?;
    // b's change is the newer one.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    write(&dirs.b, "shared.wav", b"changed on b later")?;
    std::fs::File::options()
        .write(true)
        .open(dirs.b.join("shared.wav"))?
        .set_modified(later)?;

    phase("heal: the higher term stays active and both sides' files end up on both");
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    cluster.proxy("b", "a").set_mode(Mode::Pass)?;
    cluster.wait_until(WAIT, "one active again", |c| {
        Ok((c.active_nodes().len() == 1).then_some(()))
    })?;
    let active = cluster.active_nodes()[0].clone();
    wait_same(&cluster, &dirs, "the directories to converge")?;
    let files = tree(dirs.of(&active));
    assert_eq!(files["from-a.wav"].0, b"created on a");
    assert_eq!(files["from-b.wav"].0, b"created on b");
    assert_eq!(
        files["shared.wav"].0, b"changed on b later",
        "the newer version wins"
    );
    let copies: Vec<&String> = files
        .keys()
        .filter(|name| name.starts_with("shared.conflict-a-"))
        .collect();
    assert_eq!(copies.len(), 1, "{:?}", files.keys().collect::<Vec<_>>());
    assert_eq!(files[copies[0]].0, b"changed on a first");
    wait_event(
        &cluster,
        &active,
        "file_conflict",
        "shared.wav changed on both nodes",
    )?;
    Ok(())
}
