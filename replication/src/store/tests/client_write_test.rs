//! `WriteGroup::write_client`: a Data API write with its request id in one stretch; a retry
//! replays the first outcome, a refused write is undone alone, and a statement that ends the
//! whole transaction gives the group up.

use tempfile::TempDir;

use super::fixtures::{all_entries, context, rows, ship, write_migrations};
use crate::data_api::{DataError, Limits, Param, Statement};
use crate::store::{
    ClientWrite, ClientWriteOutcome, REQUESTS_SQL, REQUESTS_TABLE, SqlValue, Store, StoreError,
    StoreOptions, WriteGroup,
};

struct Node {
    _dir: TempDir,
    store: Store,
}

/// A store with `items` and the request-id table, both replicated, as the node sets it up.
async fn node() -> Node {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[(
            "001_items.sql",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);",
        )],
    );
    let tables = vec!["items".to_owned(), REQUESTS_TABLE.to_owned()];
    let store = Store::open(dir.path(), StoreOptions::new(tables))
        .await
        .unwrap();
    store
        .migrate_builtin("tandem_000_requests", REQUESTS_SQL)
        .await
        .unwrap();
    store.migrate(&migrations).await.unwrap();
    Node { _dir: dir, store }
}

fn insert(id: i64) -> Vec<Statement> {
    vec![Statement::new(
        "INSERT INTO items (id, name) VALUES (?, ?)",
        vec![Param::Integer(id), Param::Text(format!("item {id}"))],
    )]
}

async fn write(
    group: &mut WriteGroup,
    txid: u64,
    request_id: &str,
    statements: &[Statement],
) -> Result<ClientWriteOutcome, StoreError> {
    group
        .write_client(ClientWrite {
            context: &context(txid),
            request_id,
            statements,
            limits: &Limits::default(),
            now_ms: 1_700_000_000_000,
        })
        .await
}

async fn ids(store: &Store) -> Vec<Vec<SqlValue>> {
    rows(store, "SELECT id FROM items ORDER BY id").await
}

async fn request_ids(store: &Store) -> Vec<Vec<SqlValue>> {
    rows(
        store,
        "SELECT request_id FROM tandem_requests ORDER BY request_id",
    )
    .await
}

#[tokio::test]
async fn a_retried_request_id_replays_the_first_outcome_and_runs_nothing() {
    let (a, b) = (node().await, node().await);
    let mut group = a.store.begin_write_group().await.unwrap();
    let first = write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    let ClientWriteOutcome::Written { result, log_range } = first else {
        panic!("expected a write, got {first:?}");
    };
    assert_eq!(result.rows_affected, [1]);
    assert_eq!(result.last_insert_rowid, 1);
    assert_eq!(log_range, Some((1, 2)), "the row and its request id");
    group.commit().await.unwrap();

    tracing::info!("--- the same request id again, even with other statements, runs nothing");
    let mut group = a.store.begin_write_group().await.unwrap();
    let again = write(&mut group, 2, "r1", &insert(2)).await.unwrap();
    let ClientWriteOutcome::Replayed {
        rows_affected,
        last_insert_rowid,
    } = again
    else {
        panic!("expected a replay, got {again:?}");
    };
    assert_eq!((rows_affected, last_insert_rowid), (vec![1], 1));
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await, [[SqlValue::Integer(1)]]);
    assert_eq!(a.store.last_log_position().await.unwrap().idx, 2);

    tracing::info!("--- the request id replicates, so a retry on the peer replays too");
    assert_eq!(ship(&a.store, &b.store).await.unwrap(), 2);
    let mut group = b.store.begin_write_group().await.unwrap();
    let on_peer = write(&mut group, 3, "r1", &insert(3)).await.unwrap();
    assert!(
        matches!(on_peer, ClientWriteOutcome::Replayed { .. }),
        "{on_peer:?}"
    );
    group.commit().await.unwrap();
    assert_eq!(ids(&b.store).await, [[SqlValue::Integer(1)]]);
}

#[tokio::test]
async fn a_refused_write_is_undone_alone_and_its_request_id_is_not_kept() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    let clash = write(&mut group, 2, "r2", &insert(1)).await.unwrap();
    let ClientWriteOutcome::Refused(DataError::Sql { message, .. }) = clash else {
        panic!("expected a SQL error, got {clash:?}");
    };
    assert!(message.contains("UNIQUE constraint failed"), "{message}");
    let ddl = [Statement::new("DROP TABLE items", vec![])];
    let refused = write(&mut group, 3, "r3", &ddl).await.unwrap();
    assert!(
        matches!(
            refused,
            ClientWriteOutcome::Refused(DataError::Refused { .. })
        ),
        "{refused:?}"
    );
    let last = write(&mut group, 4, "r4", &insert(4)).await.unwrap();
    let ClientWriteOutcome::Written { log_range, .. } = last else {
        panic!("expected a write, got {last:?}");
    };
    assert_eq!(
        log_range,
        Some((3, 4)),
        "the log goes on after the refusals"
    );
    group.commit().await.unwrap();

    assert_eq!(
        ids(&a.store).await,
        [[SqlValue::Integer(1)], [SqlValue::Integer(4)]]
    );
    assert_eq!(
        request_ids(&a.store).await,
        [[SqlValue::Text("r1".into())], [SqlValue::Text("r4".into())]]
    );
    let txids: Vec<u64> = all_entries(&a.store).await.iter().map(|e| e.txid).collect();
    assert_eq!(txids, [1, 1, 4, 4]);

    tracing::info!("--- the refused request id can be retried and then runs");
    let mut group = a.store.begin_write_group().await.unwrap();
    let retried = write(&mut group, 5, "r2", &insert(2)).await.unwrap();
    assert!(
        matches!(retried, ClientWriteOutcome::Written { .. }),
        "{retried:?}"
    );
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await.len(), 3);
}

#[tokio::test]
async fn a_statement_that_ends_the_transaction_gives_the_group_up() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    let rollback = [Statement::new(
        "INSERT OR ROLLBACK INTO items (id, name) VALUES (1, 'again')",
        vec![],
    )];
    let ended = write(&mut group, 2, "r2", &rollback).await.unwrap();
    assert!(
        matches!(ended, ClientWriteOutcome::Refused(DataError::Sql { .. })),
        "{ended:?}"
    );
    assert!(matches!(
        write(&mut group, 3, "r3", &insert(3)).await,
        Err(StoreError::WriteGroupAborted)
    ));
    assert!(matches!(
        group.commit().await,
        Err(StoreError::WriteGroupAborted)
    ));
    assert_eq!(ids(&a.store).await, Vec::<Vec<SqlValue>>::new());
    assert_eq!(a.store.last_log_position().await.unwrap().idx, 0);

    tracing::info!("--- the writer connection is sound afterwards");
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 4, "r1", &insert(1)).await.unwrap();
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await, [[SqlValue::Integer(1)]]);
}

#[tokio::test]
async fn a_write_stamped_with_an_older_epoch_is_refused() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    group.commit().await.unwrap();
    let mut group = a.store.begin_write_group().await.unwrap();
    let mut old = context(2);
    old.term_epoch = 2;
    let refused = group
        .write_client(ClientWrite {
            context: &old,
            request_id: "r2",
            statements: &insert(2),
            limits: &Limits::default(),
            now_ms: 0,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::StaleTerm { epoch: 2, .. })),
        "{refused:?}"
    );
}
