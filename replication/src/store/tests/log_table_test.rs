//! Reading the log in bounded batches, positions, and retention.

use super::fixtures::{node, write_sql};
use crate::store::{LogPosition, StoreError};

#[tokio::test]
async fn batches_are_bounded_by_entries_and_bytes_but_never_empty() {
    let node = node().await;
    let big = "x".repeat(10_000);
    for id in 1..=5 {
        write_sql(
            &node.store,
            id,
            &format!("INSERT INTO items (id, name) VALUES ({id}, '{big}')"),
        )
        .await
        .unwrap();
    }
    let idxs =
        |entries: Vec<crate::store::LogEntry>| entries.iter().map(|e| e.idx).collect::<Vec<_>>();
    assert_eq!(
        idxs(node.store.read_log(0, 2, usize::MAX).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        idxs(node.store.read_log(3, 100, usize::MAX).await.unwrap()),
        [4, 5]
    );
    assert_eq!(
        idxs(node.store.read_log(0, 100, 25_000).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        idxs(node.store.read_log(1, 100, 10).await.unwrap()),
        [2],
        "one entry even over the byte bound"
    );
    assert!(
        node.store
            .read_log(5, 100, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        node.store
            .read_log(0, 0, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn truncation_keeps_the_last_entry_and_reading_before_it_says_so() {
    let node = node().await;
    assert_eq!(
        node.store.last_log_position().await.unwrap(),
        LogPosition::default()
    );
    for id in 1..=4 {
        write_sql(
            &node.store,
            id,
            &format!("INSERT INTO items (id) VALUES ({id})"),
        )
        .await
        .unwrap();
    }
    let last = node.store.last_log_position().await.unwrap();
    assert_eq!(
        (last.idx, last.term_epoch, last.term_node.as_str()),
        (4, 3, "a")
    );

    assert_eq!(node.store.truncate_log_before(3).await.unwrap(), 2);
    assert_eq!(node.store.first_log_idx().await.unwrap(), Some(3));
    let error = node.store.read_log(1, 10, usize::MAX).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::LogCompacted {
                after_idx: 1,
                first_retained: 3
            }
        ),
        "{error}"
    );
    assert_eq!(
        node.store.read_log(2, 10, usize::MAX).await.unwrap().len(),
        2
    );

    assert_eq!(node.store.truncate_log_before(100).await.unwrap(), 1);
    assert_eq!(node.store.last_log_position().await.unwrap(), last);
    let next = write_sql(&node.store, 9, "INSERT INTO items (id) VALUES (9)")
        .await
        .unwrap();
    assert_eq!(
        next.log_range,
        Some((5, 5)),
        "indexes continue after retention"
    );
}
