//! A Data API client for the end-to-end tests: real gRPC over TLS to a node's client port, as an
//! application would dial it.

use std::time::Duration;

use tandem_harness::Cluster;
use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as pb, value::Kind};
use tonic::transport::Channel;

/// The application schema the replication tests run on.
pub const MIGRATION: &str = "CREATE TABLE extensions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    payload BLOB
);
CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);
CREATE TABLE loose (a INTEGER, b TEXT);
";

/// Writes the migrations directory and returns the spec settings that use it.
pub fn with_schema(
    spec: tandem_harness::ClusterSpec,
    dir: &std::path::Path,
) -> tandem_harness::ClusterSpec {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("create the migrations dir");
    std::fs::write(migrations.join("001_extensions.sql"), MIGRATION).expect("write the migration");
    spec.set_all("replication.migrations", migrations.display().to_string())
        .set_all(
            "replication.tables",
            toml::Value::Array(vec!["extensions".into(), "notes".into()]),
        )
}

/// A TLS channel to `node`'s client port, as an application dials it (no client certificate).
pub async fn client_channel(cluster: &Cluster, node: &str) -> anyhow::Result<Channel> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let config = tandem_node::tls::client_config(&files, false)?;
    let address = cluster.addrs(node).client.to_string();
    Ok(tandem_node::tls::connect(&address, node, config, Duration::from_secs(5)).await?)
}

pub async fn client(cluster: &Cluster, node: &str) -> anyhow::Result<DataClient<Channel>> {
    Ok(DataClient::new(client_channel(cluster, node).await?))
}

pub fn int(value: i64) -> pb::Value {
    pb::Value {
        kind: Some(Kind::Integer(value)),
    }
}

pub fn text(value: &str) -> pb::Value {
    pb::Value {
        kind: Some(Kind::Text(value.to_string())),
    }
}

pub fn blob(value: &[u8]) -> pb::Value {
    pb::Value {
        kind: Some(Kind::Blob(value.to_vec())),
    }
}

pub fn statement(sql: &str, params: Vec<pb::Value>) -> pb::Statement {
    pb::Statement {
        sql: sql.to_string(),
        params,
    }
}

pub async fn execute(
    client: &mut DataClient<Channel>,
    request_id: &str,
    statements: Vec<pb::Statement>,
) -> Result<pb::ExecuteReply, tonic::Status> {
    client
        .execute(pb::ExecuteRequest {
            request_id: request_id.to_string(),
            statements,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// [`execute`], retried with the same request id (the node acts on it once) while the active
/// is fenced for a moment, as a loaded machine's stalls make it; gives up after `WAIT`.
pub async fn execute_retrying(
    client: &mut DataClient<Channel>,
    request_id: &str,
    statements: Vec<pb::Statement>,
) -> Result<pb::ExecuteReply, tonic::Status> {
    let deadline = std::time::Instant::now() + super::WAIT;
    loop {
        match execute(client, request_id, statements.clone()).await {
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && status.message().contains("fenced")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcome => return outcome,
        }
    }
}

pub async fn query(
    client: &mut DataClient<Channel>,
    sql: &str,
    allow_stale: bool,
) -> Result<Vec<Vec<pb::Value>>, tonic::Status> {
    let reply = client
        .query(pb::QueryRequest {
            statement: Some(statement(sql, Vec::new())),
            allow_stale,
        })
        .await?
        .into_inner();
    Ok(reply.rows.into_iter().map(|row| row.values).collect())
}

/// The integer in a result cell, if it is one.
pub fn as_int(value: &pb::Value) -> Option<i64> {
    match value.kind {
        Some(Kind::Integer(integer)) => Some(integer),
        _ => None,
    }
}

/// `SELECT count(*)` of a table, read on `node` (stale reads allowed).
pub async fn count(client: &mut DataClient<Channel>, table: &str) -> anyhow::Result<i64> {
    let rows = query(client, &format!("SELECT count(*) FROM {table}"), true).await?;
    rows.first()
        .and_then(|row| row.first())
        .and_then(as_int)
        .ok_or_else(|| anyhow::anyhow!("count(*) of {table} returned no integer"))
}

/// Waits until the other node has caught up with `active`: nothing halted, not degraded, both
/// consistent, and the passive, asked second, holds at least the index the active held when
/// asked first (so this also holds while writers keep writing).
pub fn wait_in_sync(cluster: &Cluster, active: &str) -> anyhow::Result<serde_json::Value> {
    let passive = super::other(active);
    cluster.wait_until(
        super::WAIT * 2,
        &format!("{passive} caught up with {active}"),
        |c| {
            let (a, p) = (c.status(active)?, c.status(passive)?);
            let replication = &a["replication"];
            let active_index = replication["last_index"].as_u64().unwrap_or(0);
            let passive_index = p["replication"]["last_index"].as_u64().unwrap_or(0);
            let caught_up = replication["degraded"] == false
                && a["peer"]["disk"] == "consistent"
                && replication["halted"] == ""
                && p["node"]["disk"] == "consistent"
                && active_index > 0
                && passive_index >= active_index;
            Ok(caught_up.then_some(a))
        },
    )
}

/// Writers that keep inserting rows into `notes` and follow the active node: every row whose
/// `Execute` was acknowledged is recorded. A refused or failed write is retried with the same
/// request id on the other node.
pub struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
    pub acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writers {
    pub fn start(cluster: &Cluster, count: usize, runtime: &tokio::runtime::Runtime) -> Writers {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let certs = cluster.certs_dir();
        let addrs = [
            cluster.addrs("a").client.to_string(),
            cluster.addrs("b").client.to_string(),
        ];
        let mut tasks = Vec::new();
        for writer in 0..count {
            let (stop, acked, certs, addrs) =
                (stop.clone(), acked.clone(), certs.clone(), addrs.clone());
            tasks.push(runtime.spawn(async move {
                let names = ["a", "b"];
                let files = tandem_node::tls::TlsFiles {
                    ca: certs.join("ca.pem"),
                    cert: certs.join("admin.pem"),
                    key: certs.join("admin.key"),
                };
                let config = tandem_node::tls::client_config(&files, false).expect("tls");
                let mut target = 0usize;
                let mut done = Vec::new();
                let mut n = 0u64;
                let mut pending: Option<String> = None;
                let mut client: Option<DataClient<Channel>> = None;
                while !stop.load(Ordering::SeqCst) {
                    let id = pending.take().unwrap_or_else(|| {
                        n += 1;
                        format!("w{writer}-{n}")
                    });
                    if client.is_none() {
                        client = tandem_node::tls::connect(
                            &addrs[target],
                            names[target],
                            config.clone(),
                            Duration::from_millis(500),
                        )
                        .await
                        .ok()
                        .map(DataClient::new);
                    }
                    let written = match client.as_mut() {
                        Some(client) => execute(
                            client,
                            &id,
                            vec![statement(
                                "INSERT INTO notes (id, body) VALUES (?, ?)",
                                vec![text(&id), text("acknowledged")],
                            )],
                        )
                        .await
                        .is_ok(),
                        None => false,
                    };
                    if written {
                        done.push(id);
                        acked.fetch_add(1, Ordering::SeqCst);
                    } else {
                        // Refused, failed or unreachable: retry the same id on the other node.
                        client = None;
                        target = 1 - target;
                        pending = Some(id);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                done
            }));
        }
        Writers { stop, tasks, acked }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the writers and returns every acknowledged row id.
    pub fn stop(self, runtime: &tokio::runtime::Runtime) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(runtime.block_on(task).unwrap_or_default());
        }
        all
    }
}
