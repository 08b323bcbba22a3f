//! Installing a verified snapshot as a new generation, then flipping `CURRENT` to it.
//!
//! Crash safety: every step before the rename of `CURRENT.tmp` over `CURRENT` only adds files
//! that `CURRENT` does not name, so a crash there leaves the old generation live and untouched.
//! The new generation is complete, checked and fsync'd (file and directory) before that rename,
//! so once the rename is visible — before or after a crash — the new generation is whole. The
//! final fsync of the data directory makes the rename durable; a crash before it leaves either
//! name in `CURRENT`, both complete. Not the transfer: see `writer`. The caller closes its
//! store on the old generation and reopens on `NewGeneration::generation.dir`.

use std::fs;
use std::path::Path;

use sqlx::Connection;

use super::SnapshotError;
use super::create::{open_existing, read_last_log_idx};
use super::durable::{sync_dir, sync_file};
use super::generation::{
    CURRENT_FILE_NAME, CURRENT_TMP_FILE_NAME, Generation, current_generation, generation_numbers,
};
use super::writer::VerifiedSnapshot;

/// The generation `install` made live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGeneration {
    pub generation: Generation,
    /// The generation that was live before; `cleanup_old_generations` removes it once the
    /// caller has closed it.
    pub previous: Generation,
    /// The snapshot's last log index: the log continues from the next one.
    pub last_log_idx: u64,
}

/// The steps of an install, in order; the test hook stops before one to simulate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallStep {
    CreateGenerationDir,
    MoveFile,
    IntegrityCheck,
    SyncGeneration,
    WritePointerTmp,
    RenamePointer,
    SyncDataDir,
}

/// Moves a verified snapshot into a fresh `db-<n+1>`, checks it, and atomically points
/// `CURRENT` at it. Refuses a snapshot received into another data directory.
pub async fn install(
    data_dir: &Path,
    snapshot: VerifiedSnapshot,
) -> Result<NewGeneration, SnapshotError> {
    install_with_crash_before(data_dir, snapshot, None).await
}

/// `install`, stopping with `SnapshotError::SimulatedCrash` before `crash_before` and keeping
/// whatever is on disk at that point, as a crash would.
pub(crate) async fn install_with_crash_before(
    data_dir: &Path,
    snapshot: VerifiedSnapshot,
    crash_before: Option<InstallStep>,
) -> Result<NewGeneration, SnapshotError> {
    if snapshot.data_dir != data_dir {
        return Err(SnapshotError::WrongDataDir {
            received_in: snapshot.data_dir.clone(),
            data_dir: data_dir.to_path_buf(),
        });
    }
    let previous = current_generation(data_dir)?;
    let next_number = generation_numbers(data_dir)?
        .last()
        .copied()
        .unwrap_or(0)
        .max(previous.number)
        + 1;
    let generation = Generation::new(data_dir, next_number);
    let result = run_steps(data_dir, &snapshot, &generation, crash_before).await;
    match result {
        Ok(()) => Ok(NewGeneration {
            generation,
            previous,
            last_log_idx: snapshot.last_log_idx,
        }),
        Err(error @ SnapshotError::SimulatedCrash { .. }) => {
            // A crash runs no destructors: leave the incoming directory for cleanup to find.
            let _ = snapshot.dir.keep();
            Err(error)
        }
        Err(error) => Err(error),
    }
}

async fn run_steps(
    data_dir: &Path,
    snapshot: &VerifiedSnapshot,
    generation: &Generation,
    crash_before: Option<InstallStep>,
) -> Result<(), SnapshotError> {
    let prepared = prepare_generation(data_dir, snapshot, generation, crash_before).await;
    if let Err(error) = prepared {
        // `CURRENT` does not name the new directory yet, so removing it is safe; a failure here
        // leaves garbage that `cleanup_old_generations` removes.
        if !matches!(error, SnapshotError::SimulatedCrash { .. }) {
            let _ = fs::remove_dir_all(&generation.dir);
        }
        return Err(error);
    }
    flip_pointer(data_dir, generation, crash_before)
}

/// Steps that only add a directory `CURRENT` does not name.
async fn prepare_generation(
    data_dir: &Path,
    snapshot: &VerifiedSnapshot,
    generation: &Generation,
    crash_before: Option<InstallStep>,
) -> Result<(), SnapshotError> {
    checkpoint(crash_before, InstallStep::CreateGenerationDir)?;
    fs::create_dir(&generation.dir)
        .map_err(SnapshotError::io("create directory", &generation.dir))?;
    sync_dir(data_dir)?;
    checkpoint(crash_before, InstallStep::MoveFile)?;
    fs::rename(&snapshot.path, &generation.db_path)
        .map_err(SnapshotError::io("move snapshot", &snapshot.path))?;
    checkpoint(crash_before, InstallStep::IntegrityCheck)?;
    check_database(&generation.db_path, snapshot.last_log_idx).await?;
    checkpoint(crash_before, InstallStep::SyncGeneration)?;
    sync_file(&generation.db_path)?;
    sync_dir(&generation.dir)?;
    sync_dir(snapshot.dir.path())
}

fn flip_pointer(
    data_dir: &Path,
    generation: &Generation,
    crash_before: Option<InstallStep>,
) -> Result<(), SnapshotError> {
    let tmp = data_dir.join(CURRENT_TMP_FILE_NAME);
    checkpoint(crash_before, InstallStep::WritePointerTmp)?;
    super::generation::write_pointer_tmp(&tmp, generation.number)?;
    checkpoint(crash_before, InstallStep::RenamePointer)?;
    let pointer = data_dir.join(CURRENT_FILE_NAME);
    fs::rename(&tmp, &pointer).map_err(SnapshotError::io("rename over CURRENT", &tmp))?;
    checkpoint(crash_before, InstallStep::SyncDataDir)?;
    sync_dir(data_dir)
}

fn checkpoint(crash_before: Option<InstallStep>, step: InstallStep) -> Result<(), SnapshotError> {
    if crash_before == Some(step) {
        return Err(SnapshotError::SimulatedCrash { step });
    }
    Ok(())
}

/// `PRAGMA integrity_check` must answer a single `ok`, and the file's own log must end where
/// the manifest said.
async fn check_database(path: &Path, expected_last_log_idx: u64) -> Result<(), SnapshotError> {
    let mut connection = open_existing(path).await?;
    let report: Result<Vec<String>, _> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await;
    let _ = connection.close().await;
    let report = report.map_err(SnapshotError::sql(path))?;
    if report != ["ok"] {
        return Err(SnapshotError::IntegrityCheck {
            path: path.to_path_buf(),
            report: report.join("; "),
        });
    }
    let last_log_idx = read_last_log_idx(path).await?;
    if last_log_idx != expected_last_log_idx {
        return Err(SnapshotError::ManifestMismatch {
            path: path.to_path_buf(),
            what: "last log index",
            expected: expected_last_log_idx.to_string(),
            got: last_log_idx.to_string(),
        });
    }
    Ok(())
}
