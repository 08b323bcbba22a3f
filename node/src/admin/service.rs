//! The gRPC admin service on `[listen] admin`. Every caller holds a cluster-CA certificate (the
//! listener enforces it). It reads the published status and `state.db`, and passes commands to
//! the driver; it never touches the role machine itself.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tandem_proto::admin as pb;
use tonic::{Request, Response, Status};

use crate::driver::handle::DriverHandle;
use crate::role::{AdminRequest, Monitoring};
use crate::state::store::{EventRecord, StoreError};

/// Events listed when the caller does not say how many.
const DEFAULT_EVENT_LIMIT: u32 = 50;
/// Most events listed at once.
const MAX_EVENT_LIMIT: u32 = 10_000;

pub struct AdminService {
    pub handle: DriverHandle,
    pub replication: crate::repl::Replication,
    /// Users, blocks and the counts in `status`.
    pub gateway: crate::clients::gateway::NodeGateway,
    /// The `switchover --when-idle` wait, if one is on.
    pub when_idle: crate::clients::when_idle::WhenIdle,
    /// `[alerts]`, for `tandemctl alerts test`.
    pub mailer: Option<crate::ops::alerts::Mailer>,
    /// `auto_failback` and what the failback task shows.
    pub failback: (
        crate::config::AutoFailback,
        crate::ops::failback::FailbackView,
    ),
    /// `[[files]]`, for `tandemctl resync --files`.
    pub files: crate::files::FileSync,
}

fn gateway_status(error: tandem_gateway::GatewayError) -> Status {
    error.into()
}

fn store_status(error: StoreError) -> Status {
    Status::internal(error.to_string())
}

fn event_to_pb(event: EventRecord) -> pb::Event {
    pb::Event {
        id: event.id,
        at_ms: event.at_ms,
        kind: event.kind,
        message: event.message,
    }
}

impl AdminService {
    /// The node's status as `tandemctl status`, `/metrics` and the page show it: the published
    /// status with what is exact at this instant (the admission gate, the replication state,
    /// the gateway's blocks and counts read from this node's database, a `--when-idle` wait,
    /// the failback countdown).
    pub async fn full_status(&self) -> crate::admin::status::Status {
        let mut status = self.handle.status.borrow().clone();
        status.node.admitting = self.handle.admission.admits();
        status.replication = self.replication.status().borrow().clone();
        if let Ok(blocks) = self.gateway.blocks().await {
            status.blocks.logins = blocks.logins;
            status.blocks.calls = blocks.calls;
        }
        if let Ok(counts) = self.gateway.counts().await {
            status.calls_active = counts.calls_active;
            status.sessions = counts.sessions;
        }
        if let Some(calls) = self.when_idle.waiting_calls() {
            if status.switchover.state == "idle" {
                status.switchover.state = "waiting_idle".into();
            }
            status.switchover.waiting_calls = calls;
        }
        status.failback = self.failback.1.status(self.failback.0);
        status
    }

    async fn command(&self, request: AdminRequest) -> Result<Response<pb::CommandReply>, Status> {
        match self.handle.command(request).await {
            Ok(message) => Ok(Response::new(pb::CommandReply { message })),
            Err(reason) if reason == "the node is stopping" => Err(Status::unavailable(reason)),
            Err(reason) => Err(Status::failed_precondition(reason)),
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn sql(
        &self,
        request: Request<pb::SqlRequest>,
    ) -> Result<Response<pb::SqlReply>, Status> {
        self.replication
            .admin_sql(request.into_inner().sql)
            .await
            .map(Response::new)
    }

    async fn resync(
        &self,
        request: Request<pb::ResyncRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let direction = request.into_inner().direction;
        let message = if direction == "files" {
            self.files.admin_resync().await?
        } else {
            self.replication.admin_resync(&direction).await?
        };
        Ok(Response::new(pb::CommandReply { message }))
    }

    async fn verify(
        &self,
        _: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyReply>, Status> {
        self.replication.admin_verify().await.map(Response::new)
    }

    async fn conflicts(
        &self,
        request: Request<pb::ConflictsRequest>,
    ) -> Result<Response<pb::ConflictsReply>, Status> {
        self.replication
            .admin_conflicts(request.into_inner().limit)
            .await
            .map(Response::new)
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let status = self.full_status().await;
        Ok(Response::new(crate::admin::status_wire::status_to_pb(
            &status,
        )))
    }

    async fn history(
        &self,
        _: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryReply>, Status> {
        let history = self.handle.store.history().await.map_err(store_status)?;
        let terms = history
            .into_iter()
            .map(|record| pb::TermRecord {
                epoch: record.epoch,
                node: record.node,
                started_at_ms: record.started_at_ms,
                reason: record.reason,
            })
            .collect();
        Ok(Response::new(pb::HistoryReply { terms }))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => DEFAULT_EVENT_LIMIT,
            limit => limit.min(MAX_EVENT_LIMIT),
        };
        let store = self.handle.store.clone();
        // Subscribe before reading, so nothing falls between the list and the follow.
        let mut follower = store.subscribe();
        let recent = store.recent_events(limit).await.map_err(store_status)?;
        let mut last_id = recent.last().map_or(0, |event| event.id);
        let follow = request.follow;
        let stream = async_stream(move |sender| async move {
            for event in recent {
                if sender.send(Ok(event_to_pb(event))).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            loop {
                let received = tokio::select! {
                    received = follower.recv() => received,
                    // The caller went away: stop now, not at the next event.
                    () = sender.closed() => return,
                };
                let events = match received {
                    Ok(event) => vec![event],
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match store.events_after(last_id, MAX_EVENT_LIMIT).await {
                            Ok(events) => events,
                            Err(error) => {
                                let _ = sender.send(Err(store_status(error))).await;
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                for event in events {
                    if event.id <= last_id {
                        continue;
                    }
                    last_id = event.id;
                    if sender.send(Ok(event_to_pb(event))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn switchover(
        &self,
        request: Request<pb::SwitchoverRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let request = request.into_inner();
        let reply = |result: Result<String, String>| match result {
            Ok(message) => Ok(Response::new(pb::CommandReply { message })),
            Err(reason) => Err(Status::failed_precondition(reason)),
        };
        if request.cancel {
            return reply(self.when_idle.cancel());
        }
        if !request.when_idle {
            if request.block_new_calls || request.timeout_ms != 0 {
                return Err(Status::invalid_argument(
                    "--block-new-calls and --timeout go with --when-idle",
                ));
            }
            return self.command(AdminRequest::Switchover).await;
        }
        let timeout = (request.timeout_ms != 0).then(|| Duration::from_millis(request.timeout_ms));
        reply(
            self.when_idle
                .start(
                    self.gateway.clone(),
                    self.handle.clone(),
                    request.block_new_calls,
                    timeout,
                )
                .await,
        )
    }

    async fn set_block(
        &self,
        request: Request<pb::SetBlockRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let request = request.into_inner();
        let Some(block) = tandem_gateway::Block::parse(&request.what) else {
            return Err(Status::invalid_argument(format!(
                "{:?} is not one of logins, calls",
                request.what
            )));
        };
        let changed = self
            .gateway
            .set_block(block, request.on, &request.reason)
            .await
            .map_err(gateway_status)?;
        let what = block.as_str();
        let message = match (request.on, changed) {
            (true, true) => format!("new {what} are blocked on the pair"),
            (true, false) => format!("new {what} were already blocked"),
            (false, true) => format!("new {what} are admitted again"),
            (false, false) => format!("new {what} were not blocked"),
        };
        if changed {
            self.replication.record("block", &message).await;
        }
        Ok(Response::new(pb::CommandReply { message }))
    }

    async fn alerts_test(
        &self,
        _: Request<pb::AlertsTestRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let Some(mailer) = &self.mailer else {
            return Err(Status::failed_precondition(
                crate::ops::alerts::AlertError::NotConfigured.to_string(),
            ));
        };
        match mailer.send_test().await {
            Ok(answer) => Ok(Response::new(pb::CommandReply {
                message: format!("test mail sent; the server answered: {answer}"),
            })),
            Err(error) => Err(Status::unavailable(format!("test mail not sent: {error}"))),
        }
    }

    async fn user_add(
        &self,
        request: Request<pb::UserAddRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let request = request.into_inner();
        self.gateway
            .add_user(&request.name, &request.password)
            .await
            .map_err(gateway_status)?;
        let message = format!("user {} added", request.name);
        self.replication.record("user", &message).await;
        Ok(Response::new(pb::CommandReply { message }))
    }

    async fn user_passwd(
        &self,
        request: Request<pb::UserPasswdRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let request = request.into_inner();
        self.gateway
            .set_password(&request.name, &request.password)
            .await
            .map_err(gateway_status)?;
        let message = format!("the password of user {} is changed", request.name);
        self.replication.record("user", &message).await;
        Ok(Response::new(pb::CommandReply { message }))
    }

    async fn user_del(
        &self,
        request: Request<pb::UserDelRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let request = request.into_inner();
        self.gateway
            .delete_user(&request.name)
            .await
            .map_err(gateway_status)?;
        let message = format!("user {} deleted, and its sessions ended", request.name);
        self.replication.record("user", &message).await;
        Ok(Response::new(pb::CommandReply { message }))
    }

    async fn user_list(
        &self,
        _: Request<pb::UserListRequest>,
    ) -> Result<Response<pb::UserListReply>, Status> {
        let users = self.gateway.list_users().await.map_err(gateway_status)?;
        Ok(Response::new(pb::UserListReply {
            users: users
                .into_iter()
                .map(|user| pb::User {
                    name: user.name,
                    created_at_ms: user.created_ms,
                    changed_at_ms: user.changed_ms,
                    sessions: user.sessions,
                    calls_active: user.calls_active,
                })
                .collect(),
        }))
    }

    async fn failover_now(
        &self,
        request: Request<pb::FailoverNowRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let force = request.into_inner().force;
        self.command(AdminRequest::FailoverNow { force }).await
    }

    async fn set_monitoring(
        &self,
        request: Request<pb::SetMonitoringRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let mode = request.into_inner().mode;
        let Some(mode) = Monitoring::parse(&mode) else {
            return Err(Status::invalid_argument(format!(
                "monitoring mode {mode:?} is not one of suspend, resume, stop"
            )));
        };
        self.command(AdminRequest::SetMonitoring(mode)).await
    }

    async fn set_maintenance(
        &self,
        request: Request<pb::SetMaintenanceRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.command(AdminRequest::SetMaintenance(request.into_inner().on))
            .await
    }
}

/// A stream fed by a task through a bounded channel; the task stops when the caller goes away.
fn async_stream<F, Fut>(producer: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Event, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(sender));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
