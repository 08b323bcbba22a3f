//! Group commit: several client writes in one transaction, each undone alone on error, and a
//! group that refuses to go on once a statement rolled the whole transaction back.

use sqlx::SqliteConnection;

use super::fixtures::{all_entries, context, node, rows, ship};
use crate::store::{SqlValue, Store, StoreError, WriteGroup};

async fn insert(connection: &mut SqliteConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO items (id) VALUES (?)")
        .bind(id)
        .execute(connection)
        .await
        .map(drop)
}

/// One write in `group` inserting `ids`: finished if every insert succeeds, else undone.
async fn write_ids(
    group: &mut WriteGroup,
    txid: u64,
    ids: &[i64],
) -> Result<Option<(u64, u64)>, StoreError> {
    let mut write = group.begin_write(&context(txid)).await?;
    for id in ids {
        if let Err(error) = insert(write.connection(), *id).await {
            write.undo().await?;
            return Err(error.into());
        }
    }
    write.finish().await
}

async fn ids(store: &Store) -> Vec<Vec<SqlValue>> {
    rows(store, "SELECT id FROM items ORDER BY id").await
}

#[tokio::test]
async fn a_failed_write_in_a_group_is_undone_alone_and_the_rest_commit_together() {
    let (a, b) = (node().await, node().await);
    let mut group = a.store.begin_sqlx_write_group().await.unwrap();
    assert_eq!(write_ids(&mut group, 1, &[1]).await.unwrap(), Some((1, 1)));
    let failed = write_ids(&mut group, 2, &[2, 1]).await.unwrap_err();
    assert!(
        failed.to_string().contains("UNIQUE constraint failed"),
        "{failed}"
    );
    assert_eq!(write_ids(&mut group, 3, &[3]).await.unwrap(), Some((2, 2)));
    assert_eq!(
        a.store.last_log_position().await.unwrap().idx,
        0,
        "nothing visible before commit"
    );

    let position = group.commit().await.unwrap();
    assert_eq!(position, a.store.last_log_position().await.unwrap());
    assert_eq!(
        ids(&a.store).await,
        [[SqlValue::Integer(1)], [SqlValue::Integer(3)]]
    );
    let txids: Vec<u64> = all_entries(&a.store).await.iter().map(|e| e.txid).collect();
    assert_eq!(txids, [1, 3]);
    tracing::info!("--- the chain is intact: B accepts the group's entries");
    ship(&a.store, &b.store).await.unwrap();
    assert_eq!(ids(&b.store).await, ids(&a.store).await);
}

#[tokio::test]
async fn a_group_dropped_without_commit_writes_nothing_and_the_writer_recovers() {
    let node = node().await;
    let mut group = node.store.begin_sqlx_write_group().await.unwrap();
    write_ids(&mut group, 1, &[1]).await.unwrap();
    drop(group);
    assert!(ids(&node.store).await.is_empty());
    let mut group = node.store.begin_sqlx_write_group().await.unwrap();
    write_ids(&mut group, 2, &[2]).await.unwrap();
    tracing::info!("--- a write dropped half-way gives up its whole group");
    let mut write = group.begin_write(&context(3)).await.unwrap();
    insert(write.connection(), 3).await.unwrap();
    drop(write);
    let refused = group.begin_write(&context(4)).await.err();
    assert!(
        matches!(refused, Some(StoreError::WriteGroupAborted)),
        "{refused:?}"
    );
    assert!(matches!(
        group.commit().await,
        Err(StoreError::WriteGroupAborted)
    ));
    assert!(ids(&node.store).await.is_empty());
    super::fixtures::write_sql(&node.store, 5, "INSERT INTO items (id) VALUES (5)")
        .await
        .unwrap();
    assert_eq!(all_entries(&node.store).await[0].idx, 1);
}

#[tokio::test]
async fn a_statement_that_rolls_back_the_whole_transaction_aborts_the_group() {
    let node = node().await;
    super::fixtures::write_sql(&node.store, 1, "INSERT INTO items (id) VALUES (1)")
        .await
        .unwrap();
    let mut group = node.store.begin_sqlx_write_group().await.unwrap();
    write_ids(&mut group, 2, &[2]).await.unwrap();
    tracing::info!("--- the client swallows the error of a statement that rolled back everything");
    let mut write = group.begin_write(&context(3)).await.unwrap();
    let rolled_back = sqlx::query("INSERT OR ROLLBACK INTO items (id) VALUES (1)")
        .execute(write.connection())
        .await;
    assert!(rolled_back.is_err());
    let finished = write.finish().await;
    assert!(
        matches!(finished, Err(StoreError::WriteGroupAborted)),
        "{finished:?}"
    );
    assert!(matches!(
        group.begin_write(&context(4)).await.err(),
        Some(StoreError::WriteGroupAborted)
    ));
    assert!(matches!(
        group.commit().await,
        Err(StoreError::WriteGroupAborted)
    ));
    assert_eq!(ids(&node.store).await, [[SqlValue::Integer(1)]]);

    tracing::info!(
        "--- the writer connection is sound afterwards: a failed write still rolls back"
    );
    let failed = node
        .store
        .write(&context(5), async |c: &mut SqliteConnection| {
            insert(c, 5).await?;
            insert(c, 5).await?;
            Ok::<_, StoreError>(())
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Sql(_))), "{failed:?}");
    super::fixtures::write_sql(&node.store, 6, "INSERT INTO items (id) VALUES (6)")
        .await
        .unwrap();
    assert_eq!(
        ids(&node.store).await,
        [[SqlValue::Integer(1)], [SqlValue::Integer(6)]]
    );
    assert_eq!(all_entries(&node.store).await.len(), 2);
}
