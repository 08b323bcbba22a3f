//! Data API requests as the client port takes them (node/src/repl/data_service.rs): an
//! `ExecuteRequest` goes through `repl::convert::statement_from_pb`, the request checks
//! (`check_execute_request`, the limits of `client_limits`) and then `data_api::execute` inside a
//! transaction on an in-memory SQLite database, under the statement guard; a `QueryRequest` goes
//! through `data_api::query`. One connection per process, each request rolled back.
//!
//! The database holds an application table, tandem's internal and node tables, and the gateway's
//! tables with a secret in the private ones. Input: a byte (even: Execute, odd: Query), then the
//! request's protobuf encoding. Besides "no panic", it checks what the guard promises: no DDL gets
//! through (the schema is unchanged), tandem's and the gateway's node-only tables are never
//! written, the private tables' secret never reaches a result or an application table, and the
//! transaction is still the caller's (nothing was committed).
#![no_main]

use std::cell::RefCell;
use std::str::FromStr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tandem_node::repl::{client_limits, convert, data_service::check_execute_request};
use tandem_proto::data as pb;
use tandem_replication::data_api::{self, Limits, Value};

/// In the private tables only; no SQL a fuzzer writes contains it by chance.
const SECRET: &str = "f3c9e1d2-secret-7a41b0";

const SCHEMA: &[&str] = &[
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)",
    "CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit (what) VALUES (new.name); END",
    "CREATE VIEW t_names AS SELECT name FROM t",
    "CREATE TABLE _tandem_log (idx INTEGER PRIMARY KEY, entry TEXT)",
    "CREATE TABLE tandem_requests (id TEXT PRIMARY KEY, reply TEXT)",
    "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT)",
    "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user TEXT)",
    "CREATE TABLE calls (id TEXT PRIMARY KEY, user TEXT)",
    "CREATE TABLE cdrs (id TEXT PRIMARY KEY, cause TEXT)",
    "CREATE TABLE gateway_blocks (what TEXT PRIMARY KEY)",
    "INSERT INTO t (id, name, data) VALUES (1, 'one', x'00ff'), (2, 'two', NULL)",
    "INSERT INTO _tandem_log VALUES (1, 'entry')",
    "INSERT INTO tandem_requests VALUES ('r1', 'done')",
    "INSERT INTO users VALUES ('alice', 'f3c9e1d2-secret-7a41b0')",
    "INSERT INTO sessions VALUES ('f3c9e1d2-secret-7a41b0', 'alice')",
    "INSERT INTO calls VALUES ('c1', 'alice')",
    "INSERT INTO cdrs VALUES ('c0', 'normal')",
];

/// Everything the guard must keep unchanged, as one text.
const PROTECTED: &str = "SELECT \
    (SELECT group_concat(type || name || tbl_name || coalesce(sql, ''), '|') FROM sqlite_schema) \
    || '#' || (SELECT group_concat(type || name || coalesce(sql, ''), '|') FROM sqlite_temp_schema) \
    || '#' || (SELECT group_concat(idx || entry, '|') FROM _tandem_log) \
    || '#' || (SELECT group_concat(id || coalesce(reply, ''), '|') FROM tandem_requests) \
    || '#' || (SELECT group_concat(name || password_hash, '|') FROM users) \
    || '#' || (SELECT group_concat(token_hash || user, '|') FROM sessions) \
    || '#' || (SELECT group_concat(id || user, '|') FROM calls) \
    || '#' || (SELECT group_concat(id || cause, '|') FROM cdrs) \
    || '#' || coalesce((SELECT group_concat(what, '|') FROM gateway_blocks), '')";

/// Rows of the application's tables that hold the secret.
const LEAKED: &str = "SELECT \
    (SELECT count(*) FROM t WHERE instr(CAST(name AS TEXT), ?1) OR instr(CAST(data AS TEXT), ?1)) \
    + (SELECT count(*) FROM audit WHERE instr(CAST(what AS TEXT), ?1))";

struct Db {
    runtime: tokio::runtime::Runtime,
    conn: SqliteConnection,
    limits: Limits,
    protected: String,
}

fn open() -> Db {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = runtime.block_on(async {
        let mut conn = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .connect()
            .await
            .unwrap();
        for sql in SCHEMA {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        conn
    });
    let limits = Limits {
        // Short, so a runaway statement costs little; the guard's checks are the same.
        statement_timeout: Duration::from_millis(50),
        ..client_limits()
    };
    let mut db = Db {
        runtime,
        conn,
        limits,
        protected: String::new(),
    };
    db.protected = db.protected_now();
    db
}

impl Db {
    fn protected_now(&mut self) -> String {
        let conn = &mut self.conn;
        self.runtime.block_on(async {
            let row = sqlx::query(PROTECTED).fetch_one(conn).await.unwrap();
            row.get::<String, _>(0)
        })
    }

    fn leaked_now(&mut self) -> i64 {
        let conn = &mut self.conn;
        self.runtime.block_on(async {
            let row = sqlx::query(LEAKED)
                .bind(SECRET)
                .fetch_one(conn)
                .await
                .unwrap();
            row.get::<i64, _>(0)
        })
    }

    fn check(&mut self, after: &str) {
        let now = self.protected_now();
        assert_eq!(
            now, self.protected,
            "protected tables or the schema changed {after}"
        );
        assert_eq!(
            self.leaked_now(),
            0,
            "the secret reached an application table {after}"
        );
    }

    fn execute(&mut self, request: pb::ExecuteRequest) {
        let statements: Vec<_> = request
            .statements
            .into_iter()
            .map(convert::statement_from_pb)
            .collect();
        if check_execute_request(&request.request_id, &statements, &self.limits).is_err() {
            return;
        }
        let (conn, limits) = (&mut self.conn, &self.limits);
        self.runtime.block_on(async {
            sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
            let _ = data_api::execute(conn, &statements, limits).await;
        });
        self.check("inside the transaction");
        let conn = &mut self.conn;
        self.runtime.block_on(async {
            // A statement that timed out may have rolled the transaction back already.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            assert!(conn.ping().await.is_ok());
        });
        self.check("after the rollback");
    }

    fn query(&mut self, request: pb::QueryRequest) {
        let Some(statement) = request.statement else {
            return;
        };
        let statement = convert::statement_from_pb(statement);
        let (conn, limits) = (&mut self.conn, &self.limits);
        let result = self
            .runtime
            .block_on(async { data_api::query(conn, &statement, limits).await });
        if let Ok(result) = result {
            assert!(result.rows.len() <= self.limits.max_rows);
            for value in result.rows.iter().flatten() {
                let leaked = match value {
                    Value::Text(text) => text.contains(SECRET),
                    Value::Blob(blob) => blob.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                    _ => false,
                };
                assert!(!leaked, "a Query returned the secret: {value:?}");
            }
        }
        self.check("after a Query");
    }
}

thread_local! {
    static DB: RefCell<Option<Db>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    DB.with(|db| {
        let mut db = db.borrow_mut();
        let db = db.get_or_insert_with(open);
        if kind % 2 == 0 {
            if let Ok(request) = pb::ExecuteRequest::decode(rest) {
                db.execute(request);
            }
        } else if let Ok(request) = pb::QueryRequest::decode(rest) {
            db.query(request);
        }
    });
});
