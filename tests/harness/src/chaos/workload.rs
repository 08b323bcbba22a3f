//! The chaos run's workload and its history: Data API writers inserting rows with unique ids,
//! gateway clients logging in and placing calls, and a file writer on the active's directory.
//! Every operation is recorded with its outcome: acknowledged, refused, or unknown.
//!
//! The Data API writers speak gRPC over TLS to the nodes' client ports like an application
//! does: a refusal from the passive sends them to the other node, and an unknown outcome is
//! retried with the same request id (the nodes act on a request id once), on either node. The
//! callers are real `PairClient`s (tandem-gateway's client), as a remote gate uses them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_gateway::client::{ClientError, PairClient, PairConfig};
use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as data_pb, value::Kind};
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
                for user in &targets.users {
                    tasks.push(tokio::spawn(caller(
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
    (user, password): (String, String),
    targets: Targets,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let addresses = [targets.nodes[0].1.clone(), targets.nodes[1].1.clone()];
    let mut config = PairConfig::new(addresses, targets.ca_pem.clone());
    config.client_kind = "chaos".into();
    config.operation_timeout = Duration::from_secs(10);
    config.attempt_timeout = Duration::from_secs(3);
    let mut client = match PairClient::new(config) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("chaos caller {user}: {error}");
            return;
        }
    };
    let record_login = |outcome: Outcome| {
        *history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .logins
            .entry(outcome)
            .or_insert(0) += 1;
    };
    let mut logged_in = false;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        if !logged_in {
            match client.login(&user, &password).await {
                Ok(_) => {
                    record_login(Outcome::Acked);
                    logged_in = true;
                }
                Err(error) => {
                    record_login(outcome_of(&error));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        // A start that timed out is repeated with its request id: the nodes act on it once.
        let start_id = format!("chaos-start-{user}-{seq}");
        let mut started = None;
        let mut start_unknown = false;
        for _attempt in 0..3 {
            match client
                .start_call_with_request_id(&start_id, &user, &seq.to_string())
                .await
            {
                Ok(call) => {
                    started = Some(call.call_id);
                    break;
                }
                Err(error) => {
                    logged_in &= !needs_login(&error);
                    start_unknown = outcome_of(&error) == Outcome::Unknown;
                    if !start_unknown {
                        break;
                    }
                }
            }
        }
        let Some(call_id) = started else {
            if start_unknown {
                history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .calls_unknown += 1;
            }
            continue;
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let end_id = format!("chaos-end-{user}-{seq}");
        let mut outcome = Outcome::Unknown;
        for _attempt in 0..3 {
            match client
                .end_call_with_request_id(&end_id, &call_id, "normal")
                .await
            {
                Ok(_) => {
                    outcome = Outcome::Acked;
                    break;
                }
                Err(error) => {
                    logged_in &= !needs_login(&error);
                    if outcome_of(&error) != Outcome::Unknown {
                        // Not ended by us; whether the call has a CDR is not known either
                        // (a new active may have closed it), so it stays unknown.
                        break;
                    }
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

/// What a `PairClient` failure says of the request: a node's refusal (or a refusal of the
/// session) is acted on by no one; a timeout may or may not have been.
fn outcome_of(error: &ClientError) -> Outcome {
    match error {
        ClientError::Timeout { .. } => Outcome::Unknown,
        _ => Outcome::Refused,
    }
}

/// Whether the client lost its session and must log in again.
fn needs_login(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Unauthenticated { .. } | ClientError::NotLoggedIn { .. }
    )
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
