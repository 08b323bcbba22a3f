//! The statement guard of the Data API (DESIGN.md §4, "Data API"): what a client's `Execute` and
//! `Query` may run on `data.db`, and running it.
//!
//! # Layout
//! - `value`: `Value` (and its alias `Param`) and `Statement`: SQL text with typed parameters.
//! - `limits`: `Limits` on a request's size, rows and time, checked before anything runs.
//! - `error`: `DataError`.
//! - `authorizer`: the SQLite authorizer that refuses DDL, PRAGMA, ATTACH, transaction control
//!   and writes to tandem's own tables, and the progress handler that enforces the time limit;
//!   both installed on the raw connection only while a request runs.
//! - `run`: `execute` and `query`.
//!
//! # Invariants
//! - The authorizer is installed, the client's statements are prepared and run, and the
//!   authorizer is removed, all in one synchronous stretch while sqlx's handle lock is held:
//!   there is no `.await` in between, so a cancelled request can never leave the authorizer (or a
//!   dangling pointer to its state) on the connection, and the store's own statements, triggers
//!   and migrations never run under it.
//! - Client statements are prepared fresh and finalized, never put in sqlx's statement cache, so
//!   a client's SQL can never reuse a statement that was authorized without the guard.
//! - One `Statement` holds exactly one SQL statement.
//!
//! Not here: transactions (the store's write path owns BEGIN/COMMIT), request ids and retries,
//! roles and the passive's refusal, and mapping to gRPC status codes (the gRPC edge does that).

mod authorizer;
mod error;
mod limits;
mod run;
mod value;

#[cfg(test)]
mod tests;

pub use authorizer::Mode;
pub(crate) use authorizer::install_permanent_authorizer;
pub use error::DataError;
pub use limits::Limits;
pub(crate) use run::execute_locked;
pub use run::{ExecuteResult, QueryResult, execute, query};
pub use value::{Param, Statement, Value};
