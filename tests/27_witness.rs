//! The witness process (`tandemd witness`, DESIGN.md §12) on its own, driven by real node
//! certificates over mTLS: it grants the first holder, refuses the other node while the
//! holder's lease runs, keeps refusing after a SIGKILL and restart right after a grant (it never
//! grants a vote it could already have given), grants once the lease has run out and then
//! refuses the old holder as superseded; certificates of another pair, or of a node it does not
//! serve, are refused; `tandemctl witness status` shows the pair.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tandem_node::tls::{self, TlsFiles};
use tandem_proto::witness as pb;
use tandem_proto::witness::witness_client::WitnessClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const TANDEMD: &str = env!("CARGO_BIN_EXE_tandemd");
const TANDEMCTL: &str = env!("CARGO_BIN_EXE_tandemctl");

struct Witness {
    dir: PathBuf,
    address: String,
    child: Option<Child>,
}

impl Witness {
    fn start(dir: &Path, lease: &str) -> anyhow::Result<Witness> {
        let address = format!("127.0.0.1:{}", tandem_harness::ports::free_port()?);
        let config = format!(
            "data_dir = \"data\"\nlease = \"{lease}\"\n[listen]\nwitness = \"{address}\"\n\
             [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/tandem-witness.pem\"\n\
             key = \"certs/tandem-witness.key\"\n\
             [[pair]]\ncluster = \"pbx\"\nnodes = [\"a\", \"b\"]\n\
             [[pair]]\ncluster = \"fax\"\nnodes = [\"c\", \"d\"]\n"
        );
        std::fs::write(dir.join("witness.toml"), config)?;
        let mut witness = Witness {
            dir: dir.to_path_buf(),
            address,
            child: None,
        };
        witness.spawn()?;
        Ok(witness)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("witness.log"))?;
        let child = Command::new(TANDEMD)
            .args(["witness", "--config"])
            .arg(self.dir.join("witness.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tandemd witness")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by PID: the process cannot finish anything it had begun.
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("witness.log")).unwrap_or_default()
    }

    fn ctl_status(&self) -> anyhow::Result<String> {
        let output = Command::new(TANDEMCTL)
            .arg("--config")
            .arg(self.dir.join("witness.toml"))
            .args(["witness", "status"])
            .output()?;
        if !output.status.success() {
            bail!(
                "tandemctl witness status: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn certs_init(dir: &Path, nodes: &str, witness: Option<&str>) -> anyhow::Result<()> {
    let mut command = Command::new(TANDEMCTL);
    command
        .args(["certs", "init", "--dir"])
        .arg(dir)
        .args(["--nodes", nodes]);
    if let Some(witness) = witness {
        command.args(["--witness", witness]);
    }
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "certs init: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A node's end of a Vote stream.
struct Voter {
    requests: mpsc::Sender<pb::VoteRequest>,
    // Ends the stream when dropped, as a node's process does when it dies.
    replies: Streaming<pb::VoteReply>,
    seq: u64,
}

impl Voter {
    async fn open(
        address: &str,
        certs: &Path,
        cert_name: &str,
        cluster: &str,
        node: &str,
    ) -> anyhow::Result<Voter> {
        Voter::open_with(address, certs, cert_name, cluster, node, 1000, (9, 9)).await
    }

    /// A stream whose Hello names `lease_ms` and the node's (peer, client) ports on 127.0.0.1.
    async fn open_with(
        address: &str,
        certs: &Path,
        cert_name: &str,
        cluster: &str,
        node: &str,
        lease_ms: u64,
        ports: (u16, u16),
    ) -> anyhow::Result<Voter> {
        let files = TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join(format!("{cert_name}.pem")),
            key: certs.join(format!("{cert_name}.key")),
        };
        let config = tls::client_config(&files, true)?;
        let channel = tls::connect(address, "tandem-witness", config, Duration::from_secs(2))
            .await
            .map_err(|error| anyhow!("dial: {error}"))?;
        let (requests, rx) = mpsc::channel(16);
        requests
            .send(pb::VoteRequest {
                seq: 0,
                body: Some(pb::vote_request::Body::Hello(pb::Hello {
                    cluster: cluster.into(),
                    node: node.into(),
                    peer_port: u32::from(ports.0),
                    client_port: u32::from(ports.1),
                    lease_ms,
                })),
            })
            .await?;
        let replies = WitnessClient::new(channel)
            .vote(ReceiverStream::new(rx))
            .await
            .map_err(|status| anyhow!("{}", status.message()))?
            .into_inner();
        Ok(Voter {
            requests,
            replies,
            seq: 0,
        })
    }

    async fn ask(&mut self, body: pb::vote_request::Body) -> anyhow::Result<pb::vote_reply::Body> {
        self.seq += 1;
        self.requests
            .send(pb::VoteRequest {
                seq: self.seq,
                body: Some(body),
            })
            .await?;
        let reply = self
            .replies
            .message()
            .await
            .map_err(|status| anyhow!("{}", status.message()))?
            .ok_or_else(|| anyhow!("the witness ended the stream"))?;
        if reply.seq != self.seq {
            bail!("reply to {} for request {}", reply.seq, self.seq);
        }
        reply.body.ok_or_else(|| anyhow!("a reply without a body"))
    }

    async fn renew(&mut self, epoch: u64, node: &str) -> anyhow::Result<pb::vote_reply::Body> {
        self.ask(pb::vote_request::Body::Renew(pb::Renew {
            term: Some(pb::Term {
                epoch,
                node: node.into(),
                priority: 0,
            }),
            peer_outdated: false,
            disk: pb::DiskState::Consistent as i32,
        }))
        .await
    }

    async fn promote(
        &mut self,
        epoch: u64,
        max_epoch_seen: u64,
    ) -> anyhow::Result<pb::vote_reply::Body> {
        self.ask(pb::vote_request::Body::Promote(pb::Promote {
            epoch,
            priority: 0,
            disk: pb::DiskState::Consistent as i32,
            max_epoch_seen,
            fast_path: false,
            force: false,
        }))
        .await
    }
}

async fn open_when_up(address: &str, certs: &Path, node: &str) -> anyhow::Result<Voter> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Voter::open(address, certs, node, "pbx", node).await {
            Ok(voter) => return Ok(voter),
            Err(error) if Instant::now() > deadline => return Err(error.context("witness up")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn granted(reply: &pb::vote_reply::Body) -> Option<(u64, String)> {
    match reply {
        pb::vote_reply::Body::Granted(granted) => granted
            .term
            .as_ref()
            .map(|term| (term.epoch, term.node.clone())),
        pb::vote_reply::Body::Refused(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_grants_one_holder_and_never_twice_across_a_restart() -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    certs_init(&certs, "a,b,x", Some("tandem-witness"))?;
    let mut witness = Witness::start(dir.path(), "1s")?;

    // The first holder the witness hears of is recorded.
    let mut a = open_when_up(&witness.address, &certs, "a").await?;
    let reply = a.renew(1, "a").await?;
    assert_eq!(granted(&reply), Some((1, "a".into())), "{reply:?}");

    // The other node is refused while a's lease runs.
    let mut b = open_when_up(&witness.address, &certs, "b").await?;
    let reply = b.promote(2, 1).await?;
    let pb::vote_reply::Body::Refused(refused) = &reply else {
        bail!("b was granted while a's lease ran: {reply:?}");
    };
    assert!(refused.reason.contains("a is active"), "{}", refused.reason);
    let status = witness.ctl_status()?;
    assert!(
        status.contains("pair pbx (a, b): active a, term (1, a)"),
        "{status}"
    );
    assert!(
        status.contains("pair fax (c, d): no active recorded yet"),
        "{status}"
    );

    // Killed right after the grant, and started again at once: b is still refused, since a may
    // count on the lease it was just given.
    a.renew(1, "a").await?;
    witness.kill()?;
    let killed_at = Instant::now();
    witness.spawn()?;
    let mut b = open_when_up(&witness.address, &certs, "b").await?;
    let reply = b.promote(2, 1).await?;
    let elapsed = killed_at.elapsed();
    if elapsed < Duration::from_millis(1000) {
        assert!(
            granted(&reply).is_none(),
            "granted to b {elapsed:?} after a's last grant: {reply:?}"
        );
    }

    // Once a's lease has run out on the witness's clock, b is promoted, in a newer term.
    let deadline = Instant::now() + Duration::from_secs(20);
    let term = loop {
        if let Some(term) = granted(&b.promote(2, 1).await?) {
            break term;
        }
        if Instant::now() > deadline {
            bail!("b was never promoted after a's lease ran out");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(term, (2, "b".into()));
    // At least one lease plus the restart margin passed since the restart.
    assert!(killed_at.elapsed() >= Duration::from_millis(1000));

    // a's old term is refused as superseded, and stays refused after another restart.
    let mut a = open_when_up(&witness.address, &certs, "a").await?;
    let reply = a.renew(1, "a").await?;
    let pb::vote_reply::Body::Refused(refused) = &reply else {
        bail!("a's old term was renewed: {reply:?}");
    };
    assert!(refused.superseded, "{refused:?}");
    witness.kill()?;
    witness.spawn()?;
    let mut a = open_when_up(&witness.address, &certs, "a").await?;
    let reply = a.renew(1, "a").await?;
    assert!(granted(&reply).is_none(), "{reply:?}");
    let status = witness.ctl_status()?;
    assert!(status.contains("active b, term (2, b)"), "{status}");

    // x's certificate is from the same CA, but x is a node of no pair this witness serves.
    let error = Voter::open(&witness.address, &certs, "x", "pbx", "x")
        .await
        .err()
        .ok_or_else(|| anyhow!("x was let in"))?;
    drop(error);
    // a's certificate claiming to be b is refused by the service.
    let error = Voter::open(&witness.address, &certs, "a", "pbx", "b")
        .await
        .err()
        .ok_or_else(|| anyhow!("a's certificate was let in as b"))?;
    assert!(error.to_string().contains("is not \"b\"'s"), "{error:#}");

    // Another pair's CA: the handshake itself is refused, and logged.
    let other = dir.path().join("other-certs");
    certs_init(&other, "a,b", None)?;
    let error = Voter::open(&witness.address, &other, "a", "pbx", "a")
        .await
        .err()
        .ok_or_else(|| anyhow!("a certificate of another CA was let in"))?;
    drop(error);
    let log = witness.log();
    assert!(
        log.matches("witness").count() > 0 && log.contains("refused"),
        "no refused handshake in the witness's log:\n{log}"
    );
    Ok(())
}

#[test]
fn witness_config_errors_name_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    certs_init(&certs, "a,b", Some("tandem-witness"))?;
    let base = "data_dir = \"data\"\n[listen]\nwitness = \"127.0.0.1:1\"\n[tls]\n\
                ca = \"certs/ca.pem\"\ncert = \"certs/tandem-witness.pem\"\n\
                key = \"certs/tandem-witness.key\"\n";
    let cases = [
        (
            "[[pair]]\ncluster = \"p\"\nnodes = [\"a\"]\n",
            "pair[0].nodes: a pair has 2 nodes",
        ),
        (
            "[[pair]]\ncluster = \"p\"\nnodes = [\"a\", \"b\"]\n[[pair]]\ncluster = \"q\"\nnodes = [\"a\", \"c\"]\n",
            "pair[1].nodes: the node \"a\" is listed twice",
        ),
        ("", "pair: list at least one [[pair]]"),
        ("lease = \"5ms\"\n", "lease: must be between 200ms and 60s"),
    ];
    for (extra, expected) in cases {
        // Top-level keys must come before the first table.
        let text = if extra.starts_with("lease") {
            format!("{extra}{base}[[pair]]\ncluster = \"p\"\nnodes = [\"a\", \"b\"]\n")
        } else {
            format!("{base}{extra}")
        };
        let path = dir.path().join("witness.toml");
        std::fs::write(&path, text)?;
        let output = Command::new(TANDEMD)
            .args(["witness", "--config"])
            .arg(&path)
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
    Ok(())
}

/// With a 30 s lease, b can be promoted within the test's wait only through the prover: a's
/// stream ended and both of a's ports refuse. While a's ports still answer (its process may be
/// alive behind a cut), b is refused and told how long a's lease runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_grants_at_once_when_the_holders_process_is_gone() -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    certs_init(&certs, "a,b", Some("tandem-witness"))?;
    let witness = Witness::start(dir.path(), "30s")?;
    let lease_ms = 30_000;
    open_when_up(&witness.address, &certs, "b").await.ok();

    // a's ports answer: its stream ends, but its process is not proven gone.
    let peer = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = std::net::TcpListener::bind("127.0.0.1:0")?;
    let ports = (peer.local_addr()?.port(), client.local_addr()?.port());
    let mut a =
        Voter::open_with(&witness.address, &certs, "a", "pbx", "a", lease_ms, ports).await?;
    assert_eq!(granted(&a.renew(1, "a").await?), Some((1, "a".into())));
    drop(a);
    let mut b =
        Voter::open_with(&witness.address, &certs, "b", "pbx", "b", lease_ms, (9, 9)).await?;
    wait_for_log(&witness, "its process may be alive").await?;
    let reply = b.promote(2, 1).await?;
    let pb::vote_reply::Body::Refused(refused) = &reply else {
        bail!("b was promoted while a's ports still answered: {reply:?}");
    };
    assert!(
        refused.reason.contains("a is active and its lease runs"),
        "{}",
        refused.reason
    );

    // Now a's ports refuse (nothing listens there any more): it comes back once and goes.
    drop((peer, client));
    let mut a =
        Voter::open_with(&witness.address, &certs, "a", "pbx", "a", lease_ms, ports).await?;
    assert_eq!(granted(&a.renew(1, "a").await?), Some((1, "a".into())));
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(15);
    let term = loop {
        if let Some(term) = granted(&b.promote(2, 1).await?) {
            break term;
        }
        if Instant::now() > deadline {
            bail!("b was not promoted within 15 s of a's process going (lease 30 s)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(term, (2, "b".into()));
    assert!(
        witness.log().contains("its process is gone"),
        "{}",
        witness.log()
    );
    Ok(())
}

/// Waits until the witness's log holds `text`.
async fn wait_for_log(witness: &Witness, text: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !witness.log().contains(text) {
        if Instant::now() > deadline {
            bail!("the witness never logged {text:?}:\n{}", witness.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
