//! `execute`: what is refused and how, what runs and what it reports.

use std::time::Duration;

use sqlx::{Connection, Executor};

use super::fixtures::{connection, count, execute_in_transaction, refusal, statement};
use crate::data_api::{DataError, Limits, Param, Statement, execute};

#[tokio::test]
async fn ddl_of_each_kind_is_refused_with_its_kind_named() {
    let mut conn = connection().await;
    let schema_before = schema(&mut conn).await;
    let cases = [
        (
            "CREATE TABLE u (id INTEGER PRIMARY KEY)",
            "CREATE TABLE \"u\"",
        ),
        ("CREATE TEMP TABLE u (id)", "CREATE TEMP TABLE \"u\""),
        ("CREATE INDEX u_name ON t (name)", "CREATE INDEX \"u_name\""),
        ("CREATE VIEW u AS SELECT 1", "CREATE VIEW \"u\""),
        (
            "CREATE TRIGGER u AFTER INSERT ON t BEGIN SELECT 1; END",
            "CREATE TRIGGER \"u\"",
        ),
        ("DROP TABLE t", "DROP TABLE \"t\""),
        ("DROP INDEX t_score", "DROP INDEX \"t_score\""),
        ("DROP VIEW t_names", "DROP VIEW \"t_names\""),
        (
            "DROP TRIGGER \"_tandem_capture_insert_t\"",
            "DROP TRIGGER \"_tandem_capture_insert_t\"",
        ),
        ("ALTER TABLE t ADD COLUMN extra TEXT", "ALTER TABLE \"t\""),
        ("ALTER TABLE t RENAME TO t2", "ALTER TABLE \"t\""),
    ];
    for (sql, kind) in cases {
        let reason = refusal(execute_in_transaction(&mut conn, &[statement(sql)]).await);
        assert_eq!(
            reason,
            format!("DDL is not allowed through Execute: {kind}"),
            "{sql}"
        );
    }
    assert_eq!(schema(&mut conn).await, schema_before, "nothing changed");
}

async fn schema(conn: &mut sqlx::SqliteConnection) -> Vec<(String, String)> {
    sqlx::query_as("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn pragma_attach_and_transaction_control_are_refused() {
    let mut conn = connection().await;
    let cases = [
        (
            "PRAGMA foreign_keys = OFF",
            "PRAGMA is not allowed through Execute: PRAGMA foreign_keys",
        ),
        (
            "PRAGMA table_info(t)",
            "PRAGMA is not allowed through Execute: PRAGMA table_info",
        ),
        (
            "ATTACH DATABASE ':memory:' AS other",
            "ATTACH is not allowed through Execute",
        ),
        (
            "DETACH DATABASE main",
            "DETACH is not allowed through Execute",
        ),
        (
            "COMMIT",
            "transaction control is not allowed through Execute: COMMIT",
        ),
        (
            "SAVEPOINT s",
            "transaction control is not allowed through Execute: BEGIN SAVEPOINT",
        ),
        (
            "ANALYZE",
            "maintenance statements are not allowed through Execute: ANALYZE",
        ),
    ];
    for (sql, expected) in cases {
        let reason = refusal(execute_in_transaction(&mut conn, &[statement(sql)]).await);
        assert!(reason.starts_with(expected), "{sql}: {reason}");
    }
}

#[tokio::test]
async fn inserts_updates_and_deletes_run_and_are_counted() {
    let mut conn = connection().await;
    let statements = [
        statement("INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
        Statement::new(
            "UPDATE t SET score = ? WHERE id >= ?",
            vec![Param::Real(1.5), Param::Integer(2)],
        ),
        statement("DELETE FROM t WHERE id = 3"),
        statement("SELECT * FROM t"),
        statement("INSERT INTO t (id, name) VALUES (7, 'g')"),
    ];
    let result = execute_in_transaction(&mut conn, &statements)
        .await
        .unwrap();
    assert_eq!(result.rows_affected, vec![3, 2, 1, 0, 1]);
    assert_eq!(result.last_insert_rowid, 7);
    assert_eq!(count(&mut conn, "t").await, 3);
    // The capture-like triggers wrote the internal log from inside the client's statements:
    // four inserts and one delete.
    assert_eq!(count(&mut conn, "_tandem_log").await, 5);
}

#[tokio::test]
async fn writes_to_internal_tables_are_refused() {
    let mut conn = connection().await;
    for sql in [
        "INSERT INTO _tandem_log (tbl, pk) VALUES ('t', '[1]')",
        "INSERT INTO _TANDEM_LOG (tbl, pk) VALUES ('t', '[1]')",
        "UPDATE _tandem_log SET tbl = 'x'",
        "DELETE FROM _tandem_log",
    ] {
        let reason = refusal(execute_in_transaction(&mut conn, &[statement(sql)]).await);
        assert!(
            reason
                .starts_with("writes to tandem's internal tables are not allowed through Execute"),
            "{sql}: {reason}"
        );
    }
    // Reading them is allowed.
    execute_in_transaction(&mut conn, &[statement("SELECT * FROM _tandem_log")])
        .await
        .unwrap();
}

#[tokio::test]
async fn only_tandem_triggers_may_write_internal_tables() {
    let mut conn = connection().await;
    conn.execute(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);
         CREATE TRIGGER sneaky AFTER INSERT ON notes
         BEGIN INSERT INTO _tandem_log (tbl, pk) VALUES ('forged', '[0]'); END;",
    )
    .await
    .unwrap();
    let reason = refusal(
        execute_in_transaction(&mut conn, &[statement("INSERT INTO notes VALUES (1)")]).await,
    );
    assert!(reason.contains("INSERT into \"_tandem_log\""), "{reason}");
    assert_eq!(count(&mut conn, "notes").await, 0);
}

#[tokio::test]
async fn after_a_refusal_the_connection_works_and_the_authorizer_is_gone() {
    let mut conn = connection().await;
    let mut transaction = conn.begin().await.unwrap();
    let refused = execute(
        &mut transaction,
        &[
            statement("INSERT INTO t (id) VALUES (1)"),
            statement("CREATE TABLE u (id)"),
        ],
        &Limits::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(DataError::Refused { .. })),
        "{refused:?}"
    );
    // The store's own statements, in the same transaction: DDL, PRAGMA, internal writes.
    transaction
        .execute(
            "CREATE TABLE u (id INTEGER PRIMARY KEY);
             INSERT INTO _tandem_log (tbl, pk) VALUES ('u', '[1]');
             PRAGMA foreign_keys = ON;",
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(count(&mut conn, "u").await, 0);
    assert_eq!(count(&mut conn, "t").await, 1);
    // And a later client request still runs under the guard.
    let again = execute_in_transaction(&mut conn, &[statement("DROP TABLE u")]).await;
    assert_eq!(
        refusal(again),
        "DDL is not allowed through Execute: DROP TABLE \"u\""
    );
}

#[tokio::test]
async fn sql_errors_come_back_with_sqlites_message() {
    let mut conn = connection().await;
    let syntax = execute_in_transaction(&mut conn, &[statement("INSRT INTO t VALUES (1)")]).await;
    match syntax {
        Err(DataError::Sql { index: 0, message }) => {
            assert!(message.contains("syntax error"), "{message}")
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let unique = execute_in_transaction(
        &mut conn,
        &[
            statement("INSERT INTO t (id, name) VALUES (1, 'a')"),
            statement("INSERT INTO t (id, name) VALUES (2, 'a')"),
        ],
    )
    .await;
    match unique {
        Err(DataError::Sql { index: 1, message }) => {
            assert_eq!(message, "UNIQUE constraint failed: t.name")
        }
        other => panic!("expected a UNIQUE violation, got {other:?}"),
    }
    let missing = execute_in_transaction(&mut conn, &[statement("DELETE FROM nowhere")]).await;
    match missing {
        Err(DataError::Sql { message, .. }) => assert_eq!(message, "no such table: nowhere"),
        other => panic!("expected no such table, got {other:?}"),
    }
}

#[tokio::test]
async fn oversize_requests_are_refused_before_anything_runs() {
    let mut conn = connection().await;
    let insert = || {
        Statement::new(
            "INSERT INTO t (data) VALUES (?)",
            vec![Param::Blob(vec![7; 100])],
        )
    };
    let base = Limits::default();
    let cases = [
        (
            Limits {
                max_statements: 1,
                ..base.clone()
            },
            "the number of statements",
        ),
        (
            Limits {
                max_sql_bytes: 40,
                ..base.clone()
            },
            "the SQL text (bytes)",
        ),
        (
            Limits {
                max_params: 1,
                ..base.clone()
            },
            "the number of parameters",
        ),
        (
            Limits {
                max_param_bytes: 150,
                ..base.clone()
            },
            "the parameters (bytes)",
        ),
    ];
    for (limits, expected) in cases {
        let mut transaction = conn.begin().await.unwrap();
        let result = execute(&mut transaction, &[insert(), insert()], &limits).await;
        transaction.commit().await.unwrap();
        match result {
            Err(DataError::TooLarge { what, .. }) => assert_eq!(what, expected),
            other => panic!("expected TooLarge({expected}), got {other:?}"),
        }
        assert_eq!(count(&mut conn, "t").await, 0, "{expected}: nothing ran");
    }
}

#[tokio::test]
async fn a_statement_holds_exactly_one_statement_and_its_parameters() {
    let mut conn = connection().await;
    let bad = |sql: &str, params: Vec<Param>| Statement::new(sql, params);
    let cases = [
        (
            bad("INSERT INTO t (id) VALUES (1); DROP TABLE t", vec![]),
            "more than one",
        ),
        (
            bad(
                "INSERT INTO t (id) VALUES (1); INSERT INTO t (id) VALUES (2)",
                vec![],
            ),
            "more than one",
        ),
        (bad("  -- only a comment", vec![]), "holds no SQL statement"),
        (bad("", vec![]), "holds no SQL statement"),
        (
            bad("INSERT INTO t (id) VALUES (1)\0; DROP TABLE t", vec![]),
            "NUL byte",
        ),
        (
            bad("INSERT INTO t (id) VALUES (?)", vec![]),
            "expects 1 parameters, got 0",
        ),
        (
            bad("INSERT INTO t (id) VALUES (1)", vec![Param::Null]),
            "expects 0 parameters, got 1",
        ),
    ];
    for (statement, expected) in cases {
        match execute_in_transaction(&mut conn, std::slice::from_ref(&statement)).await {
            Err(DataError::BadStatement { reason, .. }) => {
                assert!(reason.contains(expected), "{:?}: {reason}", statement.sql)
            }
            other => panic!("{:?}: expected BadStatement, got {other:?}", statement.sql),
        }
    }
    // Trailing blanks, semicolons and comments are fine.
    execute_in_transaction(
        &mut conn,
        &[statement("INSERT INTO t (id) VALUES (1);  -- done\n")],
    )
    .await
    .unwrap();
    assert_eq!(count(&mut conn, "t").await, 1);
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_interrupted() {
    let mut conn = connection().await;
    let limits = Limits {
        statement_timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let endless = statement(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
         INSERT INTO t (id) SELECT i FROM n",
    );
    conn.execute("BEGIN").await.unwrap();
    let result = execute(&mut conn, &[endless], &limits).await;
    assert!(
        matches!(result, Err(DataError::Timeout { index: 0, limit }) if limit == limits.statement_timeout),
        "{result:?}"
    );
    // SQLite rolls back the whole transaction of an interrupted write.
    let rollback = conn.execute("ROLLBACK").await;
    assert!(rollback.is_err(), "the transaction is already gone");
    assert_eq!(count(&mut conn, "t").await, 0);
    // The progress handler is gone too: a long statement of the store's own runs to the end.
    let total: i64 = sqlx::query_scalar(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
         SELECT count(*) FROM n",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(total, 200_000);
}

#[tokio::test]
async fn execute_outside_a_transaction_is_refused() {
    let mut conn = connection().await;
    let result = execute(
        &mut conn,
        &[statement("INSERT INTO t (id) VALUES (1)")],
        &Limits::default(),
    )
    .await;
    assert!(
        matches!(result, Err(DataError::NoTransaction)),
        "{result:?}"
    );
    assert_eq!(count(&mut conn, "t").await, 0);
}

/// The gRPC service runs requests on a multi-threaded runtime, so the futures must be `Send`.
#[tokio::test]
async fn the_request_futures_are_send() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let mut conn = super::fixtures::connection().await;
    let limits = Limits::default();
    let select = statement("SELECT 1");
    let rows = assert_send(crate::data_api::query(&mut conn, &select, &limits))
        .await
        .unwrap();
    assert_eq!(rows.rows, [[crate::data_api::Value::Integer(1)]]);
    let mut transaction = conn.begin().await.unwrap();
    let result = assert_send(execute(&mut transaction, &[select], &limits)).await;
    assert_eq!(result.unwrap().rows_affected, [0]);
}
