//! tandemctl's contract: exit status 2 for usage errors, `events --follow` streams new events,
//! `status --json` has the DESIGN.md §9 fields that exist so far.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

#[test]
fn usage_errors_exit_with_status_2() -> anyhow::Result<()> {
    let no_target = Command::new(bins().tandemctl).arg("status").output()?;
    assert_eq!(no_target.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_target.stderr).contains("--config"));
    let unknown = Command::new(bins().tandemctl).arg("frobnicate").output()?;
    assert_eq!(unknown.status.code(), Some(2));
    let bad_mode = Command::new(bins().tandemctl)
        .args(["--config", "x.toml", "monitoring", "sideways"])
        .output()?;
    assert_eq!(bad_mode.status.code(), Some(2));
    let missing_config = Command::new(bins().tandemctl)
        .args(["--config", "/nonexistent/node.toml", "status"])
        .output()?;
    assert_eq!(missing_config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_config.stderr).contains("/nonexistent/node.toml"));
    Ok(())
}

#[test]
fn status_json_has_the_documented_fields() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    let (a, _) = wait_steady(&cluster, "a")?;
    for path in [
        "/cluster",
        "/node/name",
        "/node/role",
        "/node/term/epoch",
        "/node/term/node",
        "/node/epoch",
        "/node/priority",
        "/node/disk",
        "/node/monitoring",
        "/node/maintenance",
        "/peer/name",
        "/peer/state",
        "/peer/role",
        "/peer/epoch",
        "/peer/last_seen_ms",
        "/peer/clock_skew_ms",
        "/switchover/state",
        "/switchover/waiting_calls",
    ] {
        assert!(
            a.pointer(path).is_some_and(|v| !v.is_null()),
            "{path} missing in {a}"
        );
    }
    assert_eq!(a["node"]["disk"], "consistent");
    assert_eq!(a["switchover"]["state"], "idle");
    Ok(())
}

#[test]
fn events_follow_streams_new_events() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let mut follow = cluster.ctl_command("a");
    follow
        .args(["events", "--follow", "--json", "--limit", "1"])
        .stdout(Stdio::piped());
    let mut child = follow.spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    phase("the listing shows the newest event first, then follow waits");
    received.recv_timeout(WAIT)?;
    phase("a new event appears on the open stream");
    cluster.ctl_ok("a", &["monitoring", "suspend"])?;
    let deadline = std::time::Instant::now() + WAIT;
    let seen = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = received.recv_timeout(left)?;
        if line.contains("\"monitoring\"") {
            break line;
        }
    };
    assert!(seen.contains("suspended"), "{seen}");
    child.kill()?;
    child.wait()?;
    Ok(())
}
