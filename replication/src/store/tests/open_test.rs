//! Opening data.db: the pragmas on every connection, the internal tables, the one writer.

use sqlx::Row;

use super::fixtures::node;

#[tokio::test]
async fn every_connection_has_the_pragmas_of_design_section_4() {
    let node = node().await;
    let store = &node.store;
    for (pool, role) in [(&store.writer, "writer"), (&store.reader, "reader")] {
        let mut connection = pool.acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(journal, "wal", "{role}");
        for (pragma, expected) in [
            ("synchronous", 2),
            ("foreign_keys", 1),
            ("recursive_triggers", 1),
        ] {
            let row = sqlx::query(&format!("PRAGMA {pragma}"))
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            assert_eq!(row.get::<i64, _>(0), expected, "{role} {pragma}");
        }
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(busy, 5000, "{role}");
    }
    assert_eq!(store.writer.options().get_max_connections(), 1);
    assert!(node.dir.path().join("data.db").exists());
}

#[tokio::test]
async fn the_reader_pool_cannot_write() {
    let node = node().await;
    let refused = sqlx::query("INSERT INTO items (id) VALUES (1)")
        .execute(node.store.reader())
        .await;
    assert!(refused.unwrap_err().to_string().contains("readonly"));
}

#[tokio::test]
async fn internal_tables_exist_and_reopening_keeps_them() {
    let node = node().await;
    node.store.close().await;
    let store = crate::store::Store::open(node.dir.path(), crate::store::StoreOptions::new(vec![]))
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE name LIKE '\\_tandem\\_%' ESCAPE '\\' AND type = 'table' ORDER BY name")
        .fetch_all(store.reader())
        .await
        .unwrap();
    assert_eq!(
        names,
        [
            "_tandem_applying",
            "_tandem_capture_ctx",
            "_tandem_log",
            "_tandem_migrations",
            "_tandem_orphans"
        ]
    );
}
