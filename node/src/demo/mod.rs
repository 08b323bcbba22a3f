//! `tandemctl demo`: a local pair of real `tandemd` processes in a temp dir, a scripted scenario,
//! and a readable report. It exits 0 only if every step behaved.
//!
//! Steps: election; SIGKILL of the active and the failover time; restart and rejoin as passive;
//! a switchover and the client gap; SIGTERM on the active and the graceful hand-over; a timeline.

mod local_pair;

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

    println!("\n2. SIGKILL the active node");
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

    println!("\n3. restart the killed node");
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

    println!("\n4. switch over from {survivor} to {active}");
    let gap = switchover_gap(pair, survivor, active).await?;
    report.say(format!(
        "switchover done: {active} active; clients saw no node admitting for {:.1} ms",
        gap.as_secs_f64() * 1000.0
    ));

    println!("\n5. SIGTERM the active node ({active}): it hands over, then exits");
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
