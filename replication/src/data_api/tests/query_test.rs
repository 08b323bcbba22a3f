//! `query`: read-only, bounded, and values come back with their types.

use super::fixtures::{connection, count, execute_in_transaction, statement};
use crate::data_api::{DataError, Limits, Param, Statement, Value, query};

#[tokio::test]
async fn query_refuses_writes_and_ddl() {
    let mut conn = connection().await;
    for (sql, expected) in [
        (
            "INSERT INTO t (id) VALUES (1)",
            "Query is read-only: INSERT into \"t\"",
        ),
        (
            "UPDATE t SET name = 'x'",
            "Query is read-only: UPDATE of \"t\"",
        ),
        ("DELETE FROM t", "Query is read-only: DELETE from \"t\""),
        (
            "CREATE TABLE u (id)",
            "DDL is not allowed through Query: CREATE TABLE \"u\"",
        ),
        ("PRAGMA journal_mode", "PRAGMA is not allowed through Query"),
        (
            "DROP TABLE t",
            "DDL is not allowed through Query: DROP TABLE \"t\"",
        ),
    ] {
        match query(&mut conn, &statement(sql), &Limits::default()).await {
            Err(DataError::Refused { reason }) => {
                assert!(reason.starts_with(expected), "{sql}: {reason}")
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    // SQLite itself refuses a direct write to its schema table.
    let schema_write = statement("INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, '')");
    match query(&mut conn, &schema_write, &Limits::default()).await {
        Err(DataError::Sql { message, .. }) => {
            assert_eq!(message, "table sqlite_master may not be modified")
        }
        other => panic!("expected SQLite's refusal, got {other:?}"),
    }
    assert_eq!(count(&mut conn, "t").await, 0);
}

#[tokio::test]
async fn typed_params_and_blobs_round_trip() {
    let mut conn = connection().await;
    let rows = [
        vec![
            Param::Integer(i64::MIN),
            Param::Text("héllo \u{1F980}".into()),
            Param::Blob(vec![0, 255, 0x80, 0xC3, 0x28, 0]),
            Param::Real(-0.1),
        ],
        vec![
            Param::Integer(i64::MAX),
            Param::Text(String::new()),
            Param::Blob(Vec::new()),
            Param::Null,
        ],
    ];
    let inserts: Vec<Statement> = rows
        .iter()
        .map(|params| {
            Statement::new(
                "INSERT INTO t (id, name, data, score) VALUES (?, ?, ?, ?)",
                params.clone(),
            )
        })
        .collect();
    execute_in_transaction(&mut conn, &inserts).await.unwrap();

    let result = query(
        &mut conn,
        &Statement::new(
            "SELECT id, name, data, score FROM t WHERE id IN (?, ?) ORDER BY id",
            vec![Param::Integer(i64::MIN), Param::Integer(i64::MAX)],
        ),
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(result.columns, ["id", "name", "data", "score"]);
    assert_eq!(result.rows, rows);
    // An empty BLOB stays a BLOB and an empty TEXT stays TEXT, not NULL.
    let types = query(
        &mut conn,
        &statement("SELECT typeof(name), typeof(data) FROM t WHERE id > 0"),
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        types.rows,
        [[Value::Text("text".into()), Value::Text("blob".into())]]
    );
}

#[tokio::test]
async fn query_reads_at_most_max_rows() {
    let mut conn = connection().await;
    execute_in_transaction(
        &mut conn,
        &[statement("INSERT INTO t (id) VALUES (1), (2), (3)")],
    )
    .await
    .unwrap();
    let limits = |max_rows| Limits {
        max_rows,
        ..Limits::default()
    };
    let all = query(&mut conn, &statement("SELECT id FROM t"), &limits(3))
        .await
        .unwrap();
    assert_eq!(all.rows.len(), 3);
    let over = query(&mut conn, &statement("SELECT id FROM t"), &limits(2)).await;
    assert!(
        matches!(
            over,
            Err(DataError::TooLarge {
                what: "the number of rows",
                limit: 2
            })
        ),
        "{over:?}"
    );
    // Recursive CTEs and functions are reads.
    let counted = query(
        &mut conn,
        &statement(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)
             SELECT sum(i), json_array(1) FROM n",
        ),
        &limits(1),
    )
    .await
    .unwrap();
    assert_eq!(
        counted.rows,
        [[Value::Integer(15), Value::Text("[1]".into())]]
    );
}
