//! Applying the peer's entries: effects replicate exactly, nothing is captured twice, both logs
//! are identical, and a batch that does not continue the log is refused whole.

use sqlx::SqliteConnection;

use super::fixtures::{all_entries, context, node, rows, ship, write_sql};
use crate::store::{LogEntry, SqlValue, StoreError};

const ITEMS: &str =
    "SELECT id, name, qty, price, data, typeof(price), typeof(data) FROM items ORDER BY id";

#[tokio::test]
async fn non_deterministic_sql_replicates_by_its_effect() {
    let (a, b) = (node().await, node().await);
    let sql = "INSERT INTO items (id, name, qty, price, data)
               VALUES (1, datetime('now'), random(), random() / 7.0, randomblob(16)),
                      (2, hex(randomblob(8)), abs(random()) % 100, julianday('now'), randomblob(1))";
    write_sql(&a.store, 1, sql).await.unwrap();
    assert_eq!(ship(&a.store, &b.store).await.unwrap(), 2);
    let on_a = rows(&a.store, ITEMS).await;
    assert_eq!(on_a.len(), 2);
    assert_eq!(rows(&b.store, ITEMS).await, on_a);
}

#[tokio::test]
async fn blobs_of_every_byte_value_and_reals_round_trip_exactly() {
    let (a, b) = (node().await, node().await);
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let reals = [
        0.1 + 0.2,
        1e308 * 10.0,
        -1e308 * 10.0,
        5e-324,
        f64::MAX,
        -123456789.12345679,
        1e-7,
        3.0,
    ];
    a.store
        .write(&context(1), async |connection: &mut SqliteConnection| {
            for (id, real) in reals.iter().enumerate() {
                let cut = id * 60 % every_byte.len();
                sqlx::query("INSERT INTO items (id, price, data) VALUES (?, ?, ?)")
                    .bind(id as i64)
                    .bind(*real)
                    .bind(&every_byte[cut..])
                    .execute(&mut *connection)
                    .await?;
            }
            sqlx::query("INSERT INTO items (id, data) VALUES (100, x''), (101, NULL)")
                .execute(&mut *connection)
                .await?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    ship(&a.store, &b.store).await.unwrap();
    let on_b = rows(&b.store, "SELECT price, data FROM items WHERE id = 0").await;
    assert_eq!(on_b[0][1], SqlValue::Blob(every_byte.clone()));
    for (id, real) in reals.iter().enumerate() {
        let row = rows(
            &b.store,
            &format!("SELECT price FROM items WHERE id = {id}"),
        )
        .await;
        assert!(
            matches!(row[0][0], SqlValue::Real(got) if got.to_bits() == real.to_bits()),
            "{real:e}: {:?}",
            row[0][0]
        );
    }
    let empty = rows(
        &b.store,
        "SELECT data, typeof(data) FROM items WHERE id >= 100 ORDER BY id",
    )
    .await;
    assert_eq!(
        empty[0],
        [SqlValue::Blob(vec![]), SqlValue::Text("blob".to_owned())]
    );
    assert_eq!(
        empty[1],
        [SqlValue::Null, SqlValue::Text("null".to_owned())]
    );
    assert_eq!(rows(&b.store, ITEMS).await, rows(&a.store, ITEMS).await);
}

#[tokio::test]
async fn applied_entries_are_not_captured_again_and_both_logs_are_identical() {
    let (a, b) = (node().await, node().await);
    write_sql(
        &a.store,
        1,
        "INSERT INTO items (id, data) VALUES (1, x'01'), (2, x'02')",
    )
    .await
    .unwrap();
    write_sql(
        &a.store,
        2,
        "UPDATE items SET id = 3 WHERE id = 2; DELETE FROM items WHERE id = 1",
    )
    .await
    .unwrap();
    write_sql(
        &a.store,
        3,
        "INSERT INTO pairs VALUES ('k', 1, x'ff'), ('k', 2, 0.5)",
    )
    .await
    .unwrap();
    assert_eq!(ship(&a.store, &b.store).await.unwrap(), 6);
    assert_eq!(all_entries(&b.store).await, all_entries(&a.store).await);
    assert_eq!(
        b.store.last_log_position().await.unwrap(),
        a.store.last_log_position().await.unwrap()
    );
    assert_eq!(rows(&b.store, ITEMS).await, rows(&a.store, ITEMS).await);
    assert_eq!(
        rows(&b.store, "SELECT * FROM pairs").await,
        rows(&a.store, "SELECT * FROM pairs").await
    );

    tracing::info!("--- B, now active, writes on; A applies B's entries after its own");
    let written = write_sql(&b.store, 4, "UPDATE pairs SET v = 'b' WHERE a = 'k'")
        .await
        .unwrap();
    assert_eq!(written.log_range, Some((7, 8)));
    assert_eq!(ship(&b.store, &a.store).await.unwrap(), 2);
    assert_eq!(all_entries(&a.store).await, all_entries(&b.store).await);
}

#[tokio::test]
async fn a_batch_that_does_not_continue_the_log_is_refused_and_nothing_changes() {
    let (a, b) = (node().await, node().await);
    for txid in 1..=3 {
        write_sql(
            &a.store,
            txid,
            &format!("INSERT INTO items (id) VALUES ({txid})"),
        )
        .await
        .unwrap();
    }
    let entries = all_entries(&a.store).await;

    let gap = b.store.apply_entries(&entries[1..]).await.unwrap_err();
    assert!(
        matches!(
            gap,
            StoreError::OutOfOrder {
                expected: 1,
                got: 2
            }
        ),
        "{gap}"
    );
    let swapped = [entries[0].clone(), entries[2].clone(), entries[1].clone()];
    let error = b.store.apply_entries(&swapped).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "log entry 3 is not the next log index (expected 2); nothing applied"
    );
    let mut tampered = entries.clone();
    tampered[1].new_image = Some(r#"{"id":99}"#.to_owned());
    let error = b.store.apply_entries(&tampered).await.unwrap_err();
    assert!(
        matches!(error, StoreError::HashMismatch { idx: 2, .. }),
        "{error}"
    );

    assert_eq!(rows(&b.store, ITEMS).await, Vec::<Vec<SqlValue>>::new());
    assert_eq!(b.store.last_log_position().await.unwrap().idx, 0);
    b.store.apply_entries(&entries).await.unwrap();
    let replay = b.store.apply_entries(&entries[2..]).await.unwrap_err();
    assert!(
        matches!(
            replay,
            StoreError::OutOfOrder {
                expected: 4,
                got: 3
            }
        ),
        "{replay}"
    );
    assert_eq!(rows(&b.store, ITEMS).await.len(), 3);
}

/// Re-chains `entries` from `previous` after a test edited them, as a buggy peer would.
fn rechain(entries: &mut [LogEntry], mut previous: u64) {
    for entry in entries {
        entry.hash = crate::bridge::entry_rolling_hash(previous, entry);
        previous = entry.hash;
    }
}

#[tokio::test]
async fn entries_from_an_older_epoch_or_aimed_at_internal_tables_are_refused() {
    let (a, b) = (node().await, node().await);
    write_sql(&a.store, 1, "INSERT INTO items (id) VALUES (1), (2)")
        .await
        .unwrap();
    let mut entries = all_entries(&a.store).await;
    entries[1].term_epoch = 2;
    rechain(&mut entries, 0);
    let error = b.store.apply_entries(&entries).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::StaleTerm {
                idx: 2,
                epoch: 2,
                last_epoch: 3
            }
        ),
        "{error}"
    );

    let mut entries = all_entries(&a.store).await;
    entries[1].table = "_tandem_applying".to_owned();
    rechain(&mut entries, 0);
    let error = b.store.apply_entries(&entries).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "log entry 2: it targets an internal table"
    );
    assert_eq!(b.store.last_log_position().await.unwrap().idx, 0);
}

#[tokio::test]
async fn a_batch_with_the_child_before_its_parent_applies_thanks_to_deferred_foreign_keys() {
    let (a, b) = (node().await, node().await);
    a.store
        .write(&context(1), async |connection: &mut SqliteConnection| {
            sqlx::raw_sql(
                "PRAGMA defer_foreign_keys = ON;
                 INSERT INTO children (id, parent_id) VALUES (1, 'p');
                 INSERT INTO parents (id, label) VALUES ('p', 'parent');",
            )
            .execute(&mut *connection)
            .await?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let entries = all_entries(&a.store).await;
    assert_eq!(
        (entries[0].table.as_str(), entries[1].table.as_str()),
        ("children", "parents")
    );
    b.store.apply_entries(&entries).await.unwrap();
    assert_eq!(
        rows(&b.store, "SELECT * FROM children").await,
        rows(&a.store, "SELECT * FROM children").await
    );

    tracing::info!("--- a cascading delete replicates as the captured child and parent deletes");
    write_sql(&a.store, 2, "DELETE FROM parents WHERE id = 'p'")
        .await
        .unwrap();
    assert_eq!(ship(&a.store, &b.store).await.unwrap(), 2);
    assert_eq!(
        rows(&b.store, "SELECT count(*) FROM children").await,
        [[SqlValue::Integer(0)]]
    );
}

#[tokio::test]
async fn a_batch_that_breaks_a_foreign_key_at_commit_is_refused_whole() {
    let (a, b) = (node().await, node().await);
    write_sql(
        &a.store,
        1,
        "INSERT INTO parents (id) VALUES ('p'); INSERT INTO children VALUES (1, 'p')",
    )
    .await
    .unwrap();
    let mut entries = all_entries(&a.store).await;
    // A peer whose batch lost the parent: the child alone, re-indexed, dangles.
    entries.remove(0);
    entries[0].idx = 1;
    rechain(&mut entries, 0);
    let error = b.store.apply_entries(&entries).await.unwrap_err();
    assert!(
        error.to_string().contains("FOREIGN KEY constraint failed"),
        "{error}"
    );
    assert_eq!(b.store.last_log_position().await.unwrap().idx, 0);
    assert_eq!(
        rows(&b.store, "SELECT count(*) FROM children").await,
        [[SqlValue::Integer(0)]]
    );
    tracing::info!("--- the connection is usable again after the refused commit");
    ship(&a.store, &b.store).await.unwrap();
    assert_eq!(
        rows(&b.store, "SELECT count(*) FROM children").await,
        [[SqlValue::Integer(1)]]
    );
}

#[tokio::test]
async fn an_update_of_a_row_the_replica_lacks_writes_the_new_image() {
    let (a, b) = (node().await, node().await);
    write_sql(&a.store, 1, "INSERT INTO items (id, qty) VALUES (1, 1)")
        .await
        .unwrap();
    ship(&a.store, &b.store).await.unwrap();
    tracing::info!("--- B loses the row behind the store's back (as a damaged replica would)");
    sqlx::raw_sql("BEGIN; UPDATE _tandem_applying SET flag = 1; DELETE FROM items; UPDATE _tandem_applying SET flag = 0; COMMIT;")
        .execute(&b.store.writer)
        .await
        .unwrap();
    write_sql(&a.store, 2, "UPDATE items SET qty = 2 WHERE id = 1")
        .await
        .unwrap();
    ship(&a.store, &b.store).await.unwrap();
    assert_eq!(rows(&b.store, ITEMS).await, rows(&a.store, ITEMS).await);
}
