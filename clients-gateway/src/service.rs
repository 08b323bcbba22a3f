//! The gRPC `Gateway` service: protobuf in, domain calls, protobuf or a status out.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tandem_proto::gateway as pb;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::gateway::Gateway;
use crate::sessions::Credential;

/// `WatchRole` streams open at once; more are refused (the client port needs no certificate).
const WATCHERS_MAX: usize = 4096;

pub struct GatewayService<B: Backend> {
    gateway: Gateway<B>,
    /// Bounds the `WatchRole` streams.
    watchers: Arc<Semaphore>,
}

impl<B: Backend> GatewayService<B> {
    pub fn new(gateway: Gateway<B>) -> GatewayService<B> {
        GatewayService {
            gateway,
            watchers: Arc::new(Semaphore::new(WATCHERS_MAX)),
        }
    }
}

type RoleStream = Pin<Box<dyn Stream<Item = Result<pb::RoleUpdate, Status>> + Send>>;

/// The address a request came from, for the failed-login limits.
fn source<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "unknown".to_string(), |address| address.ip().to_string())
}

#[tonic::async_trait]
impl<B: Backend> pb::gateway_server::Gateway for GatewayService<B> {
    type WatchRoleStream = RoleStream;

    async fn watch_role(
        &self,
        _: Request<pb::WatchRoleRequest>,
    ) -> Result<Response<RoleStream>, Status> {
        let Ok(permit) = self.watchers.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted("too many WatchRole streams"));
        };
        let roles = self.gateway.backend().watch_role().map(move |view| {
            let _permit = &permit;
            Ok(pb::RoleUpdate {
                node: view.node,
                role: view.role,
                epoch: view.epoch,
                active_client_address: view.active_client_address,
                admitting: view.admitting,
            })
        });
        Ok(Response::new(Box::pin(roles)))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let source = source(&request);
        let request = request.into_inner();
        let credential = match request.credential {
            Some(pb::login_request::Credential::Password(password)) => {
                Credential::Password(password)
            }
            Some(pb::login_request::Credential::ResumeToken(token)) => {
                Credential::ResumeToken(token)
            }
            None => {
                return Err(Status::invalid_argument(
                    "Login needs a password or a resume_token",
                ));
            }
        };
        let session = self
            .gateway
            .login(
                &request.request_id,
                &request.user,
                credential,
                &request.client_kind,
                &source,
            )
            .await?;
        Ok(Response::new(pb::LoginReply {
            token: session.token,
            session_id: session.session_id,
            user: session.user,
            resumed: session.resumed,
            expires_at_ms: session.expires_ms,
            node: self.gateway.backend().node_name().to_string(),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutReply>, Status> {
        let request = request.into_inner();
        self.gateway
            .logout(&request.request_id, &request.token)
            .await?;
        Ok(Response::new(pb::LogoutReply {}))
    }

    async fn start_call(
        &self,
        request: Request<pb::StartCallRequest>,
    ) -> Result<Response<pb::StartCallReply>, Status> {
        let request = request.into_inner();
        let started = self
            .gateway
            .start_call(
                &request.request_id,
                &request.token,
                &request.from,
                &request.to,
            )
            .await?;
        Ok(Response::new(pb::StartCallReply {
            call_id: started.call_id,
            started_at_ms: started.started_ms,
            replayed: started.replayed,
        }))
    }

    async fn end_call(
        &self,
        request: Request<pb::EndCallRequest>,
    ) -> Result<Response<pb::EndCallReply>, Status> {
        let request = request.into_inner();
        let ended = self
            .gateway
            .end_call(
                &request.request_id,
                &request.token,
                &request.call_id,
                &request.cause,
            )
            .await?;
        Ok(Response::new(pb::EndCallReply {
            call_id: ended.call_id,
            cause: ended.cause,
            ended_at_ms: ended.ended_ms,
            duration_ms: ended.duration_ms,
            already_ended: ended.already_ended,
        }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsReply>, Status> {
        let calls = self.gateway.list_calls(&request.into_inner().token).await?;
        Ok(Response::new(pb::ListCallsReply {
            calls: calls
                .into_iter()
                .map(|call| pb::Call {
                    call_id: call.call_id,
                    user: call.user,
                    from: call.from,
                    to: call.to,
                    started_at_ms: call.started_ms,
                    node: call.node,
                })
                .collect(),
        }))
    }
}
