//! A pair in witness mode (DESIGN.md §12), real processes: two `tandemd` nodes and a `tandemd
//! witness`, each node's link to its peer and to the witness through a fault proxy.
//! - Cutting the peer link while both see the witness leaves the active active and the passive
//!   passive, and the passive never admits a client.
//! - Cutting the active off from both: it stops admitting before the other node starts, by
//!   both nodes' own `admission` events, and the other node takes over.
//! - Killing the witness: the pair keeps serving, `witness_lost` is mailed, and a failover
//!   does not happen while it is down; status and events say why.
//!
//! The first three run twice: with `tandemd witness`, and with a real etcd (`[witness] etcd`)
//! as the witness. A crash is replaced through the witness's fast path, or after the etcd lease.

mod common;

use anyhow::anyhow;
use common::*;
use tandem_harness::{Cluster, ClusterSpec, Mode, SmtpSink};

/// Which witness the pair asks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    /// `tandemd witness`.
    Witness,
    /// A one-member etcd cluster.
    Etcd,
}

fn start_pair(backend: Backend, sink: Option<&SmtpSink>) -> anyhow::Result<Cluster> {
    let mut spec = ClusterSpec::new().with_proxies(true);
    spec = match backend {
        Backend::Witness => spec.with_witness(true),
        Backend::Etcd => spec.with_etcd_witness(),
    };
    if let Some(sink) = sink {
        for node in ["a", "b"] {
            spec = spec.extra_toml(
                node,
                &format!(
                    "[alerts]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\n\
                     from = \"tandem@example.com\"\nto = [\"ops@example.com\"]\n",
                    sink.address().port()
                ),
            );
        }
    }
    Cluster::start(spec, &bins())
}

/// `name`'s `admission` events: (admitting, from Unix ms).
fn admissions(cluster: &Cluster, name: &str) -> anyhow::Result<Vec<(bool, i64)>> {
    tandem_harness::chaos::admission::admissions(cluster, name)
}

fn wait_witness_ok(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    cluster.wait_until(WAIT, &format!("{name} to see the witness"), |c| {
        let status = c.status(name)?;
        if status["witness"]["state"] == "ok" {
            Ok(Some(()))
        } else {
            Err(anyhow!("witness: {}", status["witness"]))
        }
    })
}

/// Both nodes' `admission` events: a's last admission ended before b's first began.
fn assert_a_stopped_before_b_started(cluster: &Cluster) -> anyhow::Result<()> {
    let a_stopped = cluster.wait_until(WAIT, "a's admission to end", |c| {
        let last = admissions(c, "a")?.last().copied();
        Ok(last.and_then(|(admitting, at)| (!admitting).then_some(at)))
    })?;
    let b_started = admissions(cluster, "b")?
        .into_iter()
        .find(|(admitting, _)| *admitting)
        .map(|(_, at)| at)
        .ok_or_else(|| anyhow!("b serves but recorded no admission"))?;
    assert!(
        a_stopped < b_started,
        "a admitted until {a_stopped}, b from {b_started}: the timelines overlap"
    );
    Ok(())
}

/// A witness-mode pair with a active, b passive, and both seeing the witness.
fn start_steady_pair(backend: Backend) -> anyhow::Result<Cluster> {
    let cluster = start_pair(backend, None)?;
    wait_steady(&cluster, "a")?;
    wait_witness_ok(&cluster, "a")?;
    wait_witness_ok(&cluster, "b")?;
    Ok(cluster)
}

#[test]
fn a_cut_peer_link_leaves_the_active_where_it_was_and_the_passive_never_admits()
-> anyhow::Result<()> {
    cut_peer_link(Backend::Witness)
}

#[test]
fn with_etcd_a_cut_peer_link_leaves_the_active_where_it_was() -> anyhow::Result<()> {
    cut_peer_link(Backend::Etcd)
}

fn cut_peer_link(backend: Backend) -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = &start_steady_pair(backend)?;
    let kind = cluster.status("a")?["witness"]["kind"].clone();
    let expected = match backend {
        Backend::Witness => "witness",
        Backend::Etcd => "etcd",
    };
    assert_eq!(kind, expected, "status.witness.kind");

    phase("cut the peer link both ways; both nodes still see the witness");
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    // b misses a's keep-alives, asks the witness, and is refused while a renews.
    let refusal = wait_event(cluster, "b", "witness_refused", "a is active")?;
    // It asks again after each refusal; a second one shows it kept trying and kept failing.
    // Each attempt is a `promotion` event (not mailed); the refusal is recorded once.
    cluster.wait_until(WAIT, "b's second refused attempt", |c| {
        let refused = events(c, "b")?
            .iter()
            .filter(|(kind, message)| {
                kind == "promotion" && message.contains("did not give its vote")
            })
            .count();
        Ok((refused >= 2 && role(&c.status("b")?) == "passive").then_some(()))
    })?;
    let b_events = events(cluster, "b")?;
    let refusals = b_events
        .iter()
        .filter(|(kind, _)| kind == "witness_refused")
        .count();
    assert_eq!(refusals, 1, "the same refusal recorded again: {b_events:?}");
    assert!(
        !b_events
            .iter()
            .any(|(kind, message)| kind == "role_change" && message.contains("promoting")),
        "attempts recorded as role changes: {b_events:?}"
    );
    let a = cluster.status("a")?;
    assert_eq!(role(&a), "active", "{refusal}");
    assert_eq!(a["node"]["admitting"], true, "a: {}", brief(&a));
    let b = cluster.status("b")?;
    assert_eq!(role(&b), "passive", "b: {}", brief(&b));
    assert!(
        admissions(cluster, "b")?
            .iter()
            .all(|(admitting, _)| !admitting),
        "b admitted: {:?}",
        admissions(cluster, "b")?
    );

    phase("heal: still a active, b passive, no split brain");
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    cluster.proxy("b", "a").set_mode(Mode::Pass)?;
    wait_steady(cluster, "a")?;
    assert!(
        !events(cluster, "a")?
            .iter()
            .chain(events(cluster, "b")?.iter())
            .any(|(kind, _)| kind == "split_brain"),
        "a split brain with the witness"
    );
    Ok(())
}

#[test]
fn an_active_cut_off_from_peer_and_witness_stops_admitting_before_the_other_starts()
-> anyhow::Result<()> {
    cut_off_active(Backend::Witness)
}

#[test]
fn with_etcd_an_active_cut_off_stops_admitting_before_the_other_starts() -> anyhow::Result<()> {
    cut_off_active(Backend::Etcd)
}

fn cut_off_active(backend: Backend) -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = &start_steady_pair(backend)?;

    phase("cut a off from b and from the witness");
    cluster.witness_proxy("a").set_mode(Mode::Blackhole)?;
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    wait_serving(cluster, "b")?;
    assert_a_stopped_before_b_started(cluster)?;
    let a = cluster.status("a")?;
    assert_eq!(a["node"]["admitting"], false, "a: {}", brief(&a));

    phase("heal: a follows b's newer term");
    cluster.witness_proxy("a").set_mode(Mode::Pass)?;
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    cluster.proxy("b", "a").set_mode(Mode::Pass)?;
    wait_steady(cluster, "b")?;
    Ok(())
}

#[test]
fn without_the_witness_the_pair_serves_and_no_failover_happens() -> anyhow::Result<()> {
    witness_down(Backend::Witness)
}

#[test]
fn without_etcd_the_pair_serves_and_no_failover_happens() -> anyhow::Result<()> {
    witness_down(Backend::Etcd)
}

fn witness_down(backend: Backend) -> anyhow::Result<()> {
    let _serial = serial();
    let sink = SmtpSink::start()?;
    let mails = sink.store();
    let mut cluster = start_pair(backend, Some(&sink))?;
    wait_steady(&cluster, "a")?;
    wait_witness_ok(&cluster, "a")?;

    phase("kill the witness: the pair keeps serving, and the loss is mailed");
    cluster.witness().kill()?;
    wait_event(&cluster, "a", "witness_lost", "no automatic failover")?;
    wait_steady(&cluster, "a")?;
    cluster.wait_until(WAIT, "the witness_lost mail", |_| {
        let mails = mails.lock().map_err(|_| anyhow!("poisoned"))?;
        Ok(mails
            .iter()
            .any(|mail| {
                mail.header("Subject")
                    .is_some_and(|subject| subject.ends_with("a: witness lost"))
            })
            .then_some(()))
    })?;
    let status = cluster.status("a")?;
    assert_eq!(status["witness"]["state"], "lost", "{}", status["witness"]);

    phase("the active's host vanishes: b does not take over, and says why");
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    wait_event(
        &cluster,
        "b",
        "witness_refused",
        "the witness is unreachable",
    )?;
    let b = cluster.status("b")?;
    assert_eq!(role(&b), "passive", "b: {}", brief(&b));
    assert_eq!(b["witness"]["state"], "lost");
    assert!(
        b["witness"]["vote"]
            .as_str()
            .is_some_and(|vote| vote.contains("unreachable")),
        "{}",
        b["witness"]
    );
    // a, alone and without the witness, stops admitting once its peer's vote lapses.
    cluster.wait_until(WAIT, "a to stop admitting", |c| {
        let a = c.status("a")?;
        Ok((a["node"]["admitting"] == false).then_some(()))
    })?;
    Ok(())
}

#[test]
fn a_crashed_active_is_replaced_through_the_fast_path_and_a_switchover_still_works()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = start_pair(Backend::Witness, None)?;
    wait_steady(&cluster, "a")?;
    wait_witness_ok(&cluster, "b")?;

    phase("switchover a -> b: b admits on a's promise, then holds the witness's vote too");
    cluster.ctl_ok("a", &["switchover"])?;
    wait_steady(&cluster, "b")?;
    cluster.wait_until(WAIT, "the witness to record b", |c| {
        let text = String::from_utf8(
            std::process::Command::new(bins().tandemctl)
                .arg("--config")
                .arg(c.witness_config_path())
                .args(["witness", "status"])
                .output()?
                .stdout,
        )?;
        Ok(text.contains("active b").then_some(()))
    })?;

    phase("SIGKILL of b: both its ports refuse, and a is given the vote without waiting");
    cluster.node_mut("b").kill()?;
    wait_serving(&cluster, "a")?;
    let witness_log = std::fs::read_to_string(cluster.witness().log_path())?;
    assert!(
        witness_log.contains("its process is gone"),
        "the witness never proved b gone:\n{witness_log}"
    );
    wait_event(&cluster, "a", "witness", "gave this node the vote")?;
    Ok(())
}

/// The seed of the witness-mode chaos run in the test suite.
const CHAOS_SEED: u64 = 20261208;

/// A short chaos run in witness mode: kills, stops and cuts of either node and of the witness,
/// switchovers; register clients throughout. Every operation must linearize (no split is
/// relaxed), and at no instant did both nodes admit clients.
#[test]
fn a_chaos_run_with_the_witness_never_admits_on_both_nodes_and_is_linearizable()
-> anyhow::Result<()> {
    let _serial = serial();
    let spec = tandem_harness::chaos::ChaosSpec {
        seed: CHAOS_SEED,
        duration: std::time::Duration::from_secs(75),
        writers: 6,
        callers: 0,
        linearizability: true,
        witness: true,
        etcd: false,
    };
    let report = tandem_harness::chaos::run(&spec, &bins())?;
    eprintln!("{report:#?}");
    assert_clean_register_run(&report);
    Ok(())
}

#[test]
fn with_etcd_a_crashed_active_is_replaced_once_its_etcd_lease_runs_out() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = start_steady_pair(Backend::Etcd)?;

    phase("SIGKILL of a: b is given the vote once a's etcd lease has run out");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    wait_event(&cluster, "b", "witness", "gave this node the vote")?;

    phase("a starts again and follows b's newer term");
    cluster.start_node("a")?;
    wait_steady(&cluster, "b")?;
    wait_witness_ok(&cluster, "a")?;
    Ok(())
}

#[test]
fn a_node_of_another_ca_gets_no_vote_from_etcd() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::prepare(
        ClusterSpec::new().with_proxies(true).with_etcd_witness(),
        &bins(),
    )?;
    let other = other_ca(&cluster)?;
    phase("b's certificates (its CA, its own) are of another CA than etcd's and a's");
    use_foreign_ca(&mut cluster, "b", &other)?;
    cluster.start_node("a")?;
    cluster.start_node("b")?;
    wait_witness_ok(&cluster, "a")?;
    let lost = wait_event(&cluster, "b", "witness_lost", "lost")?;
    assert!(lost.contains("certificate"), "b: {lost}");
    let b = cluster.status("b")?;
    assert_eq!(b["witness"]["state"], "lost", "{}", b["witness"]);
    assert_eq!(b["node"]["admitting"], false, "b: {}", brief(&b));
    Ok(())
}

#[test]
fn with_etcd_a_restart_of_etcd_during_a_takeover_never_leaves_two_nodes_admitting()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = start_steady_pair(Backend::Etcd)?;

    phase("cut a off from b and from etcd, and kill etcd: b's takeover finds no witness");
    cluster.witness_proxy("a").set_mode(Mode::Blackhole)?;
    cluster.proxy("a", "b").set_mode(Mode::Blackhole)?;
    cluster.proxy("b", "a").set_mode(Mode::Blackhole)?;
    cluster.witness().kill()?;
    cluster.wait_until(WAIT, "b to lose etcd", |c| {
        Ok((c.status("b")?["witness"]["state"] == "lost").then_some(()))
    })?;
    assert_eq!(
        role(&cluster.status("b")?),
        "passive",
        "b took over without etcd"
    );

    phase("etcd starts again from its files: b gets the vote once a's lease has run out");
    cluster.witness().restart()?;
    wait_serving(&cluster, "b")?;
    assert_a_stopped_before_b_started(&cluster)?;

    phase("heal: a follows b");
    cluster.witness_proxy("a").set_mode(Mode::Pass)?;
    cluster.proxy("a", "b").set_mode(Mode::Pass)?;
    cluster.proxy("b", "a").set_mode(Mode::Pass)?;
    wait_steady(&cluster, "b")?;
    Ok(())
}
