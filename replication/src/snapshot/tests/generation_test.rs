//! Resolving `CURRENT`: first use, the legacy flat layout, and pointers that cannot be trusted.

use super::fixtures::{items, make_db, read_items, read_pointer};
use crate::snapshot::{
    SnapshotError, cleanup_old_generations, current_db_path, current_generation,
};

#[test]
fn first_use_creates_db_1_and_the_pointer() {
    let temp = tempfile::tempdir().unwrap();

    let generation = current_generation(temp.path()).unwrap();

    assert_eq!(generation.number, 1);
    assert_eq!(generation.dir, temp.path().join("db-1"));
    assert!(generation.dir.is_dir());
    assert_eq!(read_pointer(temp.path()), "db-1\n");
    assert_eq!(
        current_db_path(temp.path()).unwrap(),
        temp.path().join("db-1/data.db")
    );
}

#[tokio::test]
async fn a_legacy_flat_data_db_is_moved_into_db_1() {
    let temp = tempfile::tempdir().unwrap();
    make_db(&temp.path().join("data.db"), &items("legacy", 4), 2).await;

    let path = current_db_path(temp.path()).unwrap();

    assert_eq!(path, temp.path().join("db-1/data.db"));
    assert!(!temp.path().join("data.db").exists());
    assert_eq!(read_items(&path).await, items("legacy", 4));
}

#[tokio::test]
async fn a_legacy_move_interrupted_after_the_companions_is_finished() {
    let temp = tempfile::tempdir().unwrap();
    make_db(&temp.path().join("data.db"), &items("legacy", 4), 2).await;
    // The crash: db-1 made and a companion moved, data.db and CURRENT not yet.
    std::fs::create_dir(temp.path().join("db-1")).unwrap();
    std::fs::write(temp.path().join("db-1/data.db-journal"), b"").unwrap();

    let path = current_db_path(temp.path()).unwrap();

    assert_eq!(read_items(&path).await, items("legacy", 4));
}

#[test]
fn a_garbage_pointer_is_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    for content in ["", "db-0\n", "db-01\n", "../etc\n", "db-1/../x\n", "db-x\n"] {
        std::fs::write(temp.path().join("CURRENT"), content).unwrap();
        let error = current_generation(temp.path()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::CurrentInvalid { .. }),
            "{content:?}: {error}"
        );
        assert!(error.to_string().contains("CURRENT"), "{error}");
    }
}

#[test]
fn a_pointer_to_a_missing_generation_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("CURRENT"), "db-7\n").unwrap();

    let error = current_generation(temp.path()).unwrap_err();

    assert!(
        matches!(error, SnapshotError::CurrentTargetMissing { .. }),
        "{error}"
    );
    assert!(
        cleanup_old_generations(temp.path()).is_err(),
        "cleanup must not guess"
    );
}

#[test]
fn a_missing_pointer_with_later_generations_is_refused_rather_than_guessed() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir(temp.path().join("db-1")).unwrap();
    std::fs::create_dir(temp.path().join("db-2")).unwrap();

    let error = current_generation(temp.path()).unwrap_err();

    assert!(
        matches!(error, SnapshotError::UnexpectedLayout { .. }),
        "{error}"
    );
    assert!(temp.path().join("db-2").is_dir());
}

#[test]
fn a_stray_partial_pointer_tmp_is_ignored_and_cleaned() {
    let temp = tempfile::tempdir().unwrap();
    current_generation(temp.path()).unwrap();
    std::fs::write(temp.path().join("CURRENT.tmp"), "db-").unwrap();

    assert_eq!(current_generation(temp.path()).unwrap().number, 1);
    cleanup_old_generations(temp.path()).unwrap();

    assert!(!temp.path().join("CURRENT.tmp").exists());
    assert_eq!(read_pointer(temp.path()), "db-1\n");
}
