//! `tandemctl switchover --when-idle [--block-new-calls] [--timeout D]` and `--cancel`
//! (DESIGN.md §5): wait for the last call to end, then switch over.
//!
//! The wait runs in a task of its own, and the command returns at once; `status` shows
//! `switchover.state = "waiting_idle"` and `switchover.waiting_calls` meanwhile. With
//! `--block-new-calls` the calls block is turned on for the wait (unless it already was), and
//! released when the wait ends, however it ends: before the hand-over when the calls are done
//! (the new active must admit calls), or on a timeout or a cancel. One wait at a time. Not here:
//! the switchover itself, which the role machine runs as for `tandemctl switchover`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_gateway::{Backend, Block};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clients::gateway::NodeGateway;
use crate::driver::handle::DriverHandle;
use crate::role::AdminRequest;

/// Between two counts of the running calls when no call end wakes the wait.
const RECOUNT_EVERY: Duration = Duration::from_millis(250);
/// The reason stored with a block the wait turns on.
const BLOCK_REASON: &str = "a switchover --when-idle waits for the running calls to end";

#[derive(Clone, Default)]
pub struct WhenIdle {
    waiting: Arc<Mutex<Option<Waiting>>>,
}

#[derive(Clone)]
struct Waiting {
    /// `notify_one` stores a permit, so a cancel is not lost between two looks.
    cancel: Arc<Notify>,
    /// Running calls at the last count.
    calls: u32,
}

enum End {
    Idle,
    Cancelled,
    TimedOut { calls: u32, after: Duration },
}

impl WhenIdle {
    /// `Some(running calls)` while a wait is on.
    pub fn waiting_calls(&self) -> Option<u32> {
        self.waiting
            .lock()
            .ok()
            .and_then(|waiting| waiting.as_ref().map(|w| w.calls))
    }

    pub fn cancel(&self) -> Result<String, String> {
        let waiting = self
            .waiting
            .lock()
            .map_err(|_| "the wait is broken".to_string())?;
        match waiting.as_ref() {
            Some(wait) => {
                wait.cancel.notify_one();
                Ok("the when-idle switchover is cancelled; any block it added is released".into())
            }
            None => Err("no when-idle switchover is waiting".into()),
        }
    }

    /// Starts a wait; returns at once with what it waits for.
    pub async fn start(
        &self,
        gateway: NodeGateway,
        driver: DriverHandle,
        block_new_calls: bool,
        timeout: Option<Duration>,
    ) -> Result<String, String> {
        gateway
            .backend()
            .admits()
            .map_err(|refusal| format!("cannot switch over: {}", refusal.message()))?;
        {
            let status = driver.status.borrow();
            if status.peer.state != "ok" || status.peer.role != "passive" {
                return Err(format!(
                    "cannot switch over: peer {} is {} and {}",
                    status.peer.name, status.peer.state, status.peer.role
                ));
            }
        }
        let cancel = Arc::new(Notify::new());
        {
            let mut waiting = self
                .waiting
                .lock()
                .map_err(|_| "the wait is broken".to_string())?;
            if waiting.is_some() {
                return Err(
                    "a when-idle switchover is already waiting; `tandemctl switchover --cancel` \
                     cancels it"
                        .into(),
                );
            }
            *waiting = Some(Waiting {
                cancel: cancel.clone(),
                calls: 0,
            });
        }
        let added_block = if block_new_calls {
            match gateway.set_block(Block::Calls, true, BLOCK_REASON).await {
                Ok(added) => added,
                Err(error) => {
                    self.clear();
                    return Err(format!("cannot block new calls: {error}"));
                }
            }
        } else {
            false
        };
        let calls = gateway.counts().await.map(|c| c.calls_active).unwrap_or(0);
        self.set_calls(calls);
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let this = self.clone();
        tokio::spawn(async move {
            let end = this.wait(&gateway, &cancel, deadline, timeout).await;
            this.finish(&gateway, &driver, end, added_block).await;
        });
        let limit = timeout.map_or_else(
            || "no timeout".to_string(),
            |timeout| {
                format!(
                    "timeout {}",
                    crate::config::duration::largest_whole_unit(timeout)
                )
            },
        );
        Ok(format!(
            "switchover waits for {calls} running calls to end ({limit}{}); `tandemctl status` \
             shows the wait, `tandemctl switchover --cancel` cancels it",
            if added_block {
                "; new calls are blocked meanwhile"
            } else if block_new_calls {
                "; new calls were already blocked"
            } else {
                ""
            }
        ))
    }

    async fn wait(
        &self,
        gateway: &NodeGateway,
        cancel: &Notify,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> End {
        let ended = gateway.call_ended();
        loop {
            // Register for call ends before counting, so an end between the two is not missed.
            let call_ended = ended.notified();
            let calls = match gateway.counts().await {
                Ok(counts) => counts.calls_active,
                Err(error) => {
                    tracing::warn!(%error, "cannot count the running calls; counting again");
                    u32::MAX
                }
            };
            if calls != u32::MAX {
                self.set_calls(calls);
            }
            if calls == 0 {
                return End::Idle;
            }
            let until_deadline = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = call_ended => {}
                () = tokio::time::sleep(RECOUNT_EVERY) => {}
                () = cancel.notified() => return End::Cancelled,
                () = until_deadline => {
                    return End::TimedOut { calls, after: timeout.unwrap_or_default() };
                }
            }
        }
    }

    async fn finish(
        &self,
        gateway: &NodeGateway,
        driver: &DriverHandle,
        end: End,
        added_block: bool,
    ) {
        let repl = &gateway.backend().repl;
        let mut released = String::new();
        if added_block {
            released = match gateway.set_block(Block::Calls, false, "").await {
                Ok(_) => "; the calls block it added is released".into(),
                Err(error) => format!(
                    "; the calls block it added could not be released ({error}): \
                     run `tandemctl unblock calls`"
                ),
            };
        }
        let message = match end {
            End::Idle => {
                self.clear();
                match driver.command(AdminRequest::Switchover).await {
                    Ok(answer) => {
                        format!("when-idle switchover: the last call ended{released}; {answer}")
                    }
                    Err(reason) => format!(
                        "when-idle switchover: the last call ended{released}, but the \
                         switchover failed: {reason}"
                    ),
                }
            }
            End::Cancelled => {
                self.clear();
                format!("when-idle switchover cancelled{released}")
            }
            End::TimedOut { calls, after } => {
                self.clear();
                format!(
                    "when-idle switchover aborted: {calls} calls were still running after {}{released}",
                    crate::config::duration::largest_whole_unit(after)
                )
            }
        };
        tracing::info!("{message}");
        repl.record("switchover", &message).await;
    }

    fn set_calls(&self, calls: u32) {
        if let Ok(mut waiting) = self.waiting.lock()
            && let Some(wait) = waiting.as_mut()
        {
            wait.calls = calls;
        }
    }

    fn clear(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = None;
        }
    }
}
