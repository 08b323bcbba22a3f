//! The gRPC admin service on `[listen] admin`. Every caller holds a cluster-CA certificate (the
//! listener enforces it). It reads the published status and `state.db`, and passes commands to
//! the driver; it never touches the role machine itself.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tandem_proto::admin as pb;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::driver::{AdminReply, DriverHandle, Input};
use crate::role::{AdminRequest, Monitoring};
use crate::state_store::{EventRecord, StoreError};

/// How long an admin command may wait for the driver's answer (a switchover can take seconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Events listed when the caller does not say how many.
const DEFAULT_EVENT_LIMIT: u32 = 50;
/// Most events listed at once.
const MAX_EVENT_LIMIT: u32 = 10_000;

pub struct AdminService {
    pub handle: DriverHandle,
    pub replication: crate::repl::Replication,
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
    async fn command(&self, request: AdminRequest) -> Result<Response<pb::CommandReply>, Status> {
        let (reply, answer) = oneshot::channel::<AdminReply>();
        self.handle
            .inputs
            .send(Input::Admin { request, reply })
            .await
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(Ok(message))) => Ok(Response::new(pb::CommandReply { message })),
            Ok(Ok(Err(reason))) => Err(Status::failed_precondition(reason)),
            Ok(Err(_)) => Err(Status::unavailable("the node stopped before answering")),
            Err(_) => Err(Status::deadline_exceeded(
                "no answer within 30 s; see `tandemctl events`",
            )),
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
        let message = self
            .replication
            .admin_resync(&request.into_inner().direction)
            .await?;
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
        let mut status = self.handle.status.borrow().clone();
        // The gate and the replication state, not the last published status: they are exact
        // at this instant.
        status.node.admitting = self.handle.admission.admits();
        status.replication = self.replication.status().borrow().clone();
        Ok(Response::new(crate::status_wire::status_to_pb(&status)))
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
        if request.when_idle || request.block_new_calls || request.cancel || request.timeout_ms != 0
        {
            return Err(Status::unimplemented(
                "--when-idle, --block-new-calls, --timeout and --cancel need the clients gateway, which this version does not have",
            ));
        }
        self.command(AdminRequest::Switchover).await
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
