//! Hostile input on every port (DESIGN.md §8: message sizes, stream counts and rates are bounded):
//! an oversized Data API message, more streams on one connection than the server allows, slow
//! TLS handshakes that never finish, a heartbeat and hand-overs from an old term, and replication
//! batches and snapshot chunks whose checksums do not match. Each is refused with a clear error;
//! afterwards the pair is still healthy (one active, link ok, the same term) and a row written
//! through the Data API still replicates.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use common::data::{self, as_int, execute, query, statement, text};
use common::*;
use futures::channel::mpsc;
use serde_json::Value;
use tandem_harness::{Cluster, ClusterSpec, Mode};
use tandem_proto::gateway as gpb;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tandem_proto::peer as pb;
use tandem_proto::peer::peer_client::PeerClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

/// The largest `Execute` the client port decodes (`daemon.rs`: `MESSAGE_BYTES_MAX * 8`).
const DATA_MESSAGE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// `daemon.rs`: `CONCURRENT_STREAMS_PER_CONNECTION`, the HTTP/2 `max_concurrent_streams`.
const STREAMS_PER_CONNECTION_MAX: usize = 128;
/// `tls.rs`: `HANDSHAKES_IN_FLIGHT_MAX`, handshakes one listener runs at once.
const HANDSHAKE_SLOTS: usize = 256;
/// The canonical entry encoding's version byte (`tandem_replication::log::ENTRY_ENCODING_VERSION`).
const ENTRY_ENCODING_VERSION: u8 = 1;

// --- the pair is still healthy --------------------------------------------------------------

/// The pair after a hostile case: `active` active and admitting, the other passive, the link ok
/// both ways, both nodes in term `term`, and a row written on the active reaches the passive.
fn assert_healthy(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    active: &str,
    term: &Value,
    row: &str,
) -> anyhow::Result<()> {
    let passive = other(active);
    let (a, p) = wait_steady(cluster, active)?;
    assert_eq!(a["node"]["term"], *term, "{active}'s term: {}", brief(&a));
    assert_eq!(p["node"]["term"], *term, "{passive}'s term: {}", brief(&p));
    assert_eq!(cluster.active_nodes(), [active.to_string()]);
    let mut writer = runtime.block_on(data::client(cluster, active))?;
    runtime.block_on(execute(
        &mut writer,
        &format!("healthy-{row}"),
        vec![insert_note(row, "written after a hostile case")],
    ))?;
    let mut reader = runtime.block_on(data::client(cluster, passive))?;
    let sql = format!("SELECT count(*) FROM notes WHERE id = '{row}'");
    cluster.wait_until(WAIT, &format!("row {row} on {passive}"), |_| {
        let rows = runtime.block_on(query(&mut reader, &sql, true))?;
        Ok((rows.first().and_then(|r| r.first()).and_then(as_int) == Some(1)).then_some(()))
    })
}

fn insert_note(id: &str, body: &str) -> tandem_proto::data::Statement {
    statement(
        "INSERT INTO notes (id, body) VALUES (?, ?)",
        vec![text(id), text(body)],
    )
}

fn start_pair(spec: ClusterSpec) -> anyhow::Result<(Cluster, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(data::with_schema(spec, dir.path()), &bins())?;
    wait_steady(&cluster, "a")?;
    Ok((cluster, dir))
}

/// The event kinds `node` has recorded so far.
fn event_kinds(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<String>> {
    Ok(events(cluster, node)?.into_iter().map(|(k, _)| k).collect())
}

/// Events of `node` recorded after the first `before` ones.
fn events_since(
    cluster: &Cluster,
    node: &str,
    before: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(events(cluster, node)?.into_iter().skip(before).collect())
}

// --- dialing as a node ----------------------------------------------------------------------

/// A channel to `target`'s peer port presenting `as_node`'s certificate: what the peer dials.
async fn peer_channel_as(
    cluster: &Cluster,
    as_node: &str,
    target: &str,
) -> anyhow::Result<Channel> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join(format!("{as_node}.pem")),
        key: certs.join(format!("{as_node}.key")),
    };
    let config = tandem_node::tls::client_config(&files, true)?;
    let address = cluster.addrs(target).peer.to_string();
    Ok(tandem_node::tls::connect(&address, target, config, Duration::from_secs(5)).await?)
}

/// A channel to `node`'s client port, as an application dials it, waiting up to `timeout` for
/// the TCP connection and the TLS handshake.
async fn client_channel_within(
    cluster: &Cluster,
    node: &str,
    timeout: Duration,
) -> anyhow::Result<Channel> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let config = tandem_node::tls::client_config(&files, false)?;
    let address = cluster.addrs(node).client.to_string();
    Ok(tandem_node::tls::connect(&address, node, config, timeout).await?)
}

/// `node`'s own configuration, as the daemon reads it.
fn node_config(cluster: &Cluster, node: &str) -> anyhow::Result<tandem_node::config::Config> {
    Ok(tandem_node::config::Config::load(
        &cluster.config_path(node),
    )?)
}

/// The term in a status (`node.term`), with the priority of the node it names.
fn term_of(cluster: &Cluster, status: &Value) -> anyhow::Result<pb::Term> {
    let term = &status["node"]["term"];
    let node = term["node"]
        .as_str()
        .ok_or_else(|| anyhow!("no term in {term}"))?;
    Ok(pb::Term {
        epoch: term["epoch"].as_u64().unwrap_or(0),
        node: node.to_string(),
        priority: node_config(cluster, node)?.node.priority,
    })
}

// --- 1 and 2: the client port's message and stream bounds -----------------------------------

#[test]
fn an_oversized_message_and_too_many_streams_are_bounded_on_the_client_port() -> anyhow::Result<()>
{
    let _serial = serial();
    let (cluster, _dir) = start_pair(ClusterSpec::new())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let term = cluster.status("a")?["node"]["term"].clone();
    let mut client = runtime.block_on(data::client(&cluster, "a"))?;

    phase("an Execute just over the client port's 32 MiB limit: refused with the limit named");
    let payload = vec![0x5a_u8; DATA_MESSAGE_BYTES_MAX + 1];
    let oversized = statement(
        "INSERT INTO extensions (id, name, payload) VALUES (?, ?, ?)",
        vec![data::int(1), text("oversized"), data::blob(&payload)],
    );
    let refused = runtime
        .block_on(execute(&mut client, "oversized", vec![oversized]))
        .expect_err("an Execute above the limit was accepted");
    drop(payload);
    eprintln!("the oversized Execute: {refused:?}");
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains(&DATA_MESSAGE_BYTES_MAX.to_string()),
        "the refusal names the limit: {refused:?}"
    );
    let mut fresh = runtime.block_on(data::client(&cluster, "a"))?;
    assert_eq!(runtime.block_on(data::count(&mut fresh, "extensions"))?, 0);
    runtime.block_on(execute(
        &mut fresh,
        "normal-after-oversized",
        vec![insert_note(
            "normal",
            "a normal request on a new connection",
        )],
    ))?;
    runtime.block_on(execute(
        &mut client,
        "same-connection-after-oversized",
        vec![insert_note(
            "same",
            "the connection that sent it still works",
        )],
    ))?;

    phase("an oversized Login on the gateway (4 MiB limit): refused the same way");
    let mut gateway = runtime.block_on(common::gateway::gateway(&cluster, "a"))?;
    let refused = runtime
        .block_on(gateway.login(gpb::LoginRequest {
            request_id: "oversized-login".into(),
            user: "u".repeat(4 * 1024 * 1024 + 1),
            credential: None,
            client_kind: "test".into(),
        }))
        .expect_err("a Login above the limit was accepted");
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused:?}"
    );

    phase("200 WatchRole streams on one connection: the server runs 128, HTTP/2 queues the rest");
    let watchers = 200;
    let channel = runtime.block_on(data::client_channel(&cluster, "a"))?;
    let answered = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(0usize);
    let tasks: Vec<_> = (0..watchers)
        .map(|_| {
            let (channel, answered, mut released) =
                (channel.clone(), answered.clone(), released.clone());
            runtime.spawn(async move {
                let mut watcher = GatewayClient::new(channel);
                let mut updates = watcher
                    .watch_role(gpb::WatchRoleRequest {})
                    .await?
                    .into_inner();
                let first = updates
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("WatchRole ended at once"))?;
                let order = answered.fetch_add(1, Ordering::SeqCst);
                // Held open until the test releases the first `n` streams answered.
                released.wait_for(|n| *n > order).await?;
                drop(updates);
                anyhow::Ok(first)
            })
        })
        .collect();
    cluster.wait_until(WAIT, "128 streams answered", |_| {
        let n = answered.load(Ordering::SeqCst);
        ensure!(
            n <= STREAMS_PER_CONNECTION_MAX,
            "{n} streams open at once on one connection"
        );
        Ok((n == STREAMS_PER_CONNECTION_MAX).then_some(()))
    })?;
    phase("meanwhile another client, on a connection of its own, is served");
    let mut other_client = runtime.block_on(data::client(&cluster, "a"))?;
    assert!(runtime.block_on(data::count(&mut other_client, "notes"))? >= 2);
    let mut other_gateway = runtime.block_on(common::gateway::gateway(&cluster, "a"))?;
    let role = runtime.block_on(async {
        let mut updates = other_gateway
            .watch_role(gpb::WatchRoleRequest {})
            .await?
            .into_inner();
        anyhow::Ok(updates.message().await?)
    })?;
    assert_eq!(role.map(|r| r.role).as_deref(), Some("active"));
    let open = answered.load(Ordering::SeqCst);
    assert_eq!(
        open, STREAMS_PER_CONNECTION_MAX,
        "streams beyond max_concurrent_streams were served"
    );

    phase("100 streams close: the queued ones are served, never more than 128 at once");
    release.send(100)?;
    cluster.wait_until(WAIT, "all 200 streams answered", |_| {
        Ok((answered.load(Ordering::SeqCst) == watchers).then_some(()))
    })?;
    release.send(usize::MAX)?;
    for task in tasks {
        let first = runtime.block_on(task)??;
        assert_eq!(first.role, "active");
    }
    drop(channel);

    assert_healthy(&cluster, &runtime, "a", &term, "after-bounds")?;
    Ok(())
}

// --- 3: slow-loris handshakes -----------------------------------------------------------------

/// What became of the slow connections: how many connected, and how many the server closed.
#[derive(Default)]
struct Loris {
    connected: AtomicUsize,
    closed_by_server: AtomicUsize,
}

/// Opens a connection to `address` that starts a TLS ClientHello and then sends one byte every
/// `pace`, never finishing it (the record announces 512 bytes). Ends when the server closes it.
async fn slow_loris(address: std::net::SocketAddr, pace: Duration, loris: Arc<Loris>) {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(address).await else {
        return;
    };
    loris.connected.fetch_add(1, Ordering::SeqCst);
    // A handshake record of 512 bytes holding a ClientHello of 508: never completed.
    let start = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    if tcp.write_all(&start).await.is_err() {
        loris.closed_by_server.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let mut buffer = [0u8; 64];
    let mut ticker = tokio::time::interval(pace);
    // The ClientHello's 32 random bytes, and then some: the server sees a client that is slow,
    // not one that sent garbage.
    for _ in 0..400 {
        tokio::select! {
            // EOF or an error: the server gave up on the handshake.
            read = tcp.read(&mut buffer) => {
                if matches!(read, Ok(0) | Err(_)) {
                    loris.closed_by_server.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            _ = ticker.tick() => {
                if tcp.write_all(&[0x42]).await.is_err() {
                    loris.closed_by_server.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

#[test]
fn slow_handshakes_are_dropped_and_lock_out_neither_clients_nor_keep_alives() -> anyhow::Result<()>
{
    let _serial = serial();
    let (cluster, _dir) = start_pair(ClusterSpec::new())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let term = cluster.status("a")?["node"]["term"].clone();
    let events_before = [event_kinds(&cluster, "a")?, event_kinds(&cluster, "b")?];

    phase("300 slow handshakes on a's client port (more than its 256 slots), 40 on each peer port");
    let pace = Duration::from_millis(200);
    let client_loris = Arc::new(Loris::default());
    let peer_loris = Arc::new(Loris::default());
    let client_count = HANDSHAKE_SLOTS + 44;
    let peer_count = 40;
    let mut attackers = Vec::new();
    for _ in 0..client_count {
        let address = cluster.addrs("a").client;
        attackers.push(runtime.spawn(slow_loris(address, pace, client_loris.clone())));
    }
    for node in ["a", "b"] {
        for _ in 0..peer_count {
            let address = cluster.addrs(node).peer;
            attackers.push(runtime.spawn(slow_loris(address, pace, peer_loris.clone())));
        }
    }
    cluster.wait_until(WAIT, "every slow connection to connect", |_| {
        let (c, p) = (
            client_loris.connected.load(Ordering::SeqCst),
            peer_loris.connected.load(Ordering::SeqCst),
        );
        Ok((c == client_count && p == 2 * peer_count).then_some(()))
    })?;

    // With every handshake slot held, the client waits in the listen backlog until the slow
    // handshakes time out (5 s): it is delayed, not locked out.
    phase("a normal client still connects to a's client port and is served");
    let started = Instant::now();
    let served = runtime.block_on(async {
        let channel = client_channel_within(&cluster, "a", WAIT).await?;
        let mut client = tandem_proto::data::data_client::DataClient::new(channel);
        execute(
            &mut client,
            "during-slow-loris",
            vec![insert_note("during-slow-loris", "served meanwhile")],
        )
        .await?;
        anyhow::Ok(())
    });
    served?;
    eprintln!(
        "a client was served {:?} after connecting behind {client_count} slow handshakes",
        started.elapsed()
    );
    let status = cluster.status("a")?;
    assert_eq!(status["peer"]["state"], "ok", "{}", brief(&status));

    phase("the handshake timeout closes every slow connection while it is still trickling");
    cluster.wait_until(WAIT, "the server to close every slow connection", |_| {
        let (c, p) = (
            client_loris.closed_by_server.load(Ordering::SeqCst),
            peer_loris.closed_by_server.load(Ordering::SeqCst),
        );
        ensure!(
            c == client_count && p == 2 * peer_count,
            "closed: {c} of {client_count} on the client port, {p} on the peer ports"
        );
        Ok(Some(()))
    })?;
    for attacker in attackers {
        runtime.block_on(attacker)?;
    }

    phase("no keep-alive was missed: no peer_suspect, the same term");
    for (node, before) in ["a", "b"].into_iter().zip(&events_before) {
        let new = events_since(&cluster, node, before.len())?;
        assert!(
            !new.iter().any(|(kind, _)| kind == "peer_suspect"),
            "{node} suspected its peer during the slow handshakes: {new:?}"
        );
    }
    assert_healthy(&cluster, &runtime, "a", &term, "after-slow-loris")?;
    Ok(())
}

// --- 4: an old term replayed over the keep-alive stream --------------------------------------

/// A heartbeat as `as_node` would send it, claiming to be active in `term`, that passes every
/// other check (cluster, version, config digest, clock).
fn forged_heartbeat(
    cluster: &Cluster,
    as_node: &str,
    term: pb::Term,
) -> anyhow::Result<pb::PeerMessage> {
    let config = node_config(cluster, as_node)?;
    let wall_clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let epoch = term.epoch;
    Ok(pb::PeerMessage {
        body: Some(pb::peer_message::Body::Heartbeat(pb::Heartbeat {
            cluster_id: config.cluster.clone(),
            node: as_node.to_string(),
            version: tandem_node::VERSION.to_string(),
            config_digest: config.digest(),
            role: pb::Role::Active as i32,
            term: Some(term),
            max_epoch_seen: epoch,
            disk: pb::DiskState::Consistent as i32,
            log: Some(pb::LogPosition::default()),
            wall_clock_ms: i64::try_from(wall_clock_ms)?,
            monitoring: pb::Monitoring::On as i32,
            seq: 1,
            priority: config.node.priority,
            reachable: true,
            // Not the sender's real incarnation: a replay from an earlier life of the process.
            incarnation: 0x0bad_5eed,
            ..pb::Heartbeat::default()
        })),
    })
}

/// Sends `messages` on a keep-alive stream to `target` presenting `as_node`'s certificate, then
/// ends the stream and waits for the server to close its side.
async fn send_keep_alive(
    cluster: &Cluster,
    as_node: &str,
    target: &str,
    messages: Vec<pb::PeerMessage>,
) -> anyhow::Result<()> {
    let channel = peer_channel_as(cluster, as_node, target).await?;
    let mut client = PeerClient::new(channel);
    client
        .keep_alive(futures::stream::iter(messages))
        .await
        .context("the keep-alive stream")?;
    Ok(())
}

fn handover(new_term: pb::Term) -> pb::PeerMessage {
    pb::PeerMessage {
        body: Some(pb::peer_message::Body::Handover(pb::HandoverRequest {
            new_term: Some(new_term),
            log: Some(pb::LogPosition::default()),
        })),
    }
}

#[test]
fn an_old_term_replayed_on_the_keep_alive_stream_changes_no_role() -> anyhow::Result<()> {
    let _serial = serial();
    let (cluster, _dir) = start_pair(ClusterSpec::new())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let old = term_of(&cluster, &cluster.status("a")?)?;

    phase("switch over, so that a's term is an old one: b active, a passive");
    cluster.ctl_ok("a", &["switchover"])?;
    let (b, a) = wait_steady(&cluster, "b")?;
    let term = b["node"]["term"].clone();
    assert!(term_epoch(&b) > old.epoch, "{}", brief(&b));
    assert_eq!(a["node"]["term"], term);
    let events_before = [event_kinds(&cluster, "a")?, event_kinds(&cluster, "b")?];

    phase("as b, tell passive a that b is active in the old term");
    let stale = pb::Term {
        node: "b".into(),
        ..old.clone()
    };
    let replayed = forged_heartbeat(&cluster, "b", stale)?;
    runtime.block_on(send_keep_alive(&cluster, "b", "a", vec![replayed]))?;

    phase("as b, hand passive a the old term; as a, hand active b the old term");
    let to_passive = pb::Term {
        node: "a".into(),
        ..old.clone()
    };
    runtime.block_on(send_keep_alive(
        &cluster,
        "b",
        "a",
        vec![handover(to_passive)],
    ))?;
    let refusal = wait_event(&cluster, "a", "switchover", "refused the hand-over of term")?;
    assert!(refusal.contains("not newer"), "{refusal}");
    let to_active = pb::Term {
        node: "b".into(),
        ..old.clone()
    };
    runtime.block_on(send_keep_alive(
        &cluster,
        "a",
        "b",
        vec![handover(to_active)],
    ))?;
    let refusal = wait_event(&cluster, "b", "switchover", "refused the hand-over of term")?;
    assert!(refusal.contains("not newer"), "{refusal}");

    phase("no role or term changed, and neither node recorded a split brain or an election");
    assert_healthy(&cluster, &runtime, "b", &term, "after-old-term")?;
    for (node, before) in ["a", "b"].into_iter().zip(&events_before) {
        let new = events_since(&cluster, node, before.len())?;
        eprintln!("{node} recorded {new:?}");
        let wrong = [
            "role_change",
            "split_brain",
            "election",
            "failover",
            "term",
            "version_mismatch",
            "config_mismatch",
            "cluster_mismatch",
        ];
        let recorded: Vec<_> = new
            .iter()
            .filter(|(kind, _)| wrong.contains(&kind.as_str()))
            .collect();
        assert!(recorded.is_empty(), "{node} recorded {recorded:?}");
    }
    Ok(())
}

// --- 5 and 6: replication messages with broken checksums -------------------------------------

/// SHA-256 of `data` (`sha256sum`: the test binary has no hashing crate of its own).
fn sha256(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run sha256sum")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("sha256sum has no stdin"))?
        .write_all(data)?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "sha256sum failed: {output:?}");
    let text = String::from_utf8(output.stdout)?;
    let hex = text.split_whitespace().next().unwrap_or_default();
    ensure!(hex.len() == 64, "sha256sum printed {text:?}");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).context("sha256sum output"))
        .collect()
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_u64(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_str(out, text);
        }
    }
}

/// An entry's canonical bytes (`EntryContent::encode`): what the checksum covers.
fn entry_bytes(entry: &pb::LogEntry) -> Vec<u8> {
    let term = entry.term.clone().unwrap_or_default();
    let mut out = vec![ENTRY_ENCODING_VERSION];
    put_u64(&mut out, term.epoch);
    put_str(&mut out, &term.node);
    put_u64(&mut out, entry.index);
    put_str(&mut out, &entry.table);
    put_str(&mut out, &entry.primary_key);
    // The operation codes are those of the protobuf enum (insert 1, update 2, delete 3).
    out.push(u8::try_from(entry.operation).unwrap_or(0));
    put_optional_str(&mut out, entry.new_image.as_deref());
    put_optional_str(&mut out, entry.old_image.as_deref());
    put_u64(&mut out, entry.hlc_ms);
    out.extend_from_slice(&entry.hlc_logical.to_le_bytes());
    put_str(&mut out, &entry.hlc_node);
    put_str(&mut out, &entry.origin);
    put_u64(&mut out, entry.txid);
    out
}

/// The batch checksum the sender computes (`batch_checksum`): first 8 bytes of SHA-256 over
/// the term, the entry count, and each entry's bytes and rolling hash.
fn batch_checksum(term: &pb::Term, entries: &[pb::LogEntry]) -> anyhow::Result<u64> {
    let mut bytes = Vec::new();
    put_u64(&mut bytes, term.epoch);
    bytes.extend_from_slice(&term.priority.to_le_bytes());
    put_str(&mut bytes, &term.node);
    put_u64(&mut bytes, entries.len() as u64);
    for entry in entries {
        let encoded = entry_bytes(entry);
        put_u64(&mut bytes, encoded.len() as u64);
        bytes.extend_from_slice(&encoded);
        put_u64(&mut bytes, entry.hash);
    }
    let digest = sha256(&bytes)?;
    Ok(u64::from_le_bytes(digest[..8].try_into()?))
}

/// One forged entry at `index` inserting a note, whose rolling hash is made up.
fn forged_entry(term: &pb::Term, index: u64) -> pb::LogEntry {
    pb::LogEntry {
        term: Some(term.clone()),
        index,
        table: "notes".into(),
        primary_key: r#"{"id":"forged"}"#.into(),
        operation: pb::Operation::Insert as i32,
        new_image: Some(r#"{"id":"forged","body":"must never be applied"}"#.into()),
        old_image: None,
        hlc_ms: 1,
        hlc_logical: 0,
        hlc_node: term.node.clone(),
        origin: term.node.clone(),
        txid: 1,
        hash: 0x0123_4567_89ab_cdef,
    }
}

fn ship(body: pb::ship_message::Body) -> pb::ShipMessage {
    pb::ShipMessage { body: Some(body) }
}

/// A `Replicate` stream to the passive, opened as the active.
struct HostileStream {
    sender: mpsc::UnboundedSender<pb::ShipMessage>,
    replies: tonic::Streaming<pb::ShipReply>,
    /// The passive's durable log head, from its first reply.
    head: pb::LogPosition,
}

impl HostileStream {
    /// Opens a stream to `passive` as `active`, in `term`. The passive serves one stream at a
    /// time, so the real active's stream is cut first (its dial to the passive is refused) and
    /// let back once this one holds the passive's receive lock; the real one then waits its turn.
    fn open(
        cluster: &Cluster,
        runtime: &tokio::runtime::Runtime,
        active: &str,
        term: &pb::Term,
    ) -> anyhow::Result<HostileStream> {
        let passive = other(active);
        cluster.proxy(active, passive).set_mode(Mode::Refuse)?;
        let opened = cluster.wait_until(WAIT, "a Replicate stream of our own", |c| {
            runtime.block_on(Self::try_open(c, active, term)).map(Some)
        });
        cluster.proxy(active, passive).set_mode(Mode::Pass)?;
        opened
    }

    async fn try_open(
        cluster: &Cluster,
        active: &str,
        term: &pb::Term,
    ) -> anyhow::Result<HostileStream> {
        let channel = peer_channel_as(cluster, active, other(active)).await?;
        let (sender, receiver) = mpsc::unbounded();
        sender.unbounded_send(ship(pb::ship_message::Body::Hello(pb::ShipHello {
            term: Some(term.clone()),
            node: active.to_string(),
            last_index: 0,
        })))?;
        let mut replies = PeerClient::new(channel)
            .replicate(receiver)
            .await?
            .into_inner();
        loop {
            let reply = replies
                .message()
                .await?
                .ok_or_else(|| anyhow!("the passive ended the stream before its position"))?;
            if let Some(pb::ship_reply::Body::Position(head)) = reply.body {
                return Ok(HostileStream {
                    sender,
                    replies,
                    head,
                });
            }
        }
    }

    fn send(&self, body: pb::ship_message::Body) -> anyhow::Result<()> {
        Ok(self.sender.unbounded_send(ship(body))?)
    }

    /// The next reply that is not an acknowledgement or a position; `None` if the stream ended.
    async fn next_reply(&mut self) -> Result<Option<pb::ship_reply::Body>, tonic::Status> {
        while let Some(reply) = self.replies.message().await? {
            match reply.body {
                Some(pb::ship_reply::Body::Position(_)) | None => continue,
                Some(body) => return Ok(Some(body)),
            }
        }
        Ok(None)
    }
}

/// What `node`'s status and `notes` table say about its log: (last index, rows).
fn log_and_rows(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    node: &str,
) -> anyhow::Result<(u64, i64)> {
    let status = cluster.status(node)?;
    let mut reader = runtime.block_on(data::client(cluster, node))?;
    let rows = runtime.block_on(data::count(&mut reader, "notes"))?;
    Ok((
        status["replication"]["last_index"].as_u64().unwrap_or(0),
        rows,
    ))
}

#[test]
fn replication_batches_and_snapshot_chunks_with_bad_checksums_are_refused() -> anyhow::Result<()> {
    let _serial = serial();
    let (cluster, _dir) = start_pair(ClusterSpec::new().with_proxies(true))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let status = cluster.status("a")?;
    let term_json = status["node"]["term"].clone();
    let term = term_of(&cluster, &status)?;
    let mut writer = runtime.block_on(data::client(&cluster, "a"))?;
    for n in 0..3 {
        let id = format!("before-{n}");
        runtime.block_on(execute(&mut writer, &id, vec![insert_note(&id, "real")]))?;
    }
    data::wait_in_sync(&cluster, "a")?;
    phase("suspend monitoring: cutting a's dial to b must not turn into a failover");
    cluster.ctl_ok("a", &["monitoring", "suspend"])?;
    cluster.wait_until(WAIT, "b to see monitoring suspended", |c| {
        Ok((c.status("b")?["node"]["monitoring"] == "suspended").then_some(()))
    })?;
    let before = log_and_rows(&cluster, &runtime, "b")?;
    assert_eq!(before.1, 3);

    phase("as a, open a Replicate stream to b in the current term");
    let mut stream = HostileStream::open(&cluster, &runtime, "a", &term)?;
    assert_eq!(stream.head.index, before.0);
    let entries = vec![forged_entry(&term, stream.head.index + 1)];
    let checksum = batch_checksum(&term, &entries)?;
    let batch = pb::LogBatch {
        term: Some(term.clone()),
        entries,
        checksum,
    };
    let decoded = tandem_node::repl::convert::batch_from_pb(batch.clone())
        .map_err(|reason| anyhow!("the forged batch does not decode: {reason}"))?;
    assert!(
        decoded.checksum_matches(),
        "the test computes the batch checksum as the node does"
    );

    phase("a batch whose checksum does not match: refused as BAD_CHECKSUM");
    stream.send(pb::ship_message::Body::Batch(pb::LogBatch {
        checksum: checksum ^ 1,
        ..batch.clone()
    }))?;
    let refusal = match runtime.block_on(stream.next_reply())? {
        Some(pb::ship_reply::Body::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refusal.kind(), pb::RefusalKind::BadChecksum, "{refusal:?}");
    assert!(refusal.message.contains("checksum"), "{refusal:?}");

    phase("an intact batch whose rolling hash does not continue b's log: HASH_MISMATCH");
    stream.send(pb::ship_message::Body::Batch(batch))?;
    let refusal = match runtime.block_on(stream.next_reply())? {
        Some(pb::ship_reply::Body::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refusal.kind(), pb::RefusalKind::HashMismatch, "{refusal:?}");
    assert_eq!(refusal.index, before.0 + 1, "{refusal:?}");
    assert!(refusal.message.contains("hashes differ"), "{refusal:?}");
    drop(stream);
    assert_eq!(
        log_and_rows(&cluster, &runtime, "b")?,
        before,
        "b applied nothing"
    );
    assert_eq!(cluster.status("b")?["node"]["disk"], "consistent");

    phase("a's replication carries on");
    runtime.block_on(execute(
        &mut writer,
        "after-batches",
        vec![insert_note("after-batches", "real")],
    ))?;
    data::wait_in_sync(&cluster, "a")?;
    let before = log_and_rows(&cluster, &runtime, "b")?;
    assert_eq!(before.1, 4);

    phase("as a, begin a snapshot and send a chunk whose checksum is wrong: refused");
    let mut stream = HostileStream::open(&cluster, &runtime, "a", &term)?;
    let data_dir = cluster.data_dir("b");
    stream.send(pb::ship_message::Body::SnapshotBegin(pb::SnapshotBegin {
        total_bytes: 4096,
        last_index: stream.head.index,
        reason: "forged".into(),
        keep_old_as: String::new(),
    }))?;
    stream.send(pb::ship_message::Body::SnapshotChunk(pb::SnapshotChunk {
        offset: 0,
        data: vec![0x42; 4096],
        checksum: vec![0; 32],
    }))?;
    let ended = runtime.block_on(stream.next_reply());
    let status = ended.expect_err("the stream ended without saying why");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("checksum"), "{status:?}");
    drop(stream);
    wait_event(&cluster, "b", "snapshot", "stopped before it was complete")?;
    cluster.wait_until(WAIT, "the partial snapshot to be removed", |_| {
        let incoming: Vec<_> = std::fs::read_dir(&data_dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("incoming-"))
            .collect();
        ensure!(incoming.is_empty(), "left behind: {incoming:?}");
        Ok(Some(()))
    })?;

    phase("nothing of the forged snapshot is installed; a's real one makes b consistent again");
    wait_event(&cluster, "b", "snapshot", "snapshot installed")?;
    data::wait_in_sync(&cluster, "a")?;
    let installs = events(&cluster, "b")?
        .into_iter()
        .filter(|(kind, message)| kind == "snapshot" && message.contains("snapshot installed"))
        .count();
    assert_eq!(installs, 1, "only a's real snapshot was installed");
    assert_eq!(log_and_rows(&cluster, &runtime, "b")?.1, before.1);

    phase("resume monitoring: the pair is healthy in the same term");
    cluster.ctl_ok("a", &["monitoring", "resume"])?;
    cluster.wait_until(WAIT, "b to see monitoring on", |c| {
        Ok((c.status("b")?["node"]["monitoring"] == "on").then_some(()))
    })?;
    assert_healthy(&cluster, &runtime, "a", &term_json, "after-checksums")?;
    Ok(())
}
