//! `WriterTransaction`: a transaction on the writer connection, issued as plain SQL.
//!
//! Every write to `data.db` (client writes, applying the peer's entries, migrations, installing
//! capture) runs in one of these rather than in sqlx's `Transaction`, because sqlx keeps its own
//! count of open transactions and savepoints, and that count goes wrong when a statement ends
//! the transaction behind its back (`INSERT OR ROLLBACK`, `RAISE(ROLLBACK)` in an application
//! trigger, a failed COMMIT). Here a transaction that was not committed or rolled back cleanly
//! is never returned to the pool: dropping it closes the connection, SQLite rolls back whatever
//! it held, and the pool opens a fresh writer connection when next needed. Not here: what the
//! transaction does.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteRow;
use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool};

use super::error::StoreError;

/// An open `BEGIN IMMEDIATE` transaction on the writer connection. Dropped without `commit` or
/// `rollback`, it rolls back by closing the connection.
pub struct WriterTransaction {
    /// `Some` until `commit`, `rollback` or drop: the connection, inside the transaction.
    connection: Option<PoolConnection<Sqlite>>,
}

impl WriterTransaction {
    /// Takes the writer connection (waiting for it up to the pool's acquire timeout) and begins.
    /// IMMEDIATE takes the write lock at once, so a later statement never meets SQLITE_BUSY
    /// half-way through (from a snapshot's reader or a `sqlite3` session, say).
    pub async fn begin(writer: &SqlitePool) -> Result<WriterTransaction, StoreError> {
        let mut transaction = WriterTransaction {
            connection: Some(writer.acquire().await?),
        };
        execute(&mut transaction, "BEGIN IMMEDIATE").await?;
        Ok(transaction)
    }

    /// `begin`, then runs `query` (one statement) inside the new transaction in the same round trip to sqlx's
    /// worker thread; returns its first row.
    pub async fn begin_and_fetch(
        writer: &SqlitePool,
        query: &'static str,
    ) -> Result<(WriterTransaction, Option<SqliteRow>), StoreError> {
        let mut transaction = WriterTransaction {
            connection: Some(writer.acquire().await?),
        };
        let sql = format!("BEGIN IMMEDIATE; {query}");
        let row = transaction.fetch_optional(sql.as_str()).await?;
        Ok((transaction, row))
    }

    /// Commits. On error the connection is closed, so what COMMIT left open rolls back.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        execute(&mut self, "COMMIT").await?;
        drop(self.connection.take());
        Ok(())
    }

    /// Rolls back. On error the connection is closed, which rolls back all the same.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        execute(&mut self, "ROLLBACK").await?;
        drop(self.connection.take());
        Ok(())
    }
}

impl Deref for WriterTransaction {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Invariant: `Some` until `commit`, `rollback` or drop, which all consume the value.
        self.connection
            .as_deref()
            .expect("a writer transaction holds its connection until it ends")
    }
}

impl DerefMut for WriterTransaction {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.connection
            .as_deref_mut()
            .expect("a writer transaction holds its connection until it ends")
    }
}

impl Drop for WriterTransaction {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            tracing::debug!("a writer transaction ended without commit: closing its connection");
            drop(connection.detach());
        }
    }
}

/// Runs one of the store's own statements (BEGIN, SAVEPOINT, ...). Through `Executor::execute`,
/// not `raw_sql`, whose future the compiler cannot prove `Send`.
pub async fn execute(connection: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    connection.execute(sql).await.map(drop)
}
