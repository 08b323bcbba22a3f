//! `execute` and `query`: a client's statements run on one connection under the guard.
//!
//! Both lock sqlx's handle on the connection and do all their SQLite work synchronously while
//! the guard is on: the work is bounded by `Limits` (statement count and `statement_timeout`),
//! so it holds the async task for at most about `max_statements * statement_timeout`. Not here:
//! BEGIN and COMMIT (the store's write path owns the transaction) and picking the connection.

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

use super::authorizer::{Guard, Mode};
use super::error::DataError;
use super::limits::Limits;
use super::value::{Statement, Value};
use crate::raw_sqlite::{PrepareError, Prepared, RawDb, SqliteFailure};

/// What an `execute` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecuteResult {
    /// Rows each statement inserted, updated or deleted, in order (triggers' changes not
    /// counted; 0 for a SELECT).
    pub rows_affected: Vec<u64>,
    /// SQLite's `last_insert_rowid()` on the connection after the last statement: the rowid of
    /// the most recent successful INSERT on it, which may predate this request if it inserted
    /// nothing.
    pub last_insert_rowid: i64,
}

/// What a `query` returned.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Runs `statements` in order on `conn`, inside the transaction the caller has open on it,
/// with DDL, PRAGMA, ATTACH, transaction control and writes to tandem's tables refused. Stops
/// at the first failing statement; undoing the earlier ones is the caller's (roll back).
/// Refused whole, before anything runs, when over `limits` or when `conn` has no transaction
/// open.
pub async fn execute(
    conn: &mut SqliteConnection,
    statements: &[Statement],
    limits: &Limits,
) -> Result<ExecuteResult, DataError> {
    limits.check(statements)?;
    let mut handle = conn.lock_handle().await?;
    execute_locked(RawDb::new(&mut handle), statements, limits, Mode::Execute)
}

/// `execute` on a connection whose handle the caller has locked: the store's write path runs
/// a client's statements in the same synchronous stretch as its own. `mode` is `Execute` for a
/// client, `Node` for the node's own writes.
pub(crate) fn execute_locked(
    db: RawDb<'_>,
    statements: &[Statement],
    limits: &Limits,
    mode: Mode,
) -> Result<ExecuteResult, DataError> {
    limits.check(statements)?;
    if db.autocommit() {
        return Err(DataError::NoTransaction);
    }
    let guard = Guard::install(db, mode, protected_tables(limits));
    let mut rows_affected = Vec::with_capacity(statements.len());
    for (index, statement) in statements.iter().enumerate() {
        rows_affected.push(execute_one(&guard, index, statement, limits)?);
    }
    Ok(ExecuteResult {
        rows_affected,
        last_insert_rowid: db.last_insert_rowid(),
    })
}

fn protected_tables(limits: &Limits) -> super::authorizer::ProtectedTables {
    super::authorizer::ProtectedTables {
        private: limits.private_tables.clone(),
        node_only: limits.node_only_tables.clone(),
    }
}

/// Runs one statement to completion and returns the rows it changed. Rows it returns (a
/// SELECT, or RETURNING) are stepped over and dropped; the timeout bounds them.
fn execute_one(
    guard: &Guard<'_>,
    index: usize,
    statement: &Statement,
    limits: &Limits,
) -> Result<u64, DataError> {
    guard.start_statement(limits.statement_timeout);
    let mut prepared = prepare(guard, index, statement)?;
    while prepared
        .step()
        .map_err(|failure| failed(guard, index, failure, limits))?
    {}
    Ok(if prepared.is_read_only() {
        0
    } else {
        prepared.changes()
    })
}

/// Runs one read-only `statement` on `conn` and returns its rows, at most `limits.max_rows`.
pub async fn query(
    conn: &mut SqliteConnection,
    statement: &Statement,
    limits: &Limits,
) -> Result<QueryResult, DataError> {
    limits.check(std::slice::from_ref(statement))?;
    let mut handle = conn.lock_handle().await?;
    let guard = Guard::install(
        RawDb::new(&mut handle),
        Mode::Query,
        protected_tables(limits),
    );
    guard.start_statement(limits.statement_timeout);
    let mut prepared = prepare(&guard, 0, statement)?;
    // The authorizer already refused every write; this second look costs nothing.
    if !prepared.is_read_only() {
        return Err(DataError::Refused {
            reason: "Query is read-only; use Execute".to_owned(),
        });
    }
    let columns = prepared.column_names();
    let mut rows = Vec::new();
    while prepared
        .step()
        .map_err(|failure| failed(&guard, 0, failure, limits))?
    {
        // Bound the response: one row past the limit fails the query rather than truncating
        // it silently.
        if rows.len() == limits.max_rows {
            return Err(DataError::TooLarge {
                what: "the number of rows",
                limit: limits.max_rows as u64,
            });
        }
        rows.push(prepared.row());
    }
    Ok(QueryResult { columns, rows })
}

/// Prepares and binds `statement` under the guard.
fn prepare<'g>(
    guard: &'g Guard<'_>,
    index: usize,
    statement: &Statement,
) -> Result<Prepared<'g>, DataError> {
    let shape_or_sql = |error| match error {
        PrepareError::Shape(reason) => DataError::BadStatement { index, reason },
        PrepareError::Sqlite(failure) => failed_sql(guard, index, failure),
    };
    // Kept prepared per mode: the authorizer that allowed it ran under that mode's rules.
    let mut prepared =
        Prepared::cached(guard.db(), guard.mode_name(), &statement.sql).map_err(shape_or_sql)?;
    prepared.bind(&statement.params).map_err(shape_or_sql)?;
    Ok(prepared)
}

/// Turns a failure while running into the error that says why: the deadline, or SQLite's.
fn failed(guard: &Guard<'_>, index: usize, failure: SqliteFailure, limits: &Limits) -> DataError {
    if failure.code == ffi::SQLITE_INTERRUPT && guard.timed_out() {
        return DataError::Timeout {
            index,
            limit: limits.statement_timeout,
        };
    }
    failed_sql(guard, index, failure)
}

/// Turns a SQLite failure into the authorizer's refusal, if it was one, or SQLite's message.
fn failed_sql(guard: &Guard<'_>, index: usize, failure: SqliteFailure) -> DataError {
    let refusal = guard.take_refusal();
    match (failure.code & 0xff, refusal) {
        (ffi::SQLITE_AUTH, Some(reason)) => DataError::Refused { reason },
        (ffi::SQLITE_AUTH, None) => DataError::Refused {
            reason: format!("statement {index}: {}", failure.message),
        },
        _ => DataError::Sql {
            index,
            message: failure.message,
        },
    }
}
