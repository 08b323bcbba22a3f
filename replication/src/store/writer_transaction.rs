//! `WriterTransaction`: a transaction on the writer connection, issued as plain SQL.
//!
//! Every write to `data.db` (client writes, applying the peer's entries, migrations, installing
//! capture) runs in one of these rather than in sqlx's `Transaction`, because sqlx keeps its own
//! count of open transactions and savepoints, and that count goes wrong when a statement ends
//! the transaction behind its back (`INSERT OR ROLLBACK`, `RAISE(ROLLBACK)` in an application
//! trigger, a failed COMMIT). Here a transaction that was not committed or rolled back cleanly
//! is never returned to the pool: dropping it closes the connection, SQLite rolls back whatever
//! it held, and the pool opens a fresh writer connection when next needed.
//!
//! Two connections write: sqlx's pooled one for the store's occasional writes (migrations,
//! capture, rewind, retention), and the store's own `OwnedDb` for the hot path, client writes
//! and applied batches, which then never wait for sqlx's worker thread and keep their prepared
//! statements. There is still one writer: every write takes the one write turn, the mutex
//! around the `OwnedDb`, for as long as it runs (`write_turn`), so the two never write at the
//! same time and never wait on each other's SQLite lock. Not here: what the transaction does.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::error::StoreError;
use crate::raw_sqlite::{OwnedDb, RawDb};

/// How long a write waits for the write turn (sqlx's pool default for its connections).
const OWNED_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection a transaction runs on.
enum Backend {
    /// sqlx's writer connection: the store's occasional writes (migrations, capture, rewind),
    /// which run sqlx statements. The turn is held, unused, so no other write runs meanwhile.
    Pooled {
        connection: PoolConnection<Sqlite>,
        _turn: OwnedMutexGuard<OwnedDb>,
    },
    /// The store's own connection (`OwnedDb`): client writes and applied batches, which run
    /// only synchronous stretches.
    Owned(OwnedMutexGuard<OwnedDb>),
}

/// An open `BEGIN IMMEDIATE` transaction on a writer connection. Dropped without `commit` or
/// `rollback`, it rolls back: a sqlx connection is closed, the store's own rolls back at once.
pub struct WriterTransaction {
    /// `Some` until `commit`, `rollback` or drop: the connection, inside the transaction.
    connection: Option<Backend>,
    /// Whether BEGIN has run: a transaction from `acquire` begins in its first `stretch`.
    begun: bool,
    /// The connection's busy timeout, restored after a BEGIN that would not wait.
    busy_timeout: Duration,
}

impl WriterTransaction {
    /// Takes sqlx's writer connection (waiting for it up to the pool's acquire timeout) and
    /// begins. IMMEDIATE takes the write lock at once, so a later statement never meets
    /// SQLITE_BUSY half-way through (from a snapshot's reader or a
    /// `sqlite3` session, say).
    /// The write turn is taken first (see the module).
    pub async fn begin(
        writer: &SqlitePool,
        owned: &Arc<Mutex<OwnedDb>>,
    ) -> Result<WriterTransaction, StoreError> {
        let turn = write_turn(owned).await?;
        let connection = writer.acquire().await?;
        let mut transaction = WriterTransaction {
            connection: Some(Backend::Pooled {
                connection,
                _turn: turn,
            }),
            begun: true,
            busy_timeout: Duration::ZERO,
        };
        execute(&mut transaction, "BEGIN IMMEDIATE").await?;
        Ok(transaction)
    }

    /// Takes the store's own connection, waiting while another transaction holds it (up to
    /// 30 s, then `PoolTimedOut`), without beginning: the first `stretch` begins. `busy_timeout` is the connection's
    /// (`StoreOptions`). A transaction an abandoned holder left open is rolled back first.
    pub async fn acquire(
        owned: &Arc<Mutex<OwnedDb>>,
        busy_timeout: Duration,
    ) -> Result<WriterTransaction, StoreError> {
        let mut guard = write_turn(owned).await?;
        let db = open(&mut guard)?;
        if !db.autocommit() {
            tracing::debug!("the writer connection was left inside a transaction: rolling back");
            if let Err(failure) = db.exec("ROLLBACK") {
                guard.close();
                return Err(failure.into());
            }
        }
        Ok(WriterTransaction {
            connection: Some(Backend::Owned(guard)),
            begun: false,
            busy_timeout,
        })
    }

    /// Runs `stretch` on the raw connection inside the transaction, in one synchronous stretch
    /// (on sqlx's connection, under its handle lock: see `crate::raw_sqlite`), then COMMIT in
    /// the same stretch if `commit_if` says so for its value, which saves the round trip of a
    /// separate `commit`. Returns the value and whether it committed.
    ///
    /// The first stretch begins the transaction with BEGIN IMMEDIATE in the same stretch when
    /// the write lock is free at once; if another connection holds it, BEGIN waits for it off
    /// the runtime (sqlx's worker thread, or a blocking thread for the store's own).
    ///
    /// The stretch is blocking work on the caller's thread: a client's statement may run up to
    /// its time limit, and COMMIT waits for the disk. There is one store connection for these,
    /// so at most one runtime thread is held this way; `tandemd` runs enough runtime threads
    /// that keep-alives never wait for it. (`block_in_place` was tried here and left out: under
    /// load a write group stalled for good with sqlx's worker waiting for the handle lock.)
    /// Once committed the transaction is over: the connection is released and every later
    /// call fails. A failed COMMIT is an error, and dropping the transaction rolls back.
    pub async fn stretch_and_commit_if<T>(
        &mut self,
        stretch: impl FnOnce(RawDb<'_>) -> Result<T, StoreError>,
        commit_if: impl FnOnce(&T) -> bool,
    ) -> Result<(T, bool), StoreError> {
        let run = |db: RawDb<'_>| {
            let value = stretch(db)?;
            let commit = commit_if(&value);
            if commit {
                db.run_cached("COMMIT")
                    .map_err(|failure| StoreError::CommitFailed {
                        reason: failure.to_string(),
                    })?;
            }
            Ok((value, commit))
        };
        let outcome = match &mut self.connection {
            // Committed by an earlier stretch: the transaction is over.
            None => return Err(StoreError::WriteGroupAborted),
            Some(Backend::Owned(guard)) => {
                let begun = self.begun;
                // From here BEGIN may run, so a drop must roll back.
                self.begun = true;
                let db = open(guard)?;
                if begun || begin_at_once(db, self.busy_timeout)? {
                    run(db)
                } else {
                    run(open(self.begin_waiting_owned().await?)?)
                }
            }
            Some(Backend::Pooled { .. }) => self.stretch_pooled(run).await,
        };
        if let Ok((_, true)) = &outcome {
            // Committed: the connection is released as it came.
            drop(self.connection.take());
        }
        outcome
    }

    /// BEGIN IMMEDIATE on the store's own connection, waiting on a blocking thread for a write
    /// lock another connection holds. Cancelled half-way, the connection may be left inside the
    /// transaction; `acquire` rolls that back. Returns the connection, begun.
    async fn begin_waiting_owned(&mut self) -> Result<&mut OwnedDb, StoreError> {
        let Some(Backend::Owned(guard)) = self.connection.take() else {
            return Err(StoreError::WriteGroupAborted);
        };
        let waited = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let begun = open(&mut guard).and_then(|db| Ok(db.exec("BEGIN IMMEDIATE")?));
            (guard, begun)
        })
        .await;
        match waited {
            Ok((guard, begun)) => {
                begun?;
                match self.connection.insert(Backend::Owned(guard)) {
                    Backend::Owned(guard) => Ok(guard),
                    Backend::Pooled { .. } => unreachable!("an owned connection was just put back"),
                }
            }
            Err(join) => Err(StoreError::Sqlite {
                code: libsqlite3_sys::SQLITE_INTERNAL,
                message: format!("waiting for the write lock failed: {join}"),
            }),
        }
    }

    /// `stretch_and_commit_if`'s body on sqlx's connection.
    async fn stretch_pooled<T>(
        &mut self,
        run: impl FnOnce(RawDb<'_>) -> Result<(T, bool), StoreError>,
    ) -> Result<(T, bool), StoreError> {
        if self.begun {
            let mut handle = self.lock_handle().await?;
            return run(RawDb::new(&mut handle));
        }
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
    }

    /// Whether this runs on the store's own connection (no sqlx statements possible).
    pub(super) fn is_owned(&self) -> bool {
        matches!(self.connection, Some(Backend::Owned(_)))
    }

    /// Commits. On error the transaction rolls back (a sqlx connection is closed).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.end("COMMIT").await
    }

    /// Rolls back. On error a sqlx connection is closed, which rolls back all the same.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, sql: &str) -> Result<(), StoreError> {
        // `connection` is gone once a stretch committed; not begun, there is nothing to end.
        if self.begun {
            match &mut self.connection {
                None => {}
                Some(Backend::Pooled { .. }) => execute(self, sql).await?,
                Some(Backend::Owned(guard)) => open(guard)?.exec(sql)?,
            }
        }
        // Ended: the connection is released as it came.
        drop(self.connection.take());
        Ok(())
    }
}

impl Deref for WriterTransaction {
    type Target = SqliteConnection;

    /// sqlx's connection. Only transactions from `begin` have one.
    fn deref(&self) -> &SqliteConnection {
        // Invariant: `Some` until `commit`, `rollback` or drop, which all consume the value.
        match &self.connection {
            Some(Backend::Pooled { connection, .. }) => connection,
            _ => panic!("sqlx statements run only in a transaction from WriterTransaction::begin"),
        }
    }
}

impl DerefMut for WriterTransaction {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.connection {
            Some(Backend::Pooled { connection, .. }) => connection,
            _ => panic!("sqlx statements run only in a transaction from WriterTransaction::begin"),
        }
    }
}

impl Drop for WriterTransaction {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if !self.begun {
            // Never begun: nothing to roll back.
            return;
        }
        match connection {
            Backend::Pooled { connection, .. } => {
                tracing::debug!(
                    "a writer transaction ended without commit: closing its connection"
                );
                drop(connection.detach());
            }
            Backend::Owned(mut guard) => {
                tracing::debug!("a writer transaction ended without commit: rolling back");
                if let Some(db) = guard.raw()
                    && !db.autocommit()
                    && let Err(failure) = db.exec("ROLLBACK")
                {
                    // `acquire` tries again; failing there too, it closes the connection.
                    tracing::warn!(%failure, "rolling back an abandoned write failed");
                }
            }
        }
    }
}

/// The store's own connection, or `PoolClosed` (as sqlx's pool says) once the store closed it.
fn open(owned: &mut OwnedDb) -> Result<RawDb<'_>, StoreError> {
    owned.raw().ok_or_else(|| sqlx::Error::PoolClosed.into())
}

/// Takes the one write turn (the `OwnedDb`'s mutex), waiting up to 30 s for the write that
/// holds it, then failing as sqlx's pool does when it has no connection to give.
pub(super) async fn write_turn(
    owned: &Arc<Mutex<OwnedDb>>,
) -> Result<OwnedMutexGuard<OwnedDb>, StoreError> {
    tokio::time::timeout(OWNED_ACQUIRE_TIMEOUT, owned.clone().lock_owned())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut.into())
}

/// BEGIN IMMEDIATE without waiting: `false` if another connection holds the write lock.
fn begin_at_once(db: RawDb<'_>, busy_timeout: Duration) -> Result<bool, StoreError> {
    db.set_busy_timeout(Duration::ZERO);
    let begun = db.run_cached("BEGIN IMMEDIATE");
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
