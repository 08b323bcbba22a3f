//! `tandemctl demo`: a local pair of real `tandemd` processes in a temp dir, a scripted scenario,
//! and a readable report. It exits 0 only if every step behaved.
//!
//! Steps: election; rows written through the Data API and read on the passive; phones log in
//! (the passive refuses them) and place calls; SIGKILL of the active under writers and calls, the
//! failover time, every acknowledged row on the new active, the phones resuming with their
//! tokens and `failover` CDRs for the calls that ran on the killed node; restart, catch-up and
//! `verify`; a switchover and the client gap; a `--when-idle` switchover that waits for the last
//! call; blocks; SIGTERM on the active and the graceful hand-over; a timeline.
//!
//! May touch: a temp directory of its own, two `tandemd` child processes it starts and signals
//! (by PID), and their ports on 127.0.0.1. Of the daemon's library it uses only the TLS dialer.
//! It must not reach into a node's internals: it drives the pair as an operator would, through
//! gRPC and signals.

mod clients;
mod data;
mod local_pair;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use local_pair::{LocalPair, wait_for};

use tandem_node::admin::status::Status;

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

    println!("\n3. three phones log in: the passive refuses them, the active admits them");
    let mut phones = clients_log_in(pair, report, active).await?;

    println!("\n4. SIGKILL the active node while 4 writers keep writing and 2 calls run");
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
    phones_resume(pair, report, active, survivor, &mut phones).await?;

    println!("\n5. restart the killed node; it catches up; verify both databases");
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

    println!("\n6. switch over from {survivor} to {active}");
    let gap = switchover_gap(pair, survivor, active).await?;
    report.say(format!(
        "switchover done: {active} active; clients saw no node admitting for {:.1} ms",
        gap.as_secs_f64() * 1000.0
    ));

    println!("\n7. switchover --when-idle from {active}: it waits for the last call to end");
    when_idle_switchover(pair, report, active, &mut phones[2]).await?;

    println!("\n8. block new logins and new calls on {survivor}");
    blocks(pair, report, survivor, &mut phones[0]).await?;

    // The roles are back to where step 6 left them before it: survivor active.
    let (active, survivor) = (survivor, active);
    println!("\n9. SIGTERM the active node ({active}): it hands over, then exits");
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

/// Step 3: users, a refused login on the passive, three phones on the active, three calls of
/// which one ends.
async fn clients_log_in(
    pair: &LocalPair,
    report: &mut Report,
    active: &str,
) -> Result<Vec<clients::Phone>, String> {
    let users = clients::add_users(pair, active, 3).await?;
    let refusal = clients::refused_login(pair, other(active), &users[0]).await?;
    report.say(format!(
        "the passive {} refused a login: \"{refusal}\"",
        other(active)
    ));
    let mut phones = Vec::new();
    for user in &users {
        let mut phone = clients::login(pair, active, user).await?;
        clients::start_call(pair, active, &mut phone).await?;
        phones.push(phone);
    }
    let (cause, _) = clients::end_call(pair, active, &mut phones[0]).await?;
    report.say(format!(
        "3 phones logged in on {active} (argon2 passwords) and placed calls; phone1 hung up \
         (CDR cause {cause}); 2 calls run"
    ));
    Ok(phones)
}

/// After the kill: the phones resume on the survivor with their tokens, the calls that ran on
/// the killed node get `failover` CDRs, and a late hang-up is told so.
async fn phones_resume(
    pair: &LocalPair,
    report: &mut Report,
    killed: &str,
    survivor: &str,
    phones: &mut [clients::Phone],
) -> Result<(), String> {
    let ((), took) = wait_for(STEP_TIMEOUT, || async {
        for phone in phones.iter() {
            clients::resume(pair, survivor, phone).await.ok()?;
        }
        Some(())
    })
    .await
    .ok_or(format!(
        "the phones could not resume their sessions on {survivor}"
    ))?;
    report.say(format!(
        "the 3 phones resumed their sessions on {survivor} with their tokens, no password \
         ({} ms after it admitted clients)",
        took.as_millis()
    ));
    let (cdrs, _) = wait_for(STEP_TIMEOUT, || async {
        let cdrs = clients::cdrs(pair, survivor).await.ok()?;
        (cdrs.values().filter(|cause| *cause == "failover").count() == 2).then_some(cdrs)
    })
    .await
    .ok_or(format!(
        "{survivor} did not close the calls that ran on {killed}"
    ))?;
    let calls_with_cdr = phones
        .iter()
        .filter_map(|phone| phone.call.as_ref())
        .filter(|call| cdrs.contains_key(*call))
        .count();
    if cdrs.len() != 3 || calls_with_cdr != 2 {
        return Err(format!("expected 3 CDRs, one per call; found {cdrs:?}"));
    }
    report.say(format!(
        "the 2 calls that ran on {killed} got CDRs with cause failover; 3 CDRs, one per call"
    ));
    let (cause, already) = clients::end_call(pair, survivor, &mut phones[1]).await?;
    if !already {
        return Err("a call closed by the failover ended again".into());
    }
    report.say(format!(
        "phone2 hangs up late on {survivor}: told the call already ended ({cause}), no 2nd CDR"
    ));
    phones[2].call = None;
    Ok(())
}

/// Step 7: a call runs on `active`; `switchover --when-idle` waits until it ends.
async fn when_idle_switchover(
    pair: &LocalPair,
    report: &mut Report,
    active: &str,
    phone: &mut clients::Phone,
) -> Result<(), String> {
    clients::start_call(pair, active, phone).await?;
    let mut admin = pair.get(active).client().await?;
    let said = admin
        .switchover(tandem_proto::admin::SwitchoverRequest {
            when_idle: true,
            ..Default::default()
        })
        .await
        .map_err(|status| format!("switchover --when-idle: {}", status.message()))?
        .into_inner()
        .message;
    println!("  tandemctl switchover --when-idle: {said}");
    let (waiting, _) = wait_for(STEP_TIMEOUT, || async {
        let status = pair.get(active).status().await?;
        let switchover = status.switchover;
        (switchover.state == "waiting_idle" && switchover.waiting_calls == 1).then_some(switchover)
    })
    .await
    .ok_or("the switchover did not show that it waits")?;
    report.say(format!(
        "switchover is {} with {} call running; {active} stays active",
        waiting.state, waiting.waiting_calls
    ));
    let ended = Instant::now();
    clients::end_call(pair, active, phone).await?;
    let next = other(active);
    wait_for(STEP_TIMEOUT, || async {
        active_admitting(pair, next).await.map(drop)
    })
    .await
    .ok_or(format!(
        "{next} did not become active after the last call ended"
    ))?;
    report.say(format!(
        "the last call ended; {next} became active {} ms later",
        ended.elapsed().as_millis()
    ));
    Ok(())
}

/// Step 8: blocks turn away a new login and a new call, and status shows them.
async fn blocks(
    pair: &LocalPair,
    report: &mut Report,
    active: &str,
    phone: &mut clients::Phone,
) -> Result<(), String> {
    let mut admin = pair.get(active).client().await?;
    for what in ["logins", "calls"] {
        admin
            .set_block(tandem_proto::admin::SetBlockRequest {
                what: what.into(),
                on: true,
                reason: "demo maintenance window".into(),
            })
            .await
            .map_err(|status| format!("block {what}: {}", status.message()))?;
    }
    let mut admin_status = admin
        .status(tandem_proto::admin::StatusRequest {})
        .await
        .map_err(|status| status.message().to_string())?
        .into_inner();
    let blocks = admin_status.blocks.take().unwrap_or_default();
    report.say(format!(
        "status on {active} shows blocks: logins {}, calls {}",
        blocks.logins, blocks.calls
    ));
    let login = clients::login(pair, active, &phone.user).await;
    let refused = login
        .err()
        .ok_or("a login was admitted while logins were blocked")?;
    report.say(format!("a new login is refused: {refused}"));
    clients::resume(pair, active, phone)
        .await
        .map_err(|status| format!("an existing session was refused: {}", status.message()))?;
    let call = clients::start_call(pair, active, phone).await;
    let refused = call
        .err()
        .ok_or("a call was admitted while calls were blocked")?;
    report.say(format!(
        "the existing session still resumes; a new call is refused: {refused}"
    ));
    for what in ["logins", "calls"] {
        admin
            .set_block(tandem_proto::admin::SetBlockRequest {
                what: what.into(),
                on: false,
                reason: String::new(),
            })
            .await
            .map_err(|status| format!("unblock {what}: {}", status.message()))?;
    }
    report.say("unblocked: new logins and calls are admitted again");
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
