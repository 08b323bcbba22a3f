//! Planned role changes: switchover both ways, a passive crash in the middle of one, SIGTERM on
//! the active, and failover-now.

mod common;

use std::time::Duration;

use common::*;
use tandem_harness::{Cluster, ClusterSpec, Timers, libc};

#[test]
fn switchover_swaps_the_roles_in_both_directions() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    let (first, _) = wait_steady(&cluster, "a")?;

    phase("switchover on a: b becomes active in the next term");
    let message = cluster.ctl_ok("a", &["switchover"])?;
    assert!(message.contains("b is active"), "{message}");
    let (b, _) = wait_steady(&cluster, "b")?;
    assert_eq!(term_epoch(&b), term_epoch(&first) + 1);

    phase("switchover on b: back to a");
    cluster.ctl_ok("b", &["switchover"])?;
    let (a, _) = wait_steady(&cluster, "a")?;
    assert_eq!(term_epoch(&a), term_epoch(&first) + 2);

    phase("switchover on the passive is refused with exit status 1");
    let refused = cluster.ctl("b", &["switchover"])?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not active"));
    Ok(())
}

#[test]
fn a_passive_that_crashes_mid_switchover_still_leaves_exactly_one_active() -> anyhow::Result<()> {
    let _serial = serial();
    // Long miss thresholds, so that a frozen b still looks healthy to a while the switchover
    // starts, and a stays `demoting` long enough to be seen there. SIGKILL then ends it through
    // the fast path, which these thresholds do not slow down.
    let timers = Timers {
        warn_after_misses: 100,
        failover_after_misses: 200,
        startup_failover_after_misses: 200,
        ..Timers::default()
    };
    let mut cluster = Cluster::start(ClusterSpec::new().timers(timers), &bins())?;
    let (first, _) = wait_steady(&cluster, "a")?;

    phase("freeze b, then ask a to switch over: a fences and hands over into silence");
    cluster.node("b").signal(libc::SIGSTOP)?;
    let mut switchover = cluster.ctl_command("a");
    switchover.arg("switchover");
    let pending = std::thread::spawn(move || switchover.output());
    cluster.wait_until(WAIT, "a to be demoting", |c| {
        let status = c.status("a")?;
        Ok((role(&status) == "demoting").then_some(()))
    })?;

    phase("crash b before it answers; a takes over again in a term above the offered one");
    cluster.node_mut("b").kill()?;
    let a = wait_serving(&cluster, "a")?;
    assert!(term_epoch(&a) >= term_epoch(&first) + 2, "{}", brief(&a));
    let output = pending.join().expect("switchover thread")?;
    assert_eq!(
        output.status.code(),
        Some(1),
        "the switchover did not complete"
    );

    phase("b restarts and rejoins as passive: one active");
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    assert_eq!(cluster.active_nodes(), ["a"]);
    Ok(())
}

#[test]
fn sigterm_on_the_active_hands_over_before_it_exits() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("SIGTERM a: a switchover, then a clean exit");
    let exit = cluster
        .node_mut("a")
        .terminate_and_wait(Duration::from_secs(30))?;
    assert!(exit.success(), "a exited with {exit}");
    wait_serving(&cluster, "b")?;
    let history = cluster.ctl_ok("b", &["history"])?;
    assert!(
        history.contains("switchover from a"),
        "a graceful hand-over, not a failover: {history}"
    );
    Ok(())
}

#[test]
fn failover_now_on_the_passive_takes_over() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("failover-now on the active is refused");
    let refused = cluster.ctl("a", &["failover-now"])?;
    assert_eq!(refused.status.code(), Some(1));

    phase("failover-now on b while a answers: a switches over to b");
    let message = cluster.ctl_ok("b", &["failover-now"])?;
    assert!(message.contains("b is now active"), "{message}");
    wait_steady(&cluster, "b")?;
    Ok(())
}
