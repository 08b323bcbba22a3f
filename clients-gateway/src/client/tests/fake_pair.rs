//! Two in-process gateways behind real TLS, sharing one "replicated" state, whose roles a test
//! sets directly: enough of the server's contract (refusals, replays by request id, sessions on
//! both nodes, WatchRole) to drive `PairClient` through failovers without `tandemd`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tandem_proto::gateway as pb;
use tandem_proto::gateway::gateway_server::{Gateway, GatewayServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::client::ACTIVE_ADDRESS_KEY;

/// The only password the fake accepts.
pub const PASSWORD: &str = "secret";

/// What a fake node does with requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Admits requests.
    Active,
    /// Refuses with FAILED_PRECONDITION naming the other node.
    Passive,
    /// Refuses with UNAVAILABLE (no active known).
    Unavailable,
    /// Active, but calls are blocked: FAILED_PRECONDITION without an address.
    CallsBlocked,
    /// Carries out the next StartCall, then loses its answer (UNAVAILABLE "outcome unknown")
    /// and hands over: this node becomes passive and the other active.
    ActiveLosingNextAnswer,
}

/// A request a node received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// 0 or 1.
    pub node: usize,
    /// "login", "resume", "start_call", "end_call", "list_calls" or "logout".
    pub method: &'static str,
    pub request_id: String,
}

enum Outcome {
    Login(pb::LoginReply),
    Start(pb::StartCallReply),
}

#[derive(Default)]
struct State {
    modes: [Option<Mode>; 2],
    /// token -> user, on both nodes (sessions are replicated).
    sessions: HashMap<String, String>,
    /// request id -> first outcome (replays are answered from here, on either node).
    outcomes: HashMap<String, Outcome>,
    log: Vec<Received>,
    counter: u64,
}

/// The shared state of the two fake nodes.
pub struct FakePair {
    pub addresses: [String; 2],
    pub ca_pem: String,
    state: Mutex<State>,
    roles: [watch::Sender<pb::RoleUpdate>; 2],
    /// When set, WatchRole never names an active (tests of refusals and failures).
    silent_watch: bool,
    servers: Mutex<Vec<AbortHandle>>,
}

impl Drop for FakePair {
    fn drop(&mut self) {
        for server in self.servers.lock().unwrap().iter() {
            server.abort();
        }
    }
}

impl FakePair {
    /// Starts two nodes on 127.0.0.1 with `modes`.
    pub async fn start(modes: [Mode; 2], silent_watch: bool) -> Arc<FakePair> {
        let (ca_pem, cert_pem, key_pem) = certificates();
        let listeners = [bind().await, bind().await];
        let addresses = listeners
            .each_ref()
            .map(|listener| listener.local_addr().unwrap().to_string());
        let pair = Arc::new(FakePair {
            addresses,
            ca_pem,
            state: Mutex::new(State::default()),
            roles: [watch::Sender::default(), watch::Sender::default()],
            silent_watch,
            servers: Mutex::new(Vec::new()),
        });
        pair.set_modes(modes);
        for (index, listener) in listeners.into_iter().enumerate() {
            let node = FakeNode {
                index,
                pair: pair.clone(),
            };
            let tls = ServerTlsConfig::new().identity(Identity::from_pem(&cert_pem, &key_pem));
            let server = Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(GatewayServer::new(node))
                .serve_with_incoming(TcpListenerStream::new(listener));
            let handle = tokio::spawn(server).abort_handle();
            pair.servers.lock().unwrap().push(handle);
        }
        pair
    }

    pub fn set_modes(&self, modes: [Mode; 2]) {
        self.state.lock().unwrap().modes = modes.map(Some);
        self.publish_roles(modes);
    }

    /// Every request received so far, in order.
    pub fn log(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// Forgets every session, as if they had expired.
    pub fn expire_sessions(&self) {
        self.state.lock().unwrap().sessions.clear();
    }

    fn publish_roles(&self, modes: [Mode; 2]) {
        for (index, mode) in modes.into_iter().enumerate() {
            let (role, active) = match mode {
                Mode::Active | Mode::CallsBlocked | Mode::ActiveLosingNextAnswer => {
                    ("active", self.addresses[index].clone())
                }
                Mode::Passive => ("passive", self.addresses[1 - index].clone()),
                Mode::Unavailable => ("passive", String::new()),
            };
            let update = pb::RoleUpdate {
                node: format!("node-{index}"),
                role: role.to_string(),
                epoch: 1,
                active_client_address: if self.silent_watch {
                    String::new()
                } else {
                    active
                },
                admitting: role == "active",
            };
            self.roles[index].send_replace(update);
        }
    }
}

/// A CA and a certificate for `tandem-node` it signed, in PEM.
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec![crate::client::DEFAULT_SERVER_NAME.to_string()]).unwrap();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Another CA, which signed nothing the fake presents.
pub fn unrelated_ca() -> String {
    certificates().0
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An address nothing listens on (bound, then released).
pub async fn closed_address() -> String {
    let listener = bind().await;
    listener.local_addr().unwrap().to_string()
}

struct FakeNode {
    index: usize,
    pair: Arc<FakePair>,
}

impl FakeNode {
    /// Logs the request and applies the node's mode; `Ok` with the state locked when admitted.
    fn admit(
        &self,
        method: &'static str,
        request_id: &str,
    ) -> Result<std::sync::MutexGuard<'_, State>, Status> {
        let mut state = self.pair.state.lock().unwrap();
        state.log.push(Received {
            node: self.index,
            method,
            request_id: request_id.to_string(),
        });
        match state.modes[self.index].unwrap() {
            Mode::Active | Mode::ActiveLosingNextAnswer => Ok(state),
            Mode::CallsBlocked if !method.contains("call") => Ok(state),
            Mode::CallsBlocked => Err(Status::failed_precondition(
                "calls are blocked on this pair; try again once an administrator unblocks them",
            )),
            Mode::Unavailable => Err(Status::unavailable("no active node is known; retry")),
            Mode::Passive => {
                let active = &self.pair.addresses[1 - self.index];
                let mut refusal =
                    Status::failed_precondition(format!("passive; the active node is at {active}"));
                refusal
                    .metadata_mut()
                    .insert(ACTIVE_ADDRESS_KEY, active.parse().unwrap());
                Err(refusal)
            }
        }
    }
}

fn user_of(state: &State, token: &str) -> Result<String, Status> {
    state
        .sessions
        .get(token)
        .cloned()
        .ok_or_else(|| Status::unauthenticated("unknown or expired session"))
}

type RoleStream = Pin<Box<dyn Stream<Item = Result<pb::RoleUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Gateway for FakeNode {
    type WatchRoleStream = RoleStream;

    async fn watch_role(
        &self,
        _: Request<pb::WatchRoleRequest>,
    ) -> Result<Response<RoleStream>, Status> {
        let roles = self.pair.roles[self.index].subscribe();
        let updates = futures::stream::unfold((roles, true), |(mut roles, first)| async move {
            if !first {
                roles.changed().await.ok()?;
            }
            let update = roles.borrow_and_update().clone();
            Some((Ok(update), (roles, false)))
        });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginReply>, Status> {
        let request = request.into_inner();
        let reply = match request.credential {
            Some(pb::login_request::Credential::Password(password)) => {
                let mut state = self.admit("login", &request.request_id)?;
                if let Some(Outcome::Login(reply)) = state.outcomes.get(&request.request_id) {
                    return Ok(Response::new(reply.clone()));
                }
                if password != PASSWORD {
                    return Err(Status::unauthenticated("wrong user or password"));
                }
                state.counter += 1;
                let token = format!("token-{}", state.counter);
                state.sessions.insert(token.clone(), request.user.clone());
                let reply = pb::LoginReply {
                    token,
                    session_id: format!("session-{}", state.counter),
                    user: request.user,
                    resumed: false,
                    expires_at_ms: 0,
                    node: format!("node-{}", self.index),
                };
                state
                    .outcomes
                    .insert(request.request_id, Outcome::Login(reply.clone()));
                reply
            }
            Some(pb::login_request::Credential::ResumeToken(token)) => {
                let state = self.admit("resume", &request.request_id)?;
                let user = user_of(&state, &token)?;
                pb::LoginReply {
                    token,
                    session_id: "resumed".to_string(),
                    user,
                    resumed: true,
                    expires_at_ms: 0,
                    node: format!("node-{}", self.index),
                }
            }
            None => return Err(Status::invalid_argument("no credential")),
        };
        Ok(Response::new(reply))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutReply>, Status> {
        let request = request.into_inner();
        let mut state = self.admit("logout", &request.request_id)?;
        user_of(&state, &request.token)?;
        state.sessions.remove(&request.token);
        Ok(Response::new(pb::LogoutReply {}))
    }

    async fn start_call(
        &self,
        request: Request<pb::StartCallRequest>,
    ) -> Result<Response<pb::StartCallReply>, Status> {
        let request = request.into_inner();
        let mut state = self.admit("start_call", &request.request_id)?;
        user_of(&state, &request.token)?;
        if let Some(Outcome::Start(first)) = state.outcomes.get(&request.request_id) {
            let replay = pb::StartCallReply {
                replayed: true,
                ..first.clone()
            };
            return Ok(Response::new(replay));
        }
        state.counter += 1;
        let reply = pb::StartCallReply {
            call_id: format!("call-{}", state.counter),
            started_at_ms: 1,
            replayed: false,
        };
        state
            .outcomes
            .insert(request.request_id, Outcome::Start(reply.clone()));
        if state.modes[self.index] == Some(Mode::ActiveLosingNextAnswer) {
            let mut modes = [Mode::Active; 2];
            modes[self.index] = Mode::Passive;
            drop(state);
            self.pair.set_modes(modes);
            return Err(Status::unavailable("outcome unknown: the peer was lost"));
        }
        Ok(Response::new(reply))
    }

    async fn end_call(
        &self,
        request: Request<pb::EndCallRequest>,
    ) -> Result<Response<pb::EndCallReply>, Status> {
        let request = request.into_inner();
        let state = self.admit("end_call", &request.request_id)?;
        user_of(&state, &request.token)?;
        Ok(Response::new(pb::EndCallReply {
            call_id: request.call_id,
            cause: request.cause,
            ended_at_ms: 2,
            duration_ms: 1,
            already_ended: false,
        }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsReply>, Status> {
        let request = request.into_inner();
        let state = self.admit("list_calls", "")?;
        user_of(&state, &request.token)?;
        Ok(Response::new(pb::ListCallsReply { calls: Vec::new() }))
    }
}
