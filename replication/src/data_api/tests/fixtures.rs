//! A connection with an application table, tandem-like internal tables and a capture-like
//! trigger named the way the store names its own (`_tandem_capture_<op>_<table>`).

use sqlx::{Connection, Executor, SqliteConnection};

use crate::data_api::{DataError, ExecuteResult, Limits, Statement, execute};

pub const SCHEMA: &str = "
    CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, score REAL);
    CREATE TABLE _tandem_log (idx INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, pk TEXT);
    CREATE VIEW t_names AS SELECT name FROM t;
    CREATE INDEX t_score ON t (score);
    CREATE TRIGGER \"_tandem_capture_insert_t\" AFTER INSERT ON t
    BEGIN
      INSERT INTO _tandem_log (tbl, pk) VALUES ('t', json_array(NEW.id));
    END;
    CREATE TRIGGER \"_tandem_capture_delete_t\" AFTER DELETE ON t
    BEGIN
      INSERT INTO _tandem_log (tbl, pk) VALUES ('t', json_array(OLD.id));
    END;
";

pub async fn connection() -> SqliteConnection {
    let mut conn = SqliteConnection::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite opens");
    conn.execute(SCHEMA).await.expect("schema");
    conn
}

pub fn statement(sql: &str) -> Statement {
    Statement::new(sql, Vec::new())
}

/// Runs `statements` through `execute` in a transaction that commits if they all succeed.
pub async fn execute_in_transaction(
    conn: &mut SqliteConnection,
    statements: &[Statement],
) -> Result<ExecuteResult, DataError> {
    let mut transaction = conn.begin().await.expect("BEGIN");
    let result = execute(&mut transaction, statements, &Limits::default()).await;
    match &result {
        Ok(_) => transaction.commit().await.expect("COMMIT"),
        Err(_) => transaction.rollback().await.expect("ROLLBACK"),
    }
    result
}

/// The reason of a refusal; fails the test on anything else.
pub fn refusal(result: Result<ExecuteResult, DataError>) -> String {
    match result {
        Err(DataError::Refused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .expect("count")
}
