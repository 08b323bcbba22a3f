//! A raw clients-gateway client for the end-to-end tests (real gRPC over TLS to a node's client
//! port), and the calls the tests make with it. `PairClient` has tests of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use tandem_harness::Cluster;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tandem_proto::gateway::{self as pb, login_request::Credential};
use tonic::transport::Channel;

pub type Client = GatewayClient<Channel>;

pub async fn gateway(cluster: &Cluster, node: &str) -> anyhow::Result<Client> {
    Ok(GatewayClient::new(
        super::data::client_channel(cluster, node).await?,
    ))
}

/// A request id unique within the test process.
pub fn rid(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `tandemctl user add` on `node`.
pub fn add_user(cluster: &Cluster, node: &str, name: &str, password: &str) -> anyhow::Result<()> {
    cluster.ctl_ok(node, &["user", "add", name, "--password", password])?;
    Ok(())
}

pub async fn login(
    client: &mut Client,
    request_id: &str,
    user: &str,
    password: &str,
) -> Result<pb::LoginReply, tonic::Status> {
    client
        .login(pb::LoginRequest {
            request_id: request_id.into(),
            user: user.into(),
            credential: Some(Credential::Password(password.into())),
            client_kind: "test".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn resume(client: &mut Client, token: &str) -> Result<pb::LoginReply, tonic::Status> {
    client
        .login(pb::LoginRequest {
            request_id: String::new(),
            user: String::new(),
            credential: Some(Credential::ResumeToken(token.into())),
            client_kind: "test".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn start_call(
    client: &mut Client,
    request_id: &str,
    token: &str,
) -> Result<pb::StartCallReply, tonic::Status> {
    client
        .start_call(pb::StartCallRequest {
            request_id: request_id.into(),
            token: token.into(),
            from: "100".into(),
            to: "200".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn end_call(
    client: &mut Client,
    request_id: &str,
    token: &str,
    call_id: &str,
) -> Result<pb::EndCallReply, tonic::Status> {
    client
        .end_call(pb::EndCallRequest {
            request_id: request_id.into(),
            token: token.into(),
            call_id: call_id.into(),
            cause: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn list_calls(client: &mut Client, token: &str) -> Result<Vec<pb::Call>, tonic::Status> {
    client
        .list_calls(pb::ListCallsRequest {
            token: token.into(),
        })
        .await
        .map(|reply| reply.into_inner().calls)
}

/// The CDRs on `node` as (call_id, cause), by call id (read through the Data API, stale reads
/// allowed, so the passive can be asked too).
pub async fn cdrs(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut data = super::data::client(cluster, node).await?;
    let rows = super::data::query(
        &mut data,
        "SELECT call_id, cause FROM cdrs ORDER BY call_id",
        true,
    )
    .await?;
    rows.iter()
        .map(|row| {
            let text = |value: &tandem_proto::data::Value| match &value.kind {
                Some(tandem_proto::data::value::Kind::Text(text)) => Ok(text.clone()),
                other => Err(anyhow::anyhow!("not text: {other:?}")),
            };
            Ok((text(&row[0])?, text(&row[1])?))
        })
        .collect()
}

/// Runs an async reader on a thread of its own (the waits are sync, inside the test's runtime).
pub fn runtime_free<T: Send, F>(read: impl FnOnce() -> F + Send) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(read())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the reader panicked"))?
    })
}
