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
use tandem_node::status_probe::StatusProbe as Probe;

/// Bound on any single wait inside a run.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(2);
const NAMES: [&str; 2] = ["a", "b"];

/// Builds the release binaries and returns their paths. It builds `tandem-bench` too, so that
/// feature unification matches `cargo run -p tandem-bench` and nothing is rebuilt twice.
pub fn release_binaries() -> anyhow::Result<Binaries> {
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

struct Pair {
    cluster: Cluster,
    probes: Vec<Probe>,
}

impl Pair {
    fn start(bins: &Binaries) -> anyhow::Result<Pair> {
        let cluster = Cluster::start(ClusterSpec::new(), bins)?;
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
    async fn steady(&mut self) -> anyhow::Result<&'static str> {
        let start = Instant::now();
        while start.elapsed() < STEP_TIMEOUT {
            let (a, b) = (self.probes[0].status().await, self.probes[1].status().await);
            if let (Some(a), Some(b)) = (a, b) {
                let serving =
                    |s: &tandem_node::status::Status| s.node.role == "active" && s.node.admitting;
                let following = |s: &tandem_node::status::Status| {
                    s.node.role == "passive" && s.peer.state == "ok"
                };
                if serving(&a) && following(&b) && a.peer.role == "passive" {
                    return Ok("a");
                }
                if serving(&b) && following(&a) && b.peer.role == "passive" {
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

fn other(name: &str) -> &'static str {
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

/// failover-crash (SIGKILL) and failover-freeze (SIGSTOP): signal the active, time until the
/// other node serves, then restart or resume the victim and let it rejoin.
pub async fn failover(bins: &Binaries, runs: usize, signal: libc::c_int) -> anyhow::Result<Value> {
    let mut pair = Pair::start(bins)?;
    let mut samples = Vec::new();
    for run in 0..runs {
        let victim = pair.steady().await?;
        let survivor = other(victim);
        pair.cluster.node(victim).signal(signal)?;
        let took = pair.time_until_serving(survivor).await?;
        eprintln!(
            "run {}: {victim} -> {survivor} in {:.1} ms",
            run + 1,
            took.as_secs_f64() * 1000.0
        );
        samples.push(took);
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
        json!({"timers": "defaults (100ms, warn 3, failover 8)"}),
    ))
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
    let mut samples = Vec::new();
    for run in 0..runs {
        let from = pair.steady().await?;
        let to = other(from);
        let (from_address, to_address) = (admin_address(&pair, from), admin_address(&pair, to));
        let failed = |f: tandem_node::ctl::Failure| anyhow!(f.0);
        let connect = tandem_node::ctl::connect_admin;
        let mut from_client = connect(&from_address, &files).await.map_err(failed)?;
        let mut to_client = connect(&to_address, &files).await.map_err(failed)?;
        let command = connect(&from_address, &files).await.map_err(failed)?;
        let gap = tandem_node::gap_meter::measure_switchover(
            &mut from_client,
            &mut to_client,
            command,
            STEP_TIMEOUT,
        )
        .await
        .map_err(|e| anyhow!(e))?;
        eprintln!(
            "run {}: {from} -> {to}, longest gap {:.1} ms",
            run + 1,
            gap.longest_gap.as_secs_f64() * 1000.0
        );
        samples.push(gap.longest_gap);
    }
    Ok(samples_json(
        "switchover",
        &samples,
        json!({"poll_interval_ms": tandem_node::gap_meter::GAP_POLL.as_millis() as u64}),
    ))
}

/// false-failovers: a pair under CPU saturation (busy threads on every core, twice over) for
/// `duration`; counts epoch changes, each of which is a failover nobody wanted.
pub async fn false_failovers(bins: &Binaries, duration: Duration) -> anyhow::Result<Value> {
    let mut pair = Pair::start(bins)?;
    let active = pair.steady().await?;
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
    let failovers = max_epoch - epoch_at_start;
    Ok(json!({
        "scenario": "false-failovers",
        "runs": 1,
        "duration_s": duration.as_secs(),
        "load": format!("{} busy threads on {cores} cores", cores * 2),
        "failovers": failovers,
        "polls_with_peer_not_ok": suspect_seen,
        "failed": failovers > 0,
    }))
}
