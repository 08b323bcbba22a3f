//! `tandemctl demo`: a local pair of real `tandemd` processes in a temp dir, a scripted scenario,
//! and a readable report. It exits 0 only if every step behaved.
//!
//! Steps: election; rows written through the Data API and read on the passive; SIGKILL of the
//! active under writers, the failover time, and every acknowledged row on the new active; restart,
//! catch-up and `verify`; a switchover and the client gap; SIGTERM on the active and the graceful
//! hand-over; a timeline.

mod data;
mod local_pair;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use local_pair::{LocalPair, wait_for};

use crate::status::Status;

/// Generous bounds on each step: a step that takes longer failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

struct Report {
    started: Instant,
    timeline: Vec<(Duration, String)>,
}

impl Report {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("  {line}");
        self.timeline.push((self.started.elapsed(), line));
    }
}

pub async fn run(keep: bool) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("tandem-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let mut pair = LocalPair::create(dir.path())?;
    let mut report = Report {
        started: Instant::now(),
        timeline: Vec::new(),
    };
    println!("tandem demo: a local pair in {}", dir.path().display());
    let result = scenario(&mut pair, &mut report).await;
    pair.stop_all().await;
    println!("\ntimeline");
    for (at, line) in &report.timeline {
        println!("  {:>8.3} s  {line}", at.as_secs_f64());
    }
    if keep || result.is_err() {
        let kept = dir.keep();
        println!("\nkept {} (configs, logs, data)", kept.display());
    }
    match result {
        Ok(()) => {
            println!("\ndemo passed: every step behaved");
            Ok(())
        }
        Err(error) => Err(format!(
            "demo failed: {error} (logs in {}/*/tandemd.log)",
            pair.dir.display()
        )),
    }
}

fn other(name: &str) -> &'static str {
    if name == "a" { "b" } else { "a" }
}

async fn active_admitting(pair: &LocalPair, name: &str) -> Option<Status> {
    let status = pair.get(name).status().await?;
    (status.node.role == "active" && status.node.admitting).then_some(status)
}

async fn role_is(pair: &LocalPair, name: &str, role: &str) -> Option<Status> {
    let status = pair.get(name).status().await?;
    (status.node.role == role && status.peer.state == "ok").then_some(status)
}

async fn scenario(pair: &mut LocalPair, report: &mut Report) -> Result<(), String> {
    println!("\n1. start both nodes and let them elect");
    pair.start("a")?;
    pair.start("b")?;
    let (active, took) = wait_for(STEP_TIMEOUT, || async {
        for name in local_pair::NAMES {
            if let Some(status) = active_admitting(pair, name).await
                && status.peer.state == "ok"
                && role_is(pair, other(name), "passive").await.is_some()
            {
                return Some(name);
            }
        }
        None
    })
    .await
    .ok_or("no node became active with its peer connected")?;
    report.say(format!(
        "{active} is active, {} passive (elected in {} ms)",
        other(active),
        took.as_millis()
    ));

    println!("\n2. write 200 rows on {active} through the Data API, and read them on the passive");
    let started = Instant::now();
    let written = data::join(data::start_writers(
        pair,
        "first",
        4,
        Some(50),
        Arc::new(data::Load::default()),
    ))
    .await;
    let took = started.elapsed();
    if written.len() != 200 {
        return Err(format!(
            "only {} of 200 writes were acknowledged",
            written.len()
        ));
    }
    report.say(format!(
        "200 rows acknowledged in {} ms (sync: each is on the peer before it returns)",
        took.as_millis()
    ));
    let on_passive = data::ids_on(pair, other(active)).await?;
    let missing = written
        .iter()
        .filter(|id| !on_passive.contains(*id))
        .count();
    if missing > 0 {
        return Err(format!(
            "{missing} acknowledged rows are missing on the passive"
        ));
    }
    report.say(format!(
        "all 200 rows are on the passive {} (a stale read)",
        other(active)
    ));

    println!("\n3. SIGKILL the active node while 4 writers keep writing");
    let load = Arc::new(data::Load::default());
    let writers = data::start_writers(pair, "during-kill", 4, None, load.clone());
    wait_acked(&load, 20).await?;
    pair.signal(active, libc::SIGKILL)?;
    let survivor = other(active);
    let ((), took) = wait_for(STEP_TIMEOUT, || async {
        active_admitting(pair, survivor).await.map(|_| ())
    })
    .await
    .ok_or(format!("{survivor} did not take over"))?;
    report.say(format!(
        "{active} killed; {survivor} took over in {} ms",
        took.as_millis()
    ));
    pair.wait_exit(active, STEP_TIMEOUT).await?;
    wait_acked(&load, 20).await?;
    load.stop.store(true, Ordering::SeqCst);
    let acked = data::join(writers).await;
    let on_survivor = data::ids_on(pair, survivor).await?;
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !on_survivor.contains(*id))
        .collect();
    if !lost.is_empty() {
        return Err(format!("acknowledged rows lost in the failover: {lost:?}"));
    }
    report.say(format!(
        "all {} rows acknowledged around the kill are on {survivor} ({} rows in all)",
        acked.len(),
        on_survivor.len()
    ));

    println!("\n4. restart the killed node; it catches up; verify both databases");
    pair.start(active)?;
    let (status, took) = wait_for(STEP_TIMEOUT, || async {
        let status = role_is(pair, active, "passive").await?;
        let survivor_status = active_admitting(pair, survivor).await?;
        (survivor_status.peer.role == "passive" && survivor_status.peer.state == "ok")
            .then_some(status)
    })
    .await
    .ok_or(format!("{active} did not rejoin as passive"))?;
    let term = status
        .node
        .term
        .map(|t| format!("({}, {})", t.epoch, t.node))
        .unwrap_or_default();
    report.say(format!(
        "{active} rejoined as passive in {} ms, following term {term}",
        took.as_millis()
    ));
    let (caught_up, took) = wait_for(STEP_TIMEOUT, || async {
        let survivor_status = pair.get(survivor).status().await?;
        let rejoined = pair.get(active).status().await?;
        let replication = &survivor_status.replication;
        (replication.lag_entries == 0
            && replication.halted.is_empty()
            && !replication.degraded
            && rejoined.node.disk == "consistent"
            && survivor_status.peer.disk == "consistent"
            && rejoined.replication.last_index == replication.last_index)
            .then_some(replication.last_index)
    })
    .await
    .ok_or(format!("{active} did not catch up with {survivor}"))?;
    report.say(format!(
        "{active} caught up to log index {caught_up} in {} ms",
        took.as_millis()
    ));
    let mut admin = pair.get(survivor).client().await?;
    let verify = admin
        .verify(tandem_proto::admin::VerifyRequest {})
        .await
        .map_err(|status| format!("verify: {}", status.message()))?
        .into_inner();
    if !verify.identical {
        return Err(format!("verify found differences: {:?}", verify.tables));
    }
    let rows: u64 = verify
        .tables
        .iter()
        .filter(|t| t.table == "extensions")
        .map(|t| t.local_rows)
        .sum();
    report.say(format!(
        "verify: identical at log index {} ({rows} rows in extensions)",
        verify.index
    ));

    println!("\n5. switch over from {survivor} to {active}");
    let gap = switchover_gap(pair, survivor, active).await?;
    report.say(format!(
        "switchover done: {active} active; clients saw no node admitting for {:.1} ms",
        gap.as_secs_f64() * 1000.0
    ));

    println!("\n6. SIGTERM the active node ({active}): it hands over, then exits");
    let sent = Instant::now();
    pair.signal(active, libc::SIGTERM)?;
    wait_for(STEP_TIMEOUT, || async {
        active_admitting(pair, survivor).await.map(|_| ())
    })
    .await
    .ok_or(format!(
        "{survivor} did not take over after SIGTERM on {active}"
    ))?;
    let handed = sent.elapsed();
    let code = pair.wait_exit(active, STEP_TIMEOUT).await?;
    if code != Some(0) {
        return Err(format!(
            "{active} exited with {code:?} after SIGTERM, expected 0"
        ));
    }
    report.say(format!(
        "{active} handed over to {survivor} in {} ms and exited with status 0",
        handed.as_millis()
    ));
    Ok(())
}

/// Waits until the writers acknowledged `more` writes beyond those acknowledged now.
async fn wait_acked(load: &data::Load, more: usize) -> Result<(), String> {
    let target = load.acked() + more;
    wait_for(STEP_TIMEOUT, || async {
        (load.acked() >= target).then_some(())
    })
    .await
    .map(drop)
    .ok_or(format!(
        "the writers did not get {more} more writes acknowledged"
    ))
}

/// Runs a switchover from `from` to `to` while polling both nodes, and returns the longest time
/// no node admitted clients (an upper bound: the poll interval adds to it).
async fn switchover_gap(pair: &LocalPair, from: &str, to: &str) -> Result<Duration, String> {
    let mut from_client = pair.get(from).client().await?;
    let mut to_client = pair.get(to).client().await?;
    let command_client = pair.get(from).client().await?;
    let gap = crate::gap_meter::measure_switchover(
        &mut from_client,
        &mut to_client,
        command_client,
        STEP_TIMEOUT,
    )
    .await?;
    println!("  tandemctl switchover: {}", gap.message);
    Ok(gap.longest_gap)
}
