//! Calls across role changes: a `--when-idle` switchover waits for the last call (and can time
//! out or be cancelled cleanly); a split brain in which both nodes end one call leaves exactly
//! one CDR, the real end.

mod common;

use common::gateway::*;
use common::*;
use tandem_harness::{Cluster, ClusterSpec, Mode};

fn switchover_state(cluster: &Cluster, node: &str) -> anyhow::Result<(String, u64)> {
    let status = cluster.status(node)?;
    Ok((
        status["switchover"]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        status["switchover"]["waiting_calls"].as_u64().unwrap_or(0),
    ))
}

fn wait_switchover_state(
    cluster: &Cluster,
    node: &str,
    state: &str,
    calls: u64,
) -> anyhow::Result<()> {
    cluster.wait_until(
        WAIT,
        &format!("{node}: switchover {state} with {calls} calls"),
        |c| {
            let now = switchover_state(c, node)?;
            Ok((now == (state.to_string(), calls)).then_some(()))
        },
    )
}

#[test]
fn a_when_idle_switchover_waits_for_the_last_call_and_times_out_or_cancels_cleanly()
-> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", "fax", "pw")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;
        let session = login(&mut a, &rid("login"), "fax", "pw").await?;
        let call = start_call(&mut a, &rid("start"), &session.token).await?;

        phase("switchover --when-idle with a call running: it waits");
        let said = cluster.ctl_ok("a", &["switchover", "--when-idle"])?;
        assert!(said.contains("waits for 1 running calls"), "{said}");
        wait_switchover_state(&cluster, "a", "waiting_idle", 1)?;
        let again = cluster.ctl("a", &["switchover", "--when-idle"])?;
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already waiting"));
        assert_eq!(role(&cluster.status("a")?), "active");

        phase("the last call ends: the switchover runs");
        end_call(&mut a, &rid("end"), &session.token, &call.call_id).await?;
        wait_steady(&cluster, "b")?;
        wait_event(&cluster, "a", "switchover", "the last call ended")?;

        phase("on b: --timeout aborts with the call still running and releases its block");
        let mut b = gateway(&cluster, "b").await?;
        resume(&mut b, &session.token).await?;
        let call = start_call(&mut b, &rid("start"), &session.token).await?;
        let said = cluster.ctl_ok(
            "b",
            &[
                "switchover",
                "--when-idle",
                "--block-new-calls",
                "--timeout",
                "1s",
            ],
        )?;
        assert!(said.contains("new calls are blocked meanwhile"), "{said}");
        let aborted = wait_event(&cluster, "b", "switchover", "aborted")?;
        assert!(aborted.contains("1 calls were still running"), "{aborted}");
        assert!(
            aborted.contains("calls block it added is released"),
            "{aborted}"
        );
        let status = cluster.status("b")?;
        assert_eq!(role(&status), "active", "no switch while a call ran");
        assert_eq!(status["blocks"]["calls"], false);
        assert_eq!(status["switchover"]["state"], "idle");
        let running = list_calls(&mut b, &session.token).await?;
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].call_id, call.call_id);

        phase("--cancel ends a wait; a second --cancel says there is none");
        cluster.ctl_ok("b", &["switchover", "--when-idle"])?;
        wait_switchover_state(&cluster, "b", "waiting_idle", 1)?;
        cluster.ctl_ok("b", &["switchover", "--cancel"])?;
        wait_event(
            &cluster,
            "b",
            "switchover",
            "when-idle switchover cancelled",
        )?;
        wait_switchover_state(&cluster, "b", "idle", 0)?;
        let none = cluster.ctl("b", &["switchover", "--cancel"])?;
        assert_eq!(none.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&none.stderr).contains("no when-idle switchover"));
        assert_eq!(role(&cluster.status("b")?), "active");

        phase("bad combinations are usage errors");
        let lone = cluster.ctl("b", &["switchover", "--block-new-calls"])?;
        assert_ne!(lone.status.code(), Some(0));
        anyhow::Ok(())
    })
}

#[test]
fn a_call_ended_on_both_sides_of_a_split_brain_keeps_one_cdr_the_real_end() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ClusterSpec::new()
        .with_proxies(true)
        .set_all("replication.sync_timeout", "300ms");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", "gate", "pw")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;
        let session = login(&mut a, &rid("login"), "gate", "pw").await?;
        let ended_on_a = start_call(&mut a, &rid("start"), &session.token).await?;
        let left_running = start_call(&mut a, &rid("start"), &session.token).await?;
        common::data::wait_in_sync(&cluster, "a")?;

        phase("partition: b takes over and closes both calls with cause failover");
        cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
        cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
        wait_serving(&cluster, "b")?;
        let mut b = gateway(&cluster, "b").await?;
        cluster.wait_until(WAIT, "b to close both calls", |_| {
            Ok(runtime_free(|| cdrs(&cluster, "b"))?
                .len()
                .eq(&2)
                .then_some(()))
        })?;

        phase("meanwhile a, still active on its side, ends one call for real");
        let end = end_call(&mut a, &rid("end"), &session.token, &ended_on_a.call_id).await?;
        assert_eq!(end.cause, "normal");
        assert!(!end.already_ended);

        phase("heal: a rejoins as the passive; merge-back keeps the real end");
        cluster.proxy("a", "b").set_mode(Mode::Pass)?;
        cluster.proxy("b", "a").set_mode(Mode::Pass)?;
        wait_steady(&cluster, "b")?;
        let mut expected = vec![
            (ended_on_a.call_id.clone(), "normal".to_string()),
            (left_running.call_id.clone(), "failover".to_string()),
        ];
        expected.sort();
        cluster.wait_until(WAIT, "the real end to win on b", |_| {
            let now = runtime_free(|| cdrs(&cluster, "b"))?;
            Ok((now == expected).then_some(()))
        })?;
        common::data::wait_in_sync(&cluster, "b")?;
        assert_eq!(
            cdrs(&cluster, "a").await?,
            expected,
            "identical on both nodes"
        );
        let status = cluster.status("b")?;
        assert!(
            status["replication"]["conflicts"].as_u64() >= Some(1),
            "{status}"
        );
        assert_eq!(status["calls_active"], 0);
        let late = end_call(&mut b, &rid("end"), &session.token, &ended_on_a.call_id).await?;
        assert!(late.already_ended);
        assert_eq!(late.cause, "normal");
        anyhow::Ok(())
    })
}
