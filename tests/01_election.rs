//! Election at start-up: the preferred node wins in either start order, and a node alone
//! becomes active after the start-up wait.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

#[test]
fn the_preferred_node_wins_when_it_starts_first() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new().start_first("a"), &bins())?;
    phase("a (priority 100) and b (50) elect");
    let (active, passive) = wait_steady(&cluster, "a")?;
    assert_eq!(term_epoch(&active), 1);
    assert_eq!(passive["node"]["term"]["node"], "a", "b follows a's term");
    assert_eq!(cluster.active_nodes(), ["a"]);
    Ok(())
}

#[test]
fn the_preferred_node_wins_when_it_starts_second() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new().start_first("b"), &bins())?;
    phase("b starts first and waits for its peer; a arrives and wins on rank");
    wait_steady(&cluster, "a")?;
    let history = cluster.ctl_ok("a", &["history"])?;
    assert!(history.contains("start-up election"), "{history}");
    Ok(())
}

#[test]
fn a_node_alone_becomes_active_after_the_startup_wait_and_the_peer_joins_as_passive()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::prepare(ClusterSpec::new(), &bins())?;
    phase("only b runs: it waits startup_failover_after_misses intervals, then takes over alone");
    cluster.start_node("b")?;
    let status = wait_serving(&cluster, "b")?;
    assert_eq!(status["peer"]["state"], "unknown");
    let events = events(&cluster, "b")?;
    assert!(
        events.iter().any(|(_, m)| m.contains("peer absent")),
        "{events:?}"
    );

    phase("a arrives: b is active, so a joins as passive despite its higher priority");
    cluster.start_node("a")?;
    let (active, _) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&active), 1, "no second election");
    Ok(())
}
