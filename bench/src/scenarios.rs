//! The scenarios. Each starts its own pair with the product's default timers (except
//! `min_failover_interval = 0`, so that one pair can fail over once per run).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tandem_harness::{Binaries, Cluster, ClusterSpec};
use tandem_node::tls::TlsFiles;

use crate::stats::{percentile_ms, round};
use tandem_cli::status_probe::StatusProbe as Probe;

/// Bound on any single wait inside a run.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(2);
const NAMES: [&str; 2] = ["a", "b"];
/// Clients resuming their sessions during a switchover, and how often each does.
const RESUMERS: usize = 4;
const RESUME_EVERY: Duration = Duration::from_millis(2);

/// Builds the release binaries and returns their paths. It builds `tandem-bench` too, so that
/// feature unification matches `cargo run -p tandem-bench` and nothing is rebuilt twice.
/// With `TANDEM_BENCH_BINS` set to a directory holding `tandemd` and `tandemctl`, those are
/// used and nothing is built (to compare two builds in alternating runs).
pub fn release_binaries() -> anyhow::Result<Binaries> {
    if let Some(dir) = std::env::var_os("TANDEM_BENCH_BINS") {
        let dir = PathBuf::from(dir);
        for name in ["tandemd", "tandemctl"] {
            if !dir.join(name).is_file() {
                bail!("TANDEM_BENCH_BINS={}: no {name} there", dir.display());
            }
        }
        return Ok(Binaries::from_target_dir(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench/ has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "tandem",
            "-p",
            "tandem-bench",
            "--bins",
        ])
        .current_dir(workspace)
        .status()
        .context("cannot run cargo to build tandemd and tandemctl")?;
    if !status.success() {
        bail!("building tandemd and tandemctl failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(Binaries::from_target_dir(target.join("release")))
}

pub(crate) struct Pair {
    cluster: Cluster,
    probes: Vec<Probe>,
}

impl Pair {
    fn start(bins: &Binaries) -> anyhow::Result<Pair> {
        Pair::start_with(bins, ClusterSpec::new())
    }

    pub(crate) fn start_with(bins: &Binaries, spec: ClusterSpec) -> anyhow::Result<Pair> {
        let cluster = Cluster::start(spec, bins)?;
        let certs = cluster.certs_dir();
        let files = TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join("admin.pem"),
            key: certs.join("admin.key"),
        };
        let probes = NAMES
            .iter()
            .map(|name| Probe::new(cluster.addrs(name).admin.to_string(), files.clone()))
            .collect();
        Ok(Pair { cluster, probes })
    }

    fn index(name: &str) -> usize {
        NAMES
            .iter()
            .position(|n| *n == name)
            .expect("the bench names only nodes a and b")
    }

    /// Waits until one node serves and the other is passive with the link up; returns the active.
    pub(crate) async fn steady(&mut self) -> anyhow::Result<&'static str> {
        let start = Instant::now();
        while start.elapsed() < STEP_TIMEOUT {
            let (a, b) = (self.probes[0].status().await, self.probes[1].status().await);
            if let (Some(a), Some(b)) = (a, b) {
                let serving = |s: &tandem_node::admin::status::Status| {
                    s.node.role == "active" && s.node.admitting
                };
                // A passive that is still catching up is `outdated` and would rightly refuse to
                // take over: a run starts only once it is consistent again.
                let following = |s: &tandem_node::admin::status::Status| {
                    s.node.role == "passive" && s.peer.state == "ok" && s.node.disk == "consistent"
                };
                let replicating = |s: &tandem_node::admin::status::Status| {
                    s.peer.role == "passive"
                        && s.peer.disk == "consistent"
                        && !s.replication.degraded
                };
                // In witness mode both must see the witness, or the passive cannot take over.
                let witnessed = |s: &tandem_node::admin::status::Status| {
                    s.witness.kind == "none" || s.witness.state == "ok"
                };
                if !(witnessed(&a) && witnessed(&b)) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if serving(&a) && following(&b) && replicating(&a) {
                    return Ok("a");
                }
                if serving(&b) && following(&a) && replicating(&b) {
                    return Ok("b");
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("the pair did not settle with one active and one passive node")
    }

    /// Time from now until `name` serves.
    async fn time_until_serving(&mut self, name: &str) -> anyhow::Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < STEP_TIMEOUT {
            if self.probes[Self::index(name)].serves().await {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(POLL).await;
        }
        bail!("{name} did not serve within {STEP_TIMEOUT:?}")
    }
}

fn admin_address(pair: &Pair, name: &str) -> String {
    pair.cluster.addrs(name).admin.to_string()
}

pub(crate) fn other(name: &str) -> &'static str {
    if name == "a" { "b" } else { "a" }
}

fn samples_json(scenario: &str, samples: &[Duration], extra: Value) -> Value {
    let mut result = json!({
        "scenario": scenario,
        "runs": samples.len(),
        "p50_ms": percentile_ms(samples, 50.0),
        "p95_ms": percentile_ms(samples, 95.0),
        "max_ms": percentile_ms(samples, 100.0),
        "samples_ms": samples.iter().map(|d| round(d.as_secs_f64() * 1000.0)).collect::<Vec<_>>(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut result, extra) {
        map.extend(more);
    }
    result
}

/// failover-crash (SIGKILL) and failover-freeze (SIGSTOP): signal the active, then time until a
/// client's session resume succeeds on the other node (over a connection it already holds), and
/// until that node serves by its status; then restart or resume the victim and let it rejoin.
pub async fn failover(
    bins: &Binaries,
    runs: usize,
    signal: libc::c_int,
    mode: Mode,
) -> anyhow::Result<Value> {
    let spec = match mode {
        Mode::Pair => ClusterSpec::new(),
        Mode::Witness => ClusterSpec::new().with_witness(true),
        Mode::Etcd => ClusterSpec::new().with_etcd_witness(),
    };
    let mut pair = Pair::start_with(bins, spec)?;
    let active = pair.steady().await?;
    crate::clients::add_user(&pair.cluster, active, "phone")?;
    let mut first = crate::clients::connect(&pair.cluster, active).await?;
    let token = crate::clients::login(&mut first, "phone").await?;
    let mut clients = [
        crate::clients::connect(&pair.cluster, "a").await?,
        crate::clients::connect(&pair.cluster, "b").await?,
    ];
    let mut samples = Vec::new();
    let mut served = Vec::new();
    for run in 0..runs {
        let victim = pair.steady().await?;
        let survivor = other(victim);
        let client = &mut clients[Pair::index(survivor)];
        let sent = Instant::now();
        pair.cluster.node(victim).signal(signal)?;
        let (resumed, serving) = tokio::join!(
            crate::clients::resume_until_ok(client, &token, STEP_TIMEOUT),
            pair.time_until_serving(survivor)
        );
        let gap = resumed? - sent;
        let serving = serving?;
        eprintln!(
            "run {}: {victim} -> {survivor}: resumed after {:.1} ms (serving after {:.1} ms)",
            run + 1,
            gap.as_secs_f64() * 1000.0,
            serving.as_secs_f64() * 1000.0
        );
        samples.push(gap);
        served.push(serving);
        if signal == libc::SIGSTOP {
            pair.cluster.node(victim).signal(libc::SIGCONT)?;
        } else {
            pair.cluster.node_mut(victim).restart()?;
        }
    }
    pair.steady().await?;
    let scenario = if signal == libc::SIGSTOP {
        "failover-freeze"
    } else {
        "failover-crash"
    };
    Ok(samples_json(
        scenario,
        &samples,
        json!({
            "measures": "signal to the first successful session resume on the other node",
            "served_p50_ms": percentile_ms(&served, 50.0),
            "served_p95_ms": percentile_ms(&served, 95.0),
            "timers": "defaults (100ms, warn 3, failover 8)",
        }),
    ))
}

/// How the pair under [`failover`] runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Pair,
    /// With `tandemd witness` (lease 1 s).
    Witness,
    /// With a one-member etcd as the witness (lease 2 s).
    Etcd,
}

/// [`failover`] in pair mode and, with `witness`, then in witness mode (and with `etcd`, then
/// with etcd as the witness): the witness mode's figures with the pair mode's (`pair_p50_ms`,
/// ...) and etcd's (`etcd_p50_ms`, ...) beside them, from the same invocation.
pub async fn failover_modes(
    bins: &Binaries,
    runs: usize,
    signal: libc::c_int,
    witness: bool,
    etcd: bool,
) -> anyhow::Result<Value> {
    let pair_mode = failover(bins, runs, signal, Mode::Pair).await?;
    if !witness {
        return Ok(pair_mode);
    }
    eprintln!("witness mode:");
    let mut result = failover(bins, runs, signal, Mode::Witness).await?;
    let etcd_mode = if etcd {
        eprintln!("etcd as the witness:");
        Some(failover(bins, runs, signal, Mode::Etcd).await?)
    } else {
        None
    };
    if let Value::Object(map) = &mut result {
        map.insert("mode".into(), json!("witness (lease 1s)"));
        for (prefix, other) in [("pair", Some(pair_mode)), ("etcd", etcd_mode)] {
            let Some(Value::Object(other)) = other else {
                continue;
            };
            for key in ["p50_ms", "p95_ms", "max_ms", "served_p50_ms"] {
                if let Some(value) = other.get(key) {
                    map.insert(format!("{prefix}_{key}"), value.clone());
                }
            }
        }
    }
    Ok(result)
}

/// switchover: planned switchovers back and forth; each run's longest client gap.
pub async fn switchover(bins: &Binaries, runs: usize) -> anyhow::Result<Value> {
    let mut pair = Pair::start(bins)?;
    let certs = pair.cluster.certs_dir();
    let files = TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let active = pair.steady().await?;
    let tokens =
        crate::clients::open_sessions(&pair.cluster, active, 1, RESUMERS, RESUMERS).await?;
    let mut samples = Vec::new();
    let mut admin_gaps = Vec::new();
    for run in 0..runs {
        let from = pair.steady().await?;
        let to = other(from);
        let resumers =
            crate::clients::Resumers::start(&pair.cluster, from, &tokens, RESUME_EVERY).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let window_start = Instant::now();
        let (from_address, to_address) = (admin_address(&pair, from), admin_address(&pair, to));
        let failed = |f: tandem_cli::failure::Failure| anyhow!(f.0);
        let connect = tandem_cli::connect::connect_admin;
        let mut from_client = connect(&from_address, &files).await.map_err(failed)?;
        let mut to_client = connect(&to_address, &files).await.map_err(failed)?;
        let command = connect(&from_address, &files).await.map_err(failed)?;
        let gap = tandem_cli::gap_meter::measure_switchover(
            &mut from_client,
            &mut to_client,
            command,
            STEP_TIMEOUT,
        )
        .await
        .map_err(|e| anyhow!(e))?;
        // Let the resumers settle on the new active before the window closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client_gap = resumers.longest_gap((window_start, Instant::now())).await?;
        eprintln!(
            "run {}: {from} -> {to}, longest client gap {:.1} ms (admitting gap {:.1} ms)",
            run + 1,
            client_gap.as_secs_f64() * 1000.0,
            gap.longest_gap.as_secs_f64() * 1000.0
        );
        samples.push(client_gap);
        admin_gaps.push(gap.longest_gap);
    }
    Ok(samples_json(
        "switchover",
        &samples,
        json!({
            "measures": format!(
                "longest time without a successful session resume, {RESUMERS} clients \
                 resuming every {} ms", RESUME_EVERY.as_millis()
            ),
            "admitting_gap_p50_ms": percentile_ms(&admin_gaps, 50.0),
            "admitting_poll_interval_ms": tandem_cli::gap_meter::GAP_POLL.as_millis() as u64,
        }),
    ))
}

/// false-failovers: a pair under the four loads of DESIGN.md §11 for `duration` — busy threads
/// on every core, twice over; an argon2 login storm; a 1 GiB file transfer always in progress
/// (a `[[files]]` entry); an fsync-heavy writer on the same disk — counting epoch changes, each
/// of which is a failover nobody wanted.
pub async fn false_failovers(bins: &Binaries, duration: Duration) -> anyhow::Result<Value> {
    let dirs = crate::files::Dirs::new()?;
    let mut pair = Pair::start_with(bins, dirs.spec())?;
    let active = pair.steady().await?;
    let bulk = crate::loads::BulkTransfer::start(
        dirs.of(active).to_path_buf(),
        dirs.of(other(active)).to_path_buf(),
        dirs.scratch.clone(),
    );
    let fsyncs = crate::loads::FsyncWriter::start(dirs.scratch.join("fsync"));
    let epoch_at_start = pair.probes[Pair::index(active)]
        .status()
        .await
        .map(|s| s.node.epoch)
        .context("no status from the active node")?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..cores * 2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let storm = LoginStorm::start(&pair.cluster, active).await?;
    let start = Instant::now();
    let mut max_epoch = epoch_at_start;
    let mut suspect_seen = 0u32;
    while start.elapsed() < duration {
        for probe in &mut pair.probes {
            if let Some(status) = probe.status().await {
                max_epoch = max_epoch.max(status.node.epoch);
                if status.peer.state != "ok" {
                    suspect_seen += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for burner in burners {
        let _ = burner.join();
    }
    let (logins, storm_failed, storm_errors) = storm.stop().await;
    let bulk_arrived = tokio::task::block_in_place(|| bulk.stop())?;
    let (fsyncs_done, fsync_longest) = tokio::task::block_in_place(|| fsyncs.stop())?;
    let failovers = max_epoch - epoch_at_start;
    Ok(json!({
        "scenario": "false-failovers",
        "runs": 1,
        "duration_s": duration.as_secs(),
        "load": format!(
            "{} busy threads on {cores} cores; an argon2 login storm ({STORM_CLIENTS} clients \
             logging in with passwords without pause); a 1 GiB file replaced in the active's \
             [[files]] dir as soon as the passive holds the previous one; 4 KiB writes each \
             fsynced without pause on the same disk",
            cores * 2
        ),
        "bulk_files_arrived": bulk_arrived,
        "bulk_mb_per_s": round(bulk_arrived as f64 * 1073.741824 / duration.as_secs_f64()),
        "fsyncs": fsyncs_done,
        "fsyncs_per_s": round(fsyncs_done as f64 / duration.as_secs_f64()),
        "fsync_max_ms": round(fsync_longest.as_secs_f64() * 1000.0),
        "storm_logins": logins,
        "storm_failed": storm_failed,
        "storm_errors": storm_errors,
        "failovers": failovers,
        "polls_with_peer_not_ok": suspect_seen,
        "failed": failovers > 0,
    }))
}

/// Clients in the argon2 login storm of false-failovers.
const STORM_CLIENTS: usize = 32;

/// Password logins without pause, `STORM_CLIENTS` at once, on the active node.
struct LoginStorm {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, u64, Vec<String>)>>,
}

impl LoginStorm {
    async fn start(cluster: &Cluster, active: &str) -> anyhow::Result<LoginStorm> {
        crate::clients::add_user(cluster, active, "storm")?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..STORM_CLIENTS {
            let mut client = crate::clients::connect(cluster, active).await?;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let (mut logins, mut failed, mut kinds) = (0, 0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match crate::clients::login(&mut client, "storm").await {
                        Ok(_) => logins += 1,
                        Err(status) => {
                            failed += 1;
                            let kind = format!("{:?}: {}", status.code(), status.message());
                            if kinds.len() < 4 && !kinds.contains(&kind) {
                                kinds.push(kind);
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (logins, failed, kinds)
            }));
        }
        Ok(LoginStorm { stop, tasks })
    }

    /// Stops the storm; returns the logins admitted, those that failed, and the distinct
    /// errors seen (a few).
    async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut totals = (0, 0, Vec::new());
        for task in self.tasks {
            if let Ok((logins, failed, kinds)) = task.await {
                totals.0 += logins;
                totals.1 += failed;
                for kind in kinds {
                    if totals.2.len() < 8 && !totals.2.contains(&kind) {
                        totals.2.push(kind);
                    }
                }
            }
        }
        totals
    }
}

/// Sessions resumed at once in login-storm, and the connections they come over.
const STORM_SESSIONS: usize = 10_000;
const STORM_CONNECTIONS: usize = 1_000;

/// login-storm: 10,000 sessions, then SIGKILL the active; 1,000 clients each dial the new
/// active over TLS and resume 10 sessions. The figure is the time from the kill until every
/// session has resumed, and from the new active serving until then.
pub async fn login_storm(bins: &Binaries, runs: usize) -> anyhow::Result<Value> {
    let mut samples = Vec::new();
    let mut after_serving = Vec::new();
    for run in 0..runs {
        let mut pair = Pair::start(bins)?;
        let active = pair.steady().await?;
        let survivor = other(active);
        let opened = Instant::now();
        let tokens =
            crate::clients::open_sessions(&pair.cluster, active, 100, STORM_SESSIONS, 16).await?;
        eprintln!(
            "run {}: {} sessions opened on {active} in {:.1} s (argon2 logins)",
            run + 1,
            tokens.len(),
            opened.elapsed().as_secs_f64()
        );
        let tokens = Arc::new(tokens);
        let killed = Instant::now();
        pair.cluster.node(active).signal(libc::SIGKILL)?;
        let per_connection = STORM_SESSIONS / STORM_CONNECTIONS;
        let mut tasks = Vec::new();
        for connection in 0..STORM_CONNECTIONS {
            let cluster_addr = pair.cluster.addrs(survivor).client.to_string();
            let files = crate::clients::tls_files(&pair.cluster);
            let tokens = tokens.clone();
            tasks.push(tokio::spawn(async move {
                let config = tandem_node::tls::client_config(&files, false)?;
                let start = Instant::now();
                let channel = loop {
                    match tandem_node::tls::connect(
                        &cluster_addr,
                        survivor,
                        config.clone(),
                        Duration::from_secs(5),
                    )
                    .await
                    {
                        Ok(channel) => break channel,
                        Err(error) if start.elapsed() > STEP_TIMEOUT => {
                            return Err(anyhow!("cannot connect: {error}"));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
                let mut client = crate::clients::Client::new(channel);
                let mut last = Instant::now();
                for token in &tokens[connection * per_connection..(connection + 1) * per_connection]
                {
                    last =
                        crate::clients::resume_until_ok(&mut client, token, STEP_TIMEOUT).await?;
                }
                Ok::<_, anyhow::Error>(last)
            }));
        }
        let serving = pair.time_until_serving(survivor).await?;
        let mut all_done = killed;
        for task in tasks {
            all_done = all_done.max(task.await??);
        }
        let took = all_done - killed;
        eprintln!(
            "run {}: all {STORM_SESSIONS} sessions resumed on {survivor} over \
             {STORM_CONNECTIONS} connections {:.1} ms after the kill ({survivor} served after \
             {:.1} ms)",
            run + 1,
            took.as_secs_f64() * 1000.0,
            serving.as_secs_f64() * 1000.0
        );
        samples.push(took);
        after_serving.push(took.saturating_sub(serving));
    }
    let mut result = samples_json(
        "login-storm",
        &samples,
        json!({
            "sessions": STORM_SESSIONS,
            "connections": STORM_CONNECTIONS,
            "measures": "SIGKILL of the active to the last of the sessions resumed on the other node",
            "after_serving_p50_ms": percentile_ms(&after_serving, 50.0),
            "target_ms": 3000,
        }),
    );
    let p50 = percentile_ms(&samples, 50.0);
    if let Value::Object(map) = &mut result {
        map.insert("failed".into(), json!(p50 > 3000.0));
    }
    Ok(result)
}
