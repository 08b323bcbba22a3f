//! Failover: SIGKILL of the active through the fast path, SIGSTOP of the active through missed
//! keep-alives, and the stale node coming back without a second switch.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec, libc};

#[test]
fn sigkill_of_the_active_fails_over_through_the_fast_path_and_the_node_rejoins_passive()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    let (before, _) = wait_steady(&cluster, "a")?;

    phase("SIGKILL a");
    cluster.node_mut("a").kill()?;
    let after = wait_serving(&cluster, "b")?;
    assert!(
        term_epoch(&after) > term_epoch(&before),
        "b took a newer term"
    );
    let reason = wait_event(&cluster, "b", "failover", "process gone")?;
    assert!(reason.contains("dials refused on both ports"), "{reason}");

    phase("restart a: it comes back passive, with no second switch");
    cluster.start_node("a")?;
    let (active, passive) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&active), term_epoch(&after), "b kept its term");
    assert_eq!(passive["node"]["term"]["node"], "b");
    Ok(())
}

#[test]
fn sigstop_of_the_active_fails_over_and_the_stale_node_demotes_after_sigcont() -> anyhow::Result<()>
{
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("SIGSTOP a: its sockets stay open, so only missed keep-alives reveal it");
    cluster.node("a").signal(libc::SIGSTOP)?;
    let b = wait_serving(&cluster, "b")?;
    let reason = wait_event(&cluster, "b", "failover", "missed")?;
    assert!(reason.contains("keep-alives"), "{reason}");

    phase("SIGCONT a: it notices the stall, admits nothing, sees b's newer term and demotes");
    cluster.node("a").signal(libc::SIGCONT)?;
    cluster.wait_until(WAIT, "a to demote, admitting nothing on the way", |c| {
        let status = c.status("a")?;
        assert_eq!(
            status["node"]["admitting"],
            false,
            "the stale active admitted: {}",
            brief(&status)
        );
        Ok((role(&status) == "passive").then_some(()))
    })?;
    let (active, passive) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&active), term_epoch(&b));
    assert_eq!(role(&passive), "passive");
    wait_event(&cluster, "a", "stall", "stalled")?;
    assert_eq!(cluster.active_nodes(), ["b"]);
    Ok(())
}
