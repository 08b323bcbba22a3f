//! The demo's clients of the Data API: writers that follow the active node, and reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tandem_proto::data as pb;
use tandem_proto::data::data_client::DataClient;
use tonic::transport::Channel;

use super::local_pair::LocalPair;
use tandem_node::tls::TlsFiles;

pub async fn connect(
    address: &str,
    name: &str,
    tls: &TlsFiles,
) -> Result<DataClient<Channel>, String> {
    let config = tandem_node::tls::client_config(tls, false).map_err(|e| e.to_string())?;
    let channel = tandem_node::tls::connect(address, name, config, Duration::from_millis(500))
        .await
        .map_err(|e| e.to_string())?;
    Ok(DataClient::new(channel))
}

/// One row's insert, under its id as request id (a retry is idempotent).
async fn insert(
    client: &mut DataClient<Channel>,
    id: &str,
    writer: &str,
) -> Result<(), tonic::Status> {
    let text = |value: &str| pb::Value {
        kind: Some(pb::value::Kind::Text(value.to_string())),
    };
    client
        .execute(pb::ExecuteRequest {
            request_id: id.to_string(),
            statements: vec![pb::Statement {
                sql: "INSERT INTO extensions (id, name, written_by) VALUES (?, ?, ?)".into(),
                params: vec![text(id), text(&format!("extension {id}")), text(writer)],
            }],
        })
        .await
        .map(drop)
}

/// What the writers share: the stop flag, and how many writes were acknowledged so far.
#[derive(Default)]
pub struct Load {
    pub stop: AtomicBool,
    pub acked: AtomicUsize,
}

impl Load {
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }
}

/// Starts `writers` tasks that insert rows until `load.stop`, each following the active node: a
/// refused or failed write is retried, with the same id, on the other node. Each task returns
/// the ids whose `Execute` was acknowledged.
pub fn start_writers(
    pair: &LocalPair,
    prefix: &str,
    writers: usize,
    limit: Option<usize>,
    load: Arc<Load>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let targets: Vec<(String, String)> = super::local_pair::NAMES
        .iter()
        .map(|name| (pair.get(name).client_address.clone(), name.to_string()))
        .collect();
    let tls = pair.get("a").tls.clone();
    (0..writers)
        .map(|writer| {
            let (targets, tls, load) = (targets.clone(), tls.clone(), load.clone());
            let prefix = format!("{prefix}-{writer}");
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut target = 0;
                let mut next = 0usize;
                let mut client = None;
                while !load.stop.load(Ordering::SeqCst) && limit.is_none_or(|limit| next < limit) {
                    let id = format!("{prefix}-{next}");
                    if client.is_none() {
                        let (address, name) = &targets[target];
                        client = connect(address, name, &tls).await.ok();
                    }
                    let written = match client.as_mut() {
                        Some(client) => insert(client, &id, &prefix).await.is_ok(),
                        None => false,
                    };
                    if written {
                        acked.push(id);
                        load.acked.fetch_add(1, Ordering::SeqCst);
                        next += 1;
                    } else {
                        client = None;
                        target = 1 - target;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                acked
            })
        })
        .collect()
}

pub async fn join(tasks: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<String> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

/// The ids in `extensions` on `name` (a stale read is allowed on a passive).
pub async fn ids_on(
    pair: &LocalPair,
    name: &str,
) -> Result<std::collections::HashSet<String>, String> {
    let node = pair.get(name);
    let mut client = connect(&node.client_address, name, &node.tls).await?;
    let reply = client
        .query(pb::QueryRequest {
            statement: Some(pb::Statement {
                sql: "SELECT id FROM extensions".into(),
                params: Vec::new(),
            }),
            allow_stale: true,
        })
        .await
        .map_err(|status| status.message().to_string())?
        .into_inner();
    Ok(reply
        .rows
        .into_iter()
        .filter_map(|row| match row.values.into_iter().next()?.kind? {
            pb::value::Kind::Text(id) => Some(id),
            _ => None,
        })
        .collect())
}
