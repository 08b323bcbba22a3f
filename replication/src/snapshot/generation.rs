//! The data directory's generations: `data_dir/db-<n>/data.db` behind the pointer file
//! `data_dir/CURRENT`, which holds the active directory's name (`db-<n>`).
//!
//! The pointer is the only thing that decides which database is live, and it is only ever
//! replaced by an atomic rename, so a reader sees the old generation or the new one, never a
//! mix. Everything else in the data directory that is ours (`db-*` other than the current one,
//! `incoming-*`, `CURRENT.tmp`) is garbage after a crash and `cleanup_old_generations` removes
//! it. Other files (`state.db`) are never touched. Not the install itself: see `install`.

use std::fs;
use std::path::{Path, PathBuf};

use super::SnapshotError;
use super::durable::{sync_dir, sync_file};

pub const CURRENT_FILE_NAME: &str = "CURRENT";
pub const CURRENT_TMP_FILE_NAME: &str = "CURRENT.tmp";
pub const DB_FILE_NAME: &str = "data.db";
pub const GENERATION_PREFIX: &str = "db-";
pub const INCOMING_PREFIX: &str = "incoming-";
/// SQLite's companions of `data.db`, moved with it by the legacy migration. The WAL and a hot
/// journal hold committed data, so the database is only whole with them.
const LEGACY_COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-journal", "-shm"];

/// One generation directory of the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    /// `data_dir/db-<number>`: what `Store::open` takes.
    pub dir: PathBuf,
    /// `dir/data.db`; it may not exist yet in a fresh `db-1`.
    pub db_path: PathBuf,
}

impl Generation {
    pub(crate) fn new(data_dir: &Path, number: u64) -> Generation {
        let dir = data_dir.join(generation_dir_name(number));
        let db_path = dir.join(DB_FILE_NAME);
        Generation {
            number,
            dir,
            db_path,
        }
    }
}

pub(crate) fn generation_dir_name(number: u64) -> String {
    format!("{GENERATION_PREFIX}{number}")
}

/// `db-<n>` with n ≥ 1 in canonical decimal, or `None`.
pub(crate) fn parse_generation_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(GENERATION_PREFIX)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !canonical {
        return None;
    }
    digits.parse().ok()
}

/// The path of the live `data.db`; see `current_generation`.
pub fn current_db_path(data_dir: &Path) -> Result<PathBuf, SnapshotError> {
    Ok(current_generation(data_dir)?.db_path)
}

/// Resolves `CURRENT`. On first use (no `CURRENT`) it creates `db-1` and `CURRENT`; a legacy
/// `data_dir/data.db` (with its `-wal`, `-journal` and `-shm`) is moved into `db-1` first, so a
/// node upgraded from the flat layout keeps its data. Call it at start-up, before opening the
/// store: the legacy move must not race an open database.
pub fn current_generation(data_dir: &Path) -> Result<Generation, SnapshotError> {
    let pointer = data_dir.join(CURRENT_FILE_NAME);
    match fs::read_to_string(&pointer) {
        Ok(content) => resolve_pointer(data_dir, &pointer, &content),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => initialise(data_dir),
        Err(error) => Err(SnapshotError::io("read", &pointer)(error)),
    }
}

fn resolve_pointer(
    data_dir: &Path,
    pointer: &Path,
    content: &str,
) -> Result<Generation, SnapshotError> {
    let number = parse_generation_dir_name(content.trim_end_matches('\n')).ok_or_else(|| {
        SnapshotError::CurrentInvalid {
            path: pointer.to_path_buf(),
            content: content.to_string(),
        }
    })?;
    let generation = Generation::new(data_dir, number);
    if !generation.dir.is_dir() {
        return Err(SnapshotError::CurrentTargetMissing {
            pointer: pointer.to_path_buf(),
            target: generation.dir,
        });
    }
    Ok(generation)
}

/// First use: make `db-1` (adopting a legacy `data.db`), then point `CURRENT` at it. Each step
/// is idempotent, so a crash part-way is finished by the next call.
fn initialise(data_dir: &Path) -> Result<Generation, SnapshotError> {
    let existing = generation_numbers(data_dir)?;
    if existing.iter().any(|&number| number != 1) {
        return Err(SnapshotError::UnexpectedLayout {
            data_dir: data_dir.to_path_buf(),
            reason: format!(
                "{CURRENT_FILE_NAME} is missing but generations {existing:?} exist; restore {CURRENT_FILE_NAME} by hand"
            ),
        });
    }
    let generation = Generation::new(data_dir, 1);
    create_dir_if_missing(&generation.dir)?;
    adopt_legacy_database(data_dir, &generation)?;
    sync_dir(&generation.dir)?;
    sync_dir(data_dir)?;
    write_pointer(data_dir, 1)?;
    Ok(generation)
}

fn create_dir_if_missing(dir: &Path) -> Result<(), SnapshotError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(SnapshotError::io("create directory", dir)(error)),
    }
}

/// Moves `data_dir/data.db` and its companions into `db-1`, companions first: a crash between
/// the moves leaves `data.db` still to move, and the next call moves it.
fn adopt_legacy_database(data_dir: &Path, generation: &Generation) -> Result<(), SnapshotError> {
    let legacy = data_dir.join(DB_FILE_NAME);
    if !legacy.exists() {
        return Ok(());
    }
    if generation.db_path.exists() {
        return Err(SnapshotError::UnexpectedLayout {
            data_dir: data_dir.to_path_buf(),
            reason: format!(
                "both {} and {} exist; keep one by hand",
                legacy.display(),
                generation.db_path.display()
            ),
        });
    }
    for suffix in LEGACY_COMPANION_SUFFIXES {
        let from = data_dir.join(format!("{DB_FILE_NAME}{suffix}"));
        if from.exists() {
            let to = generation.dir.join(format!("{DB_FILE_NAME}{suffix}"));
            fs::rename(&from, &to).map_err(SnapshotError::io("move legacy file", &from))?;
        }
    }
    fs::rename(&legacy, &generation.db_path)
        .map_err(SnapshotError::io("move legacy database", &legacy))
}

/// Atomically points `CURRENT` at `db-<number>`: write `CURRENT.tmp`, fsync it, rename it over
/// `CURRENT`, fsync the data directory so the rename itself is durable.
pub(crate) fn write_pointer(data_dir: &Path, number: u64) -> Result<(), SnapshotError> {
    let tmp = data_dir.join(CURRENT_TMP_FILE_NAME);
    write_pointer_tmp(&tmp, number)?;
    let pointer = data_dir.join(CURRENT_FILE_NAME);
    fs::rename(&tmp, &pointer).map_err(SnapshotError::io("rename over CURRENT", &tmp))?;
    sync_dir(data_dir)
}

pub(crate) fn write_pointer_tmp(tmp: &Path, number: u64) -> Result<(), SnapshotError> {
    fs::write(tmp, format!("{}\n", generation_dir_name(number)))
        .map_err(SnapshotError::io("write", tmp))?;
    sync_file(tmp)
}

/// The numbers of every `db-<n>` directory in `data_dir`, ascending.
pub(crate) fn generation_numbers(data_dir: &Path) -> Result<Vec<u64>, SnapshotError> {
    let mut numbers = Vec::new();
    for (name, path) in list_dir(data_dir)? {
        if let Some(number) = parse_generation_dir_name(&name)
            && path.is_dir()
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
    let entries = fs::read_dir(dir).map_err(SnapshotError::io("list directory", dir))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(SnapshotError::io("list directory", dir))?;
        // Names that are not UTF-8 are not ours.
        if let Ok(name) = entry.file_name().into_string() {
            listed.push((name, entry.path()));
        }
    }
    Ok(listed)
}

/// What `cleanup_old_generations` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub removed: Vec<PathBuf>,
}

/// Removes every generation but the current one, stray `incoming-*` directories and a stray
/// `CURRENT.tmp`. Safe at start-up; not while a snapshot is being received (it would remove the
/// transfer's `incoming-*` directory) or while an old generation's database is still open.
pub fn cleanup_old_generations(data_dir: &Path) -> Result<CleanupReport, SnapshotError> {
    let current = current_generation(data_dir)?;
    let mut report = CleanupReport::default();
    for (name, path) in list_dir(data_dir)? {
        let old_generation = parse_generation_dir_name(&name).is_some_and(|n| n != current.number);
        let stray_incoming = name.starts_with(INCOMING_PREFIX);
        if (old_generation || stray_incoming) && path.is_dir() {
            fs::remove_dir_all(&path).map_err(SnapshotError::io("remove", &path))?;
            report.removed.push(path);
        } else if name == CURRENT_TMP_FILE_NAME {
            fs::remove_file(&path).map_err(SnapshotError::io("remove", &path))?;
            report.removed.push(path);
        }
    }
    if !report.removed.is_empty() {
        sync_dir(data_dir)?;
    }
    Ok(report)
}
