//! What a client of the gateway sees: sessions, resumes, and the login storms.
//!
//! A "resume" is `Login` with a session token: the first request a client makes on the node it
//! lands on after a failover or a switchover. The client-side figures are times until a resume
//! succeeds, measured over TLS connections that each client holds to both nodes (as `PairClient`
//! does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tandem_harness::Cluster;
use tandem_node::tls::TlsFiles;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tandem_proto::gateway::{self as pb, login_request::Credential};
use tonic::transport::Channel;

pub type Client = GatewayClient<Channel>;

pub fn tls_files(cluster: &Cluster) -> TlsFiles {
    let certs = cluster.certs_dir();
    TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    }
}

pub async fn connect(cluster: &Cluster, node: &str) -> anyhow::Result<Client> {
    let config = tandem_node::tls::client_config(&tls_files(cluster), false)?;
    let address = cluster.addrs(node).client.to_string();
    let channel = tandem_node::tls::connect(&address, node, config, Duration::from_secs(5)).await?;
    Ok(GatewayClient::new(channel))
}

pub fn add_user(cluster: &Cluster, node: &str, user: &str) -> anyhow::Result<()> {
    cluster.ctl_ok(node, &["user", "add", user, "--password", &password(user)])?;
    Ok(())
}

pub fn password(user: &str) -> String {
    format!("{user}-bench-secret")
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

fn request_id() -> String {
    format!(
        "bench-{}-{}",
        std::process::id(),
        REQUESTS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A password login (argon2 on the node); returns the token.
pub async fn login(client: &mut Client, user: &str) -> Result<String, tonic::Status> {
    let reply = client
        .login(pb::LoginRequest {
            request_id: request_id(),
            user: user.into(),
            credential: Some(Credential::Password(password(user))),
            client_kind: "bench".into(),
        })
        .await?;
    Ok(reply.into_inner().token)
}

pub async fn resume(client: &mut Client, token: &str) -> Result<(), tonic::Status> {
    client
        .login(pb::LoginRequest {
            request_id: String::new(),
            user: String::new(),
            credential: Some(Credential::ResumeToken(token.into())),
            client_kind: "bench".into(),
        })
        .await
        .map(drop)
}

/// `sessions` password logins on `active`, spread over `users` users, `parallel` at a time.
pub async fn open_sessions(
    cluster: &Cluster,
    active: &str,
    users: usize,
    sessions: usize,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    for user in 0..users {
        add_user(cluster, active, &format!("user{user}"))?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let mut client = connect(cluster, active).await?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= sessions {
                    return Ok::<_, anyhow::Error>(tokens);
                }
                let user = format!("user{}", index % users);
                tokens.push(
                    login(&mut client, &user)
                        .await
                        .map_err(|s| anyhow!("{s}"))?,
                );
            }
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await??);
    }
    Ok(tokens)
}

/// Resumes `token` on `client` until it succeeds; returns when it did.
pub async fn resume_until_ok(
    client: &mut Client,
    token: &str,
    deadline: Duration,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        match resume(client, token).await {
            Ok(()) => return Ok(Instant::now()),
            Err(status) if start.elapsed() > deadline => {
                return Err(anyhow!("no resume within {deadline:?}: {status}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Clients that resume their sessions every `every`, each on the node it believes active,
/// moving to the other node on any refusal; they record when each resume succeeded.
pub struct Resumers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Instant>>>,
}

impl Resumers {
    pub async fn start(
        cluster: &Cluster,
        active: &str,
        tokens: &[String],
        every: Duration,
    ) -> anyhow::Result<Resumers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let other = if active == "a" { "b" } else { "a" };
        for token in tokens {
            let mut clients = [
                connect(cluster, active).await?,
                connect(cluster, other).await?,
            ];
            let (stop, token) = (stop.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut successes = Vec::new();
                let mut on = 0;
                while !stop.load(Ordering::Relaxed) {
                    match resume(&mut clients[on], &token).await {
                        Ok(()) => successes.push(Instant::now()),
                        Err(_) => on = 1 - on,
                    }
                    tokio::time::sleep(every).await;
                }
                successes
            }));
        }
        Ok(Resumers { stop, tasks })
    }

    /// Stops them and returns the longest time within `window` without a successful resume.
    pub async fn longest_gap(self, window: (Instant, Instant)) -> anyhow::Result<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.context("a resumer failed")?);
        }
        all.retain(|at| *at >= window.0 && *at <= window.1);
        all.sort();
        let mut longest = Duration::ZERO;
        let mut last = window.0;
        for at in all {
            longest = longest.max(at - last);
            last = at;
        }
        Ok(longest.max(window.1 - last))
    }
}
