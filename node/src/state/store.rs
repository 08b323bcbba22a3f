//! `state.db`: the node-local SQLite file. Never replicated, never overwritten by a snapshot.
//!
//! It holds the durable record of the role machine (epoch, term, disk state, monitoring,
//! maintenance), the history of terms, the events, and the outbox of alert mails. Writes use
//! `synchronous=FULL`, so a write
//! that returned is on disk before the driver acts on it. Only the driver writes; the admin
//! service reads.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use crate::role::{DiskState, Durable, Monitoring, Term};

/// Events kept in `state.db`; older ones are deleted as new ones arrive.
const EVENTS_KEPT: i64 = 100_000;
/// Admin readers at once; more wait up to `READER_ACQUIRE_TIMEOUT`, then get an error.
const READERS_MAX: u32 = 2;
const READER_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Followers that fall this far behind re-read from the table.
const EVENT_BROADCAST_BOUND: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state.db at {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("state.db: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("state.db holds an invalid value in {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
}

/// One row of the events table: the "log window".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub message: String,
}

/// One row of the terms history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TermRecord {
    pub epoch: u64,
    pub node: String,
    pub started_at_ms: i64,
    pub reason: String,
}

#[derive(Clone)]
pub struct StateStore {
    /// The driver's one connection: writes never wait behind an admin read.
    writer: SqlitePool,
    /// Read-only connections for the admin service; a slow reader waits here, never the driver.
    reader: SqlitePool,
    /// New events for `tandemctl events --follow`; lagging followers re-read the table.
    events: broadcast::Sender<EventRecord>,
    /// Set when `[alerts]` is configured: events of the mailed kinds also enter the outbox, in
    /// the same transaction (see `crate::ops::alerts`).
    mail: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when a mail enters the outbox.
    pub outbox_added: Arc<tokio::sync::Notify>,
}

/// One mail of the outbox.
#[derive(Clone, Debug)]
pub struct OutboxMail {
    pub id: i64,
    pub event_id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub message: String,
    pub attempts: i64,
}

/// Unsent mails kept at most; past it a new event is not queued for mail (logged instead), so a
/// mail server that is gone for weeks cannot fill the disk.
const OUTBOX_UNSENT_MAX: i64 = 10_000;
/// Sent mails kept for inspection.
const OUTBOX_SENT_KEPT: i64 = 1_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS durable (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    max_epoch_seen INTEGER NOT NULL,
    term_epoch INTEGER, term_node TEXT, term_priority INTEGER,
    handing_over_epoch INTEGER, handing_over_node TEXT, handing_over_priority INTEGER,
    disk TEXT NOT NULL,
    monitoring TEXT NOT NULL,
    monitoring_stamp INTEGER NOT NULL,
    maintenance INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch INTEGER NOT NULL, node TEXT NOT NULL, started_at_ms INTEGER NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL, at_ms INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
    sent_ms INTEGER, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_ms, next_attempt_ms);
";

pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

impl StateStore {
    /// Opens (or creates) `data_dir/state.db`.
    pub async fn open(data_dir: &Path) -> Result<StateStore, StoreError> {
        let path = data_dir.join("state.db");
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        sqlx::raw_sql(SCHEMA)
            .execute(&writer)
            .await
            .map_err(open_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS_MAX)
            .acquire_timeout(READER_ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(open_error)?;
        let (events, _) = broadcast::channel(EVENT_BROADCAST_BOUND);
        Ok(StateStore {
            writer,
            reader,
            events,
            mail: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            outbox_added: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The durable record, or the defaults of a node that never ran.
    pub async fn load_durable(&self) -> Result<Durable, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM durable WHERE id = 1")
            .fetch_optional(&self.writer)
            .await?
        else {
            return Ok(Durable::default());
        };
        let disk: String = row.try_get("disk")?;
        let monitoring: String = row.try_get("monitoring")?;
        Ok(Durable {
            max_epoch_seen: u64_column(&row, "max_epoch_seen")?,
            term: term_columns(&row, "term")?,
            handing_over: term_columns(&row, "handing_over")?,
            disk: DiskState::parse(&disk).ok_or(StoreError::Corrupt {
                column: "disk",
                value: disk,
            })?,
            monitoring: Monitoring::parse(&monitoring).ok_or(StoreError::Corrupt {
                column: "monitoring",
                value: monitoring,
            })?,
            monitoring_stamp: u64_column(&row, "monitoring_stamp")?,
            maintenance: row.try_get::<i64, _>("maintenance")? != 0,
        })
    }

    /// Writes the durable record; returns once it is on disk.
    pub async fn save_durable(&self, durable: &Durable) -> Result<(), StoreError> {
        let term = durable.term.as_ref();
        let handing_over = durable.handing_over.as_ref();
        sqlx::query(
            "INSERT OR REPLACE INTO durable (id, max_epoch_seen, term_epoch, term_node, term_priority,
             handing_over_epoch, handing_over_node, handing_over_priority, disk, monitoring,
             monitoring_stamp, maintenance) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(to_i64(durable.max_epoch_seen))
        .bind(term.map(|t| to_i64(t.epoch)))
        .bind(term.map(|t| t.rank.name.clone()))
        .bind(term.map(|t| i64::from(t.rank.priority)))
        .bind(handing_over.map(|t| to_i64(t.epoch)))
        .bind(handing_over.map(|t| t.rank.name.clone()))
        .bind(handing_over.map(|t| i64::from(t.rank.priority)))
        .bind(durable.disk.as_str())
        .bind(durable.monitoring.as_str())
        .bind(to_i64(durable.monitoring_stamp))
        .bind(i64::from(durable.maintenance))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn record_term(&self, term: &Term, reason: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO terms (epoch, node, started_at_ms, reason) VALUES (?, ?, ?, ?)")
            .bind(to_i64(term.epoch))
            .bind(term.node())
            .bind(wall_clock_ms())
            .bind(reason)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn history(&self) -> Result<Vec<TermRecord>, StoreError> {
        let rows = sqlx::query("SELECT epoch, node, started_at_ms, reason FROM terms ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TermRecord {
                    epoch: u64_column(row, "epoch")?,
                    node: row.try_get("node")?,
                    started_at_ms: row.try_get("started_at_ms")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// From now on, events of the mailed kinds also enter the outbox.
    pub fn enable_mail(&self) {
        self.mail.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Appends an event and tells followers; an event of a mailed kind also enters the outbox
    /// in the same transaction, so a mail is queued exactly once per event.
    pub async fn record_event(&self, kind: &str, message: &str) -> Result<EventRecord, StoreError> {
        self.record_event_at(kind, message, wall_clock_ms()).await
    }

    /// [`record_event`](Self::record_event) stamped with the time it happened (`at_ms`, wall
    /// clock), not the time it reached the disk.
    pub async fn record_event_at(
        &self,
        kind: &str,
        message: &str,
        at_ms: i64,
    ) -> Result<EventRecord, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let id = sqlx::query("INSERT INTO events (at_ms, kind, message) VALUES (?, ?, ?)")
            .bind(at_ms)
            .bind(kind)
            .bind(message)
            .execute(&mut *transaction)
            .await?
            .last_insert_rowid();
        if self.mail.load(std::sync::atomic::Ordering::SeqCst)
            && super::event_kinds::is_mailed(kind)
        {
            let unsent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_ms IS NULL")
                    .fetch_one(&mut *transaction)
                    .await?;
            if unsent < OUTBOX_UNSENT_MAX {
                sqlx::query(
                    "INSERT INTO outbox (event_id, at_ms, kind, message, next_attempt_ms) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(at_ms)
                .bind(kind)
                .bind(message)
                .bind(at_ms)
                .execute(&mut *transaction)
                .await?;
            } else {
                tracing::error!(kind, "the alert outbox is full; not mailed: {message}");
            }
        }
        transaction.commit().await?;
        if self.mail.load(std::sync::atomic::Ordering::SeqCst) {
            self.outbox_added.notify_one();
        }
        if id % 1000 == 0 {
            sqlx::query("DELETE FROM events WHERE id <= ?")
                .bind(id - EVENTS_KEPT)
                .execute(&self.writer)
                .await?;
        }
        let record = EventRecord {
            id,
            at_ms,
            kind: kind.to_string(),
            message: message.to_string(),
        };
        // No follower listening is fine: the event is in the table.
        let _ = self.events.send(record.clone());
        Ok(record)
    }

    /// The oldest unsent mail, if one is due at `now_ms`; otherwise when the next one is due.
    pub async fn next_mail(
        &self,
        now_ms: i64,
    ) -> Result<Result<OutboxMail, Option<i64>>, StoreError> {
        let row = sqlx::query(
            "SELECT id, event_id, at_ms, kind, message, attempts, next_attempt_ms FROM outbox \
             WHERE sent_ms IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else { return Ok(Err(None)) };
        let due: i64 = row.try_get("next_attempt_ms")?;
        if due > now_ms {
            return Ok(Err(Some(due)));
        }
        Ok(Ok(OutboxMail {
            id: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            at_ms: row.try_get("at_ms")?,
            kind: row.try_get("kind")?,
            message: row.try_get("message")?,
            attempts: row.try_get("attempts")?,
        }))
    }

    /// Marks a mail sent (the server accepted it).
    pub async fn mail_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sent_ms = ?, attempts = attempts + 1 WHERE id = ?")
            .bind(now_ms)
            .bind(id)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "DELETE FROM outbox WHERE sent_ms IS NOT NULL AND id NOT IN \
             (SELECT id FROM outbox WHERE sent_ms IS NOT NULL ORDER BY id DESC LIMIT ?)",
        )
        .bind(OUTBOX_SENT_KEPT)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records a failed attempt; the mail is tried again at `next_attempt_ms`.
    pub async fn mail_failed(
        &self,
        id: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? \
             WHERE id = ?",
        )
        .bind(next_attempt_ms)
        .bind(error)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Unsent and sent mails in the outbox (for status and tests).
    pub async fn outbox_counts(&self) -> Result<(u64, u64), StoreError> {
        let (unsent, sent): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE sent_ms IS NULL), \
             count(*) FILTER (WHERE sent_ms IS NOT NULL) FROM outbox",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((unsent.max(0) as u64, sent.max(0) as u64))
    }

    /// The newest `limit` events, oldest first.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, at_ms, kind, message FROM events ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Events after `id`, oldest first, at most `limit`.
    pub async fn events_after(&self, id: i64, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, kind, message FROM events WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_row).collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn event_row(row: &sqlx::sqlite::SqliteRow) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        kind: row.try_get("kind")?,
        message: row.try_get("message")?,
    })
}

/// SQLite integers are signed; the wire layer refuses epochs and stamps above `i64::MAX`, so
/// this conversion never clamps what the node acted on.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("epochs and stamps are bounded to i64::MAX at the wire")
}

fn u64_column(row: &sqlx::sqlite::SqliteRow, column: &'static str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

fn term_columns(
    row: &sqlx::sqlite::SqliteRow,
    prefix: &'static str,
) -> Result<Option<Term>, StoreError> {
    let epoch: Option<i64> = row.try_get(format!("{prefix}_epoch").as_str())?;
    let node: Option<String> = row.try_get(format!("{prefix}_node").as_str())?;
    let priority: Option<i64> = row.try_get(format!("{prefix}_priority").as_str())?;
    match (epoch, node, priority) {
        (Some(epoch), Some(node), Some(priority)) => Ok(Some(Term::new(
            u64::try_from(epoch).map_err(|_| StoreError::Corrupt {
                column: prefix,
                value: epoch.to_string(),
            })?,
            node,
            u32::try_from(priority).map_err(|_| StoreError::Corrupt {
                column: prefix,
                value: priority.to_string(),
            })?,
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn durable_record_round_trips_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).await.unwrap();
        assert_eq!(store.load_durable().await.unwrap(), Durable::default());
        let durable = Durable {
            max_epoch_seen: 7,
            term: Some(Term::new(7, "b", 50)),
            handing_over: Some(Term::new(8, "a", 100)),
            disk: DiskState::Outdated,
            monitoring: Monitoring::Suspended,
            monitoring_stamp: 3,
            maintenance: true,
        };
        store.save_durable(&durable).await.unwrap();
        store.close().await;
        let reopened = StateStore::open(dir.path()).await.unwrap();
        assert_eq!(reopened.load_durable().await.unwrap(), durable);
    }

    #[tokio::test]
    async fn events_list_in_order_and_reach_followers() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).await.unwrap();
        let mut follower = store.subscribe();
        for index in 0..5 {
            store
                .record_event("test", &format!("event {index}"))
                .await
                .unwrap();
        }
        let recent = store.recent_events(3).await.unwrap();
        let messages: Vec<_> = recent.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["event 2", "event 3", "event 4"]);
        assert_eq!(follower.recv().await.unwrap().message, "event 0");
        let after = store.events_after(recent[0].id, 10).await.unwrap();
        assert_eq!(after.len(), 2);
    }

    #[tokio::test]
    async fn history_keeps_terms_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).await.unwrap();
        store
            .record_term(&Term::new(1, "a", 100), "start-up election")
            .await
            .unwrap();
        store
            .record_term(&Term::new(2, "b", 50), "failover")
            .await
            .unwrap();
        let history = store.history().await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!((history[1].epoch, history[1].node.as_str()), (2, "b"));
    }
}
