//! `files`: file replication (DESIGN.md §7) measured from the outside, with `rsync` between two
//! local directories of the same disk run on the same data in the same run, for comparison.
//!
//! One pair with one `[[files]]` entry at the product's defaults (no include globs, recursive,
//! no bandwidth limit, `scan_interval = "1m"`); the two nodes' directories are temp dirs on the
//! same disk. Three parts, in this order:
//! - **small**: `--runs` times, write a 4 KiB file on the active; the time from the start of the
//!   write until the identical file exists on the passive (polled every 2 ms).
//! - **large**: write one 1 GiB file on the active; the time from its close until it exists
//!   on the passive (polled every 10 ms; it appears by an atomic rename), and from the start of the
//!   write until then. Compared after the clock stops.
//! - **many**: 10,000 × 4 KiB files in 100 directories; the time from the last close until all
//!   of them exist on the passive, then compared.
//!
//! Each rsync figure is the wall time of one `rsync -a SRC/ DST/` (and `rsync -a --fsync`) from
//! the active's directory into a fresh directory, after tandem's copy, with the source in the
//! page cache as it is for tandem. MB are 10^6 bytes. The 1 GiB files are deleted at the end of
//! their part; the temp dirs are removed when the scenario ends, whatever its outcome.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tandem_harness::{Binaries, ClusterSpec};

use crate::scenarios::Pair;
use crate::stats::{percentile_ms, round};

const SMALL_BYTES: usize = 4096;
const LARGE_BYTES: u64 = 1 << 30;
const MANY_FILES: usize = 10_000;
const MANY_DIRS: usize = 100;
/// Bound on the wait for one part's files on the passive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// The two nodes' replicated directories, and room for rsync's copies, under one temp dir.
pub struct Dirs {
    _root: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
    /// Where rsync copies to (and where loads stage their files): the same disk, not replicated.
    pub scratch: PathBuf,
}

impl Dirs {
    pub fn new() -> anyhow::Result<Dirs> {
        let root = tempfile::Builder::new()
            .prefix("tandem-bench-files-")
            .tempdir()
            .context("create the files temp dir")?;
        let dirs = Dirs {
            a: root.path().join("files-a"),
            b: root.path().join("files-b"),
            scratch: root.path().join("scratch"),
            _root: root,
        };
        for dir in [&dirs.a, &dirs.b, &dirs.scratch] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(dirs)
    }

    pub fn of(&self, node: &str) -> &Path {
        if node == "a" { &self.a } else { &self.b }
    }

    /// A pair spec with one `[[files]]` entry named `bench`, at the product's defaults.
    pub fn spec(&self) -> ClusterSpec {
        let entry =
            |dir: &Path| format!("[[files]]\nname = \"bench\"\ndir = \"{}\"\n", dir.display());
        ClusterSpec::new()
            .extra_toml("a", &entry(&self.a))
            .extra_toml("b", &entry(&self.b))
    }
}

/// A cheap pseudo-random byte stream (xorshift64*), so that no content is all zeros.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Writes `size` bytes of noise to `path` (1 MiB at a time) and closes it; no fsync.
pub fn write_large(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    let mut noise = Noise::new(seed);
    let mut buffer = vec![0u8; 1 << 20];
    let mut file = std::fs::File::create(path).with_context(|| format!("create {path:?}"))?;
    let mut left = size;
    while left > 0 {
        let take = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        noise.fill(&mut buffer[..take]);
        file.write_all(&buffer[..take])?;
        left -= take as u64;
    }
    Ok(())
}

/// Whether two files hold the same bytes.
pub fn same_content(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let read = a.read(&mut x)?;
        if read == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..read])?;
        if x[..read] != y[..read] {
            return Ok(false);
        }
    }
}

/// Polls every `every` until `check` holds; the time it first held, measured from `since`.
fn wait_for(
    since: Instant,
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    loop {
        if check() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > ARRIVAL_TIMEOUT {
            bail!("{what}: not there after {ARRIVAL_TIMEOUT:?}");
        }
        std::thread::sleep(every);
    }
}

/// The installed rsync's version line, and whether it has `--fsync` (rsync ≥ 3.2.4).
fn rsync_version() -> anyhow::Result<(String, bool)> {
    let version = Command::new("rsync")
        .arg("--version")
        .output()
        .context("rsync is not installed (scripts/install-deps.sh installs it)")?;
    let help = Command::new("rsync").arg("--help").output()?;
    let line = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((
        line,
        String::from_utf8_lossy(&help.stdout).contains("--fsync"),
    ))
}

/// Runs `rsync <flags> from/ to/` into a fresh `to`; its wall time.
fn rsync(flags: &[&str], from: &Path, to: &Path) -> anyhow::Result<Duration> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    let start = Instant::now();
    let status = Command::new("rsync")
        .args(flags)
        .arg(format!("{}/", from.display()))
        .arg(format!("{}/", to.display()))
        .status()
        .context("run rsync")?;
    let took = start.elapsed();
    if !status.success() {
        bail!("rsync {flags:?} failed: {status}");
    }
    Ok(took)
}

/// The rsync variants compared: `-a`, and `-a --fsync` when the installed rsync has it.
fn rsync_variants(fsync: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut variants = vec![("rsync", vec!["-a"])];
    if fsync {
        variants.push(("rsync_fsync", vec!["-a", "--fsync"]));
    }
    variants
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    round(bytes as f64 / 1e6 / took.as_secs_f64())
}

fn ms(took: Duration) -> f64 {
    round(took.as_secs_f64() * 1000.0)
}

pub async fn files(bins: &Binaries, runs: usize) -> anyhow::Result<Value> {
    let dirs = Dirs::new()?;
    let mut pair = Pair::start_with(bins, dirs.spec())?;
    let active = pair.steady().await?;
    let passive = crate::scenarios::other(active);
    let (rsync_line, rsync_fsync) = rsync_version()?;
    let (from, to) = (
        dirs.of(active).to_path_buf(),
        dirs.of(passive).to_path_buf(),
    );
    let mut result = json!({
        "scenario": "files",
        "runs": runs,
        "rsync_version": rsync_line,
        "measures": "small: start of the write of a 4 KiB file on the active until the identical \
                     file exists on the passive; large: close of a 1 GiB file until it is on the \
                     passive (whole: start of the write until then); many: close of the last of \
                     10,000 x 4 KiB files in 100 dirs until all are on the passive; rsync: wall \
                     time of one local rsync of the same data into a fresh dir. MB = 10^6 bytes",
    });
    let parts = tokio::task::block_in_place(|| -> anyhow::Result<Vec<Value>> {
        Ok(vec![
            small(&from, &to, &dirs.scratch, runs, rsync_fsync)?,
            large(&from, &to, &dirs.scratch, rsync_fsync)?,
            many(&from, &to, &dirs.scratch, rsync_fsync)?,
        ])
    })?;
    if let Value::Object(map) = &mut result {
        for part in parts {
            if let Value::Object(figures) = part {
                map.extend(figures);
            }
        }
    }
    Ok(result)
}

/// A 4 KiB file at a time: tandem's latency, and rsync's for the same one file.
fn small(
    from: &Path,
    to: &Path,
    scratch: &Path,
    runs: usize,
    rsync_fsync: bool,
) -> anyhow::Result<Value> {
    std::fs::create_dir_all(from.join("small"))?;
    let mut noise = Noise::new(0x5eed);
    let mut samples = Vec::new();
    for run in 0..runs {
        let mut content = vec![0u8; SMALL_BYTES];
        noise.fill(&mut content);
        let name = format!("small/msg-{run:04}.bin");
        let (source, target) = (from.join(&name), to.join(&name));
        let start = Instant::now();
        std::fs::write(&source, &content)?;
        let took = wait_for(start, Duration::from_millis(2), &name, || {
            std::fs::read(&target).is_ok_and(|there| there == content)
        })?;
        eprintln!(
            "small run {}: on the passive after {:.1} ms",
            run + 1,
            ms(took)
        );
        samples.push(took);
    }
    let mut figures = json!({
        "small_bytes": SMALL_BYTES,
        "small_p50_ms": percentile_ms(&samples, 50.0),
        "small_p95_ms": percentile_ms(&samples, 95.0),
        "small_max_ms": percentile_ms(&samples, 100.0),
        "small_samples_ms": samples.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
    });
    // rsync of one such file: one directory holding just it, copied `runs` times.
    let one = scratch.join("small-one");
    std::fs::create_dir_all(&one)?;
    std::fs::copy(from.join("small/msg-0000.bin"), one.join("msg-0000.bin"))?;
    for (name, flags) in rsync_variants(rsync_fsync) {
        let mut took = Vec::new();
        for _ in 0..runs {
            took.push(rsync(&flags, &one, &scratch.join("small-rsync"))?);
        }
        if let Value::Object(map) = &mut figures {
            map.insert(
                format!("{name}_small_p50_ms"),
                json!(percentile_ms(&took, 50.0)),
            );
        }
    }
    Ok(figures)
}

/// One 1 GiB file: tandem from its close, and the whole; then rsync of it; then deleted.
fn large(from: &Path, to: &Path, scratch: &Path, rsync_fsync: bool) -> anyhow::Result<Value> {
    std::fs::create_dir_all(from.join("large"))?;
    let (source, target) = (from.join("large/big.bin"), to.join("large/big.bin"));
    let start = Instant::now();
    write_large(&source, LARGE_BYTES, 0x1a29e)?;
    let written = start.elapsed();
    let closed = Instant::now();
    let mtime = std::fs::metadata(&source)?.modified()?;
    let after_close = wait_for(closed, Duration::from_millis(10), "the 1 GiB file", || {
        std::fs::metadata(&target).is_ok_and(|meta| {
            meta.len() == LARGE_BYTES && meta.modified().is_ok_and(|m| m == mtime)
        })
    })?;
    let whole = start.elapsed();
    let identical = same_content(&source, &target)?;
    eprintln!(
        "large: written in {:.1} ms; on the passive {:.1} ms after the close (identical: \
         {identical})",
        ms(written),
        ms(after_close)
    );
    let mut figures = json!({
        "large_bytes": LARGE_BYTES,
        "large_write_ms": ms(written),
        "large_after_close_ms": ms(after_close),
        "large_whole_ms": ms(whole),
        "large_mb_per_s": mb_per_s(LARGE_BYTES, after_close),
        "large_whole_mb_per_s": mb_per_s(LARGE_BYTES, whole),
        "large_identical": identical,
    });
    for (name, flags) in rsync_variants(rsync_fsync) {
        let copy = scratch.join("large-rsync");
        let took = rsync(&flags, &from.join("large"), &copy)?;
        eprintln!("large: {name} took {:.1} ms", ms(took));
        if let Value::Object(map) = &mut figures {
            map.insert(format!("{name}_large_ms"), json!(ms(took)));
            map.insert(
                format!("{name}_large_mb_per_s"),
                json!(mb_per_s(LARGE_BYTES, took)),
            );
        }
        std::fs::remove_dir_all(&copy)?;
    }
    // Free the disk: the deletion replicates, and the copies go with the temp dir at the end.
    std::fs::remove_file(&source)?;
    wait_for(
        Instant::now(),
        Duration::from_millis(10),
        "the deletion",
        || !target.exists(),
    )?;
    if !identical {
        bail!("the 1 GiB file on the passive differs from the active's");
    }
    Ok(figures)
}

/// 10,000 small files in 100 directories.
fn many(from: &Path, to: &Path, scratch: &Path, rsync_fsync: bool) -> anyhow::Result<Value> {
    let (source, target) = (from.join("many"), to.join("many"));
    let mut noise = Noise::new(0x3a4e);
    let mut content = vec![0u8; SMALL_BYTES];
    let names: Vec<String> = (0..MANY_FILES)
        .map(|i| format!("d{:03}/f{:05}.bin", i % MANY_DIRS, i))
        .collect();
    let start = Instant::now();
    for dir in 0..MANY_DIRS {
        std::fs::create_dir_all(source.join(format!("d{dir:03}")))?;
    }
    for name in &names {
        noise.fill(&mut content);
        std::fs::write(source.join(name), &content)?;
    }
    let written = start.elapsed();
    let closed = Instant::now();
    let count_there = || {
        (0..MANY_DIRS)
            .filter_map(|dir| std::fs::read_dir(target.join(format!("d{dir:03}"))).ok())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .sum::<usize>()
    };
    let after_close = wait_for(closed, Duration::from_millis(20), "10,000 files", || {
        count_there() == MANY_FILES
    })?;
    let whole = start.elapsed();
    let mut identical = true;
    for name in &names {
        identical &= same_content(&source.join(name), &target.join(name))?;
    }
    let bytes = (MANY_FILES * SMALL_BYTES) as u64;
    eprintln!(
        "many: written in {:.1} ms; all on the passive {:.1} ms after the last close \
         (identical: {identical})",
        ms(written),
        ms(after_close)
    );
    let mut figures = json!({
        "many_files": MANY_FILES,
        "many_dirs": MANY_DIRS,
        "many_bytes": bytes,
        "many_write_ms": ms(written),
        "many_after_close_ms": ms(after_close),
        "many_whole_ms": ms(whole),
        "many_mb_per_s": mb_per_s(bytes, after_close),
        "many_files_per_s": round(MANY_FILES as f64 / after_close.as_secs_f64()),
        "many_identical": identical,
    });
    for (name, flags) in rsync_variants(rsync_fsync) {
        let took = rsync(&flags, &source, &scratch.join(format!("many-{name}")))?;
        eprintln!("many: {name} took {:.1} ms", ms(took));
        if let Value::Object(map) = &mut figures {
            map.insert(format!("{name}_many_ms"), json!(ms(took)));
            map.insert(
                format!("{name}_many_mb_per_s"),
                json!(mb_per_s(bytes, took)),
            );
        }
    }
    if !identical {
        bail!("some of the 10,000 files on the passive differ from the active's");
    }
    Ok(figures)
}
