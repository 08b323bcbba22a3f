//! `create_snapshot`: a consistent copy with its own log index.

use sqlx::Connection;

use super::fixtures::{connect, items, make_db, read_items};
use crate::snapshot::{SnapshotError, create_snapshot, sha256};

#[tokio::test]
async fn copy_has_the_rows_blobs_and_log_index_of_the_source() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("data.db");
    let rows = items("src", 50);
    make_db(&source, &rows, 7).await;

    let info = create_snapshot(&source, temp.path()).await.unwrap();

    assert_eq!(read_items(&info.path).await, rows);
    assert_eq!(info.last_log_idx, 7);
    let file = std::fs::read(&info.path).unwrap();
    assert_eq!(info.bytes, file.len() as u64);
    assert_eq!(info.sha256, sha256(&file));
}

#[tokio::test]
async fn copy_works_while_another_connection_holds_a_read_transaction() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("data.db");
    make_db(&source, &items("src", 10), 4).await;
    let mut reader = connect(&source).await;
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(seen, 10);

    let out = temp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let info = create_snapshot(&source, &out).await.unwrap();

    assert_eq!(info.last_log_idx, 4);
    assert_eq!(read_items(&info.path).await.len(), 10);
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
}

#[tokio::test]
async fn a_quote_in_the_output_path_is_quoted_not_injected() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("data.db");
    make_db(&source, &items("src", 3), 0).await;
    let out = temp.path().join("it's; DROP TABLE items; --");
    std::fs::create_dir(&out).unwrap();

    let info = create_snapshot(&source, &out).await.unwrap();

    assert_eq!(info.last_log_idx, 0, "an empty log gives index 0");
    assert_eq!(read_items(&info.path).await.len(), 3);
    assert_eq!(read_items(&source).await.len(), 3);
}

#[tokio::test]
async fn a_stale_snapshot_in_the_output_directory_is_replaced() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("data.db");
    make_db(&source, &items("src", 3), 2).await;
    std::fs::write(temp.path().join("snapshot.db"), b"half a file from a crash").unwrap();

    let info = create_snapshot(&source, temp.path()).await.unwrap();

    assert_eq!(read_items(&info.path).await.len(), 3);
}

#[tokio::test]
async fn a_database_without_a_log_table_is_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("plain.db");
    let mut connection = connect(&source).await;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let error = create_snapshot(&source, temp.path()).await.unwrap_err();

    assert!(matches!(error, SnapshotError::NoLogTable { .. }), "{error}");
    assert!(error.to_string().contains("snapshot.db"), "{error}");
}

#[tokio::test]
async fn a_missing_source_is_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("absent.db");

    let error = create_snapshot(&source, temp.path()).await.unwrap_err();

    assert!(error.to_string().contains("absent.db"), "{error}");
}
