//! `replication` and `passive-crash`: writes through the Data API of a real pair.
//!
//! `replication` runs concurrent single-row inserts for a fixed time, in sync mode, in async mode
//! (the peer up and receiving), and with "replication off" — the same binaries, schema, triggers
//! and group commit, in async mode with the peer stopped — with 1 and with 64 writers, and measures the local fsync p99 of the same
//! disk in the same run (4 KiB write + fdatasync in a loop).
//! `passive-crash`: 8 writers in sync mode; SIGKILL the passive; the longest any write waited
//! around the kill is the run's stall.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tandem_harness::{Binaries, Cluster, ClusterSpec};
use tandem_proto::data as pb;
use tandem_proto::data::data_client::DataClient;
use tonic::transport::Channel;

use crate::stats::{percentile_ms, round};

const SCHEMA: &str = "CREATE TABLE bench (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn spec(dir: &std::path::Path, mode: &str) -> anyhow::Result<ClusterSpec> {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(migrations.join("001_bench.sql"), SCHEMA)?;
    Ok(ClusterSpec::new()
        .set_all("replication.migrations", migrations.display().to_string())
        .set_all(
            "replication.tables",
            tandem_harness::toml::Value::Array(vec!["bench".into()]),
        )
        .set_all("replication.mode", mode))
}

async fn client(cluster: &Cluster, node: &str) -> anyhow::Result<DataClient<Channel>> {
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let config = tandem_node::tls::client_config(&files, false)?;
    let address = cluster.addrs(node).client.to_string();
    Ok(DataClient::new(
        tandem_node::tls::connect(&address, node, config, Duration::from_secs(5)).await?,
    ))
}

fn insert(id: String) -> pb::ExecuteRequest {
    let text = |value: String| pb::Value {
        kind: Some(pb::value::Kind::Text(value)),
    };
    pb::ExecuteRequest {
        request_id: id.clone(),
        statements: vec![pb::Statement {
            sql: "INSERT INTO bench (id, body) VALUES (?, ?)".into(),
            params: vec![text(id), text("x".repeat(100))],
        }],
    }
}

fn wait_for(cluster: &Cluster, what: &str, check: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
    cluster.wait_until(STEP_TIMEOUT, what, |c| {
        Ok(check(&c.status("a")?).then_some(()))
    })
}

/// Runs `writers` writers against `node` for `duration`; returns commits and each latency.
async fn load(
    cluster: &Cluster,
    node: &str,
    writers: usize,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    let mut tasks = Vec::new();
    let until = Instant::now() + duration;
    for writer in 0..writers {
        let mut client = client(cluster, node).await?;
        let tag = format!("{tag}-{writer}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let started = Instant::now();
                client.execute(insert(format!("{tag}-{n}"))).await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all.len(), all))
}

/// The p99 of a 4 KiB write + fdatasync on the disk under `dir`.
fn fsync_p99(dir: &std::path::Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = vec![7u8; 4096];
    let mut samples = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    std::fs::remove_file(&path)?;
    Ok(percentile_ms(&samples, 99.0))
}

fn figures(commits: usize, latencies: &[Duration], duration: Duration) -> Value {
    json!({
        "commits_per_s": round(commits as f64 / duration.as_secs_f64()),
        "p50_ms": percentile_ms(latencies, 50.0),
        "p99_ms": percentile_ms(latencies, 99.0),
    })
}

pub async fn replication(bins: &Binaries, duration: Duration) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let mut results = serde_json::Map::new();
    let fsync = fsync_p99(dir.path())?;
    for (label, mode) in [("sync", "sync"), ("async", "async"), ("off", "async")] {
        let cluster = Cluster::start(spec(dir.path(), mode)?, bins)?;
        wait_for(&cluster, "a active with b passive", |s| {
            s["node"]["role"] == "active" && s["peer"]["role"] == "passive"
        })?;
        let mut cluster = cluster;
        if label == "off" {
            cluster.node_mut("b").kill()?;
            wait_for(&cluster, "a to see b gone", |s| {
                s["peer"]["state"] == "failed"
            })?;
        }
        for writers in [1usize, 64] {
            let tag = format!("{label}-{writers}");
            let (commits, latencies) = load(&cluster, "a", writers, duration, &tag).await?;
            let result = figures(commits, &latencies, duration);
            eprintln!("{label} with {writers} writers: {result}");
            results.insert(format!("{label}_{writers}_writers"), result);
        }
        let status = cluster.status("a")?;
        if label == "sync" && status["replication"]["degraded"] == true {
            bail!("the sync run degraded to async; its figures are not sync figures");
        }
    }
    let get = |key: &str, figure: &str| results[key][figure].as_f64().unwrap_or(0.0);
    let ratio_64 =
        get("sync_64_writers", "commits_per_s") / get("off_64_writers", "commits_per_s").max(1.0);
    let single_p99 = get("sync_1_writers", "p99_ms");
    let bound = 2.0 * fsync + 2.0;
    let mut out = json!({
        "scenario": "replication",
        "runs": 1,
        "duration_s": duration.as_secs_f64(),
        "local_fsync_p99_ms": fsync,
        "sync_vs_off_64_writers_ratio": (ratio_64 * 100.0).round() / 100.0,
        "single_writer_sync_p99_bound_ms": round(bound),
        "target_ratio_met": ratio_64 >= 0.5,
        "target_p99_met": single_p99 <= bound,
    });
    if let Value::Object(map) = &mut out {
        map.extend(results);
    }
    Ok(out)
}

/// Waits until `more` writes completed beyond those completed now.
async fn writes_beyond(done: &AtomicU64, more: u64) -> anyhow::Result<()> {
    let target = done.load(Ordering::SeqCst) + more;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while done.load(Ordering::SeqCst) < target {
        if Instant::now() > deadline {
            bail!("{more} more writes did not complete within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub async fn passive_crash(bins: &Binaries, runs: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(spec(dir.path(), "sync")?, bins)?;
    let mut stalls = Vec::new();
    for run in 0..runs {
        wait_for(&cluster, "b caught up and consistent", |s| {
            s["node"]["role"] == "active"
                && s["peer"]["role"] == "passive"
                && s["replication"]["degraded"] == false
                && s["replication"]["lag_entries"] == 0
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let mut client = client(&cluster, "a").await?;
            let (stop, done) = (stop.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut longest = Duration::ZERO;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let started = Instant::now();
                    client
                        .execute(insert(format!("crash-{run}-{writer}-{n}")))
                        .await
                        .context("a write failed; passive-crash expects none to")?;
                    longest = longest.max(started.elapsed());
                    done.fetch_add(1, Ordering::SeqCst);
                }
                anyhow::Ok(longest)
            }));
        }
        // Writes flow in sync mode, the passive dies, and writes flow again (degraded).
        writes_beyond(&done, 200).await?;
        cluster.node_mut("b").kill()?;
        writes_beyond(&done, 200).await?;
        stop.store(true, Ordering::SeqCst);
        let mut stall = Duration::ZERO;
        for task in tasks {
            stall = stall.max(task.await??);
        }
        eprintln!(
            "run {}: longest write {:.1} ms",
            run + 1,
            stall.as_secs_f64() * 1000.0
        );
        stalls.push(stall);
        cluster.start_node("b")?;
    }
    Ok(json!({
        "scenario": "passive-crash",
        "runs": runs,
        "writers": 8,
        "p50_ms": percentile_ms(&stalls, 50.0),
        "p95_ms": percentile_ms(&stalls, 95.0),
        "max_ms": percentile_ms(&stalls, 100.0),
        "target_500ms_met": stalls.iter().all(|s| *s <= Duration::from_millis(500)),
        "samples_ms": stalls.iter().map(|d| round(d.as_secs_f64() * 1000.0)).collect::<Vec<_>>(),
    }))
}
