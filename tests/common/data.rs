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
pub fn with_schema(spec: tandem_harness::ClusterSpec, dir: &std::path::Path) -> tandem_harness::ClusterSpec {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("create the migrations dir");
    std::fs::write(migrations.join("001_extensions.sql"), MIGRATION).expect("write the migration");
    spec.set_all(
        "replication.migrations",
        migrations.display().to_string(),
    )
    .set_all(
        "replication.tables",
        toml::Value::Array(vec!["extensions".into(), "notes".into()]),
    )
}

pub async fn client(cluster: &Cluster, node: &str) -> anyhow::Result<DataClient<Channel>> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let config = tandem_node::tls::client_config(&files, false)?;
    let address = cluster.addrs(node).client.to_string();
    let channel =
        tandem_node::tls::connect(&address, node, config, Duration::from_secs(5)).await?;
    Ok(DataClient::new(channel))
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
