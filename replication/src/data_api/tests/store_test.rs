//! The guard on the store's real write path: `Store::write` owns the transaction, the store's
//! real capture triggers run inside the client's statements.

use sqlx::SqliteConnection;
use tempfile::TempDir;

use crate::data_api::{DataError, ExecuteResult, Limits, Param, Statement, execute};
use crate::store::{CaptureContext, Store, StoreError, StoreOptions};

#[derive(Debug)]
enum WriteError {
    Data(DataError),
    Store(#[allow(dead_code, reason = "shown by Debug when a test fails")] StoreError),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> WriteError {
        WriteError::Store(error)
    }
}

fn context(txid: u64) -> CaptureContext {
    CaptureContext {
        term_epoch: 1,
        term_node: "a".to_owned(),
        txid,
        hlc_ms: 1_700_000_000_000,
        hlc_logical: 0,
        hlc_node: "a".to_owned(),
        origin: "a".to_owned(),
    }
}

async fn store(dir: &TempDir) -> Store {
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("001_items.sql"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB);",
    )
    .unwrap();
    let store = Store::open(dir.path(), StoreOptions::new(vec!["items".to_owned()]))
        .await
        .unwrap();
    store.migrate(&migrations).await.unwrap();
    store
}

async fn write(
    store: &Store,
    txid: u64,
    statements: &[Statement],
) -> Result<ExecuteResult, WriteError> {
    store
        .write(&context(txid), async |conn: &mut SqliteConnection| {
            execute(conn, statements, &Limits::default())
                .await
                .map_err(WriteError::Data)
        })
        .await
        .map(|written| written.value)
}

#[tokio::test]
async fn client_writes_through_the_store_are_captured_and_ddl_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = store(&dir).await;

    tracing::info!("--- a client write fires the store's capture triggers under the guard");
    let insert = Statement::new(
        "INSERT INTO items (id, name, data) VALUES (?, ?, ?), (?, ?, ?)",
        vec![
            Param::Integer(1),
            Param::Text("a".into()),
            Param::Blob(vec![0, 1, 2]),
            Param::Integer(2),
            Param::Text("b".into()),
            Param::Null,
        ],
    );
    let delete = Statement::new("DELETE FROM items WHERE id = ?", vec![Param::Integer(2)]);
    let result = write(&store, 1, &[insert, delete]).await.unwrap();
    assert_eq!(result.rows_affected, vec![2, 1]);
    let log = store.read_log(0, 100, usize::MAX).await.unwrap();
    assert_eq!(log.len(), 3, "two inserts and a delete captured");

    tracing::info!("--- refused requests write nothing, and the store keeps working");
    let ddl = write(&store, 2, &[Statement::new("DROP TABLE items", vec![])]).await;
    assert!(
        matches!(&ddl, Err(WriteError::Data(DataError::Refused { reason }))
            if reason == "DDL is not allowed through Execute: DROP TABLE \"items\""),
        "{ddl:?}"
    );
    let forged = Statement::new("DELETE FROM _tandem_log", vec![]);
    assert!(matches!(
        write(&store, 3, &[forged]).await,
        Err(WriteError::Data(DataError::Refused { .. }))
    ));
    let duplicate = Statement::new("INSERT INTO items (id, name) VALUES (5, 'a')", vec![]);
    assert!(matches!(
        write(&store, 4, &[duplicate]).await,
        Err(WriteError::Data(DataError::Sql { message, .. })) if message == "UNIQUE constraint failed: items.name"
    ));
    assert_eq!(store.read_log(0, 100, usize::MAX).await.unwrap().len(), 3);

    let dir_migrations = dir.path().join("migrations");
    std::fs::write(
        dir_migrations.join("002_more.sql"),
        "ALTER TABLE items ADD COLUMN extra TEXT;",
    )
    .unwrap();
    store.migrate(&dir_migrations).await.unwrap();
    let update = Statement::new("UPDATE items SET extra = 'x' WHERE id = 1", vec![]);
    assert_eq!(
        write(&store, 5, &[update]).await.unwrap().rows_affected,
        [1]
    );
    assert_eq!(store.read_log(0, 100, usize::MAX).await.unwrap().len(), 4);
}
