//! Forgetting old request ids: `tandem_requests` keeps the outcome of every `Execute` that
//! carried a request id for `[replication] request_retention`; then the active deletes it, as
//! a replicated write, so both nodes forget it and a retry after that runs again.
//!
//! Deletes go in batches of `PRUNE_BATCH` rows, one write each, so pruning a large backlog
//! never holds the writer long. Not here: recording request ids (the store's write path).

use std::time::Duration;

use tandem_replication::data_api::{Mode, Statement, Value};

use super::handle::Replication;
use super::writer::submit;

/// Rows deleted per write.
const PRUNE_BATCH: i64 = 1000;
/// Bounds of the interval between two prunes (a quarter of the retention in between).
const PRUNE_EVERY_MIN: Duration = Duration::from_millis(250);
const PRUNE_EVERY_MAX: Duration = Duration::from_secs(600);

/// The prune task: on the active, every so often, deletes the request ids older than the
/// retention. On the passive the writer refuses, and the task just waits for the next turn.
pub async fn run(repl: Replication) {
    let retention = repl.inner.config.replication.request_retention;
    let every = (retention / 4).clamp(PRUNE_EVERY_MIN, PRUNE_EVERY_MAX);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let admitting = repl.inner.driver.admission.admits()
            && repl.inner.driver.status.borrow().node.role == "active";
        if !admitting {
            continue;
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = crate::state::store::wall_clock_ms().saturating_sub(retention_ms);
        loop {
            match prune_once(&repl, cutoff).await {
                Ok(deleted) if deleted >= PRUNE_BATCH as u64 => continue,
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::debug!(deleted, "request ids past their retention forgotten");
                    }
                    break;
                }
                Err(reason) => {
                    tracing::debug!(%reason, "pruning request ids skipped");
                    break;
                }
            }
        }
    }
}

/// Deletes up to `PRUNE_BATCH` request ids recorded before `cutoff_ms`; returns how many.
async fn prune_once(repl: &Replication, cutoff_ms: i64) -> Result<u64, String> {
    let statement = Statement::new(
        "DELETE FROM tandem_requests WHERE request_id IN \
         (SELECT request_id FROM tandem_requests WHERE at_ms < ? LIMIT ?)",
        vec![Value::Integer(cutoff_ms), Value::Integer(PRUNE_BATCH)],
    );
    let done = submit(repl, "", vec![statement], Mode::Node, None)
        .await
        .map_err(|failure| format!("{failure:?}"))?;
    Ok(done.rows_affected.first().copied().unwrap_or(0))
}
