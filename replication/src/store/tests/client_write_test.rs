//! `WriteGroup::write_client`: a Data API write with its request id in one stretch; a retry
//! replays the first outcome, a refused write is undone alone, and a statement that ends the
//! whole transaction gives the group up.

use std::time::Duration;

use sqlx::{Connection, Executor, SqliteConnection};
use tempfile::TempDir;

use super::fixtures::{all_entries, context, rows, ship, write_migrations};
use crate::data_api::{DataError, Limits, Mode, Param, Statement};
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
    node_with(|_| {}).await
}

async fn node_with(adjust: impl FnOnce(&mut StoreOptions)) -> Node {
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
    let mut options = StoreOptions::new(tables);
    adjust(&mut options);
    let store = Store::open(dir.path(), options).await.unwrap();
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
    write_in_mode(group, txid, request_id, Mode::Execute, statements).await
}

async fn write_in_mode(
    group: &mut WriteGroup,
    txid: u64,
    request_id: &str,
    mode: Mode,
    statements: &[Statement],
) -> Result<ClientWriteOutcome, StoreError> {
    group
        .write_client(ClientWrite {
            context: &context(txid),
            request_id,
            statements,
            limits: &Limits::default(),
            mode,
            now_ms: 1_700_000_000_000,
            commit_if: None,
            plan: None,
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
    let ClientWriteOutcome::Written {
        result,
        log_range,
        entries,
    } = first
    else {
        panic!("expected a write, got {first:?}");
    };
    assert_eq!(result.rows_affected, [1]);
    assert_eq!(result.last_insert_rowid, 1);
    assert_eq!(log_range, Some((1, 2)), "the row and its request id");
    group.commit().await.unwrap();
    assert_eq!(
        entries,
        all_entries(&a.store).await,
        "the entries handed back are the ones stored"
    );

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
            mode: Mode::Execute,
            now_ms: 0,
            commit_if: None,
            plan: None,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::StaleTerm { epoch: 2, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_write_of_many_rows_hands_back_no_entries_but_its_whole_range() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    let many = [Statement::new(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
         INSERT INTO items (id, name) SELECT i, 'x' FROM n",
        vec![],
    )];
    let written = write(&mut group, 1, "r1", &many).await.unwrap();
    let ClientWriteOutcome::Written {
        log_range, entries, ..
    } = written
    else {
        panic!("expected a write, got {written:?}");
    };
    assert_eq!(log_range, Some((1, 1101)), "1,100 rows and the request id");
    assert!(entries.is_empty(), "{} entries handed back", entries.len());
    group.commit().await.unwrap();
    assert_eq!(all_entries(&a.store).await.len(), 1101);
}

#[tokio::test]
async fn a_lock_held_by_another_process_is_waited_for_off_the_async_thread() {
    let a = node_with(|options| options.busy_timeout = Duration::from_millis(200)).await;
    let mut other = SqliteConnection::connect(&format!("sqlite://{}", a.store.path().display()))
        .await
        .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();

    tracing::info!(
        "--- the write lock is taken: BEGIN waits its busy timeout on a blocking thread, fails"
    );
    let mut group = a.store.begin_write_group().await.unwrap();
    let locked = write(&mut group, 1, "r1", &insert(1)).await;
    // The stretch's own BEGIN does not wait and is not an error when busy: this SQLITE_BUSY is
    // the waiting BEGIN's, after its busy timeout.
    let Err(StoreError::Sqlite { code, message }) = locked else {
        panic!("expected SQLite's busy error, got {locked:?}");
    };
    assert_eq!(code & 0xff, libsqlite3_sys::SQLITE_BUSY, "{message}");
    assert!(message.contains("locked"), "{message}");
    assert!(matches!(
        group.commit().await,
        Err(StoreError::WriteGroupAborted)
    ));

    tracing::info!("--- the lock released, the next group writes");
    other.execute("COMMIT").await.unwrap();
    let mut group = a.store.begin_write_group().await.unwrap();
    let written = write(&mut group, 2, "r1", &insert(1)).await.unwrap();
    assert!(
        matches!(written, ClientWriteOutcome::Written { .. }),
        "{written:?}"
    );
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await, [[SqlValue::Integer(1)]]);
    assert_eq!(
        all_entries(&a.store).await.len(),
        2,
        "the row and its request id"
    );
}

/// A write of `id` that asks to commit the group, answered `answer`.
async fn commit(
    group: &mut WriteGroup,
    txid: u64,
    id: i64,
    answer: bool,
) -> Result<ClientWriteOutcome, StoreError> {
    let ask = move || answer;
    group
        .write_client(ClientWrite {
            context: &context(txid),
            request_id: &format!("r{txid}"),
            statements: &insert(id),
            limits: &Limits::default(),
            mode: Mode::Execute,
            now_ms: 0,
            commit_if: Some(&ask),
            plan: None,
        })
        .await
}

#[tokio::test]
async fn the_last_write_commits_the_group_in_its_stretch_when_asked_to() {
    let a = node().await;
    tracing::info!("--- asked and told yes: the group (both writes) is committed at once");
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    commit(&mut group, 2, 2, true).await.unwrap();
    assert!(group.is_committed());
    assert_eq!(
        ids(&a.store).await,
        [[SqlValue::Integer(1)], [SqlValue::Integer(2)]],
        "visible before `commit` is called"
    );
    let position = group.commit().await.unwrap();
    assert_eq!(position, a.store.last_log_position().await.unwrap());
    assert_eq!(position.idx, 4);

    tracing::info!("--- told no: nothing committed, and the caller can still roll back");
    let mut group = a.store.begin_write_group().await.unwrap();
    commit(&mut group, 3, 3, false).await.unwrap();
    assert!(!group.is_committed());
    group.rollback().await.unwrap();
    assert_eq!(ids(&a.store).await.len(), 2);

    tracing::info!("--- a refused last write still commits the group's earlier writes");
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 4, "r4", &insert(4)).await.unwrap();
    let refused = commit(&mut group, 5, 1, true).await.unwrap();
    assert!(
        matches!(refused, ClientWriteOutcome::Refused(_)),
        "{refused:?}"
    );
    assert!(group.is_committed());
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await.len(), 3);
}

// The store's own writer connection keeps statements prepared between groups.

async fn write_as(
    group: &mut WriteGroup,
    txid: u64,
    mode: Mode,
    statements: &[Statement],
) -> Result<ClientWriteOutcome, StoreError> {
    write_in_mode(group, txid, "", mode, statements).await
}

#[tokio::test]
async fn a_kept_statement_follows_a_migration_that_changes_its_table() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    group.commit().await.unwrap();

    tracing::info!("--- a migration adds a column; the same statement text runs again");
    let dir = TempDir::new().unwrap();
    write_migrations(
        dir.path(),
        &[
            (
                "001_items.sql",
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);",
            ),
            (
                "002_note.sql",
                "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT 'added';",
            ),
        ],
    );
    a.store.migrate(dir.path()).await.unwrap();
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 2, "r2", &insert(2)).await.unwrap();
    group.commit().await.unwrap();

    let entries = all_entries(&a.store).await;
    let images: Vec<String> = entries
        .iter()
        .filter(|entry| entry.table == "items")
        .map(|entry| entry.new_image.clone().unwrap_or_default())
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(!images[0].contains("note"), "{}", images[0]);
    assert!(
        images[1].contains("note") && images[1].contains("added"),
        "the re-prepared insert ran the re-installed trigger: {}",
        images[1]
    );
}

#[tokio::test]
async fn a_statement_the_node_may_run_is_still_refused_to_a_client() {
    let a = node().await;
    let own = [Statement::new(
        "INSERT INTO tandem_requests (request_id, rows_affected, last_insert_rowid, at_ms) \
         VALUES ('node', '[]', 0, 0)",
        vec![],
    )];
    let mut group = a.store.begin_write_group().await.unwrap();
    let by_node = write_as(&mut group, 1, Mode::Node, &own).await.unwrap();
    assert!(
        matches!(by_node, ClientWriteOutcome::Written { .. }),
        "{by_node:?}"
    );
    tracing::info!("--- the same text from a client, on the same connection");
    let by_client = write_as(&mut group, 2, Mode::Execute, &own).await.unwrap();
    let ClientWriteOutcome::Refused(DataError::Refused { reason }) = by_client else {
        panic!("expected the authorizer's refusal, got {by_client:?}");
    };
    assert!(reason.contains("tandem_requests"), "{reason}");
    tracing::info!("--- and DDL, after the store's own statements were kept");
    let ddl = [Statement::new("DROP TABLE items", vec![])];
    let refused = write_as(&mut group, 3, Mode::Execute, &ddl).await.unwrap();
    assert!(
        matches!(
            refused,
            ClientWriteOutcome::Refused(DataError::Refused { .. })
        ),
        "{refused:?}"
    );
    group.commit().await.unwrap();
    assert_eq!(
        request_ids(&a.store).await,
        [[SqlValue::Text("node".into())]]
    );
}

#[tokio::test]
async fn a_group_dropped_without_commit_rolls_back_and_the_next_one_writes() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    drop(group);

    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 2, "r2", &insert(2)).await.unwrap();
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await, [[SqlValue::Integer(2)]]);
    let txids: Vec<u64> = all_entries(&a.store).await.iter().map(|e| e.txid).collect();
    assert_eq!(txids, [2, 2], "the dropped write left no entry");
}

#[tokio::test]
async fn a_closed_store_refuses_write_groups() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    group.commit().await.unwrap();
    a.store.close().await;
    let refused = a.store.begin_write_group().await.err();
    assert!(
        matches!(refused, Some(StoreError::Sql(sqlx::Error::PoolClosed))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_group_with_no_write_commits_and_reports_the_log_position() {
    let a = node().await;
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    let written = group.commit().await.unwrap();
    assert_eq!(written.idx, 2, "the row and its request id");

    let group = a.store.begin_write_group().await.unwrap();
    let empty = group.commit().await.unwrap();
    assert_eq!(empty, written, "nothing written: the position is the log's");
    tracing::info!("--- the connection is free for the next group");
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 2, "r2", &insert(2)).await.unwrap();
    assert_eq!(group.commit().await.unwrap().idx, 4);
}

#[tokio::test]
async fn a_group_waits_for_the_connection_at_most_its_acquire_timeout() {
    let a = node().await;
    let held = a.store.begin_write_group().await.unwrap();
    tracing::info!("--- another group waits; the paused clock jumps to its deadline");
    tokio::time::pause();
    let waited = a.store.begin_write_group().await.err();
    tokio::time::resume();
    assert!(
        matches!(waited, Some(StoreError::Sql(sqlx::Error::PoolTimedOut))),
        "{waited:?}"
    );
    drop(held);
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    group.commit().await.unwrap();
    assert_eq!(ids(&a.store).await, [[SqlValue::Integer(1)]]);
}

#[tokio::test]
async fn every_write_takes_the_one_write_turn() {
    let a = node().await;
    let group = a.store.begin_write_group().await.unwrap();
    assert!(a.store.owned.try_lock().is_err(), "a group holds the turn");
    drop(group);
    let group = a.store.begin_sqlx_write_group().await.unwrap();
    assert!(
        a.store.owned.try_lock().is_err(),
        "a group on sqlx's connection holds it too"
    );
    drop(group);

    tracing::info!("--- an occasional write waits for a group, then runs");
    let mut group = a.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "r1", &insert(1)).await.unwrap();
    let store = a.store.clone();
    let truncate = tokio::spawn(async move { store.truncate_log_before(u64::MAX).await });
    tokio::task::yield_now().await;
    assert!(
        !truncate.is_finished(),
        "it ran while the group held the turn"
    );
    group.commit().await.unwrap();
    assert_eq!(
        truncate.await.unwrap().unwrap(),
        1,
        "all but the last entry"
    );
    assert!(a.store.owned.try_lock().is_ok(), "the turn is free again");
}

/// A write whose statements are planned inside its own transaction sees what an earlier write
/// of the same, uncommitted group wrote: the log entry, the row, and its request id. A replayed
/// request id plans nothing.
#[tokio::test]
async fn a_planned_write_reads_the_log_inside_its_transaction() {
    let node = node().await;
    let mut group = node.store.begin_write_group().await.unwrap();
    write(&mut group, 1, "first", &insert(7)).await.unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let plan = |reads: &crate::store::TransactionReads<'_>| {
        let mut changes = Vec::new();
        let last = reads.changes_after(0, |idx, table, pk| {
            changes.push((idx, table.to_owned(), pk.to_owned()));
        })?;
        let entry = reads.entry_at(changes[0].0)?.expect("the first entry");
        seen.lock().unwrap().push((
            changes.clone(),
            last,
            entry.new_image,
            reads.request_recorded("first")?,
            reads.request_recorded("never")?,
        ));
        Ok(vec![Statement::new(
            "UPDATE items SET name = 'planned' WHERE id = 7",
            vec![],
        )])
    };
    let second = context(2);
    let limits = Limits::default();
    let planned = |request_id: &'static str| ClientWrite {
        context: &second,
        request_id,
        statements: &[],
        limits: &limits,
        mode: Mode::Execute,
        now_ms: 1_700_000_000_000,
        commit_if: None,
        plan: Some(&plan),
    };
    let outcome = group.write_client(planned("second")).await.unwrap();
    assert!(
        matches!(outcome, ClientWriteOutcome::Written { .. }),
        "{outcome:?}"
    );
    let again = group.write_client(planned("second")).await.unwrap();
    assert!(
        matches!(again, ClientWriteOutcome::Replayed { .. }),
        "{again:?}"
    );
    group.commit().await.unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 1, "the replay planned nothing");
    let (changes, last, image, first_recorded, never_recorded) = &seen[0];
    let tables: Vec<&str> = changes.iter().map(|(_, table, _)| table.as_str()).collect();
    assert_eq!(tables, ["items", REQUESTS_TABLE]);
    assert_eq!(changes[0].2, r#"{"id":7}"#);
    assert_eq!(*last, changes[1].0);
    assert_eq!(image.as_deref(), Some(r#"{"id":7,"name":"item 7"}"#));
    assert!(first_recorded);
    assert!(!never_recorded);
    assert_eq!(
        rows(&node.store, "SELECT name FROM items").await,
        vec![vec![SqlValue::Text("planned".into())]]
    );
}
