//! Change capture: one entry per changed row with the right images, refusals of tables that
//! cannot be replicated, and triggers that follow migrations.

use sqlx::SqliteConnection;
use tempfile::TempDir;

use super::fixtures::{TABLES, all_entries, context, node, text, write_migrations, write_sql};
use crate::store::{ChangeOp, SqlValue, Store, StoreError, StoreOptions};

#[tokio::test]
async fn insert_update_and_delete_each_capture_one_entry_with_their_images() {
    let node = node().await;
    let store = &node.store;
    tracing::info!("--- insert, update, delete one row each in its own transaction");
    let insert = write_sql(
        store,
        11,
        "INSERT INTO items VALUES (1, 'pen', 2, 1.5, x'00ff')",
    )
    .await
    .unwrap();
    let update = write_sql(store, 12, "UPDATE items SET qty = 3 WHERE id = 1")
        .await
        .unwrap();
    let delete = write_sql(store, 13, "DELETE FROM items WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        (insert.log_range, update.log_range, delete.log_range),
        (Some((1, 1)), Some((2, 2)), Some((3, 3)))
    );

    let entries = all_entries(store).await;
    let ops: Vec<ChangeOp> = entries.iter().map(|e| e.op).collect();
    assert_eq!(ops, [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete]);
    let row = |qty: i64| {
        vec![
            ("id".to_owned(), SqlValue::Integer(1)),
            ("name".to_owned(), text("pen")),
            ("qty".to_owned(), SqlValue::Integer(qty)),
            ("price".to_owned(), SqlValue::Real(1.5)),
            ("data".to_owned(), SqlValue::Blob(vec![0, 255])),
        ]
    };
    assert_eq!(entries[0].new_values().unwrap(), row(2));
    assert_eq!(entries[0].old_image, None);
    assert_eq!(entries[1].old_values().unwrap(), row(2));
    assert_eq!(entries[1].new_values().unwrap(), row(3));
    assert_eq!(entries[2].old_values().unwrap(), row(3));
    assert_eq!(entries[2].new_image, None);
    assert_eq!(
        entries[0].new_image.as_deref(),
        Some(r#"{"id":1,"name":"pen","qty":2,"price":{"$real":"1.5"},"data":{"$base64":"AP8="}}"#)
    );
}

#[tokio::test]
async fn entries_carry_their_write_context_and_a_chained_hash() {
    let node = node().await;
    let store = &node.store;
    write_sql(store, 11, "INSERT INTO items (id) VALUES (1)")
        .await
        .unwrap();
    write_sql(store, 12, "UPDATE items SET qty = 3 WHERE id = 1")
        .await
        .unwrap();
    write_sql(store, 13, "DELETE FROM items WHERE id = 1")
        .await
        .unwrap();
    let entries = all_entries(store).await;
    for (entry, txid) in entries.iter().zip([11, 12, 13]) {
        let expected = context(txid);
        assert_eq!(
            (entry.table.as_str(), entry.pk.as_str()),
            ("items", r#"{"id":1}"#)
        );
        assert_eq!(
            (entry.txid, entry.term_epoch, entry.term_node.as_str()),
            (txid, 3, "a")
        );
        assert_eq!(
            (entry.hlc_ms, entry.hlc_logical, entry.origin.as_str()),
            (expected.hlc_ms, 7, "a")
        );
    }
    let mut previous = 0;
    for entry in &entries {
        assert_eq!(
            entry.hash,
            crate::bridge::entry_rolling_hash(previous, entry),
            "hash chain at {}",
            entry.idx
        );
        previous = entry.hash;
    }
}

#[tokio::test]
async fn one_statement_touching_three_rows_captures_three_entries_with_one_txid() {
    let node = node().await;
    write_sql(
        &node.store,
        1,
        "INSERT INTO items (id, qty) VALUES (1, 1), (2, 1), (3, 1)",
    )
    .await
    .unwrap();
    let written = write_sql(&node.store, 2, "UPDATE items SET qty = qty + 1")
        .await
        .unwrap();
    assert_eq!(written.log_range, Some((4, 6)));
    let updates: Vec<_> = all_entries(&node.store)
        .await
        .into_iter()
        .filter(|e| e.op == ChangeOp::Update)
        .collect();
    assert_eq!(updates.len(), 3);
    assert!(updates.iter().all(|e| e.txid == 2));
}

#[tokio::test]
async fn replace_captures_the_implicit_delete_thanks_to_recursive_triggers() {
    let node = node().await;
    write_sql(&node.store, 1, "INSERT INTO items (id, qty) VALUES (1, 1)")
        .await
        .unwrap();
    write_sql(
        &node.store,
        2,
        "INSERT OR REPLACE INTO items (id, qty) VALUES (1, 5)",
    )
    .await
    .unwrap();
    let ops: Vec<ChangeOp> = all_entries(&node.store)
        .await
        .iter()
        .map(|e| e.op)
        .collect();
    assert_eq!(ops, [ChangeOp::Insert, ChangeOp::Delete, ChangeOp::Insert]);
}

#[tokio::test]
async fn text_that_looks_like_json_or_a_marker_stays_text() {
    let node = node().await;
    let sql = r#"INSERT INTO items (id, name) VALUES (1, json('{"$base64":"AA=="}'))"#;
    write_sql(&node.store, 1, sql).await.unwrap();
    let entry = all_entries(&node.store).await.remove(0);
    assert_eq!(
        entry.new_values().unwrap()[1],
        ("name".to_owned(), text(r#"{"$base64":"AA=="}"#))
    );
}

async fn store_with(tables: &[&str], schema: &str) -> (TempDir, Store, Result<(), StoreError>) {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(&migrations, &[("001_schema.sql", schema)]);
    let tables = tables.iter().map(|t| t.to_string()).collect();
    let store = Store::open(dir.path(), StoreOptions::new(tables))
        .await
        .unwrap();
    let migrated = store.migrate(&migrations).await.map(drop);
    (dir, store, migrated)
}

#[tokio::test]
async fn tables_that_cannot_be_replicated_are_refused_with_a_clear_message() {
    let schema = "CREATE TABLE keyed (id INTEGER PRIMARY KEY); CREATE TABLE nopk (a, b);
                  CREATE VIEW v AS SELECT * FROM keyed;";
    let cases = [
        (
            "nopk",
            r#"table "nopk" has no primary key; replicated tables need one"#,
        ),
        ("absent", r#"replicated table "absent" does not exist"#),
        ("v", r#"replicated table "v" is a view, not a table"#),
        (
            "_tandem_log",
            r#"table "_tandem_log" is internal to SQLite or tandem and cannot be replicated"#,
        ),
    ];
    for (table, message) in cases {
        let (_dir, store, migrated) = store_with(&["keyed", table], schema).await;
        assert_eq!(migrated.unwrap_err().to_string(), message);
        let refused = write_sql(&store, 1, "INSERT INTO keyed VALUES (1)")
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::CaptureNotInstalled),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_write_outside_the_store_is_refused_by_the_trigger() {
    let node = node().await;
    let error = sqlx::query("INSERT INTO items (id) VALUES (1)")
        .execute(&node.store.writer)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains(r#"table "items" is replicated; write it through the store"#),
        "{error}"
    );
}

#[tokio::test]
async fn a_migration_that_adds_a_column_reinstalls_capture_and_the_column_is_captured() {
    let node = node().await;
    write_sql(&node.store, 1, "INSERT INTO items (id, qty) VALUES (1, 1)")
        .await
        .unwrap();
    let migrations = node.dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[(
            "002_color.sql",
            "ALTER TABLE items ADD COLUMN color TEXT DEFAULT 'red';",
        )],
    );
    node.store.migrate(&migrations).await.unwrap();
    write_sql(
        &node.store,
        2,
        "UPDATE items SET color = 'blue' WHERE id = 1",
    )
    .await
    .unwrap();
    let update = all_entries(&node.store).await.remove(1);
    let old = update.old_values().unwrap();
    let new = update.new_values().unwrap();
    assert_eq!(old.last(), Some(&("color".to_owned(), text("red"))));
    assert_eq!(new.last(), Some(&("color".to_owned(), text("blue"))));
}

#[tokio::test]
async fn a_table_dropped_from_the_config_is_no_longer_captured() {
    let node = node().await;
    node.store.close().await;
    let kept = TABLES
        .iter()
        .filter(|t| **t != "pairs")
        .map(|t| t.to_string())
        .collect();
    let store = Store::open(node.dir.path(), StoreOptions::new(kept))
        .await
        .unwrap();
    store.install_capture().await.unwrap();
    let written = write_sql(&store, 1, "INSERT INTO pairs VALUES ('x', 1, 2)")
        .await
        .unwrap();
    assert_eq!(written.log_range, None);
}

#[tokio::test]
async fn a_table_wider_than_one_json_object_call_is_captured_whole() {
    let columns: Vec<String> = (0..70).map(|i| format!("c{i}")).collect();
    let schema = format!(
        "CREATE TABLE wide (id INTEGER PRIMARY KEY, {});",
        columns.join(", ")
    );
    let (_dir, store, migrated) = store_with(&["wide"], &schema).await;
    migrated.unwrap();
    let values: Vec<String> = (0..70).map(|i| i.to_string()).collect();
    let sql = format!("INSERT INTO wide VALUES (1, {})", values.join(", "));
    write_sql(&store, 1, &sql).await.unwrap();
    let image = all_entries(&store).await.remove(0).new_values().unwrap();
    assert_eq!(image.len(), 71);
    assert_eq!(image[70], ("c69".to_owned(), SqlValue::Integer(69)));
}

#[tokio::test]
async fn a_failed_write_rolls_back_its_rows_and_entries_and_returns_its_own_error() {
    let node = node().await;
    let result = node
        .store
        .write(&context(1), async |connection: &mut SqliteConnection| {
            sqlx::query("INSERT INTO items (id) VALUES (1)")
                .execute(&mut *connection)
                .await?;
            sqlx::query("INSERT INTO items (id) VALUES (1)")
                .execute(&mut *connection)
                .await?;
            Ok::<_, StoreError>(())
        })
        .await;
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("UNIQUE constraint failed")
    );
    assert_eq!(node.store.last_log_position().await.unwrap().idx, 0);
    write_sql(&node.store, 2, "INSERT INTO items (id) VALUES (1)")
        .await
        .unwrap();
    assert_eq!(node.store.last_log_position().await.unwrap().idx, 1);
}

#[tokio::test]
async fn a_write_from_an_older_epoch_than_the_log_is_refused() {
    let node = node().await;
    write_sql(&node.store, 1, "INSERT INTO items (id) VALUES (1)")
        .await
        .unwrap();
    let stale = crate::store::CaptureContext {
        term_epoch: 2,
        ..context(2)
    };
    let error = node
        .store
        .write(&stale, async |connection: &mut SqliteConnection| {
            sqlx::query("INSERT INTO items (id) VALUES (2)")
                .execute(&mut *connection)
                .await?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap_err();
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
}

#[tokio::test]
async fn group_writes_run_from_a_spawned_task() {
    // The writer driver runs writes on a tokio task, so their futures must be Send.
    let node = node().await;
    let store = node.store.clone();
    let task = tokio::spawn(async move {
        let mut group = store.begin_sqlx_write_group().await?;
        let mut write = group.begin_write(&context(1)).await?;
        sqlx::query("INSERT INTO items (id, data) VALUES (?, ?)")
            .bind(1i64)
            .bind(vec![1u8, 2, 3])
            .execute(write.connection())
            .await?;
        let log_range = write.finish().await?;
        group.commit().await?;
        Ok::<_, StoreError>(log_range)
    });
    assert_eq!(task.await.unwrap().unwrap(), Some((1, 1)));
}

#[tokio::test]
async fn single_writes_run_from_a_spawned_task() {
    let node = node().await;
    let store = node.store.clone();
    let task = tokio::spawn(async move {
        store
            .write(&context(1), async |connection: &mut SqliteConnection| {
                sqlx::query("INSERT INTO items (id, data) VALUES (?, ?)")
                    .bind(1i64)
                    .bind(vec![1u8, 2, 3])
                    .execute(&mut *connection)
                    .await?;
                Ok::<_, StoreError>(7)
            })
            .await
    });
    let written = task.await.unwrap().unwrap();
    assert_eq!((written.value, written.log_range), (7, Some((1, 1))));
}
