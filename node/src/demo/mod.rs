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
/// How often the gap meter polls each node.
const GAP_POLL: Duration = Duration::from_millis(2);

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
    if keep {
        let kept = dir.keep();
        println!("\nkept {} (configs, logs, data)", kept.display());
    }
    match result {
        Ok(()) => {
            println!("\ndemo passed: every step behaved");
            Ok(())
        }
        Err(error) => Err(format!("demo failed: {error} (logs in {}/*/tandemd.log; run with --keep)", pair.dir.display())),
    }
}

fn other(name: &str) -> &'static str {
    if name == "a" { "b" } else { "a" }
}

async fn active_admitting(pair: &LocalPair, name: &str) -> Option<Status> {
    let index = local_pair::NAMES.iter().position(|n| *n == name)?;
    let status = pair.nodes[index].status().await?;
    (status.node.role == "active" && status.node.admitting).then_some(status)
}

async fn role_is(pair: &LocalPair, name: &str, role: &str) -> Option<Status> {
    let index = local_pair::NAMES.iter().position(|n| *n == name)?;
    let status = pair.nodes[index].status().await?;
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
    report.say(format!("{active} is active, {} passive (elected in {} ms)", other(active), took.as_millis()));

    println!("\n2. SIGKILL the active node");
    pair.signal(active, libc::SIGKILL)?;
    let survivor = other(active);
    let ((), took) = wait_for(STEP_TIMEOUT, || async { active_admitting(pair, survivor).await.map(|_| ()) })
        .await
        .ok_or(format!("{survivor} did not take over"))?;
    report.say(format!("{active} killed; {survivor} took over in {} ms", took.as_millis()));
    pair.wait_exit(active, STEP_TIMEOUT).await?;

    println!("\n3. restart the killed node");
    pair.start(active)?;
    let (status, took) = wait_for(STEP_TIMEOUT, || async {
        let status = role_is(pair, active, "passive").await?;
        let survivor_status = active_admitting(pair, survivor).await?;
        (survivor_status.peer.role == "passive" && survivor_status.peer.state == "ok").then_some(status)
    })
    .await
        .ok_or(format!("{active} did not rejoin as passive"))?;
    let term = status.node.term.map(|t| format!("({}, {})", t.epoch, t.node)).unwrap_or_default();
    report.say(format!("{active} rejoined as passive in {} ms, following term {term}", took.as_millis()));

    println!("\n4. switch over from {survivor} to {active}");
    let gap = switchover_gap(pair, survivor, active).await?;
    report.say(format!("switchover done: {active} active; clients saw no node admitting for {:.1} ms", gap.as_secs_f64() * 1000.0));

    println!("\n5. SIGTERM the active node ({active}): it hands over, then exits");
    let sent = Instant::now();
    pair.signal(active, libc::SIGTERM)?;
    wait_for(STEP_TIMEOUT, || async { active_admitting(pair, survivor).await.map(|_| ()) })
        .await
        .ok_or(format!("{survivor} did not take over after SIGTERM on {active}"))?;
    let handed = sent.elapsed();
    let code = pair.wait_exit(active, STEP_TIMEOUT).await?;
    if code != Some(0) {
        return Err(format!("{active} exited with {code:?} after SIGTERM, expected 0"));
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
    let index = |name: &str| local_pair::NAMES.iter().position(|n| *n == name).unwrap_or(0);
    let mut from_client = pair.nodes[index(from)].client().await?;
    let mut to_client = pair.nodes[index(to)].client().await?;
    let mut command_client = pair.nodes[index(from)].client().await?;
    let start = Instant::now();
    let deadline = start + STEP_TIMEOUT;
    let mut switchover = tokio::spawn(async move {
        command_client
            .switchover(tandem_proto::admin::SwitchoverRequest::default())
            .await
            .map(|reply| reply.into_inner().message)
            .map_err(|status| status.message().to_string())
    });
    let mut outcome: Option<String> = None;
    let mut last_admitted = start;
    let mut longest = Duration::ZERO;
    loop {
        if Instant::now() > deadline {
            return Err("the switchover did not finish".into());
        }
        let (from_status, to_status) = tokio::join!(
            crate::ctl::fetch_status(&mut from_client),
            crate::ctl::fetch_status(&mut to_client)
        );
        let now = Instant::now();
        let from_admits = from_status.as_ref().is_ok_and(|s| s.node.admitting);
        let to_status = to_status.ok();
        let to_admits = to_status.as_ref().is_some_and(|s| s.node.admitting && s.node.role == "active");
        if from_admits || to_admits {
            longest = longest.max(now - last_admitted);
            last_admitted = now;
        }
        if outcome.is_none() && switchover.is_finished() {
            let finished = (&mut switchover).await.map_err(|e| e.to_string())?;
            outcome = Some(finished.map_err(|refusal| format!("tandemctl switchover: {refusal}"))?);
        }
        if outcome.is_some() && to_admits {
            break;
        }
        tokio::time::sleep(GAP_POLL).await;
    }
    println!("  tandemctl switchover: {}", outcome.unwrap_or_default());
    Ok(longest)
}
