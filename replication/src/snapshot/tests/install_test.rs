//! A crash at every install step leaves one complete database live, old or new.

use super::fixtures::{
    data_dir_with, items, make_db, names_starting, read_current_items, read_pointer, receive,
};
use crate::snapshot::install::install_with_crash_before;
use crate::snapshot::{
    InstallStep, SnapshotError, cleanup_old_generations, create_snapshot, install,
};

const STEPS: [InstallStep; 7] = [
    InstallStep::CreateGenerationDir,
    InstallStep::MoveFile,
    InstallStep::IntegrityCheck,
    InstallStep::SyncGeneration,
    InstallStep::WritePointerTmp,
    InstallStep::RenamePointer,
    InstallStep::SyncDataDir,
];

#[tokio::test]
async fn a_crash_before_any_step_leaves_the_old_or_the_new_database_whole() {
    for step in STEPS {
        crash_before(step).await;
    }
}

async fn crash_before(step: InstallStep) {
    let temp = tempfile::tempdir().unwrap();
    let old = items("old", 5);
    let new = items("new", 60);
    let data_dir = data_dir_with(temp.path(), &old).await;
    let source_dir = temp.path().join("active");
    std::fs::create_dir(&source_dir).unwrap();
    make_db(&source_dir.join("data.db"), &new, 9).await;
    let info = create_snapshot(&source_dir.join("data.db"), &source_dir)
        .await
        .unwrap();

    // --- crash part-way through the install
    let verified = receive(&info, &data_dir);
    let error = install_with_crash_before(&data_dir, verified, Some(step))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SnapshotError::SimulatedCrash { step: s } if s == step),
        "{error}"
    );

    // --- restart: the live database is one of the two, whole
    let flipped = step == InstallStep::SyncDataDir;
    let expected = if flipped { &new } else { &old };
    assert_eq!(
        &read_current_items(&data_dir).await,
        expected,
        "crash before {step:?}"
    );

    // --- start-up cleanup keeps it, and removes the debris
    cleanup_old_generations(&data_dir).unwrap();
    assert_eq!(
        &read_current_items(&data_dir).await,
        expected,
        "after cleanup, crash before {step:?}"
    );
    assert_eq!(
        names_starting(&data_dir, "db-").len(),
        1,
        "crash before {step:?}"
    );
    assert!(
        names_starting(&data_dir, "incoming-").is_empty(),
        "crash before {step:?}"
    );
    assert!(
        names_starting(&data_dir, "CURRENT.").is_empty(),
        "crash before {step:?}"
    );

    // --- and a fresh install after the crash still works
    let installed = install(&data_dir, receive(&info, &data_dir)).await.unwrap();
    assert_eq!(
        read_current_items(&data_dir).await,
        new,
        "reinstall after crash before {step:?}"
    );
    assert_eq!(
        read_pointer(&data_dir),
        format!("db-{}\n", installed.generation.number)
    );
}

#[tokio::test]
async fn a_crash_without_cleanup_still_installs_into_a_fresh_generation() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = data_dir_with(temp.path(), &items("old", 5)).await;
    let source_dir = temp.path().join("active");
    std::fs::create_dir(&source_dir).unwrap();
    make_db(&source_dir.join("data.db"), &items("new", 20), 3).await;
    let info = create_snapshot(&source_dir.join("data.db"), &source_dir)
        .await
        .unwrap();
    let verified = receive(&info, &data_dir);
    install_with_crash_before(&data_dir, verified, Some(InstallStep::WritePointerTmp))
        .await
        .unwrap_err();

    let installed = install(&data_dir, receive(&info, &data_dir)).await.unwrap();

    assert_eq!(
        installed.generation.number, 3,
        "db-2 is debris from the crash and is skipped"
    );
    assert_eq!(read_current_items(&data_dir).await, items("new", 20));
}

#[tokio::test]
async fn cleanup_removes_old_generations_but_never_the_current_one_or_foreign_files() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = data_dir_with(temp.path(), &items("old", 5)).await;
    std::fs::write(data_dir.join("state.db"), b"not ours").unwrap();
    let source_dir = temp.path().join("active");
    std::fs::create_dir(&source_dir).unwrap();
    make_db(&source_dir.join("data.db"), &items("new", 20), 3).await;
    let info = create_snapshot(&source_dir.join("data.db"), &source_dir)
        .await
        .unwrap();
    install(&data_dir, receive(&info, &data_dir)).await.unwrap();
    install(&data_dir, receive(&info, &data_dir)).await.unwrap();
    assert_eq!(names_starting(&data_dir, "db-"), ["db-1", "db-2", "db-3"]);

    let report = cleanup_old_generations(&data_dir).unwrap();

    assert_eq!(report.removed.len(), 2);
    assert_eq!(names_starting(&data_dir, "db-"), ["db-3"]);
    assert_eq!(read_pointer(&data_dir), "db-3\n");
    assert_eq!(read_current_items(&data_dir).await, items("new", 20));
    assert!(data_dir.join("state.db").exists());

    let again = cleanup_old_generations(&data_dir).unwrap();
    assert!(again.removed.is_empty());
    assert_eq!(read_current_items(&data_dir).await, items("new", 20));
}
