//! `[[service]]`: a killed service is restarted, `run_on = "active"` services follow the active
//! role, services die with `tandemd`, their output is tagged in the node's log, and a critical
//! service that keeps failing hands the pair over only when the peer runs it healthy.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;
use tandem_harness::{Cluster, ClusterSpec};

/// The service called `name` in a status.
fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .and_then(|services| services.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

fn running_pid(status: &Value, name: &str) -> Option<u32> {
    let service = service(status, name);
    (service["state"] == "running")
        .then(|| service["pid"].as_u64())
        .flatten()
        .and_then(|pid| u32::try_from(pid).ok())
}

/// Whether a process is gone (or a zombie nobody reaped yet: it runs no more).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

#[test]
fn a_killed_service_is_restarted_follows_the_active_and_dies_with_tandemd() -> anyhow::Result<()> {
    let _serial = serial();
    let pbx = format!(
        "[[service]]\nname = \"pbx\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", {}]\nrun_on = \"active\"\nrestart_delay = \"100ms\"\nstop_timeout = \"2s\"\n",
        toml_string("echo \"pbx started on $TANDEM_NODE\"; echo 'pbx warns' >&2; exec sleep 600")
    );
    let agent = "[[service]]\nname = \"agent\"\ncommand = \"sleep\"\nargs = [\"600\"]\nrun_on = \"both\"\nhealth = { command = \"true\", interval = \"200ms\", timeout = \"200ms\" }\n";
    let spec = ClusterSpec::new()
        .extra_toml("a", &pbx)
        .extra_toml("a", agent)
        .extra_toml("b", &pbx)
        .extra_toml("b", agent);
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;

    phase("pbx runs on the active only; agent runs on both; b shows pbx ready");
    let first = cluster.wait_until(WAIT, "pbx running on a, agent healthy on both", |c| {
        let (a, b) = (c.status("a")?, c.status("b")?);
        let ready = service(&b, "pbx")["state"] == "ready"
            && service(&b, "pbx")["healthy"] == true
            && service(&a, "agent")["healthy"] == true
            && service(&b, "agent")["healthy"] == true;
        Ok(running_pid(&a, "pbx").filter(|_| ready))
    })?;
    assert!(service(&cluster.status("b")?, "pbx")["pid"].is_null());
    cluster.wait_until(WAIT, "pbx's output in a's log, tagged", |c| {
        Ok((log_contains(c, "a", "[pbx] pbx started on a")
            && log_contains(c, "a", "[pbx] pbx warns"))
        .then_some(()))
    })?;
    cluster.wait_until(WAIT, "b's heartbeat to report its services to a", |c| {
        let a = c.status("a")?;
        let peer = a["peer"]["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(peer
            .iter()
            .any(|s| s["name"] == "pbx" && s["state"] == "ready" && s["healthy"] == true)
            .then_some(()))
    })?;
    let text = cluster.ctl_ok("a", &["status"])?;
    assert!(text.contains("service     pbx"), "{text}");

    phase("SIGKILL the service: a restarts it");
    // SAFETY: kill(2) on the service process the node reported.
    unsafe {
        libc::kill(first as i32, libc::SIGKILL);
    }
    let second = cluster.wait_until(WAIT, "a new pbx process on a", |c| {
        let a = c.status("a")?;
        Ok(running_pid(&a, "pbx")
            .filter(|pid| *pid != first && service(&a, "pbx")["restarts"] == 1))
    })?;
    wait_event(
        &cluster,
        "a",
        "service_restart",
        "pbx was killed by signal 9",
    )?;
    assert_eq!(role(&cluster.status("a")?), "active");

    phase("switchover: pbx stops on a and starts on b");
    cluster.ctl_ok("a", &["switchover"])?;
    let on_b = cluster.wait_until(WAIT, "pbx running on b and stopped on a", |c| {
        let (a, b) = (c.status("a")?, c.status("b")?);
        let stopped = service(&a, "pbx")["pid"].is_null() && process_gone(second);
        Ok(running_pid(&b, "pbx").filter(|_| stopped))
    })?;
    assert_eq!(role(&cluster.status("b")?), "active");
    let b_agent = cluster.status("b")?;
    let b_agent = service(&b_agent, "agent")["pid"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("agent runs on b"))? as u32;

    phase("SIGKILL b's tandemd: its services die with it");
    cluster.node_mut("b").kill()?;
    cluster.wait_until(WAIT, "b's services to die with tandemd", |_| {
        Ok((process_gone(on_b) && process_gone(b_agent)).then_some(()))
    })?;
    Ok(())
}

fn critical_service(marker: &Path) -> String {
    let marker = marker.display();
    format!(
        "[[service]]\nname = \"pbx\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", {}]\nrun_on = \"both\"\ncritical = true\nmax_restarts = 3\nrestart_window = \"1m\"\nrestart_delay = \"50ms\"\nhealth = {{ command = {}, interval = \"200ms\", timeout = \"200ms\", failures = 2 }}\n",
        toml_string(&format!("test -e {marker} && exit 3; exec sleep 600")),
        toml_string(&format!("test ! -e {marker}")),
    )
}

#[test]
fn a_critical_service_hands_over_only_when_the_peer_runs_it_healthy() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let (broken_a, broken_b) = (dir.path().join("a-broken"), dir.path().join("b-broken"));
    let spec = ClusterSpec::new()
        .extra_toml("a", &critical_service(&broken_a))
        .extra_toml("b", &critical_service(&broken_b));
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    cluster.wait_until(WAIT, "pbx healthy on both", |c| {
        let (a, b) = (c.status("a")?, c.status("b")?);
        Ok(
            (service(&a, "pbx")["healthy"] == true && service(&b, "pbx")["healthy"] == true)
                .then_some(()),
        )
    })?;

    phase("b's copy breaks, then a's: a stays active and alerts");
    std::fs::write(&broken_b, b"")?;
    cluster.wait_until(WAIT, "a to see b's pbx unhealthy", |c| {
        let a = c.status("a")?;
        let peer = a["peer"]["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(peer
            .iter()
            .any(|s| s["name"] == "pbx" && s["healthy"] == false)
            .then_some(()))
    })?;
    std::fs::write(&broken_a, b"")?;
    let message = wait_event(&cluster, "a", "service_failed", "not handing over")?;
    assert!(
        message.contains("critical service pbx failed 3 times"),
        "{message}"
    );
    assert!(message.contains("b reports its copy"), "{message}");
    let a = cluster.status("a")?;
    assert_eq!(role(&a), "active", "{}", brief(&a));
    assert!(
        service(&a, "pbx")["recent_failures"].as_u64() >= Some(3),
        "{}",
        service(&a, "pbx")
    );
    assert!(
        !events(&cluster, "a")?
            .iter()
            .any(|(kind, _)| kind == "service_handover"),
        "no hand-over while b's copy is unhealthy"
    );

    phase("b's copy recovers: a's next failure hands the pair over to b");
    std::fs::remove_file(&broken_b)?;
    wait_event(
        &cluster,
        "a",
        "service_failed",
        "b reports it healthy: handing over to b",
    )?;
    wait_serving(&cluster, "b")?;
    wait_event(&cluster, "a", "service_handover", "critical service pbx")?;
    let b = cluster.status("b")?;
    assert_eq!(
        service(&b, "pbx")["healthy"],
        true,
        "{}",
        service(&b, "pbx")
    );
    assert_eq!(role(&cluster.status("a")?), "passive");
    Ok(())
}
