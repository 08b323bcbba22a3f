//! The client port. Until the clients gateway arrives it serves `WatchRole`, so remote services
//! can follow the active node, and gives the fast path a second port to dial.

use std::pin::Pin;

use futures::Stream;
use tandem_proto::gateway as pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::status::Status as NodeStatus;

/// `WatchRole` streams open at once; more are refused (the client port needs no certificate).
const WATCHERS_MAX: usize = 4096;

pub struct GatewayService {
    /// Bounds the `WatchRole` streams.
    pub watchers: std::sync::Arc<tokio::sync::Semaphore>,
    pub status: watch::Receiver<NodeStatus>,
    /// The peer's client address, handed to clients while the peer is active.
    pub peer_client_address: String,
    /// This node's client address as clients should dial it.
    pub own_client_address: String,
}

type RoleStream = Pin<Box<dyn Stream<Item = Result<pb::RoleUpdate, Status>> + Send>>;

fn role_update(status: &NodeStatus, own: &str, peer: &str) -> pb::RoleUpdate {
    let active_client_address = if status.node.role == "active" {
        own.to_string()
    } else if status.peer.role == "active" && status.peer.state == "ok" {
        peer.to_string()
    } else {
        String::new()
    };
    pb::RoleUpdate {
        node: status.node.name.clone(),
        role: status.node.role.clone(),
        epoch: status.node.epoch,
        active_client_address,
        admitting: status.node.admitting,
    }
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for GatewayService {
    type WatchRoleStream = RoleStream;

    async fn watch_role(
        &self,
        _: Request<pb::WatchRoleRequest>,
    ) -> Result<Response<RoleStream>, Status> {
        let Ok(permit) = self.watchers.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted("too many WatchRole streams"));
        };
        let mut status = self.status.clone();
        let own = self.own_client_address.clone();
        let peer = self.peer_client_address.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let _permit = permit;
            let mut last: Option<pb::RoleUpdate> = None;
            loop {
                let update = role_update(&status.borrow_and_update(), &own, &peer);
                if last.as_ref() != Some(&update) {
                    if sender.send(Ok(update.clone())).await.is_err() {
                        return;
                    }
                    last = Some(update);
                }
                tokio::select! {
                    changed = status.changed() => if changed.is_err() { return },
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// The semaphore that bounds `WatchRole` streams.
pub fn watchers() -> std::sync::Arc<tokio::sync::Semaphore> {
    std::sync::Arc::new(tokio::sync::Semaphore::new(WATCHERS_MAX))
}
