//! Shared helpers of the end-to-end tests: the binaries under test, one cluster at a time per
//! test binary, and waits on status conditions.
#![allow(dead_code)]

pub mod data;
pub mod gateway;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;
use tandem_harness::{Binaries, Cluster};

/// Generous deadline for one condition: CI machines are small and shared.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn bins() -> Binaries {
    Binaries::new(
        env!("CARGO_BIN_EXE_tandemd"),
        env!("CARGO_BIN_EXE_tandemctl"),
    )
}

/// Tests in one binary run one pair at a time: two pairs on two cores would starve each other's
/// keep-alives and turn timing into flakiness.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Prints a phase marker, so a failing test's output reads as a story.
pub fn phase(text: &str) {
    eprintln!("--- {text}");
}

pub fn role(status: &Value) -> &str {
    status["node"]["role"].as_str().unwrap_or("?")
}

pub fn epoch(status: &Value) -> u64 {
    status["node"]["epoch"].as_u64().unwrap_or(0)
}

pub fn term_epoch(status: &Value) -> u64 {
    status["node"]["term"]["epoch"].as_u64().unwrap_or(0)
}

pub fn other(name: &str) -> &'static str {
    if name == "a" { "b" } else { "a" }
}

/// Waits until `active` serves and the other node is passive, each seeing the other over the
/// link. Returns both statuses.
pub fn wait_steady(cluster: &Cluster, active: &str) -> anyhow::Result<(Value, Value)> {
    let passive = other(active);
    cluster.wait_until(
        WAIT,
        &format!("{active} active and {passive} passive, link up"),
        |c| {
            let (a, p) = (c.status(active)?, c.status(passive)?);
            let ok = role(&a) == "active"
                && a["node"]["admitting"] == true
                && role(&p) == "passive"
                && a["peer"]["state"] == "ok"
                && p["peer"]["state"] == "ok"
                && a["peer"]["role"] == "passive"
                && p["peer"]["role"] == "active";
            if ok {
                Ok(Some((a, p)))
            } else {
                Err(anyhow!(
                    "{active}: {} / {passive}: {}",
                    brief(&a),
                    brief(&p)
                ))
            }
        },
    )
}

/// Waits until `name` is active and admitting (its peer may be gone).
pub fn wait_serving(cluster: &Cluster, name: &str) -> anyhow::Result<Value> {
    cluster.wait_until(WAIT, &format!("{name} to serve"), |c| {
        let status = c.status(name)?;
        if role(&status) == "active" && status["node"]["admitting"] == true {
            Ok(Some(status))
        } else {
            Err(anyhow!("{name}: {}", brief(&status)))
        }
    })
}

/// One line of a status: role, term, admission and the peer view.
pub fn brief(status: &Value) -> String {
    format!(
        "role {} term {} admitting {} peer {} ({})",
        role(status),
        status["node"]["term"],
        status["node"]["admitting"],
        status["peer"]["state"],
        status["peer"]["role"]
    )
}

/// The node's events as (kind, message) pairs, oldest first.
pub fn events(cluster: &Cluster, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = cluster.ctl_ok(name, &["events", "--json", "--limit", "1000"])?;
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)?;
            Ok((
                event["kind"].as_str().unwrap_or_default().to_string(),
                event["message"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Waits until `name` has recorded an event of `kind` whose message contains `needle`.
pub fn wait_event(
    cluster: &Cluster,
    name: &str,
    kind: &str,
    needle: &str,
) -> anyhow::Result<String> {
    cluster.wait_until(
        WAIT,
        &format!("{name} to record {kind} event with {needle:?}"),
        |c| {
            let found = events(c, name)?
                .into_iter()
                .find(|(k, message)| k == kind && message.contains(needle))
                .map(|(_, message)| message);
            Ok(found)
        },
    )
}

/// Whether `name`'s log contains `needle`.
pub fn log_contains(cluster: &Cluster, name: &str, needle: &str) -> bool {
    std::fs::read_to_string(cluster.log_path(name)).is_ok_and(|log| log.contains(needle))
}

/// A linearizability-mode chaos run kept its promises: no violation, enough faults, and the
/// register clients did work.
pub fn assert_clean_register_run(report: &tandem_harness::chaos::ChaosReport) {
    assert!(
        report.violations.is_empty(),
        "seed {}: {} violations; the first: {}",
        report.seed,
        report.violations.len(),
        report.violations[0]
    );
    assert!(report.faults_total() >= 8, "{:?}", report.faults);
    for kind in ["read_acked", "write_acked"] {
        assert!(
            report.operations.get(kind).copied().unwrap_or(0) > 100,
            "the clients did work: {:?}",
            report.operations
        );
    }
}

/// A second CA with certificates for a and b, in the cluster's directory: a foreign one.
pub fn other_ca(cluster: &Cluster) -> anyhow::Result<std::path::PathBuf> {
    let dir = cluster.dir().join("other-ca");
    let status = std::process::Command::new(bins().tandemctl)
        .args(["certs", "init", "--dir"])
        .arg(&dir)
        .args(["--nodes", "a,b"])
        .output()?;
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(dir)
}

/// Gives `node` the CA and its own certificate from the foreign CA in `other` (`other_ca`).
pub fn use_foreign_ca(
    cluster: &mut tandem_harness::Cluster,
    node: &str,
    other: &std::path::Path,
) -> anyhow::Result<()> {
    cluster.update_config(node, |config| {
        config.set("tls.ca", other.join("ca.pem").display().to_string());
        config.set(
            "tls.cert",
            other.join(format!("{node}.pem")).display().to_string(),
        );
        config.set(
            "tls.key",
            other.join(format!("{node}.key")).display().to_string(),
        );
    })
}
