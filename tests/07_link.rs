//! The peer link's extras: a second keep-alive path (`extra_addresses`) carries the pair through
//! a broken first path, and a config mismatch between the nodes is shown in status and events.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec, Mode};

#[test]
fn an_extra_address_keeps_the_pair_together_when_the_first_path_breaks() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::prepare(ClusterSpec::new().with_proxies(true), &bins())?;
    phase("each node gets a second, direct path to its peer's peer port");
    for (name, peer) in [("a", "b"), ("b", "a")] {
        let direct = cluster.addrs(peer).peer.to_string();
        cluster.update_config(name, |config| {
            config.set(
                "peer.extra_addresses",
                toml::Value::Array(vec![direct.into()]),
            );
        })?;
    }
    cluster.start_node("a")?;
    cluster.start_node("b")?;
    let (before, _) = wait_steady(&cluster, "a")?;

    phase("black-hole the first path in both directions: heartbeats still flow on the second");
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    // A heartbeat with its TLS framing is a little under 200 bytes: 8 KiB dropped on the first
    // path is far more keep-alives than `failover_after_misses`, so the pair has demonstrably
    // lived on the second path alone.
    cluster.wait_until(
        WAIT,
        "the first path to swallow 8 KiB of a's keep-alives",
        |c| {
            let dropped = c.proxy("a", "b").stats().dropped_client_to_server_bytes;
            Ok((dropped > 8 * 1024).then_some(()))
        },
    )?;
    let (after, _) = wait_steady(&cluster, "a")?;
    assert_eq!(term_epoch(&after), term_epoch(&before), "no failover");
    let b_events = events(&cluster, "b")?;
    assert!(
        !b_events
            .iter()
            .any(|(kind, _)| kind == "failover" || kind == "peer_failed"),
        "b never lost a: {b_events:?}"
    );
    Ok(())
}

#[test]
fn a_config_mismatch_is_shown_in_status_and_events() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ClusterSpec::new().set("b", "timers.warn_after_misses", 4);
    let cluster = Cluster::start(spec, &bins())?;
    let (a, b) = wait_steady(&cluster, "a")?;
    assert_eq!(a["peer"]["config_mismatch"], true);
    assert_eq!(b["peer"]["config_mismatch"], true);
    assert_eq!(a["peer"]["version_mismatch"], false);
    wait_event(&cluster, "a", "config_mismatch", "differ")?;
    let text = cluster.ctl_ok("a", &["status"])?;
    assert!(text.contains("warning"), "{text}");
    Ok(())
}
