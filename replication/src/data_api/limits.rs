//! `Limits`: the bounds on one Data API request, so that no client can make the writer hold its
//! lock, or the node hold memory, without end.
//!
//! Not here: rate limits and request counts per client (the gateway's business).

use std::time::Duration;

use super::error::DataError;
use super::value::Statement;

/// Bounds on one request. A request over a size bound is refused whole before anything runs; a
/// query over `max_rows` fails when row `max_rows + 1` is read; a statement past
/// `statement_timeout` is interrupted and fails; SQLite then rolls back the caller's whole
/// transaction if the statement was writing (so a write group sharing it is aborted too: the
/// store reports that as `StoreError::WriteGroupAborted`).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Statements in one `Execute`: bounds the time the writer is held by one request.
    pub max_statements: usize,
    /// SQL text in one request, all statements together, in bytes.
    pub max_sql_bytes: usize,
    /// Parameters in one request, all statements together.
    pub max_params: usize,
    /// TEXT and BLOB parameter bytes in one request, all together: bounds the request's memory.
    pub max_param_bytes: usize,
    /// Rows one `Query` may return: bounds the response's memory.
    pub max_rows: usize,
    /// Wall-clock time one statement may run, enforced inside SQLite by a progress handler.
    pub statement_timeout: Duration,
    /// Tables clients may neither read nor write (they hold secrets, such as the gateway's
    /// password and token hashes); only the node's own requests (`Mode::Node`) reach them.
    /// Shared, so cloning the limits for each write costs no allocation.
    pub private_tables: std::sync::Arc<[String]>,
    /// Tables clients may read but not write (the gateway's calls and CDRs); only the node
    /// writes them.
    pub node_only_tables: std::sync::Arc<[String]>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_statements: 100,
            max_sql_bytes: 1024 * 1024,
            max_params: 10_000,
            max_param_bytes: 16 * 1024 * 1024,
            max_rows: 10_000,
            statement_timeout: Duration::from_secs(5),
            private_tables: std::sync::Arc::from([]),
            node_only_tables: std::sync::Arc::from([]),
        }
    }
}

impl Limits {
    /// Refuses `statements` if together they exceed a size bound.
    pub fn check(&self, statements: &[Statement]) -> Result<(), DataError> {
        let too_large = |what, limit: usize| DataError::TooLarge {
            what,
            limit: limit as u64,
        };
        if statements.len() > self.max_statements {
            return Err(too_large("the number of statements", self.max_statements));
        }
        let sql_bytes: usize = statements.iter().map(|s| s.sql.len()).sum();
        if sql_bytes > self.max_sql_bytes {
            return Err(too_large("the SQL text (bytes)", self.max_sql_bytes));
        }
        let params: usize = statements.iter().map(|s| s.params.len()).sum();
        if params > self.max_params {
            return Err(too_large("the number of parameters", self.max_params));
        }
        let param_bytes: usize = statements
            .iter()
            .flat_map(|s| &s.params)
            .map(|p| p.size_bytes())
            .sum();
        if param_bytes > self.max_param_bytes {
            return Err(too_large("the parameters (bytes)", self.max_param_bytes));
        }
        Ok(())
    }
}
