//! `auto_failback`: after a failover, the preferred node takes the role back once it has been
//! caught up for the configured time, and `status.failback` counts down meanwhile.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

#[test]
fn the_preferred_node_takes_the_role_back_after_the_failback_delay() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ClusterSpec::new().set_all("auto_failback", "3s");
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let status = cluster.status("a")?;
    assert_eq!(status["failback"]["policy"], "3 seconds", "{status}");
    assert_eq!(status["failback"]["time_left_s"], serde_json::Value::Null);

    phase("SIGKILL a (the preferred node): b takes over; b never fails back to itself");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;

    phase("a restarts as passive; once caught up, its failback counts down");
    cluster.node_mut("a").restart()?;
    let waiting = cluster.wait_until(WAIT, "a's failback countdown", |c| {
        let status = c.status("a")?;
        Ok(
            (role(&status) == "passive" && status["failback"]["time_left_s"].is_u64())
                .then_some(status),
        )
    })?;
    assert!(
        waiting["failback"]["time_left_s"].as_u64() <= Some(3),
        "{waiting}"
    );
    assert!(
        waiting["failback"]["time_left"]
            .as_str()
            .is_some_and(|left| left.ends_with("second") || left.ends_with("seconds")),
        "{waiting}"
    );
    assert_eq!(role(&cluster.status("b")?), "active");

    phase("a takes the role back by a switchover");
    wait_steady(&cluster, "a")?;
    wait_event(&cluster, "a", "failback", "auto failback (3 seconds)")?;
    let history = cluster.ctl_ok("a", &["history"])?;
    assert!(history.contains("switchover from b"), "{history}");
    Ok(())
}
