//! The chaos run's workload and its history: Data API writers inserting rows with unique ids,
//! gateway clients logging in and placing calls, and a file writer on the active's directory.
//! Every operation is recorded with its outcome: acknowledged, refused, or unknown.
//!
//! The clients speak gRPC over TLS to the nodes' client ports like an application does, and
//! follow the active the way `PairClient` does: a refusal from the passive sends them to the
//! other node, and an unknown outcome is retried with the same request id (the nodes act on a
//! request id once), on either node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as data_pb, value::Kind};
use tandem_proto::gateway::gateway_client::GatewayClient;
use tandem_proto::gateway::{self as gw_pb, login_request::Credential};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// How a recorded operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Acked,
    Refused,
    Unknown,
}

/// Everything the workload did.
#[derive(Default)]
pub struct History {
    /// Row id → outcome of its insert.
    pub rows: BTreeMap<String, Outcome>,
    /// Call id → whether its `EndCall` was acknowledged.
    pub calls: BTreeMap<String, Outcome>,
    /// Calls whose `StartCall` outcome was unknown (they may exist without our knowing the id).
    pub calls_unknown: u64,
    /// File name → (content, outcome).
    pub files: BTreeMap<String, (Vec<u8>, Outcome)>,
    pub logins: BTreeMap<Outcome, u64>,
}

impl History {
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        let mut add = |what: &str, outcome: Outcome| {
            *counts
                .entry(format!("{what}_{outcome:?}").to_lowercase())
                .or_insert(0) += 1;
        };
        for outcome in self.rows.values() {
            add("row_insert", *outcome);
        }
        for outcome in self.calls.values() {
            add("call_end", *outcome);
        }
        for (_, outcome) in self.files.values() {
            add("file_write", *outcome);
        }
        for (outcome, count) in &self.logins {
            *counts
                .entry(format!("login_{outcome:?}").to_lowercase())
                .or_insert(0) += count;
        }
        counts.insert("call_start_unknown".into(), self.calls_unknown);
        counts
    }
}

/// Where the workload connects.
#[derive(Clone)]
pub struct Targets {
    /// (node name, client address) of both nodes.
    pub nodes: Vec<(String, String)>,
    pub ca_pem: Vec<u8>,
    /// Each node's `[[files]]` directory.
    pub file_dirs: BTreeMap<String, PathBuf>,
    /// The users the gateway clients log in as (created beforehand), with their password.
    pub users: Vec<(String, String)>,
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workload {
    /// Starts the workload on its own runtime thread; `active` tells the file writer which
    /// node is active now (it asks the harness).
    pub fn start(
        targets: Targets,
        writers: usize,
        active: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let (thread_stop, thread_history) = (stop.clone(), history.clone());
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("chaos workload: no runtime: {error}");
                    return;
                }
            };
            let active = Arc::new(active);
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for writer in 0..writers {
                    tasks.push(tokio::spawn(row_writer(
                        writer,
                        targets.clone(),
                        thread_stop.clone(),
                        thread_history.clone(),
                    )));
                }
                for (index, user) in targets.users.iter().enumerate() {
                    tasks.push(tokio::spawn(caller(
                        index,
                        user.clone(),
                        targets.clone(),
                        thread_stop.clone(),
                        thread_history.clone(),
                    )));
                }
                let files_stop = thread_stop.clone();
                let files_history = thread_history.clone();
                let dirs = targets.file_dirs.clone();
                tasks.push(tokio::task::spawn_blocking(move || {
                    file_writer(dirs, &*active, &files_stop, &files_history);
                }));
                for task in tasks {
                    let _ = task.await;
                }
            });
        });
        Workload {
            stop,
            history,
            thread: Some(thread),
        }
    }

    /// Stops the workload and returns its history.
    pub fn stop(mut self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.history.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn channel(targets: &Targets, index: usize) -> Option<Channel> {
    let (name, address) = &targets.nodes[index % targets.nodes.len()];
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&targets.ca_pem))
        .domain_name(name.clone());
    let endpoint = Channel::from_shared(format!("https://{address}"))
        .ok()?
        .tls_config(tls)
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    Some(endpoint.connect_lazy())
}

/// Whether a status is the passive's (or a blocked node's) refusal: acted on by no one.
fn refused(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
}

async fn row_writer(
    writer: usize,
    targets: Targets,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let mut clients = Vec::new();
    for index in 0..targets.nodes.len() {
        let Some(channel) = channel(&targets, index).await else {
            return;
        };
        clients.push(DataClient::new(channel));
    }
    let mut node = 0usize;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let id = format!("w{writer}-{seq}");
        let request = data_pb::ExecuteRequest {
            request_id: format!("chaos-row-{id}"),
            statements: vec![data_pb::Statement {
                sql: "INSERT INTO chaos_rows (id, writer, seq) VALUES (?, ?, ?)".into(),
                params: vec![
                    data_pb::Value {
                        kind: Some(Kind::Text(id.clone())),
                    },
                    data_pb::Value {
                        kind: Some(Kind::Integer(i64::try_from(writer).unwrap_or(0))),
                    },
                    data_pb::Value {
                        kind: Some(Kind::Integer(i64::try_from(seq).unwrap_or(0))),
                    },
                ],
            }],
        };
        // One insert: tried on either node until acknowledged, or given up as refused (no node
        // acted on it) or unknown.
        let mut outcome = Outcome::Unknown;
        let mut any_unknown = false;
        for _attempt in 0..6 {
            match clients[node].execute(request.clone()).await {
                Ok(_) => {
                    outcome = Outcome::Acked;
                    break;
                }
                Err(status) => {
                    if !refused(&status) {
                        any_unknown = true;
                    }
                    node = (node + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if outcome != Outcome::Acked && !any_unknown {
            outcome = Outcome::Refused;
        }
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .insert(id, outcome);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn caller(
    index: usize,
    (user, password): (String, String),
    targets: Targets,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let mut clients = Vec::new();
    for node in 0..targets.nodes.len() {
        let Some(channel) = channel(&targets, node).await else {
            return;
        };
        clients.push(GatewayClient::new(channel));
    }
    let mut node = index % clients.len();
    let mut token: Option<String> = None;
    let mut seq = 0u64;
    let record_login = |outcome: Outcome| {
        *history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .logins
            .entry(outcome)
            .or_insert(0) += 1;
    };
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        // A session: resume with the token if we have one, else log in with the password.
        if token.is_none() {
            let request = gw_pb::LoginRequest {
                request_id: format!("chaos-login-{user}-{seq}"),
                user: user.clone(),
                credential: Some(Credential::Password(password.clone())),
                client_kind: "chaos".into(),
            };
            match clients[node].login(request).await {
                Ok(reply) => {
                    token = Some(reply.into_inner().token);
                    record_login(Outcome::Acked);
                }
                Err(status) => {
                    record_login(if refused(&status) {
                        Outcome::Refused
                    } else {
                        Outcome::Unknown
                    });
                    node = (node + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(session) = token.clone() else {
            continue;
        };
        let start = gw_pb::StartCallRequest {
            request_id: format!("chaos-start-{user}-{seq}"),
            token: session.clone(),
            from: user.clone(),
            to: format!("{seq}"),
        };
        let mut call_id = None;
        let mut start_unknown = false;
        for _attempt in 0..6 {
            match clients[node].start_call(start.clone()).await {
                Ok(reply) => {
                    call_id = Some(reply.into_inner().call_id);
                    break;
                }
                Err(status) => {
                    if status.code() == tonic::Code::Unauthenticated {
                        token = None; // the session is gone: log in again
                        break;
                    }
                    if !refused(&status) {
                        start_unknown = true;
                    }
                    node = (node + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let Some(call_id) = call_id else {
            if start_unknown {
                history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .calls_unknown += 1;
            }
            continue;
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let end = gw_pb::EndCallRequest {
            request_id: format!("chaos-end-{user}-{seq}"),
            token: session,
            call_id: call_id.clone(),
            cause: "normal".into(),
        };
        let mut outcome = Outcome::Unknown;
        for _attempt in 0..6 {
            match clients[node].end_call(end.clone()).await {
                Ok(_) => {
                    outcome = Outcome::Acked;
                    break;
                }
                Err(status) => {
                    if status.code() == tonic::Code::Unauthenticated {
                        token = None;
                        break;
                    }
                    node = (node + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .insert(call_id, outcome);
    }
}

/// Writes a small file every half second into the directory of the node that is active now, as
/// an application on the active host does. A write is acknowledged once it is fsync'd there.
fn file_writer(
    dirs: BTreeMap<String, PathBuf>,
    active: &(dyn Fn() -> Option<String> + Send + Sync),
    stop: &AtomicBool,
    history: &Mutex<History>,
) {
    use std::io::Write;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(500));
        let Some(node) = active() else { continue };
        let Some(dir) = dirs.get(&node) else { continue };
        seq += 1;
        let name = format!("chaos-{seq:06}.wav");
        let content = format!("file {seq} written on {node}\n")
            .repeat(64)
            .into_bytes();
        let path = dir.join(&name);
        let outcome = std::fs::File::create(&path)
            .and_then(|mut file| {
                file.write_all(&content)?;
                file.sync_all()
            })
            .map_or(Outcome::Unknown, |()| Outcome::Acked);
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .insert(name, (content, outcome));
    }
}
