//! HTTP on `[listen] http`: `/health` on both nodes, `/active` only on the active (and on the
//! other node after a switchover and after a failover), `/metrics` read by the Prometheus
//! client library's own text parser, and the status page.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

/// GET `path`; returns the status code and the body.
fn get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((code, body))
}

/// Parses Prometheus text with the parser of the official Python client (`prometheus_client`,
/// installed by scripts/install-deps.sh). Returns `{family: {"type", "samples": [[name,
/// labels, value]]}}`; a line it cannot parse fails the call with the parser's message.
fn parse_prometheus(text: &str) -> anyhow::Result<serde_json::Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(families))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| {
            anyhow::anyhow!("python3: {error} (run `bash scripts/install-deps.sh`)")
        })?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("python3 has no stdin"))?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "the Prometheus parser refused /metrics: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The value of the sample `name` with exactly these labels.
fn sample(
    families: &serde_json::Value,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families[family]["samples"]
        .as_array()?
        .iter()
        .find_map(|sample| {
            let wanted: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(key, value)| (key.to_string(), serde_json::Value::from(*value)))
                .collect();
            (sample[0] == name && sample[1].as_object() == Some(&wanted))
                .then(|| sample[2].as_f64())?
        })
}

#[test]
fn health_active_metrics_and_the_status_page_follow_the_roles() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let (a, b) = (cluster.addrs("a").http, cluster.addrs("b").http);

    phase("/health on both; /active only on a");
    assert_eq!(get(a, "/health")?.0, 200);
    assert_eq!(get(b, "/health")?.0, 200);
    assert_eq!(get(a, "/active")?, (200, "active\n".to_string()));
    assert_eq!(get(b, "/active")?, (503, "passive\n".to_string()));

    phase("/metrics in Prometheus text, read by a real parser");
    common::gateway::add_user(&cluster, "a", "metrics-user", "pw")?;
    let families = cluster.wait_until(
        WAIT,
        "keep-alive round trips and a commit in /metrics",
        |_| {
            let (code, metrics) = get(a, "/metrics")?;
            anyhow::ensure!(code == 200, "/metrics answered {code}");
            let families = parse_prometheus(&metrics)?;
            let rtt = sample(
                &families,
                "tandem_keepalive_rtt_seconds",
                "tandem_keepalive_rtt_seconds_count",
                &[],
            );
            let commits = sample(
                &families,
                "tandem_commit_latency_seconds",
                "tandem_commit_latency_seconds_count",
                &[],
            );
            Ok((rtt > Some(0.0) && commits > Some(0.0)).then_some(families))
        },
    )?;
    for (family, kind) in [
        ("tandem_role", "gauge"),
        ("tandem_term_epoch", "gauge"),
        ("tandem_peer_state", "gauge"),
        ("tandem_peer_missed_keepalives", "gauge"),
        ("tandem_peer_rtt_ms", "gauge"),
        ("tandem_replication_lag_entries", "gauge"),
        ("tandem_sessions", "gauge"),
        ("tandem_calls_active", "gauge"),
        ("tandem_keepalive_rtt_seconds", "histogram"),
        ("tandem_commit_latency_seconds", "histogram"),
        ("tandem_failovers", "counter"),
        ("tandem_alerts_sent", "counter"),
        ("tandem_alerts_failed", "counter"),
    ] {
        assert_eq!(
            families[family]["type"], kind,
            "{family}: {}",
            families[family]
        );
    }
    assert_eq!(
        sample(
            &families,
            "tandem_role",
            "tandem_role",
            &[("role", "active")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&families, "tandem_failovers", "tandem_failovers_total", &[]),
        Some(0.0)
    );
    let rtt_inf = sample(
        &families,
        "tandem_keepalive_rtt_seconds",
        "tandem_keepalive_rtt_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(
        rtt_inf,
        sample(
            &families,
            "tandem_keepalive_rtt_seconds",
            "tandem_keepalive_rtt_seconds_count",
            &[]
        )
    );
    let (code, metrics) = get(a, "/metrics")?;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("tandem_role{role=\"active\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tandem_peer_state{state=\"ok\"} 1"),
        "{metrics}"
    );
    let (_, passive_metrics) = get(b, "/metrics")?;
    assert!(passive_metrics.contains("tandem_role{role=\"passive\"} 1"));

    phase("the status page names both nodes and the recent events");
    let (code, page) = get(a, "/")?;
    assert_eq!(code, 200);
    assert!(page.contains("<title>tandem"), "{page}");
    assert!(page.contains("this node: a"), "{page}");
    assert!(page.contains("peer: b"), "{page}");
    assert!(page.contains("role_change"), "{page}");

    phase("a switchover moves /active to b, and back");
    cluster.ctl_ok("a", &["switchover"])?;
    wait_serving(&cluster, "b")?;
    cluster.wait_until(WAIT, "/active to answer 200 on b only", |_| {
        Ok((get(a, "/active")?.0 == 503 && get(b, "/active")?.0 == 200).then_some(()))
    })?;
    let (_, metrics) = get(b, "/metrics")?;
    let families = parse_prometheus(&metrics)?;
    assert!(
        sample(
            &families,
            "tandem_events",
            "tandem_events_total",
            &[("kind", "switchover")]
        ) >= Some(1.0),
        "{}",
        families["tandem_events"]
    );
    cluster.ctl_ok("b", &["switchover"])?;
    wait_serving(&cluster, "a")?;
    cluster.wait_until(WAIT, "/active to answer 200 on a only", |_| {
        Ok((get(a, "/active")?.0 == 200 && get(b, "/active")?.0 == 503).then_some(()))
    })?;

    phase("after a SIGKILL of a, b answers /active");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    assert_eq!(get(b, "/active")?.0, 200);
    let (_, metrics) = get(b, "/metrics")?;
    assert!(
        metrics.contains("tandem_role{role=\"active\"} 1"),
        "{metrics}"
    );
    let families = parse_prometheus(&metrics)?;
    assert_eq!(
        sample(&families, "tandem_failovers", "tandem_failovers_total", &[]),
        Some(1.0),
        "{}",
        families["tandem_failovers"]
    );
    Ok(())
}
