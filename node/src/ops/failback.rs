//! `auto_failback` (DESIGN.md §3): the preferred node (the higher priority) takes the active
//! role back on its own once it is fit to.
//!
//! It runs on both nodes and acts only on the passive whose priority is above the active's,
//! while it is `consistent` (caught up and proven), the link is `ok`, monitoring is on and
//! neither node is in maintenance. With a delay, those conditions must hold without a break for
//! that long; with `when_idle`, until no call runs (the calls table is replicated, so the
//! passive counts them itself). Then it asks its own driver for `failover-now`, which on a
//! healthy pair is a switchover: nothing is lost. The outcome is a `failback` event. After a
//! refusal it waits `RETRY_AFTER` before asking again.
//!
//! Not here: the switchover itself (the role machine).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admin::status::{FailbackStatus, Status};
use crate::clients::gateway::NodeGateway;
use crate::config::AutoFailback;
use crate::driver::handle::DriverHandle;
use crate::role::AdminRequest;

/// How often the conditions are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(200);
/// After a refused failback, the wait before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What `status.failback` shows; shared with the admin service.
#[derive(Clone, Default)]
pub struct FailbackView(Arc<Mutex<(String, Option<Duration>)>>);

impl FailbackView {
    pub fn status(&self, policy: AutoFailback) -> FailbackStatus {
        let (reason, left) = self.0.lock().map(|view| view.clone()).unwrap_or_default();
        FailbackStatus {
            policy: policy.as_str(),
            time_left: match left {
                Some(left) => crate::config::duration::largest_whole_unit(left),
                None => reason,
            },
            time_left_s: left.map(|left| left.as_secs()),
        }
    }

    fn set(&self, reason: &str, left: Option<Duration>) {
        if let Ok(mut view) = self.0.lock() {
            *view = (reason.to_string(), left);
        }
    }
}

/// Whether this node may take the role back now (the conditions of the module doc).
fn fit(status: &Status, priority: u32) -> bool {
    status.node.role == "passive"
        && status.node.disk == "consistent"
        && status.node.monitoring == "on"
        && !status.node.maintenance
        && status.peer.state == "ok"
        && status.peer.role == "active"
        && !status.peer.maintenance
        && priority > status.peer.priority
}

pub async fn run(
    policy: AutoFailback,
    priority: u32,
    handle: DriverHandle,
    gateway: NodeGateway,
    view: FailbackView,
) {
    if policy == AutoFailback::Never {
        return;
    }
    let mut fit_since: Option<Instant> = None;
    let mut quiet_until = Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let status = handle.status.borrow().clone();
        if !fit(&status, priority) || Instant::now() < quiet_until {
            fit_since = None;
            view.set("", None);
            continue;
        }
        let since = *fit_since.get_or_insert_with(Instant::now);
        let due = match policy {
            AutoFailback::Never => false,
            AutoFailback::After(delay) => {
                let left = delay.saturating_sub(since.elapsed());
                view.set("", Some(left));
                left.is_zero()
            }
            AutoFailback::WhenIdle => {
                let calls = gateway.counts().await.map_or(u32::MAX, |c| c.calls_active);
                view.set(&format!("when no call runs ({calls} running)"), None);
                calls == 0
            }
        };
        if !due {
            continue;
        }
        let outcome = handle
            .command(AdminRequest::FailoverNow { force: false })
            .await;
        let message = match &outcome {
            Ok(answer) => format!("auto failback ({}): {answer}", policy.as_str()),
            Err(reason) => {
                quiet_until = Instant::now() + RETRY_AFTER;
                format!(
                    "auto failback ({}) refused: {reason}; trying again in {}",
                    policy.as_str(),
                    crate::config::duration::largest_whole_unit(RETRY_AFTER)
                )
            }
        };
        tracing::info!("{message}");
        let _ = handle
            .inputs
            .send(crate::driver::handle::Input::Record {
                kind: "failback".into(),
                message,
            })
            .await;
        fit_since = None;
        view.set("", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_status() -> Status {
        let mut status = Status::default();
        status.node.role = "passive".into();
        status.node.disk = "consistent".into();
        status.node.monitoring = "on".into();
        status.peer.state = "ok".into();
        status.peer.role = "active".into();
        status.peer.priority = 50;
        status
    }

    #[test]
    fn only_a_caught_up_preferred_passive_with_a_healthy_active_is_fit() {
        assert!(fit(&fit_status(), 100));
        assert!(!fit(&fit_status(), 50), "equal priority: not preferred");
        let mut outdated = fit_status();
        outdated.node.disk = "outdated".into();
        assert!(!fit(&outdated, 100));
        let mut suspended = fit_status();
        suspended.node.monitoring = "suspended".into();
        assert!(!fit(&suspended, 100));
        let mut peer_gone = fit_status();
        peer_gone.peer.state = "failed".into();
        assert!(!fit(&peer_gone, 100));
    }

    #[test]
    fn the_view_shows_the_time_left_in_the_largest_unit() {
        let view = FailbackView::default();
        view.set("", Some(Duration::from_secs(301)));
        let status = view.status(AutoFailback::After(Duration::from_secs(600)));
        assert_eq!(status.policy, "10 minutes");
        assert_eq!(status.time_left, "5 minutes");
        assert_eq!(status.time_left_s, Some(301));
    }
}
