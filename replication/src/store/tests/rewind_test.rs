//! Rewinding a diverged suffix: every change after the common index is kept in the orphans table
//! and undone, in one transaction, and the log ends at the common index.

use super::fixtures::{all_entries, node, rows, ship, write_sql};

const ITEMS: &str = "SELECT id, name, qty FROM items ORDER BY id";

#[tokio::test]
async fn a_rewind_keeps_every_orphan_and_leaves_the_rows_as_at_the_common_index() {
    let (a, b) = (node().await, node().await);
    write_sql(
        &a.store,
        1,
        "INSERT INTO items (id, name, qty) VALUES (1, 'one', 1), (2, 'two', 2)",
    )
    .await
    .unwrap();
    ship(&a.store, &b.store).await.unwrap();
    let common = a.store.last_log_position().await.unwrap();
    let at_common = rows(&a.store, ITEMS).await;

    // The suffix: an insert, an update and a delete, in two transactions.
    write_sql(
        &a.store,
        2,
        "INSERT INTO items (id, name, qty) VALUES (3, 'three', 3)",
    )
    .await
    .unwrap();
    write_sql(
        &a.store,
        3,
        "UPDATE items SET qty = 20 WHERE id = 2; DELETE FROM items WHERE id = 1",
    )
    .await
    .unwrap();
    let suffix: Vec<_> = all_entries(&a.store)
        .await
        .into_iter()
        .filter(|entry| entry.idx > common.idx)
        .collect();
    assert_eq!(suffix.len(), 3);

    let (orphans, head) = a.store.rewind_after(common.idx).await.unwrap();
    assert_eq!(orphans, suffix, "every orphan, oldest first, unchanged");
    assert_eq!(head, common, "the log ends at the common index");
    assert_eq!(
        rows(&a.store, ITEMS).await,
        at_common,
        "the rows are as they were"
    );
    let kept: Vec<_> = a
        .store
        .orphans()
        .await
        .unwrap()
        .into_iter()
        .map(|orphan| {
            assert_eq!(
                orphan.diverged_after, common.idx,
                "each orphan knows where its log diverged"
            );
            orphan.entry
        })
        .collect();
    assert_eq!(kept, suffix, "the orphans table holds them durably");
    assert_eq!(all_entries(&a.store).await, all_entries(&b.store).await);

    // Orphans leave only when told which transactions came back.
    assert_eq!(a.store.drop_orphan_transactions(&[2]).await.unwrap(), 1);
    assert_eq!(a.store.orphans().await.unwrap().len(), 2);
    assert_eq!(
        a.store.hash_at(common.idx).await.unwrap(),
        Some(common.hash)
    );
    assert_eq!(a.store.hash_at(common.idx + 1).await.unwrap(), None);
}

#[tokio::test]
async fn orphans_kept_by_a_version_without_their_divergence_point_are_read_after_an_upgrade() {
    let a = node().await;
    write_sql(
        &a.store,
        1,
        "INSERT INTO items (id, name, qty) VALUES (1, 'one', 1)",
    )
    .await
    .unwrap();
    write_sql(
        &a.store,
        2,
        "INSERT INTO items (id, name, qty) VALUES (2, 'two', 2)",
    )
    .await
    .unwrap();
    let (orphans, _) = a.store.rewind_after(1).await.unwrap();
    assert_eq!(orphans.len(), 1);
    let dir = a.dir;
    a.store.close().await;

    // The file as an older version left it: the orphans table without the column.
    {
        let path = dir.path().join("data.db");
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
            "sqlite://{}",
            path.display()
        ))
        .await
        .unwrap();
        sqlx::query("ALTER TABLE _tandem_orphans DROP COLUMN diverged_after")
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::Connection::close(db).await.unwrap();
    }

    let tables = vec!["items".to_string()];
    let store = crate::store::Store::open(dir.path(), crate::store::StoreOptions::new(tables))
        .await
        .expect("an older file opens and gains the column");
    let kept = store.orphans().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].diverged_after,
        kept[0].entry.idx - 1,
        "the latest the divergence can have been"
    );
    store.close().await;
}

#[tokio::test]
async fn a_later_rewind_below_a_kept_orphan_moves_its_divergence_point_back() {
    let a = node().await;
    for id in 1..=3 {
        write_sql(
            &a.store,
            id,
            &format!("INSERT INTO items (id, name, qty) VALUES ({id}, 'n', {id})"),
        )
        .await
        .unwrap();
    }
    let last = a.store.last_log_position().await.unwrap().idx;
    let (first, _) = a.store.rewind_after(last - 1).await.unwrap();
    let (second, _) = a.store.rewind_after(1).await.unwrap();
    assert!(!first.is_empty() && !second.is_empty());
    let kept = a.store.orphans().await.unwrap();
    assert_eq!(kept.len(), first.len() + second.len());
    assert!(
        kept.iter().all(|orphan| orphan.diverged_after == 1),
        "every kept orphan parted from the log no later than index 1: {:?}",
        kept.iter().map(|o| o.diverged_after).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn orphans_whose_merge_request_is_recorded_are_found_as_already_merged() {
    let a = node().await;
    assert!(
        a.store.orphans_already_merged().await.unwrap().is_empty(),
        "no tandem_requests table yet: nothing is merged"
    );
    write_sql(
        &a.store,
        1,
        "INSERT INTO items (id, name, qty) VALUES (1, 'n', 1)",
    )
    .await
    .unwrap();
    write_sql(
        &a.store,
        2,
        "INSERT INTO items (id, name, qty) VALUES (2, 'n', 2)",
    )
    .await
    .unwrap();
    let (orphans, _) = a.store.rewind_after(0).await.unwrap();
    let merged = &orphans[0];
    sqlx::query("CREATE TABLE tandem_requests (request_id TEXT PRIMARY KEY)")
        .execute(&a.store.writer)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tandem_requests (request_id) VALUES (?)")
        .bind(format!("merge:{}:{}", merged.origin, merged.txid))
        .execute(&a.store.writer)
        .await
        .unwrap();
    assert_eq!(
        a.store.orphans_already_merged().await.unwrap(),
        vec![merged.txid],
        "the orphan whose merge is recorded, and only it"
    );
}
