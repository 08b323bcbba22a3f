//! Register clients: each reads, writes and compares-and-sets a few integer registers (rows of
//! `lin_registers`) through the Data API, one operation at a time, and records every operation
//! with the wall-clock times around it.
//!
//! A client speaks gRPC over TLS to both nodes' client ports as an application does. A clean
//! refusal (FAILED_PRECONDITION: the passive, or a fenced node) ran nothing, so the client tries
//! the other node. Any other failure may have run the write, so the client repeats it with the
//! same request id, on either node, until an answer comes: the nodes act on a request id once
//! and replay its first outcome. Reads are strict (`allow_stale = false`). An operation that
//! gets no answer before its deadline is kept with an unknown outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as pb, value::Kind};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::history::{Op, OpKind, Value};
use crate::chaos::{Rng, wall_us};

/// The table of the registers, created by the run's migration.
pub const TABLE: &str = "lin_registers";
/// Its migration.
pub const MIGRATION: &str =
    "CREATE TABLE lin_registers (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);\n";
/// How long one operation keeps retrying for an answer.
const OPERATION_DEADLINE: Duration = Duration::from_secs(60);
/// How long one attempt waits (above `sync_timeout`, so a degrade answers within it).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the clients connect, and how many registers they use.
#[derive(Clone)]
pub struct Targets {
    /// (node name, client address) of both nodes.
    pub nodes: Vec<(String, String)>,
    pub ca_pem: Vec<u8>,
    pub registers: usize,
}

/// Running clients; `stop` ends them and hands back the history.
pub struct RegisterWorkload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<RegisterHistory>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Everything the clients did, and anything they were told that no correct node says.
#[derive(Default, Debug)]
pub struct RegisterHistory {
    pub ops: Vec<Op>,
    /// Answers that are themselves wrong (a statement refused as invalid, a malformed reply).
    pub errors: Vec<String>,
}

impl RegisterWorkload {
    /// Starts `clients` clients on a runtime of their own; `seed` chooses their operations.
    pub fn start(targets: Targets, clients: usize, seed: u64) -> RegisterWorkload {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(RegisterHistory::default()));
        let (thread_stop, thread_history) = (stop.clone(), history.clone());
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("register workload: no runtime: {error}");
                    return;
                }
            };
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..clients)
                    .map(|client| {
                        tokio::spawn(run_client(
                            client,
                            targets.clone(),
                            seed.wrapping_add(client as u64 * 7919),
                            thread_stop.clone(),
                            thread_history.clone(),
                        ))
                    })
                    .collect();
                for task in tasks {
                    let _ = task.await;
                }
            });
        });
        RegisterWorkload {
            stop,
            history,
            thread: Some(thread),
        }
    }

    /// Stops the clients (each finishes the operation it is in, which may take up to its
    /// deadline) and returns the history, operations in order of invocation.
    pub fn stop(mut self) -> RegisterHistory {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut history =
            std::mem::take(&mut *self.history.lock().unwrap_or_else(|p| p.into_inner()));
        history.ops.sort_by_key(|op| op.invoke_us);
        history
    }
}

impl Drop for RegisterWorkload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The statements that create the registers at 0, for the run to execute before the clients
/// start.
pub fn initial_rows(registers: usize) -> String {
    let rows: Vec<String> = (0..registers).map(|key| format!("({key}, 0)")).collect();
    format!(
        "INSERT INTO {TABLE} (id, value) VALUES {} ON CONFLICT (id) DO UPDATE SET value = 0",
        rows.join(", ")
    )
}

fn channel(targets: &Targets, index: usize) -> Option<Channel> {
    let (name, address) = &targets.nodes[index];
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&targets.ca_pem))
        .domain_name(name.clone());
    let endpoint = Channel::from_shared(format!("https://{address}"))
        .ok()?
        .tls_config(tls)
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(ATTEMPT_TIMEOUT);
    Some(endpoint.connect_lazy())
}

fn int(value: i64) -> pb::Value {
    pb::Value {
        kind: Some(Kind::Integer(value)),
    }
}

/// What one attempt came to.
enum Attempt {
    Answered(OpKind),
    /// Nothing ran: try the other node.
    Refused,
    /// It may have run: try again with the same request id.
    Unknown,
    /// An answer no correct node gives.
    Wrong(String),
}

async fn run_client(
    client: usize,
    targets: Targets,
    seed: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<RegisterHistory>>,
) {
    let mut nodes = Vec::new();
    for index in 0..targets.nodes.len() {
        let Some(channel) = channel(&targets, index) else {
            return;
        };
        nodes.push(DataClient::new(channel));
    }
    let mut rng = Rng::new(seed);
    let mut node = client % nodes.len();
    let mut seq: i64 = 0;
    // The value each register held at this client's last read of it: what its compare-and-set
    // expects.
    let mut last_seen: Vec<Value> = vec![0; targets.registers];
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = usize::try_from(rng.below(targets.registers as u64)).unwrap_or(0);
        // Values are unique to the write: client and sequence number.
        let value = (client as i64 + 1) * 1_000_000_000 + seq;
        let kind = match rng.below(10) {
            0..=4 => OpKind::Read { value: None },
            5..=7 => OpKind::Write { value },
            _ => OpKind::Cas {
                from: last_seen[key],
                to: value,
                succeeded: None,
            },
        };
        let request_id = format!("lin-{seed}-{client}-{seq}");
        let invoke_us = wall_us();
        let started = std::time::Instant::now();
        let mut maybe_ran = false;
        let mut answer = None;
        while started.elapsed() < OPERATION_DEADLINE {
            match attempt(&mut nodes[node], key, &kind, &request_id).await {
                Attempt::Answered(kind) => {
                    answer = Some((kind, wall_us(), targets.nodes[node].0.clone()));
                    break;
                }
                Attempt::Refused => {
                    node = (node + 1) % nodes.len();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Attempt::Unknown => {
                    maybe_ran = true;
                    node = (node + 1) % nodes.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Attempt::Wrong(error) => {
                    let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
                    history
                        .errors
                        .push(format!("client {client}, key {key}: {error}"));
                    maybe_ran = true;
                    break;
                }
            }
        }
        let op = match answer {
            Some((mut kind, complete_us, node)) => {
                if let OpKind::Read { value: Some(seen) } = kind {
                    last_seen[key] = seen;
                }
                // A failed compare-and-set answered after an attempt that may have run: the
                // request id dedupes a retry only where the first attempt's record is. On the
                // other side of a divergence the retry runs again and finds its own earlier
                // write, so "failed" does not say the first attempt did nothing.
                if maybe_ran
                    && let OpKind::Cas {
                        succeeded: succeeded @ Some(false),
                        ..
                    } = &mut kind
                {
                    *succeeded = None;
                }
                Op {
                    client,
                    key,
                    kind,
                    invoke_us,
                    complete_us: Some(complete_us),
                    node,
                }
            }
            // Only refusals: nothing ran, nothing to record.
            None if !maybe_ran => continue,
            None => Op {
                client,
                key,
                kind,
                invoke_us,
                complete_us: None,
                node: String::new(),
            },
        };
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ops
            .push(op);
    }
}

async fn attempt(
    node: &mut DataClient<Channel>,
    key: usize,
    kind: &OpKind,
    request_id: &str,
) -> Attempt {
    let key_param = int(i64::try_from(key).unwrap_or(0));
    let statement = |sql: &str, params: Vec<pb::Value>| pb::Statement {
        sql: sql.into(),
        params,
    };
    let outcome = match kind {
        OpKind::Read { .. } => {
            let request = pb::QueryRequest {
                statement: Some(statement(
                    &format!("SELECT value FROM {TABLE} WHERE id = ?"),
                    vec![key_param],
                )),
                allow_stale: false,
            };
            node.query(request).await.map(|reply| {
                let reply = reply.into_inner();
                let value = reply
                    .rows
                    .first()
                    .and_then(|row| row.values.first())
                    .and_then(|value| match value.kind {
                        Some(Kind::Integer(value)) => Some(value),
                        _ => None,
                    });
                match value {
                    Some(value) => Attempt::Answered(OpKind::Read { value: Some(value) }),
                    None => Attempt::Wrong(format!("a read returned no value: {reply:?}")),
                }
            })
        }
        OpKind::Write { value } => {
            let request = pb::ExecuteRequest {
                request_id: request_id.into(),
                statements: vec![statement(
                    &format!("UPDATE {TABLE} SET value = ? WHERE id = ?"),
                    vec![int(*value), key_param],
                )],
            };
            node.execute(request).await.map(|reply| {
                match reply.into_inner().rows_affected.first() {
                    Some(1) => Attempt::Answered(kind.clone()),
                    other => Attempt::Wrong(format!("a write changed {other:?} rows")),
                }
            })
        }
        OpKind::Cas { from, to, .. } => {
            let request = pb::ExecuteRequest {
                request_id: request_id.into(),
                statements: vec![statement(
                    &format!("UPDATE {TABLE} SET value = ? WHERE id = ? AND value = ?"),
                    vec![int(*to), key_param, int(*from)],
                )],
            };
            node.execute(request).await.map(|reply| {
                let succeeded = match reply.into_inner().rows_affected.first() {
                    Some(1) => true,
                    Some(0) => false,
                    other => return Attempt::Wrong(format!("a cas changed {other:?} rows")),
                };
                Attempt::Answered(OpKind::Cas {
                    from: *from,
                    to: *to,
                    succeeded: Some(succeeded),
                })
            })
        }
    };
    match outcome {
        Ok(attempt) => attempt,
        Err(status) if status.code() == tonic::Code::FailedPrecondition => Attempt::Refused,
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::PermissionDenied
            ) =>
        {
            Attempt::Wrong(format!("refused as invalid: {status}"))
        }
        // A read that failed ran nothing either way; a write may have.
        Err(_) if matches!(kind, OpKind::Read { .. }) => Attempt::Refused,
        Err(_) => Attempt::Unknown,
    }
}
