//! The role watchers: one background task per configured address keeps a `WatchRole` stream
//! open and feeds a shared view of which node is active.
//!
//! - [`derive_active`] (pure) picks the active's address from the latest report of each node.
//! - [`RoleWatch`] owns the tasks (aborted when it is dropped) and the `watch` channel the
//!   client reads the active's address from.
//!
//! A watcher whose stream ends or fails forgets its node's report at once: a node that went
//! away must not keep claiming to be the active. It then dials again after a jittered back-off.
//! The view is a hint for where to send the next request; refusals and failures still decide.

use std::sync::{Arc, Mutex, PoisonError};

use ring::rand::SystemRandom;
use tandem_proto::gateway as pb;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tonic::transport::Endpoint;

use super::backoff::{Backoff, random_u64};
use super::status_text::describe_status;

/// What one node last said about roles, from its `WatchRole` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleReport {
    /// The node's role ("active", "passive"...).
    pub role: String,
    /// The node's epoch: a report from a later epoch wins over an older one.
    pub epoch: u64,
    /// The active's client address as this node knows it; empty when it knows none.
    pub active_client_address: String,
    /// True while the node admits clients.
    pub admitting: bool,
}

impl RoleReport {
    /// The report of `update`, streamed by the node the client dials at `watched_address`.
    /// A node that says it is the active is recorded under `watched_address`: the client knows
    /// that address works, whereas the node names its own listen address, which may be a
    /// wildcard (`0.0.0.0:7401`) or spelled differently. A passive's relay is kept as named.
    pub fn from_update(update: pb::RoleUpdate, watched_address: &str) -> RoleReport {
        let names_itself = update.role == "active" && !update.active_client_address.is_empty();
        let active_client_address = if names_itself {
            watched_address.to_string()
        } else {
            update.active_client_address
        };
        RoleReport {
            role: update.role,
            epoch: update.epoch,
            active_client_address,
            admitting: update.admitting,
        }
    }
}

/// The active's client address according to the nodes' latest reports: among the reports that
/// name an active, the one from the highest epoch; at equal epochs, a node that says it is the
/// active itself and admits clients wins over one that relays the other node's address. `None`
/// when no report names an active.
pub fn derive_active(reports: &[Option<RoleReport>]) -> Option<String> {
    reports
        .iter()
        .flatten()
        .filter(|report| !report.active_client_address.is_empty())
        .max_by_key(|report| (report.epoch, report.role == "active" && report.admitting))
        .map(|report| report.active_client_address.clone())
}

/// The watchers' shared state: the latest report and failure per configured address.
struct Reports {
    /// Each node's latest report; `None` while its stream is down.
    reports: [Option<RoleReport>; 2],
    /// Why each node's stream last failed, for the error `connect` returns.
    failures: [Option<String>; 2],
}

/// What the watcher tasks share with the client.
struct Shared {
    /// The reports; the lock is never held across an await.
    reports: Mutex<Reports>,
    /// The derived active address; only sent when it changes.
    active: watch::Sender<Option<String>>,
}

impl Shared {
    fn update(&self, index: usize, report: Option<RoleReport>, failure: Option<String>) {
        let mut state = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        state.reports[index] = report;
        if failure.is_some() {
            state.failures[index] = failure;
        }
        let active = derive_active(&state.reports);
        self.active.send_if_modified(|current| {
            let changed = *current != active;
            *current = active;
            changed
        });
    }
}

/// The role watchers of one client: two tasks and the view they keep.
pub struct RoleWatch {
    /// The reports and the channel the tasks write.
    shared: Arc<Shared>,
    /// The active's address, as `derive_active` last computed it.
    active: watch::Receiver<Option<String>>,
    /// The watcher tasks, aborted on drop so a dropped client leaves nothing running.
    tasks: Vec<AbortHandle>,
}

impl RoleWatch {
    /// Starts one watcher per endpoint (`endpoints[i]` dials `addresses[i]`). Must run inside a
    /// tokio runtime.
    pub fn start(endpoints: [Endpoint; 2], addresses: &[String; 2], backoff: Backoff) -> RoleWatch {
        let (sender, active) = watch::channel(None);
        let shared = Arc::new(Shared {
            reports: Mutex::new(Reports {
                reports: [None, None],
                failures: [None, None],
            }),
            active: sender,
        });
        let tasks = endpoints
            .into_iter()
            .enumerate()
            .map(|(index, endpoint)| {
                let watcher = Watcher {
                    index,
                    address: addresses[index].clone(),
                    endpoint,
                    shared: shared.clone(),
                    backoff: backoff.clone(),
                };
                tokio::spawn(watcher.run()).abort_handle()
            })
            .collect();
        RoleWatch {
            shared,
            active,
            tasks,
        }
    }

    /// The active's address as the watchers see it now.
    pub fn active(&self) -> Option<String> {
        self.active.borrow().clone()
    }

    /// A receiver that wakes up when the active's address changes.
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.active.clone()
    }

    /// Why each node's stream last failed, for error messages ("none" when nothing failed).
    pub fn failures(&self) -> String {
        let state = self
            .shared
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let parts: Vec<&str> = state
            .failures
            .iter()
            .filter_map(|failure| failure.as_deref())
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join("; ")
        }
    }
}

impl Drop for RoleWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One node's watcher.
struct Watcher {
    /// Which of the two reports this watcher writes.
    index: usize,
    /// The configured address, for messages.
    address: String,
    /// Dials the node (TLS and keepalives set up once).
    endpoint: Endpoint,
    shared: Arc<Shared>,
    /// Pauses between failed streams; reset by every report received.
    backoff: Backoff,
}

impl Watcher {
    /// Watches until aborted: one stream at a time, a pause after each failure.
    async fn run(mut self) {
        let random = SystemRandom::new();
        loop {
            let failure = self.watch_once().await;
            tracing::debug!(address = %self.address, %failure, "WatchRole stream ended");
            self.shared.update(self.index, None, Some(failure));
            tokio::time::sleep(self.backoff.next_delay(random_u64(&random))).await;
        }
    }

    /// Opens one stream and records its reports until it ends; returns why it ended.
    async fn watch_once(&mut self) -> String {
        let mut client = GatewayClient::new(self.endpoint.connect_lazy());
        let mut stream = match client.watch_role(pb::WatchRoleRequest {}).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return format!("{}: WatchRole: {}", self.address, describe_status(&status));
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(update)) => {
                    self.backoff.reset();
                    let report = RoleReport::from_update(update, &self.address);
                    self.shared.update(self.index, Some(report), None);
                }
                Ok(None) => return format!("{}: WatchRole stream ended", self.address),
                Err(status) => {
                    return format!("{}: WatchRole: {}", self.address, describe_status(&status));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(role: &str, epoch: u64, active: &str, admitting: bool) -> Option<RoleReport> {
        Some(RoleReport {
            role: role.to_string(),
            epoch,
            active_client_address: active.to_string(),
            admitting,
        })
    }

    #[test]
    fn an_active_is_recorded_under_the_address_it_is_watched_at() {
        let update = pb::RoleUpdate {
            node: "a".to_string(),
            role: "active".to_string(),
            epoch: 2,
            active_client_address: "0.0.0.0:7401".to_string(),
            admitting: true,
        };
        let report = RoleReport::from_update(update.clone(), "10.0.0.1:7401");
        assert_eq!(report.active_client_address, "10.0.0.1:7401");
        let relay = pb::RoleUpdate {
            role: "passive".to_string(),
            active_client_address: "10.0.0.2:7401".to_string(),
            ..update
        };
        let report = RoleReport::from_update(relay, "10.0.0.1:7401");
        assert_eq!(report.active_client_address, "10.0.0.2:7401");
    }

    #[test]
    fn no_reports_or_no_named_active_give_none() {
        assert_eq!(derive_active(&[None, None]), None);
        assert_eq!(
            derive_active(&[report("passive", 3, "", false), None]),
            None
        );
    }

    #[test]
    fn a_passive_relaying_the_active_is_enough() {
        assert_eq!(
            derive_active(&[None, report("passive", 3, "b:2", false)]),
            Some("b:2".to_string())
        );
    }

    #[test]
    fn the_later_epoch_wins() {
        // A stale active (isolated in epoch 3) still claims itself; the new active is in epoch 4.
        let reports = [
            report("active", 3, "a:1", true),
            report("active", 4, "b:2", true),
        ];
        assert_eq!(derive_active(&reports), Some("b:2".to_string()));
    }

    #[test]
    fn at_equal_epochs_the_admitting_active_wins_over_a_relay() {
        let reports = [
            report("passive", 4, "a:1", false),
            report("active", 4, "b:2", true),
        ];
        assert_eq!(derive_active(&reports), Some("b:2".to_string()));
        let reports = [
            report("active", 4, "a:1", true),
            report("passive", 4, "b:2", false),
        ];
        assert_eq!(derive_active(&reports), Some("a:1".to_string()));
    }
}
