//! `remote_gate` (the example gate built on `PairClient`) as a real process under a steady load
//! of calls while the active is SIGKILLed, and across a switchover: every call `EndCall`
//! acknowledged has exactly one CDR, every call running at the kill has a `failover` CDR, and no
//! session needs its password again.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::gateway::*;
use common::*;
use serde_json::Value;
use tandem_harness::{Cluster, ClusterSpec};

/// Builds the workspace's examples (a no-op after `cargo test --workspace`) and returns the
/// path of `remote_gate`.
fn remote_gate_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--workspace", "--examples", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    anyhow::ensure!(status.success(), "building the examples failed");
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_tandemd"));
    let binary = dir
        .parent()
        .map(|dir| dir.join("examples").join("remote_gate"))
        .ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    anyhow::ensure!(binary.is_file(), "{} is missing", binary.display());
    Ok(binary)
}

fn start_gate(cluster: &Cluster, report: &std::path::Path) -> anyhow::Result<Child> {
    let addresses = format!(
        "{},{}",
        cluster.addrs("a").client,
        cluster.addrs("b").client
    );
    let log = std::fs::File::create(cluster.dir().join("remote_gate.log"))?;
    Ok(Command::new(remote_gate_binary()?)
        .args(["--addresses", &addresses, "--ca"])
        .arg(cluster.certs_dir().join("ca.pem"))
        .args([
            "--user",
            "gate",
            "--password",
            "gate-pw",
            "--call-ms",
            "300",
            "--report",
        ])
        .arg(report)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

fn report_lines(report: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(report).unwrap_or_default();
    // The last line may be half-written while the gate runs.
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

fn ends(lines: &[Value]) -> usize {
    lines.iter().filter(|line| line["op"] == "end").count()
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[test]
fn remote_gate_keeps_calling_across_a_kill_and_a_switchover_and_every_call_has_one_cdr()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", "gate", "gate-pw")?;
    let report = cluster.dir().join("remote_gate.jsonl");
    let mut gate = start_gate(&cluster, &report)?;

    phase("the gate places calls on a");
    cluster.wait_until(WAIT, "5 calls ended", |_| {
        Ok((ends(&report_lines(&report)?) >= 5).then_some(()))
    })?;

    phase("SIGKILL a while the gate holds a call (started under 100 ms ago, held 300 ms)");
    let running = cluster.wait_until(WAIT, "a call just started", |_| {
        let lines = report_lines(&report)?;
        let last = lines.last().filter(|line| line["op"] == "start");
        Ok(last
            .filter(|line| wall_ms() - line["ts_ms"].as_i64().unwrap_or(0) < 100)
            .and_then(|line| line["call_id"].as_str().map(str::to_string)))
    })?;
    let killed_at_ms = wall_ms();
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    let before = ends(&report_lines(&report)?);
    cluster.wait_until(WAIT, "5 more calls ended on b", |_| {
        Ok((ends(&report_lines(&report)?) >= before + 5).then_some(()))
    })?;

    phase("restart a, switch over back to it; the gate keeps calling");
    cluster.node_mut("a").restart()?;
    wait_steady(&cluster, "b")?;
    common::data::wait_in_sync(&cluster, "b")?;
    cluster.ctl_ok("b", &["switchover"])?;
    wait_steady(&cluster, "a")?;
    let before = ends(&report_lines(&report)?);
    cluster.wait_until(WAIT, "5 more calls ended on a", |_| {
        Ok((ends(&report_lines(&report)?) >= before + 5).then_some(()))
    })?;

    phase("stop the gate: it ends its call and logs out");
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(gate.id() as libc::pid_t, libc::SIGTERM) };
    let status = gate.wait()?;
    assert!(status.success(), "remote_gate exited with {status}");

    phase("every acknowledged end has exactly one CDR with its cause");
    common::data::wait_in_sync(&cluster, "a")?;
    let lines = report_lines(&report)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let cdrs: BTreeMap<String, String> =
        runtime.block_on(cdrs(&cluster, "a"))?.into_iter().collect();
    let mut started = BTreeMap::new();
    for line in lines.iter().filter(|line| line["op"] == "start") {
        let call = line["call_id"].as_str().unwrap_or_default().to_string();
        started.insert(call, line["ts_ms"].as_i64().unwrap_or(0));
    }
    let mut failover_ends = 0;
    let mut spanning_the_kill = 0;
    for line in lines.iter().filter(|line| line["op"] == "end") {
        let call = line["call_id"].as_str().unwrap_or_default();
        let cause = line["cause"].as_str().unwrap_or_default();
        assert_eq!(
            cdrs.get(call).map(String::as_str),
            Some(cause),
            "CDR of {call}"
        );
        let started_at = started.get(call).copied().unwrap_or(i64::MAX);
        let ended_at = line["ts_ms"].as_i64().unwrap_or(0);
        if started_at < killed_at_ms && ended_at > killed_at_ms {
            spanning_the_kill += 1;
        }
        if cause == "failover" {
            failover_ends += 1;
            assert_eq!(line["already_ended"], true, "{line}");
            assert!(
                started_at < killed_at_ms,
                "a failover CDR for a call started after the kill"
            );
        }
    }
    assert_eq!(
        spanning_the_kill, 1,
        "one call was running when a was killed"
    );
    assert_eq!(
        failover_ends, 1,
        "the call running at the kill ended by the failover"
    );
    assert_eq!(cdrs.get(&running).map(String::as_str), Some("failover"));
    assert_eq!(
        cdrs.len(),
        started.len(),
        "one CDR per started call, none missing, none extra"
    );
    assert!(started.keys().all(|call| cdrs.contains_key(call)));
    assert_eq!(cluster.status("a")?["calls_active"], 0);

    phase("the gate typed its password once; every other session start was a resume");
    let logins: Vec<&Value> = lines.iter().filter(|line| line["op"] == "login").collect();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(
        lines
            .iter()
            .any(|line| line["op"] == "resume" && line["node"] == "b"),
        "the session resumed on b after the kill"
    );
    Ok(())
}

#[test]
fn pair_client_lands_on_the_active_when_it_asks_the_passive_first() -> anyhow::Result<()> {
    use tandem_gateway::client::{PairClient, PairConfig};
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", "fax", "fax-pw")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        phase("the passive b first in the list: the client follows its refusal to a");
        let (a, b) = (
            cluster.addrs("a").client.to_string(),
            cluster.addrs("b").client.to_string(),
        );
        let config = PairConfig::from_ca_file([b, a.clone()], cluster.certs_dir().join("ca.pem"))?;
        let mut client = PairClient::new(config)?;
        let session = client.login("fax", "fax-pw").await?;
        assert_eq!(session.node, "a");
        assert_eq!(client.active_address().as_deref(), Some(a.as_str()));
        let call = client.start_call("fax-1", "+100").await?;
        let ended = client.end_call(&call.call_id, "").await?;
        assert_eq!(ended.cause, "normal");

        phase("a block comes back to the caller at once, not retried");
        cluster.ctl_ok("a", &["block", "calls"])?;
        let blocked = client
            .start_call("fax-1", "+100")
            .await
            .expect_err("calls are blocked");
        assert!(blocked.is_blocked(), "{blocked}");
        assert!(
            blocked.to_string().contains("new calls are blocked"),
            "{blocked}"
        );

        phase("a wrong password is an error, not a retry loop");
        let mut other = PairClient::new(PairConfig::from_ca_file(
            [
                cluster.addrs("a").client.to_string(),
                cluster.addrs("b").client.to_string(),
            ],
            cluster.certs_dir().join("ca.pem"),
        )?)?;
        let wrong = other
            .login("fax", "nope")
            .await
            .expect_err("wrong password");
        assert!(
            matches!(
                wrong,
                tandem_gateway::client::ClientError::Unauthenticated { .. }
            ),
            "{wrong}"
        );
        anyhow::Ok(())
    })
}
