//! `PairClient`: the operations, and the loop that carries each one through refusals, broken
//! connections and failovers until it succeeds, is refused, or its deadline passes.
//!
//! Every operation runs the same loop (`run`): pick the node (the active as the role watchers
//! see it), resume the session there if it was not confirmed on that connection, send the
//! request, and on failure ask `Route` where to go next and how long to wait. The request is
//! built once, so every attempt carries the same request id.

use std::time::Duration;

use futures::future::BoxFuture;
use ring::rand::SystemRandom;
use tandem_proto::gateway as pb;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Response, Status};

use super::backoff::{Backoff, random_u64};
use super::channels::Channels;
use super::config::PairConfig;
use super::error::ClientError;
use super::events::{ClientEvent, ClientStats, EventLog};
use super::replies::{CallEnded, CallInfo, CallStarted, SessionInfo};
use super::role_watch::RoleWatch;
use super::route::{ACTIVE_ADDRESS_KEY, Route, Step, Verdict, classify};
use super::status_text::describe_status;

/// The longest request id the gateway accepts.
const REQUEST_ID_BYTES_MAX: usize = 128;

/// One attempt of an operation: given a client for the chosen node and the session token (empty
/// for a login), sends the request, which the closure built once with its request id.
type Call<T> = dyn FnMut(GatewayClient<Channel>, String) -> BoxFuture<'static, Result<Response<T>, Status>>
    + Send;

/// How an operation uses the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionUse {
    /// A login: no token sent.
    None,
    /// The token is sent as is (logout).
    Token,
    /// The session is resumed on a node before the first request there (calls).
    Resumed,
}

/// Why one attempt failed.
enum AttemptError {
    /// A node or the transport answered with a status, during `phase` ("resume" or the op).
    Failed { phase: &'static str, status: Status },
    /// The operation cannot run at all (no session).
    Fatal(ClientError),
}

/// The open session.
struct Session {
    /// Sent with every request, and used to resume.
    token: String,
    /// Where a Login (password or resume) last accepted the token on the connection in use.
    /// A request to another address, or after that connection was dropped, resumes first.
    confirmed_at: Option<String>,
}

/// A client for the two nodes of a pair: finds the active, follows refusals and role changes,
/// reconnects with back-off, resumes its session and re-issues requests with their request id.
/// See the [module documentation](super) for an example.
///
/// Operations take `&mut self`: one runs at a time per client. Dropping the client stops its
/// role watchers.
pub struct PairClient {
    /// The checked configuration.
    config: PairConfig,
    /// One connection per address, dialled lazily and dropped after a failure.
    channels: Channels,
    /// The role watchers' view of the active; where each operation starts.
    roles: RoleWatch,
    /// The open session, if any.
    session: Option<Session>,
    /// The address that last answered: where to start when the watchers know no active.
    last_answered: Option<String>,
    /// Counters for `stats`.
    stats: ClientStats,
    /// Recent events for `drain_events`, bounded.
    events: EventLog,
    /// Randomness for the back-off jitter.
    random: SystemRandom,
}

impl PairClient {
    /// Checks `config` and starts the role watchers; does not wait for anything. Must run inside
    /// a tokio runtime.
    pub fn new(config: PairConfig) -> Result<PairClient, ClientError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ClientError::Config(
                "PairClient must be created inside a tokio runtime".to_string(),
            ));
        }
        let endpoints = [
            config.endpoint(&config.addresses[0])?,
            config.endpoint(&config.addresses[1])?,
        ];
        let backoff = Backoff::new(config.backoff_min, config.backoff_max);
        let roles = RoleWatch::start(endpoints.clone(), &config.addresses, backoff);
        Ok(PairClient {
            channels: Channels::new(&config.addresses, endpoints),
            config,
            roles,
            session: None,
            last_answered: None,
            stats: ClientStats::default(),
            events: EventLog::default(),
            random: SystemRandom::new(),
        })
    }

    /// [`PairClient::new`], then waits (up to the operation timeout) until a node names the
    /// active.
    pub async fn connect(config: PairConfig) -> Result<PairClient, ClientError> {
        let client = PairClient::new(config)?;
        client.wait_for_active().await?;
        Ok(client)
    }

    /// Waits (up to the operation timeout) until the role watchers know the active, and returns
    /// its address.
    pub async fn wait_for_active(&self) -> Result<String, ClientError> {
        let mut active = self.roles.subscribe();
        let timeout = self.config.operation_timeout;
        let known = tokio::time::timeout(timeout, async {
            active
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|address| address.clone())
        })
        .await;
        match known {
            Ok(Some(address)) => Ok(address),
            _ => Err(ClientError::Timeout {
                op: "connect",
                timeout,
                last: format!(
                    "no node named an active node; last WatchRole failures: {}",
                    self.roles.failures()
                ),
            }),
        }
    }

    /// Opens a session with a password. The token is kept for the following operations.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<SessionInfo, ClientError> {
        let credential = pb::login_request::Credential::Password(password.to_string());
        self.open_session("login", user, credential).await
    }

    /// Resumes a session with its token (e.g. saved by an earlier run), without a password
    /// round. The token is kept for the following operations.
    pub async fn resume(&mut self, token: &str) -> Result<SessionInfo, ClientError> {
        let credential = pb::login_request::Credential::ResumeToken(token.to_string());
        let session = self.open_session("resume", "", credential).await?;
        self.stats.resumes += 1;
        Ok(session)
    }

    /// Starts a call from `from` to `to`, under a fresh request id.
    pub async fn start_call(&mut self, from: &str, to: &str) -> Result<CallStarted, ClientError> {
        self.start_call_with_request_id(&PairClient::new_request_id(), from, to)
            .await
    }

    /// Starts a call under `request_id`: repeating a `start_call` that timed out with the same
    /// id gives the first outcome (the same call) instead of a second call.
    pub async fn start_call_with_request_id(
        &mut self,
        request_id: &str,
        from: &str,
        to: &str,
    ) -> Result<CallStarted, ClientError> {
        check_request_id("start_call", request_id)?;
        let request_id = request_id.to_string();
        let request = pb::StartCallRequest {
            request_id: request_id.clone(),
            token: String::new(),
            from: from.to_string(),
            to: to.to_string(),
        };
        let call = Box::new(move |mut client: GatewayClient<Channel>, token: String| {
            let request = pb::StartCallRequest {
                token,
                ..request.clone()
            };
            let reply: BoxFuture<'static, _> =
                Box::pin(async move { client.start_call(request).await });
            reply
        });
        let (reply, address) = self.run("start_call", SessionUse::Resumed, call).await?;
        Ok(CallStarted {
            call_id: reply.call_id,
            request_id,
            started_at_ms: reply.started_at_ms,
            replayed: reply.replayed,
            address,
        })
    }

    /// Ends a call and writes its CDR with `cause` ("normal" when empty), under a fresh request
    /// id. A call that had already ended (e.g. closed with "failover" by a new active) succeeds
    /// with `already_ended` and the earlier cause.
    pub async fn end_call(&mut self, call_id: &str, cause: &str) -> Result<CallEnded, ClientError> {
        self.end_call_with_request_id(&PairClient::new_request_id(), call_id, cause)
            .await
    }

    /// Ends a call under `request_id`: repeating an `end_call` that timed out with the same id
    /// gives the first outcome.
    pub async fn end_call_with_request_id(
        &mut self,
        request_id: &str,
        call_id: &str,
        cause: &str,
    ) -> Result<CallEnded, ClientError> {
        check_request_id("end_call", request_id)?;
        let request_id = request_id.to_string();
        let request = pb::EndCallRequest {
            request_id: request_id.clone(),
            token: String::new(),
            call_id: call_id.to_string(),
            cause: cause.to_string(),
        };
        let call = Box::new(move |mut client: GatewayClient<Channel>, token: String| {
            let request = pb::EndCallRequest {
                token,
                ..request.clone()
            };
            let reply: BoxFuture<'static, _> =
                Box::pin(async move { client.end_call(request).await });
            reply
        });
        let (reply, address) = self.run("end_call", SessionUse::Resumed, call).await?;
        Ok(CallEnded {
            call_id: reply.call_id,
            request_id,
            cause: reply.cause,
            ended_at_ms: reply.ended_at_ms,
            duration_ms: reply.duration_ms,
            already_ended: reply.already_ended,
            address,
        })
    }

    /// The session's user's running calls.
    pub async fn list_calls(&mut self) -> Result<Vec<CallInfo>, ClientError> {
        let call = Box::new(|mut client: GatewayClient<Channel>, token: String| {
            let reply: BoxFuture<'static, _> =
                Box::pin(async move { client.list_calls(pb::ListCallsRequest { token }).await });
            reply
        });
        let (reply, _) = self.run("list_calls", SessionUse::Resumed, call).await?;
        Ok(reply.calls.into_iter().map(CallInfo::from).collect())
    }

    /// Ends the session on both nodes and forgets the token. If it fails with `Timeout`, the
    /// token is kept and `logout` can be called again.
    pub async fn logout(&mut self) -> Result<(), ClientError> {
        let request_id = PairClient::new_request_id();
        let call = Box::new(move |mut client: GatewayClient<Channel>, token: String| {
            let request = pb::LogoutRequest {
                request_id: request_id.clone(),
                token,
            };
            let reply: BoxFuture<'static, _> =
                Box::pin(async move { client.logout(request).await });
            reply
        });
        self.run("logout", SessionUse::Token, call).await?;
        self.session = None;
        Ok(())
    }

    /// A fresh request id: a ULID (26 characters, well under the gateway's 128 bytes).
    pub fn new_request_id() -> String {
        ulid::Ulid::new().to_string()
    }

    /// The session token, while a session is open.
    pub fn token(&self) -> Option<&str> {
        self.session.as_ref().map(|session| session.token.as_str())
    }

    /// The active's client address: as the role watchers see it, else the address that last
    /// answered.
    pub fn active_address(&self) -> Option<String> {
        self.roles.active().or_else(|| self.last_answered.clone())
    }

    /// Counters since the client was created.
    pub fn stats(&self) -> ClientStats {
        self.stats.clone()
    }

    /// The events since the last call, oldest first (at most the last 256; older ones are
    /// dropped and counted in `ClientStats::events_dropped`).
    pub fn drain_events(&mut self) -> Vec<ClientEvent> {
        self.events.drain()
    }

    /// The configuration in use.
    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    /// A password login or an explicit resume: on success the session is this one, confirmed
    /// where it answered.
    async fn open_session(
        &mut self,
        op: &'static str,
        user: &str,
        credential: pb::login_request::Credential,
    ) -> Result<SessionInfo, ClientError> {
        let request_id = PairClient::new_request_id();
        let request = pb::LoginRequest {
            request_id: request_id.clone(),
            user: user.to_string(),
            credential: Some(credential),
            client_kind: self.config.client_kind.clone(),
        };
        let call = Box::new(move |mut client: GatewayClient<Channel>, _token: String| {
            let request = request.clone();
            let reply: BoxFuture<'static, _> = Box::pin(async move { client.login(request).await });
            reply
        });
        let (reply, address) = self.run(op, SessionUse::None, call).await?;
        self.session = Some(Session {
            token: reply.token.clone(),
            confirmed_at: Some(address.clone()),
        });
        Ok(SessionInfo::from_reply(reply, address, request_id))
    }

    /// Runs one operation to its end, counting the outcome.
    async fn run<T>(
        &mut self,
        op: &'static str,
        session_use: SessionUse,
        mut call: Box<Call<T>>,
    ) -> Result<(T, String), ClientError> {
        let result = self.run_attempts(op, session_use, &mut call).await;
        match &result {
            Ok(_) => self.stats.operations_ok += 1,
            Err(_) => self.stats.operations_failed += 1,
        }
        result
    }

    /// Attempts until success, a failure for the caller, or the deadline.
    async fn run_attempts<T>(
        &mut self,
        op: &'static str,
        session_use: SessionUse,
        call: &mut Box<Call<T>>,
    ) -> Result<(T, String), ClientError> {
        let timeout = self.config.operation_timeout;
        let deadline = Instant::now() + timeout;
        let backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut route = Route::new(self.config.addresses.clone(), self.first_address(), backoff);
        let mut active_changes = self.roles.subscribe();
        active_changes.borrow_and_update();
        let mut first_failure: Option<Instant> = None;
        // The last failure, with its address, for the `Timeout` error.
        let mut last: Option<String> = None;
        loop {
            if Instant::now() >= deadline {
                return Err(timed_out(op, timeout, last));
            }
            let address = route.address().to_string();
            let attempt_started = Instant::now();
            let (phase, status) = match self
                .attempt(op, session_use, &address, deadline, call)
                .await
            {
                Ok(reply) => {
                    self.on_success(op, &address, first_failure);
                    return Ok((reply, address));
                }
                Err(AttemptError::Fatal(error)) => return Err(error),
                Err(AttemptError::Failed { phase, status }) => (phase, status),
            };
            // The gap starts when the first failed attempt was sent: a request into a stalled
            // node fails only when the keepalive gives up, seconds later.
            first_failure.get_or_insert(attempt_started);
            let failure = format!("{phase}: {}", describe_status(&status));
            last = Some(last_failure(last, &address, &failure, &status, deadline));
            let verdict = classify(status.code(), active_address_of(&status));
            let hint = self.roles.active();
            let delay = match route.on_failure(&verdict, hint.as_deref(), random_u64(&self.random))
            {
                Step::Retry { delay, .. } => delay,
                Step::GiveUp => {
                    return Err(self.give_up(phase, session_use, address, status, &verdict));
                }
            };
            if Instant::now() + delay >= deadline {
                return Err(timed_out(op, timeout, last));
            }
            self.note_retry(
                op,
                &address,
                &status,
                &verdict,
                route.address(),
                delay,
                failure,
            );
            wait_or_follow_role_change(delay, &mut active_changes, &mut route).await;
        }
    }

    /// One attempt at `address`: resume the session there if needed, then send the request,
    /// waiting at most the attempt timeout (and never past `deadline`).
    async fn attempt<T>(
        &mut self,
        op: &'static str,
        session_use: SessionUse,
        address: &str,
        deadline: Instant,
        call: &mut Box<Call<T>>,
    ) -> Result<T, AttemptError> {
        let failed = |status| AttemptError::Failed { phase: op, status };
        let channel = self
            .channels
            .get(&self.config, address)
            .map_err(|error| failed(Status::unavailable(error.to_string())))?;
        let client = GatewayClient::new(channel);
        let mut token = String::new();
        if session_use != SessionUse::None {
            let session = self
                .session
                .as_ref()
                .ok_or(AttemptError::Fatal(ClientError::NotLoggedIn { op }))?;
            token = session.token.clone();
            let confirmed_here = session.confirmed_at.as_deref() == Some(address);
            if session_use == SessionUse::Resumed && !confirmed_here {
                token = self
                    .resume_at(client.clone(), address, token, deadline)
                    .await?;
            }
        }
        let budget = self.attempt_budget(deadline);
        match tokio::time::timeout(budget, call(client, token)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(failed(status)),
            Err(_) => Err(failed(no_answer(budget))),
        }
    }

    /// Resumes the session at `address` with `token` before a request there; returns the token
    /// to use from now on.
    async fn resume_at(
        &mut self,
        mut client: GatewayClient<Channel>,
        address: &str,
        token: String,
        deadline: Instant,
    ) -> Result<String, AttemptError> {
        let failed = |status| AttemptError::Failed {
            phase: "resume",
            status,
        };
        let request_id = PairClient::new_request_id();
        let request = pb::LoginRequest {
            request_id: request_id.clone(),
            user: String::new(),
            credential: Some(pb::login_request::Credential::ResumeToken(token.clone())),
            client_kind: self.config.client_kind.clone(),
        };
        let budget = self.attempt_budget(deadline);
        let reply = match tokio::time::timeout(budget, client.login(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(failed(status)),
            Err(_) => return Err(failed(no_answer(budget))),
        };
        // The node may hand out a new token; an empty one means "keep yours".
        let token = if reply.token.is_empty() {
            token
        } else {
            reply.token
        };
        self.session = Some(Session {
            token: token.clone(),
            confirmed_at: Some(address.to_string()),
        });
        self.stats.resumes += 1;
        self.record(ClientEvent::Resumed {
            address: address.to_string(),
            node: reply.node,
            session_id: reply.session_id,
            request_id,
        });
        Ok(token)
    }

    /// The failure to hand the caller when the route gives up.
    fn give_up(
        &mut self,
        phase: &'static str,
        session_use: SessionUse,
        address: String,
        status: Status,
        verdict: &Verdict,
    ) -> ClientError {
        let message = status.message().to_string();
        if *verdict == Verdict::Unauthenticated {
            // The token (or password) is no good anywhere: sessions are replicated.
            if session_use != SessionUse::None {
                self.session = None;
            }
            return ClientError::Unauthenticated { op: phase, message };
        }
        ClientError::Refused {
            op: phase,
            address,
            code: status.code(),
            message,
        }
    }

    /// Counts and records a retry; after a transport failure, drops the connection (and with it
    /// the session's confirmation there).
    #[allow(clippy::too_many_arguments)]
    fn note_retry(
        &mut self,
        op: &'static str,
        address: &str,
        status: &Status,
        verdict: &Verdict,
        next: &str,
        delay: Duration,
        failure: String,
    ) {
        self.stats.retries += 1;
        if let Verdict::Follow(active) = verdict {
            self.stats.refusals_followed += 1;
            self.record(ClientEvent::Followed {
                from: address.to_string(),
                to: active.clone(),
            });
            return;
        }
        if connection_broke(status) {
            if self.channels.drop_connection(address) {
                self.stats.reconnects += 1;
            }
            if let Some(session) = self.session.as_mut()
                && session.confirmed_at.as_deref() == Some(address)
            {
                session.confirmed_at = None;
            }
        }
        self.record(ClientEvent::Retrying {
            op,
            address: address.to_string(),
            failure,
            next: next.to_string(),
            delay,
        });
    }

    fn on_success(&mut self, op: &'static str, address: &str, first_failure: Option<Instant>) {
        self.last_answered = Some(address.to_string());
        if let Some(first_failure) = first_failure {
            let gap = first_failure.elapsed();
            self.stats.longest_gap = self.stats.longest_gap.max(gap);
            self.record(ClientEvent::Recovered {
                op,
                address: address.to_string(),
                gap,
            });
        }
    }

    fn record(&mut self, event: ClientEvent) {
        tracing::debug!(%event, "PairClient");
        if self.events.push(event) {
            self.stats.events_dropped += 1;
        }
    }

    /// Where an operation starts: the watched active, else the address that last answered,
    /// else the first configured address.
    fn first_address(&self) -> String {
        self.roles
            .active()
            .or_else(|| self.last_answered.clone())
            .unwrap_or_else(|| self.config.addresses[0].clone())
    }

    fn attempt_budget(&self, deadline: Instant) -> Duration {
        self.config
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
    }
}

/// The `Timeout` error of `op`, naming the last failure.
fn timed_out(op: &'static str, timeout: Duration, last: Option<String>) -> ClientError {
    let last = last.unwrap_or_else(|| "no attempt could be made".to_string());
    ClientError::Timeout { op, timeout, last }
}

/// The failure a `Timeout` names after an attempt at `address` failed with `failure`. An attempt
/// cut short by the operation's deadline says little ("no answer within 3ms"), so the failure
/// before it is kept in front.
fn last_failure(
    previous: Option<String>,
    address: &str,
    failure: &str,
    status: &Status,
    deadline: Instant,
) -> String {
    let described = format!("{address}: {failure}");
    let cut_by_deadline =
        status.code() == tonic::Code::DeadlineExceeded && Instant::now() >= deadline;
    match previous {
        Some(previous) if cut_by_deadline => format!("{previous}; then {described}"),
        _ => described,
    }
}

/// Waits out a pause between attempts; if the watchers learn of a new active meanwhile, stops
/// waiting and goes there.
async fn wait_or_follow_role_change(
    delay: Duration,
    active_changes: &mut watch::Receiver<Option<String>>,
    route: &mut Route,
) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        changed = active_changes.changed() => {
            if changed.is_ok() {
                let active = active_changes.borrow_and_update().clone();
                if let Some(active) = active {
                    route.redirect(&active);
                }
            }
        }
    }
}

/// The active's address a passive put in its refusal's metadata.
fn active_address_of(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(ACTIVE_ADDRESS_KEY)
        .and_then(|value| value.to_str().ok())
}

/// True when the failure came from the connection rather than from a node's answer: tonic
/// attaches the underlying error to the statuses it makes itself, never to one a server sent.
/// (The attempt timeout is made here without a source, and is treated as a broken connection
/// too: `no_answer`'s code is DEADLINE_EXCEEDED.)
fn connection_broke(status: &Status) -> bool {
    std::error::Error::source(status).is_some() || status.code() == tonic::Code::DeadlineExceeded
}

/// The failure of an attempt that got no answer in time.
fn no_answer(budget: Duration) -> Status {
    Status::deadline_exceeded(format!("no answer within {budget:?}"))
}

/// Refuses a request id the gateway would refuse (empty, or longer than 128 bytes).
fn check_request_id(op: &'static str, request_id: &str) -> Result<(), ClientError> {
    if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
        return Err(ClientError::Invalid {
            op,
            message: format!(
                "a request id must be 1 to {REQUEST_ID_BYTES_MAX} bytes, not {}",
                request_id.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_ulids() {
        let first = PairClient::new_request_id();
        let second = PairClient::new_request_id();
        assert_ne!(first, second);
        assert_eq!(first.len(), 26);
        assert!(ulid::Ulid::from_string(&first).is_ok());
    }

    #[test]
    fn request_ids_the_gateway_would_refuse_are_refused_here() {
        assert!(check_request_id("start_call", &"x".repeat(128)).is_ok());
        for bad in [String::new(), "x".repeat(129)] {
            let error = check_request_id("start_call", &bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    ClientError::Invalid {
                        op: "start_call",
                        ..
                    }
                ),
                "{error}"
            );
        }
    }

    #[test]
    fn the_active_address_is_read_from_the_refusal_metadata() {
        let mut refusal = Status::failed_precondition("b is passive; the active node is a");
        assert_eq!(active_address_of(&refusal), None);
        refusal
            .metadata_mut()
            .insert(ACTIVE_ADDRESS_KEY, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(active_address_of(&refusal), Some("127.0.0.1:7001"));
    }

    #[test]
    fn an_attempt_cut_by_the_deadline_keeps_the_failure_before_it() {
        let passed = Instant::now();
        let previous = Some("a:1: login: Unavailable: no active node is known".to_string());
        let cut = no_answer(Duration::ZERO);
        let last = last_failure(previous.clone(), "b:2", "login: cut", &cut, passed);
        assert_eq!(
            last,
            "a:1: login: Unavailable: no active node is known; then b:2: login: cut"
        );
        // Before the deadline, or for any other failure, the newest failure alone is named.
        let later = Instant::now() + Duration::from_secs(60);
        let last = last_failure(previous.clone(), "b:2", "login: slow", &cut, later);
        assert_eq!(last, "b:2: login: slow");
        let refused = Status::unavailable("busy");
        let last = last_failure(previous, "b:2", "login: busy", &refused, passed);
        assert_eq!(last, "b:2: login: busy");
    }

    #[test]
    fn a_status_sent_by_a_node_is_not_a_broken_connection() {
        assert!(!connection_broke(&Status::unavailable(
            "no active node is known"
        )));
        assert!(connection_broke(&no_answer(Duration::from_secs(1))));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(connection_broke(&Status::from_error(Box::new(io))));
    }
}
