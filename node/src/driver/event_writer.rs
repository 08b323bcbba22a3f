//! Writes events to `state.db` off the driver's loop.
//!
//! The durable record (`Persist`, `RecordTerm`) stays synchronous in the driver: the node must not
//! act before it is on disk. Events only describe what happened, so a slow disk must not delay the
//! next heartbeat because of them. They go through a bounded queue to one task, in order; when the
//! queue is full the driver waits (back-pressure, nothing dropped). When the driver stops, the
//! queue drains before `state.db` closes.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::state::store::StateStore;

/// Events queued at most; a full queue makes the driver wait.
const QUEUE_BOUND: usize = 1024;

/// The driver's end of the queue.
pub struct EventWriter {
    /// Kind, message, and the wall-clock time the event happened (stamped when queued).
    queue: mpsc::Sender<(String, String, i64)>,
}

impl EventWriter {
    /// Starts the writer task; it ends once every `EventWriter` is dropped and the queue is empty.
    pub fn spawn(store: StateStore) -> (EventWriter, JoinHandle<()>) {
        let (queue, mut pending) = mpsc::channel::<(String, String, i64)>(QUEUE_BOUND);
        let task = tokio::spawn(async move {
            while let Some((kind, message, at_ms)) = pending.recv().await {
                if let Err(error) = store.record_event_at(&kind, &message, at_ms).await {
                    // An operating error: the event is in the log (tracing) but not in state.db.
                    tracing::error!(%error, kind, "cannot record an event in state.db");
                }
            }
        });
        (EventWriter { queue }, task)
    }

    /// Queues an event; waits only while the queue is full.
    pub async fn record(&self, kind: &str, message: &str) {
        crate::http::metrics::global().event(kind);
        if self
            .queue
            .send((
                kind.to_string(),
                message.to_string(),
                crate::state::store::wall_clock_ms(),
            ))
            .await
            .is_err()
        {
            tracing::error!(kind, "event writer stopped; event not recorded: {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_written_in_order_and_drained_before_the_task_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).await.unwrap();
        let (writer, task) = EventWriter::spawn(store.clone());
        for index in 0..50 {
            writer.record("test", &format!("event {index}")).await;
        }
        drop(writer);
        task.await.unwrap();
        let events = store.recent_events(100).await.unwrap();
        let messages: Vec<_> = events.iter().map(|e| e.message.clone()).collect();
        let expected: Vec<_> = (0..50).map(|index| format!("event {index}")).collect();
        assert_eq!(messages, expected);
    }
}
