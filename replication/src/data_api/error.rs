//! `DataError`: why a Data API request was not run, or failed while running.
//!
//! Everything here is the client's to act on (fix the SQL, shrink the request); the gRPC edge
//! maps it to INVALID_ARGUMENT (or DEADLINE_EXCEEDED for `Timeout`). A failure of the connection
//! itself comes back as `Sql` too, with SQLite's own message.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A limit of `Limits` was exceeded; checked before anything runs, except `rows`.
    #[error("request too large: {what} exceeds the limit of {limit}")]
    TooLarge { what: &'static str, limit: u64 },
    /// The authorizer refused the statement; `reason` names what was refused.
    #[error("{reason}")]
    Refused { reason: String },
    /// The statement text or its parameters do not make one runnable statement.
    #[error("statement {index}: {reason}")]
    BadStatement { index: usize, reason: String },
    /// SQLite failed the statement: a syntax error, a constraint, a RAISE in a trigger.
    #[error("statement {index}: {message}")]
    Sql { index: usize, message: String },
    /// The statement ran longer than `Limits::statement_timeout` and was interrupted. If it was
    /// writing, SQLite has rolled back the whole transaction it ran in.
    #[error("statement {index} ran longer than {limit:?} and was interrupted")]
    Timeout { index: usize, limit: Duration },
    /// `execute` was called outside a transaction; the caller owns BEGIN and COMMIT.
    #[error("Execute needs a transaction open on the connection; none is")]
    NoTransaction,
    /// sqlx could not hand over the connection's raw handle.
    #[error("data.db connection: {0}")]
    Connection(#[from] sqlx::Error),
}
