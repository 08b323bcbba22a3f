//! `[hooks]`: the role hooks run with their environment (and `on_passive` at start-up), and
//! `fence_peer` must succeed before the passive takes over from a dead active.

mod common;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

fn hooks_toml(dir: &std::path::Path, node: &str, fence: Option<&str>) -> String {
    let log = dir.join(format!("{node}-hooks.log"));
    let line = |hook: &str| {
        format!(
            "echo \\\"{hook} $TANDEM_ROLE term=$TANDEM_TERM peer=$TANDEM_PEER reason=$TANDEM_REASON\\\" >> {}",
            log.display()
        )
    };
    let mut toml = format!(
        "[hooks]\non_active = \"{}\"\non_passive = \"{}\"\ntimeout = \"5s\"\n",
        line("on_active"),
        line("on_passive")
    );
    if let Some(fence) = fence {
        toml.push_str(&format!("fence_peer = \"{fence}\"\n"));
    }
    toml
}

fn hook_log(dir: &std::path::Path, node: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{node}-hooks.log"))).unwrap_or_default()
}

#[test]
fn role_hooks_run_with_their_environment_and_a_failing_fence_blocks_the_takeover()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let fence_ok = dir.path().join("fence-ok");
    let fence = format!("test -e {}", fence_ok.display());
    let spec = ClusterSpec::new()
        .extra_toml("a", &hooks_toml(dir.path(), "a", None))
        .extra_toml("b", &hooks_toml(dir.path(), "b", Some(&fence)));
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;

    phase("on_passive at start-up on both; on_active on a with its term and peer");
    cluster.wait_until(WAIT, "the role hooks to run", |_| {
        let (a, b) = (hook_log(dir.path(), "a"), hook_log(dir.path(), "b"));
        Ok(
            (a.contains("on_active active term=") && b.contains("on_passive passive"))
                .then_some(()),
        )
    })?;
    let a_log = hook_log(dir.path(), "a");
    assert!(
        a_log.contains("on_passive passive term= peer=b reason=start-up"),
        "{a_log}"
    );
    assert!(
        a_log.contains("on_active active term=1,a peer=b"),
        "{a_log}"
    );

    phase("SIGKILL a: b's fence_peer fails, so b does not take over");
    cluster.node_mut("a").kill()?;
    wait_event(&cluster, "b", "fence", "fence_peer failed: not taking over")?;
    assert_ne!(role(&cluster.status("b")?), "active");

    phase("the fence succeeds: b takes over and runs on_active");
    std::fs::write(&fence_ok, b"")?;
    wait_serving(&cluster, "b")?;
    cluster.wait_until(WAIT, "b's on_active", |_| {
        Ok(hook_log(dir.path(), "b")
            .contains("on_active active")
            .then_some(()))
    })?;
    let b_log = hook_log(dir.path(), "b");
    assert!(b_log.contains("reason=peer a fenced"), "{b_log}");
    let events = events(&cluster, "b")?;
    assert!(
        events
            .iter()
            .any(|(kind, message)| kind == "hook" && message.contains("on_active ran")),
        "{events:?}"
    );
    Ok(())
}
