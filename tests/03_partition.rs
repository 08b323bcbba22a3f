//! Partitions through the fault proxy: a full partition makes both nodes active, and the heal
//! leaves the higher term; a one-way cut; a reachability target that fails keeps the isolated
//! node from taking over.

mod common;

use std::net::TcpListener;

use common::*;
use tandem_harness::{Cluster, ClusterSpec, Direction, Mode};

#[test]
fn a_full_partition_makes_two_actives_and_the_heal_keeps_the_higher_term() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new().with_proxies(true), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("black-hole both directions: b misses a's keep-alives and takes over; a stays active");
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    let b = wait_serving(&cluster, "b")?;
    let a = cluster.status("a")?;
    assert_eq!(
        role(&a),
        "active",
        "without a witness the partitioned active stays active"
    );
    assert!(term_epoch(&b) > term_epoch(&a));

    phase("heal: the lower term (a) stops admitting and demotes");
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    cluster.proxy("b", "a").set_mode(Mode::Pass)?;
    let (active, _) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&active), term_epoch(&b), "the higher term stays");
    // The loser always records the split brain. The winner records it only if it hears the
    // loser's active claim before the loser's own demotion reaches it: a race, not asserted.
    wait_event(&cluster, "a", "split_brain", "newer term")?;
    Ok(())
}

#[test]
fn a_one_way_cut_leaves_one_active() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new().with_proxies(true), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("cut a -> b only: b stops hearing a and takes over; a still hears b and follows");
    cluster
        .proxy("a", "b")
        .set_mode(Mode::Cut(Direction::ClientToServer))?;
    let b = wait_serving(&cluster, "b")?;
    cluster.wait_role("a", "passive", WAIT)?;
    assert_eq!(cluster.active_nodes(), ["b"]);

    phase("restore: the link comes back with b active in its term");
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    let (active, _) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&active), term_epoch(&b));
    Ok(())
}

#[test]
fn an_unreachable_reachability_target_prevents_the_takeover_until_it_answers() -> anyhow::Result<()>
{
    let _serial = serial();
    // A port that nothing listens on yet: b's gateway, as far as b knows.
    let gateway_port = tandem_harness::ports::free_port()?;
    let gateway = format!("127.0.0.1:{gateway_port}");
    let spec = ClusterSpec::new().reachability("b", [gateway.clone()]);
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;

    phase("kill a while b cannot reach its gateway: b is the isolated one and holds back");
    cluster.node_mut("a").kill()?;
    let reason = wait_event(&cluster, "b", "failover_suppressed", "reachability")?;
    assert!(reason.contains("isolated"), "{reason}");
    assert_eq!(role(&cluster.status("b")?), "passive");

    phase("the gateway answers again: b takes over");
    let _gateway = TcpListener::bind(&gateway)?;
    wait_serving(&cluster, "b")?;
    Ok(())
}
