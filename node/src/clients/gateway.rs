//! The clients gateway inside `tandemd` (DESIGN.md §5): `tandem-gateway` over this node.
//!
//! - `NodeBackend` gives the gateway admission (the driver's gate), the live database, the
//!   writer (as the node, `Mode::Node`) and the role stream for `WatchRole`.
//! - `run_takeover_sweeper`: after this node took a term over (failover, start-up), it closes
//!   the calls of older terms with cause `failover`, then looks again every few seconds while it
//!   stays active, for calls that merge-back brings in. After a hand-over (switchover) it closes
//!   nothing: those calls carry on here.
//! - `run_session_pruner`: the active deletes expired sessions.
//! - `WhenIdle`: `switchover --when-idle`, which waits for the last call to end.
//!
//! Not here: the requests (in `tandem-gateway`), the switchover itself (the role machine).

use std::sync::Arc;
use std::time::Duration;

use tandem_gateway::{Backend, Gateway, RoleStream, RoleView, Written};
use tandem_replication::data_api::{Mode, Statement};
use tokio::sync::watch;

use crate::admin::status::Status as NodeStatus;
use crate::repl::Replication;
use crate::repl::data_service::{failure_status, not_active};

/// How often the active looks for calls of older terms after a takeover.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How often the active deletes expired sessions, and how many at most per turn.
const PRUNE_SESSIONS_EVERY: Duration = Duration::from_secs(60);
const PRUNE_SESSIONS_MAX: i64 = 1000;

pub type NodeGateway = Gateway<NodeBackend>;

pub struct NodeBackend {
    pub repl: Replication,
    pub status: watch::Receiver<NodeStatus>,
    /// This node's client address as clients should dial it.
    pub own_client_address: String,
    /// The peer's client address, handed to clients while the peer is active.
    pub peer_client_address: String,
    pub name: String,
}

/// The role update a status makes.
fn role_view(status: &NodeStatus, own: &str, peer: &str) -> RoleView {
    let active_client_address = if status.node.role == "active" {
        own.to_string()
    } else if status.peer.role == "active" && status.peer.state == "ok" {
        peer.to_string()
    } else {
        String::new()
    };
    RoleView {
        node: status.node.name.clone(),
        role: status.node.role.clone(),
        epoch: status.node.epoch,
        active_client_address,
        admitting: status.node.admitting,
    }
}

/// The epoch of the term `status` says this node holds as the active, 0 if none.
fn active_epoch_of(status: &NodeStatus) -> u64 {
    match &status.node.term {
        Some(term) if status.node.role == "active" && term.node == status.node.name => term.epoch,
        _ => 0,
    }
}

#[tonic::async_trait]
impl Backend for NodeBackend {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn admits(&self) -> Result<(), tonic::Status> {
        if self.repl.inner.driver.admission.admits() {
            Ok(())
        } else {
            Err(not_active(&self.repl))
        }
    }

    fn active_epoch(&self) -> u64 {
        active_epoch_of(&self.status.borrow())
    }

    fn reader(&self) -> sqlx::SqlitePool {
        self.repl.store().reader().clone()
    }

    async fn write(
        &self,
        request_id: &str,
        statements: Vec<Statement>,
    ) -> Result<Written, tonic::Status> {
        let done =
            crate::repl::writer::submit(&self.repl, request_id, statements, Mode::Node, None)
                .await
                .map_err(|failure| failure_status(&self.repl, failure))?;
        Ok(Written {
            rows_affected: done.rows_affected,
            replayed: done.replayed,
        })
    }

    fn watch_role(&self) -> RoleStream {
        let own = self.own_client_address.clone();
        let peer = self.peer_client_address.clone();
        let start = (self.status.clone(), None::<RoleView>);
        Box::pin(futures::stream::unfold(start, move |(mut status, last)| {
            let (own, peer) = (own.clone(), peer.clone());
            async move {
                loop {
                    let view = role_view(&status.borrow_and_update(), &own, &peer);
                    if last.as_ref() != Some(&view) {
                        return Some((view.clone(), (status, Some(view))));
                    }
                    status.changed().await.ok()?;
                }
            }
        }))
    }
}

/// After a takeover, closes the calls of older terms (see the module doc). Runs for the life of
/// the node.
pub async fn run_takeover_sweeper(gateway: NodeGateway, mut status: watch::Receiver<NodeStatus>) {
    // The term whose sweep last succeeded.
    let mut swept_epoch = 0;
    loop {
        let (epoch, took_over) = {
            let now = status.borrow_and_update();
            (active_epoch_of(&now), now.node.took_over)
        };
        let sweeping = epoch != 0 && took_over;
        if sweeping && gateway.backend().admits().is_ok() {
            match gateway.close_stale_calls(epoch).await {
                Ok(closed) => {
                    swept_epoch = epoch;
                    if closed > 0 {
                        let message = format!(
                            "closed {closed} calls of older terms with cause failover \
                             (their node failed); each has a CDR"
                        );
                        tracing::info!("{message}");
                        gateway
                            .backend()
                            .repl
                            .record("calls_closed", &message)
                            .await;
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot close the calls of older terms yet"),
            }
        }
        // A new term is swept at once, a failed sweep again shortly, a done one now and then.
        let again = match (sweeping, swept_epoch == epoch) {
            (true, true) => SWEEP_EVERY,
            (true, false) => Duration::from_millis(200),
            (false, _) => Duration::from_secs(3600),
        };
        let changed =
            status.wait_for(|now| active_epoch_of(now) != epoch || now.node.took_over != took_over);
        if let Ok(Err(_)) = tokio::time::timeout(again, changed).await {
            return; // the driver is gone
        }
    }
}

/// On the active, deletes expired sessions now and then.
pub async fn run_session_pruner(gateway: NodeGateway) {
    loop {
        tokio::time::sleep(PRUNE_SESSIONS_EVERY).await;
        if gateway.backend().admits().is_err() {
            continue;
        }
        match gateway.prune_sessions(PRUNE_SESSIONS_MAX).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "deleted expired sessions"),
            Err(error) => tracing::warn!(%error, "cannot delete expired sessions"),
        }
    }
}

/// Builds the gateway of this node.
pub fn build(
    config: &crate::config::Config,
    repl: &Replication,
    status: watch::Receiver<NodeStatus>,
) -> NodeGateway {
    let backend = NodeBackend {
        repl: repl.clone(),
        status,
        // A wildcard listener has no address a client could dial: send none, and clients keep
        // the address they reached this node at.
        own_client_address: if config.listen.client.ip().is_unspecified() {
            String::new()
        } else {
            config.listen.client.to_string()
        },
        peer_client_address: config.peer.client_address.clone(),
        name: config.node.name.clone(),
    };
    let settings = tandem_gateway::GatewayConfig {
        session_ttl: config.gateway.session_ttl,
        ..tandem_gateway::GatewayConfig::default()
    };
    Gateway::new(
        Arc::new(backend),
        settings,
        tandem_gateway::PasswordPool::for_this_machine(),
    )
}
