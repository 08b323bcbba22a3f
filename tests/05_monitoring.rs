//! Suspended monitoring and maintenance each prevent a failover; resuming allows it.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

#[test]
fn suspended_monitoring_prevents_failover_until_resumed() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("suspend monitoring on a: it is pair-wide, so b adopts it");
    cluster.ctl_ok("a", &["monitoring", "suspend"])?;
    cluster.wait_until(WAIT, "b to see monitoring suspended", |c| {
        Ok((c.status("b")?["node"]["monitoring"] == "suspended").then_some(()))
    })?;

    phase("kill a: b holds back");
    cluster.node_mut("a").kill()?;
    wait_event(
        &cluster,
        "b",
        "failover_suppressed",
        "monitoring is suspended",
    )?;
    assert_eq!(role(&cluster.status("b")?), "passive");

    phase("resume on b: b takes over");
    cluster.ctl_ok("b", &["monitoring", "resume"])?;
    wait_serving(&cluster, "b")?;
    Ok(())
}

#[test]
fn maintenance_on_the_passive_prevents_failover() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("maintenance on b");
    cluster.ctl_ok("b", &["maintenance", "on"])?;
    cluster.wait_until(WAIT, "a to see b in maintenance", |c| {
        Ok((c.status("a")?["peer"]["maintenance"] == true).then_some(()))
    })?;

    phase("a switchover to b is refused while b is in maintenance");
    let refused = cluster.ctl("a", &["switchover"])?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("maintenance"));

    phase("kill a: b holds back");
    cluster.node_mut("a").kill()?;
    wait_event(&cluster, "b", "failover_suppressed", "maintenance")?;
    assert_eq!(role(&cluster.status("b")?), "passive");

    phase("maintenance off: b takes over");
    cluster.ctl_ok("b", &["maintenance", "off"])?;
    wait_serving(&cluster, "b")?;
    Ok(())
}

#[test]
fn maintenance_on_the_active_moves_the_role_to_the_peer() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let message = cluster.ctl_ok("a", &["maintenance", "on"])?;
    assert!(message.contains("switching over to b"), "{message}");
    wait_steady(&cluster, "b")?;
    Ok(())
}
