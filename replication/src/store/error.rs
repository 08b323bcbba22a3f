//! `StoreError`: everything the `data.db` store can fail with.
//!
//! Messages name the file, table, column or log index at fault, so an operator can act on them
//! without reading code. Bad input (a migration, a table list, a peer's entry) gets its own
//! variant; `Sql` is left for the database itself failing. Not for protobuf or gRPC status
//! mapping: that happens at the gRPC edge.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data.db at {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("data.db: {0}")]
    Sql(#[from] sqlx::Error),
    /// SQLite failed a call made around sqlx (the one-stretch write path).
    #[error("data.db: {message} (SQLite result code {code})")]
    Sqlite { code: i32, message: String },

    #[error("cannot read the migrations directory {dir}: {source}")]
    MigrationsDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("migration file {file}: {reason}")]
    MigrationName { file: String, reason: String },
    #[error("migration files {first} and {second} share the number {number}")]
    MigrationDuplicate {
        number: u64,
        first: String,
        second: String,
    },
    #[error("migration {file} failed: {source}")]
    Migration { file: String, source: sqlx::Error },

    #[error("replicated table \"{table}\" does not exist")]
    TableMissing { table: String },
    #[error("replicated table \"{table}\" is a {kind}, not a table")]
    NotATable { table: String, kind: String },
    #[error("table \"{table}\" has no primary key; replicated tables need one")]
    NoPrimaryKey { table: String },
    #[error("table \"{table}\" is internal to SQLite or tandem and cannot be replicated")]
    InternalTable { table: String },
    #[error(
        "table \"{table}\" has more than 63 columns, and its column \"{column}\" holds a \" or \\ \
         or a control character, which capture of such wide tables cannot encode"
    )]
    WideTableColumnName { table: String, column: String },
    #[error("change capture is not installed: run migrate() or install_capture() before writing")]
    CaptureNotInstalled,

    #[error(
        "a statement rolled back the whole write transaction (a ROLLBACK conflict clause or \
         RAISE(ROLLBACK)); none of the group's writes were committed"
    )]
    WriteGroupAborted,

    #[error("begin_write lends out a sqlx connection: open the group with begin_sqlx_write_group")]
    NotSqlxGroup,
    #[error("{field} = {value} does not fit SQLite's signed 64-bit integer")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("log entry {got} is not the next log index (expected {expected}); nothing applied")]
    OutOfOrder { expected: u64, got: u64 },
    #[error(
        "log entry {idx} carries hash {got:#018x} but the chain gives {expected:#018x}; \
         nothing applied"
    )]
    HashMismatch { idx: u64, expected: u64, got: u64 },
    #[error(
        "log entry {idx} is from epoch {epoch}, older than epoch {last_epoch} of the log's last \
         entry; refused"
    )]
    StaleTerm {
        idx: u64,
        epoch: u64,
        last_epoch: u64,
    },
    #[error("log entry {idx}: {reason}")]
    BadEntry { idx: u64, reason: String },
    #[error("applying log entry {idx} to table \"{table}\": {reason}")]
    Apply {
        idx: u64,
        table: String,
        reason: String,
    },
    #[error("applying log entries {first_idx}..={last_idx}, nothing applied: {reason}")]
    ApplyBatch {
        first_idx: u64,
        last_idx: u64,
        reason: String,
    },
    #[error("COMMIT failed, the transaction is rolled back: {reason}")]
    CommitFailed { reason: String },
    #[error("the log no longer holds entries after {after_idx}: it starts at {first_retained}")]
    LogCompacted { after_idx: u64, first_retained: u64 },

    #[error("data.db holds an invalid value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// Converts a u64 the caller gave us into SQLite's i64, refusing values that do not fit.
pub(crate) fn to_sql_int(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

/// Converts an i64 read from data.db back to u64; a negative value means the file is damaged.
pub(crate) fn from_sql_int(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what,
        detail: value.to_string(),
    })
}

impl From<crate::raw_sqlite::SqliteFailure> for StoreError {
    fn from(failure: crate::raw_sqlite::SqliteFailure) -> StoreError {
        StoreError::Sqlite {
            code: failure.code,
            message: failure.message,
        }
    }
}

impl From<crate::raw_sqlite::PrepareError> for StoreError {
    fn from(error: crate::raw_sqlite::PrepareError) -> StoreError {
        match error {
            crate::raw_sqlite::PrepareError::Sqlite(failure) => failure.into(),
            crate::raw_sqlite::PrepareError::Shape(reason) => StoreError::Sqlite {
                code: libsqlite3_sys::SQLITE_MISUSE,
                message: reason,
            },
        }
    }
}
