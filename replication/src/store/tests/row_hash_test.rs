//! Row hashes for verify: equal for equal data, different after a divergent write.

use super::fixtures::{node, ship, write_sql};

#[tokio::test]
async fn row_hashes_agree_after_apply_and_differ_after_a_divergent_write() {
    let (a, b) = (node().await, node().await);
    write_sql(
        &a.store,
        1,
        "INSERT INTO items VALUES (1, 'a', 1, 0.5, x'00'), (2, 'b', 2, NULL, NULL)",
    )
    .await
    .unwrap();
    write_sql(&a.store, 2, "INSERT INTO pairs VALUES ('k', 1, 'v')")
        .await
        .unwrap();
    ship(&a.store, &b.store).await.unwrap();
    let (on_a, on_b) = (
        a.store.row_hashes().await.unwrap(),
        b.store.row_hashes().await.unwrap(),
    );
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.last_idx, 3);
    assert_eq!(
        on_a.tables
            .iter()
            .map(|t| (t.table.as_str(), t.rows))
            .collect::<Vec<_>>(),
        [("items", 2), ("parents", 0), ("children", 0), ("pairs", 1)]
    );

    write_sql(&b.store, 3, "UPDATE items SET price = 0.25 WHERE id = 1")
        .await
        .unwrap();
    let diverged = b.store.row_hashes().await.unwrap();
    let differing: Vec<&str> = on_a
        .tables
        .iter()
        .zip(&diverged.tables)
        .filter(|(x, y)| x.hash != y.hash)
        .map(|(x, _)| x.table.as_str())
        .collect();
    assert_eq!(differing, ["items"]);
}

#[tokio::test]
async fn row_hashes_follow_key_order_and_storage_class_not_insertion_order() {
    let (a, b) = (node().await, node().await);
    write_sql(
        &a.store,
        1,
        "INSERT INTO items (id, qty) VALUES (1, 1), (2, 2)",
    )
    .await
    .unwrap();
    write_sql(
        &b.store,
        1,
        "INSERT INTO items (id, qty) VALUES (2, 2), (1, 1)",
    )
    .await
    .unwrap();
    let hash =
        async |node: &super::fixtures::Node| node.store.row_hash("items").await.unwrap().hash;
    assert_eq!(hash(&a).await, hash(&b).await);
    // The same digits as TEXT are different data (`pairs.v` has no type affinity to convert them).
    write_sql(&a.store, 2, "INSERT INTO pairs VALUES ('k', 1, 1)")
        .await
        .unwrap();
    write_sql(&b.store, 2, "INSERT INTO pairs VALUES ('k', 1, '1')")
        .await
        .unwrap();
    let pairs =
        async |node: &super::fixtures::Node| node.store.row_hash("pairs").await.unwrap().hash;
    assert_ne!(pairs(&a).await, pairs(&b).await);
}
