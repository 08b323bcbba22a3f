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

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool};

use super::error::StoreError;
use crate::raw_sqlite::RawDb;

/// An open `BEGIN IMMEDIATE` transaction on the writer connection. Dropped without `commit` or
/// `rollback`, it rolls back by closing the connection.
pub struct WriterTransaction {
    /// `Some` until `commit`, `rollback` or drop: the connection, inside the transaction.
    connection: Option<PoolConnection<Sqlite>>,
    /// Whether BEGIN has run: a transaction from `acquire` begins in its first `stretch`.
    begun: bool,
    /// The connection's busy timeout, restored after a BEGIN that would not wait.
    busy_timeout: Duration,
}

impl WriterTransaction {
    /// Takes the writer connection (waiting for it up to the pool's acquire timeout) and begins.
    /// IMMEDIATE takes the write lock at once, so a later statement never meets SQLITE_BUSY
    /// half-way through (from a snapshot's reader or a `sqlite3` session, say).
    pub async fn begin(writer: &SqlitePool) -> Result<WriterTransaction, StoreError> {
        let mut transaction = WriterTransaction {
            connection: Some(writer.acquire().await?),
            begun: true,
            busy_timeout: Duration::ZERO,
        };
        execute(&mut transaction, "BEGIN IMMEDIATE").await?;
        Ok(transaction)
    }

    /// Takes the writer connection without beginning: the first `stretch` begins, in the same
    /// round trip to sqlx's worker thread. `busy_timeout` is the connection's (`StoreOptions`).
    pub async fn acquire(
        writer: &SqlitePool,
        busy_timeout: Duration,
    ) -> Result<WriterTransaction, StoreError> {
        Ok(WriterTransaction {
            connection: Some(writer.acquire().await?),
            begun: false,
            busy_timeout,
        })
    }

    /// Runs `stretch` on the raw connection inside the transaction, in one synchronous stretch
    /// under sqlx's handle lock (see `crate::raw_sqlite`), then COMMIT in the same stretch if
    /// `commit_if` says so for its value, which saves the round trip of a separate `commit`.
    /// Returns the value and whether it committed.
    ///
    /// The first stretch begins the transaction with BEGIN IMMEDIATE in the same stretch when
    /// the write lock is free at once; if another process holds it, BEGIN waits for it on
    /// sqlx's worker thread instead.
    ///
    /// The stretch is blocking work on the caller's thread: a client's statement may run up to
    /// its time limit, and COMMIT waits for the disk. There is one writer connection, so at
    /// most one runtime thread is held this way; `tandemd` runs enough runtime threads that
    /// keep-alives never wait for it. (`block_in_place` was tried here and left out: under
    /// load a write group stalled for good with sqlx's worker waiting for the handle lock.)
    /// Once committed the transaction is over: the connection is back in the pool and every
    /// later call fails. A failed COMMIT is an error, and dropping the transaction rolls back.
    pub async fn stretch_and_commit_if<T>(
        &mut self,
        stretch: impl FnOnce(RawDb<'_>) -> Result<T, StoreError>,
        commit_if: impl FnOnce(&T) -> bool,
    ) -> Result<(T, bool), StoreError> {
        let run = |db: RawDb<'_>| {
            let value = stretch(db)?;
            let commit = commit_if(&value);
            if commit {
                db.exec("COMMIT")
                    .map_err(|failure| StoreError::CommitFailed {
                        reason: failure.to_string(),
                    })?;
            }
            Ok((value, commit))
        };
        if self.connection.is_none() {
            // Committed by an earlier stretch: the transaction is over.
            return Err(StoreError::WriteGroupAborted);
        }
        let outcome = if self.begun {
            let mut handle = self.lock_handle().await?;
            run(RawDb::new(&mut handle))
        } else {
            // From here BEGIN may run, so a drop (an error, a panic, a cancelled future) must
            // close the connection rather than hand it back to the pool inside a transaction.
            self.begun = true;
            let busy_timeout = self.busy_timeout;
            let mut run = Some(run);
            let outcome = {
                let mut handle = self.lock_handle().await?;
                let db = RawDb::new(&mut handle);
                match begin_at_once(db, busy_timeout)? {
                    true => run.take().map(|run| run(db)),
                    false => None,
                }
            };
            match (outcome, run) {
                (Some(outcome), _) => outcome,
                (None, Some(run)) => {
                    execute(self, "BEGIN IMMEDIATE").await?;
                    let mut handle = self.lock_handle().await?;
                    run(RawDb::new(&mut handle))
                }
                (None, None) => unreachable!("a stretch that did not run is kept"),
            }
        };
        if let Ok((_, true)) = &outcome {
            // Committed: the connection goes back to the pool as it came.
            drop(self.connection.take());
        }
        outcome
    }

    /// Commits. On error the connection is closed, so what COMMIT left open rolls back.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        // `connection` is gone once a stretch committed: nothing is left to do.
        if self.begun && self.connection.is_some() {
            execute(&mut self, "COMMIT").await?;
        }
        // Not begun: nothing to commit, and the connection goes back as it came.
        drop(self.connection.take());
        Ok(())
    }

    /// Rolls back. On error the connection is closed, which rolls back all the same.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        // After a stretch committed there is nothing left to roll back.
        if self.begun && self.connection.is_some() {
            execute(&mut self, "ROLLBACK").await?;
        }
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
            if !self.begun {
                // Never begun: nothing to roll back.
                return;
            }
            tracing::debug!("a writer transaction ended without commit: closing its connection");
            drop(connection.detach());
        }
    }
}

/// BEGIN IMMEDIATE without waiting: `false` if another connection holds the write lock.
fn begin_at_once(db: RawDb<'_>, busy_timeout: Duration) -> Result<bool, StoreError> {
    db.set_busy_timeout(Duration::ZERO);
    let begun = db.exec("BEGIN IMMEDIATE");
    db.set_busy_timeout(busy_timeout);
    match begun {
        Ok(()) => Ok(true),
        Err(failure) if failure.code & 0xff == libsqlite3_sys::SQLITE_BUSY => Ok(false),
        Err(failure) => Err(failure.into()),
    }
}

/// Runs one of the store's own statements (BEGIN, SAVEPOINT, ...). Through `Executor::execute`,
/// not `raw_sql`, whose future the compiler cannot prove `Send`.
pub async fn execute(connection: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    connection.execute(sql).await.map(drop)
}
