//! The chaos run in linearizability mode (issue 26): register clients read, write and
//! compare-and-set a few registers through the Data API while the seed kills, stops, switches
//! over and cuts the peer link; then the history is checked with [`crate::lin`].
//!
//! What must hold, after the faults stop and the pair heals:
//! - the history is linearizable, except as [`crate::lin::relax`] allows while a cut made two
//!   nodes active and until its merge is done (pair mode has no witness to prevent it);
//! - every write acknowledged during such a split took effect or is in `tandem_conflicts`;
//! - `verify` finds the two databases identical, and two nodes were never active at once
//!   outside a fault window (the checks of the usual run).
//!
//! The registers' final values are read once more by the run itself after the pair settled, so
//! a loss that no client happened to read is still seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::Value as Json;
use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as pb, value::Kind};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::{
    ChaosReport, ChaosSpec, Fault, FaultWindow, Faulted, Kill, LIN_FAULTS, WITNESS_FAULTS,
};
use crate::lin::check::check_effects;
use crate::lin::relax::{SplitWindow, effects_for_splits, vanished_writes};
use crate::lin::workload::{self, RegisterHistory, RegisterWorkload, TABLE};
use crate::lin::{Op, OpKind};
use crate::{Binaries, Cluster, ClusterSpec};

/// An HLC stamp as the log stores it: (ms, logical, node).
type Stamp = (i64, i64, String);

/// Registers the clients share: few, so operations meet on them often.
const REGISTERS: usize = 5;
/// How far a role change may be from its event's stamp.
const EVENT_SLACK_MS: i64 = 20;
/// How far before a rewind the divergence it ends may have begun.
const DIVERGENCE_LOOKBACK_MS: i64 = 30_000;
/// How long before a kill or a stop the active may have committed (and shown to readers) a
/// write the peer had not acknowledged yet: a few round trips under load.
const DIVERGENCE_LEAD_MS: i64 = 250;
/// How long the pair gets to settle once the faults stop: merging thousands of orphan
/// transactions of a release build's clients can take minutes.
const SETTLE: Duration = Duration::from_secs(600);

pub fn run(spec: &ChaosSpec, bins: &Binaries) -> anyhow::Result<ChaosReport> {
    let root = tempfile::tempdir().context("a temp dir for the chaos run")?;
    let migrations = root.path().join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(migrations.join("001_registers.sql"), workload::MIGRATION)?;
    let mut cluster_spec = ClusterSpec::new().with_proxies(true);
    cluster_spec = if spec.etcd {
        cluster_spec.with_etcd_witness()
    } else {
        cluster_spec.with_witness(spec.witness)
    };
    let cluster_spec = cluster_spec
        .ctl_timeout(Duration::from_secs(40))
        .set_all("replication.migrations", migrations.display().to_string())
        .set_all("replication.tables", toml::Value::Array(vec![TABLE.into()]))
        // The whole log stays, so the stamp check reads every change of the run (retention
        // pruned the first minutes of a 30-minute run, and the check was blind there).
        .set_all("replication.log_retention.entries", 10_000_000)
        .set_all("replication.log_retention.bytes", "16GiB");
    let mut cluster = Cluster::start(cluster_spec, bins)?;
    super::wait_healthy(&cluster).context("the pair to start")?;
    if spec.witness {
        super::wait_witness_seen(&cluster).context("the pair to see its witness")?;
    }
    let active = cluster
        .active_nodes()
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no active"))?;
    let rows = workload::initial_rows(REGISTERS);
    cluster.wait_until(SETTLE, "the registers to be created", |c| {
        Ok(c.ctl_ok(&active, &["sql", &rows]).ok().map(drop))
    })?;
    let targets = workload::Targets {
        nodes: ["a", "b"]
            .iter()
            .map(|node| (node.to_string(), cluster.addrs(node).client.to_string()))
            .collect(),
        ca_pem: std::fs::read(cluster.certs_dir().join("ca.pem"))?,
        registers: REGISTERS,
    };
    let origin_us = super::wall_us();
    let clients = RegisterWorkload::start(targets.clone(), spec.writers, spec.seed);
    let mix: &[Fault] = if spec.witness {
        &WITNESS_FAULTS
    } else {
        &LIN_FAULTS
    };
    let faulted = super::run_faults(&mut cluster, spec, mix)?;
    let mut history = clients.stop();
    eprintln!(
        "chaos seed {} (linearizability): faults done; {} operations; checking",
        spec.seed,
        history.ops.len()
    );
    let Faulted {
        faults,
        windows,
        kills,
        mut violations,
        started,
        timeline,
    } = faulted;
    if violations.is_empty() {
        violations.extend(check(
            &cluster,
            &targets,
            &mut history,
            Faults {
                windows: &windows,
                kills: &kills,
                timeline: &timeline,
            },
            origin_us,
            spec.witness,
        ));
    }
    let report = ChaosReport {
        seed: spec.seed,
        duration: started.elapsed(),
        faults,
        operations: counts(&history),
        violations,
    };
    if !report.violations.is_empty() {
        cluster.mark_failed();
    }
    drop(cluster);
    Ok(report)
}

/// Operations by kind and outcome, for the report.
fn counts(history: &RegisterHistory) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for op in &history.ops {
        let kind = match &op.kind {
            OpKind::Read { .. } => "read",
            OpKind::Write { .. } => "write",
            OpKind::Cas {
                succeeded: Some(true),
                ..
            } => "cas_ok",
            OpKind::Cas {
                succeeded: Some(false),
                ..
            } => "cas_failed",
            OpKind::Cas { .. } => "cas",
        };
        let outcome = if op.complete_us.is_some() {
            "acked"
        } else {
            "unknown"
        };
        *counts.entry(format!("{kind}_{outcome}")).or_insert(0) += 1;
    }
    counts
}

/// What the fault loop did, for the checks.
struct Faults<'a> {
    windows: &'a [FaultWindow],
    kills: &'a [Kill],
    timeline: &'a [(Fault, i64)],
}

fn check(
    cluster: &Cluster,
    targets: &workload::Targets,
    history: &mut RegisterHistory,
    faults: Faults<'_>,
    origin_us: i64,
    witness: bool,
) -> Vec<String> {
    let mut violations: Vec<String> = history
        .errors
        .iter()
        .map(|error| format!("a client was told something no node should say: {error}"))
        .collect();
    if let Err(error) = settle(cluster) {
        violations.push(format!(
            "the pair did not settle after the faults: {error:#}"
        ));
        return violations;
    }
    let settled = match read_settled(cluster, targets) {
        Ok(settled) => settled,
        Err(error) => {
            violations.push(format!("cannot read the settled database: {error:#}"));
            return violations;
        }
    };
    history.ops.extend(settled.final_reads.iter().cloned());
    // With a witness there is never a split to relax: every operation must linearize.
    let splits = match split_windows(cluster, faults.timeline, faults.kills) {
        Ok(_) if witness => Vec::new(),
        Ok(splits) => splits,
        Err(error) => {
            violations.push(format!("cannot read the events: {error:#}"));
            return violations;
        }
    };
    eprintln!(
        "  {} split windows; {} conflict rows; {} values in the log",
        splits.len(),
        settled.lost.len(),
        settled.applied.len()
    );
    eprintln!(
        "  times below are seconds after {} (unix ms), when the clients started",
        origin_us / 1000
    );
    for split in &splits {
        let at = |us: i64| (us - origin_us) as f64 / 1e6;
        eprintln!(
            "  split: two actives {:.3}s to {:.3}s, merged by {:.3}s",
            at(split.start_us),
            at(split.end_us),
            at(split.merged_us)
        );
    }
    let effects = effects_for_splits(&history.ops, &splits, &settled.lost);
    let report = check_effects(&history.ops, &effects, 0, origin_us);
    if !report.violations.is_empty() {
        // The whole history beside the kept cluster files, one operation a line.
        let path = cluster.dir().join("history.txt");
        let lines: Vec<String> = history
            .ops
            .iter()
            .zip(&effects)
            .map(|(op, effect)| format!("{}  as {effect:?}", op.describe(origin_us)))
            .collect();
        if std::fs::write(&path, lines.join("\n")).is_ok() {
            eprintln!("  the history is in {}", path.display());
        }
    }
    eprintln!(
        "  linearizability: {} operations in {} segments: {} violations, {} inconclusive",
        report.operations,
        report.segments,
        report.violations.len(),
        report.inconclusive.len()
    );
    violations.extend(
        report
            .violations
            .into_iter()
            .map(|v| format!("not linearizable: {v}")),
    );
    violations.extend(
        report
            .inconclusive
            .into_iter()
            .map(|v| format!("linearizability undecided: {v}")),
    );
    // A change applied over a newer one: every write takes a stamp after every stamp its log
    // holds, and a merge applies an orphan only over older changes (`newest`), so the stamps of
    // one register only rise along the surviving log.
    eprintln!(
        "  stamps going backwards in the surviving log: {}",
        settled.stamps_backwards.len()
    );
    violations.extend(
        settled
            .stamps_backwards
            .iter()
            .map(|place| format!("stamps going backwards: {place}")),
    );
    violations.extend(vanished_writes(
        &history.ops,
        &splits,
        &settled.applied,
        &settled.lost,
        settled.log_from_us,
        origin_us,
    ));
    super::check::check_verify(cluster, &mut violations);
    if witness {
        match super::admission::check(cluster, faults.kills) {
            Ok((intervals, found)) => {
                eprintln!(
                    "  admission: {intervals} admitting intervals on the two nodes; {} instants \
                     both admitted",
                    found.len()
                );
                violations.extend(found);
            }
            Err(error) => violations.push(format!("cannot read the admission events: {error:#}")),
        }
    } else {
        super::check::check_roles(cluster, faults.windows, faults.kills, &mut violations);
    }
    violations
}

/// Waits for one active, the link up, replication caught up and no orphans left on either
/// node, so the merges are done.
fn settle(cluster: &Cluster) -> anyhow::Result<()> {
    super::wait_healthy(cluster)?;
    cluster.wait_until(SETTLE, "replication caught up and no orphans left", |c| {
        let Some(active) = c.active_nodes().first().cloned() else {
            return Ok(None);
        };
        let (a, b) = (c.status("a")?, c.status("b")?);
        let status = if active == "a" { &a } else { &b };
        let replication = &status["replication"];
        let caught_up = replication["lag_entries"] == 0
            && replication["peer_acked_index"] == replication["last_index"];
        let no_orphans = [&a, &b]
            .iter()
            .all(|s| s["replication"]["orphans"].as_u64().unwrap_or(0) == 0);
        Ok((caught_up && no_orphans).then_some(()))
    })
}

/// The settled active's view: final reads of every register, what its log holds, and the
/// losing images of its conflicts.
struct Settled {
    final_reads: Vec<Op>,
    /// (register, value) of every change in the log.
    applied: HashSet<(usize, i64)>,
    /// Each place in the surviving log where a register's change carries an older stamp than
    /// the change before it: an older change (a re-applied orphan) overwrote a newer one.
    stamps_backwards: Vec<String>,
    /// (register, value) of every losing image in `tandem_conflicts`.
    lost: HashSet<(usize, i64)>,
    /// Where the retained log begins (the stamp of its first client write), in wall-clock
    /// microseconds: a write that began earlier may have been pruned.
    log_from_us: i64,
}

fn read_settled(cluster: &Cluster, targets: &workload::Targets) -> anyhow::Result<Settled> {
    let active = cluster
        .active_nodes()
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no active node"))?;
    let index = targets
        .nodes
        .iter()
        .position(|(name, _)| *name == active)
        .ok_or_else(|| anyhow!("unknown node {active}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (name, address) = &targets.nodes[index];
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&targets.ca_pem))
            .domain_name(name.clone());
        let channel = Channel::from_shared(format!("https://{address}"))?
            .tls_config(tls)?
            .timeout(Duration::from_secs(30))
            .connect()
            .await?;
        let mut client = DataClient::new(channel).max_decoding_message_size(256 << 20);
        let mut final_reads = Vec::new();
        for key in 0..targets.registers {
            let invoke_us = super::wall_us();
            let rows = query(
                &mut client,
                &format!("SELECT value FROM {TABLE} WHERE id = {key}"),
                false,
            )
            .await?;
            let value = rows
                .first()
                .and_then(|row| row.first())
                .and_then(as_int)
                .ok_or_else(|| anyhow!("register {key} has no value"))?;
            final_reads.push(Op {
                client: usize::MAX,
                key,
                kind: OpKind::Read { value: Some(value) },
                invoke_us,
                complete_us: Some(super::wall_us()),
                node: active.clone(),
            });
        }
        let mut applied = HashSet::new();
        let mut stamps_backwards = Vec::new();
        // Register → (its last change's stamp, log index, value).
        let mut newest: HashMap<usize, (Stamp, i64, i64)> = HashMap::new();
        let mut after = 0i64;
        loop {
            let page = query(
                &mut client,
                &format!(
                    "SELECT idx, new_image, hlc_ms, hlc_logical, hlc_node FROM _tandem_log \
                     WHERE tbl = '{TABLE}' AND idx > {after} ORDER BY idx LIMIT 5000"
                ),
                true,
            )
            .await?;
            for row in &page {
                let idx = row.first().and_then(as_int).unwrap_or(after);
                after = after.max(idx);
                let Some((key, value)) = row.get(1).and_then(as_text).and_then(register_of) else {
                    continue;
                };
                applied.insert((key, value));
                let stamp = (
                    row.get(2).and_then(as_int).unwrap_or(0),
                    row.get(3).and_then(as_int).unwrap_or(0),
                    row.get(4).and_then(as_text).unwrap_or("").to_string(),
                );
                if let Some((before, before_idx, before_value)) = newest.get(&key)
                    && stamp < *before
                {
                    stamps_backwards.push(format!(
                        "register {key}: log index {idx} sets {value} stamped {stamp:?}, older \
                         than {before_value} at index {before_idx} stamped {before:?}: an older \
                         change overwrote a newer one"
                    ));
                }
                newest.insert(key, (stamp, idx, value));
            }
            if page.len() < 5000 {
                break;
            }
        }
        // Where the retained log begins: the stamp of its first entry that a client's write
        // made, which is (within a clock tick) when it was appended. Not the smallest stamp: a
        // re-applied orphan keeps the stamp of the write it merges, long after the write, so
        // entries older than that stamp may have been pruned before it was appended.
        let oldest = query(
            &mut client,
            "SELECT hlc_ms FROM _tandem_log WHERE txid NOT IN (SELECT txid FROM _tandem_log \
             WHERE tbl = 'tandem_requests' AND pk LIKE '{\"request_id\":\"merge:%') \
             ORDER BY idx LIMIT 1",
            true,
        )
        .await?;
        let log_from_us = oldest
            .first()
            .and_then(|row| row.first())
            .and_then(as_int)
            .map_or(0, |ms| ms.saturating_mul(1000));
        // In pages: a Query answers at most 10,000 rows, and a long run has more conflicts.
        let mut lost = HashSet::new();
        let mut after = String::new();
        loop {
            let page = query(
                &mut client,
                &format!(
                    "SELECT id, losing_image FROM tandem_conflicts WHERE tbl = '{TABLE}' \
                     AND id > '{}' ORDER BY id LIMIT 5000",
                    after.replace('\'', "''")
                ),
                true,
            )
            .await?;
            for row in &page {
                if let Some(id) = row.first().and_then(as_text) {
                    after = id.to_string();
                }
                if let Some(pair) = row.get(1).and_then(as_text).and_then(register_of) {
                    lost.insert(pair);
                }
            }
            if page.len() < 5000 {
                break;
            }
        }
        anyhow::Ok(Settled {
            final_reads,
            applied,
            stamps_backwards,
            lost,
            log_from_us,
        })
    })
}

async fn query(
    client: &mut DataClient<Channel>,
    sql: &str,
    allow_stale: bool,
) -> anyhow::Result<Vec<Vec<pb::Value>>> {
    let reply = client
        .query(pb::QueryRequest {
            statement: Some(pb::Statement {
                sql: sql.into(),
                params: vec![],
            }),
            allow_stale,
        })
        .await
        .with_context(|| format!("query {sql}"))?
        .into_inner();
    Ok(reply.rows.into_iter().map(|row| row.values).collect())
}

fn as_int(value: &pb::Value) -> Option<i64> {
    match value.kind {
        Some(Kind::Integer(integer)) => Some(integer),
        _ => None,
    }
}

fn as_text(value: &pb::Value) -> Option<&str> {
    match &value.kind {
        Some(Kind::Text(text)) => Some(text),
        _ => None,
    }
}

/// (register, value) of a `lin_registers` row image (`{"id":2,"value":7}`).
fn register_of(image: &str) -> Option<(usize, i64)> {
    let row: Json = serde_json::from_str(image).ok()?;
    Some((
        usize::try_from(row["id"].as_i64()?).ok()?,
        row["value"].as_i64()?,
    ))
}

/// The intervals in which both nodes were active because of a cut, from both nodes'
/// `role_change` events, each with the time its merge-back was recorded. An episode belongs to
/// the last fault that began before it; those of other faults (a stopped active still counts
/// itself active) are not relaxed. Also each divergence that no cut explains: a rewind of a
/// degraded active's suffix after a kill or a stop, from the fault that began it to its
/// merge-back. Everything else must linearize.
fn split_windows(
    cluster: &Cluster,
    timeline: &[(Fault, i64)],
    kills: &[Kill],
) -> anyhow::Result<Vec<SplitWindow>> {
    let a_events = super::check::events(cluster, "a")?;
    let b_events = super::check::events(cluster, "b")?;
    let now = super::wall_ms();
    let a = super::check::active_intervals(&a_events, "a", kills, now);
    let b = super::check::active_intervals(&b_events, "b", kills, now);
    let of_kind = |starts: &str| -> Vec<i64> {
        let mut times: Vec<i64> = a_events
            .iter()
            .chain(b_events.iter())
            .filter(|(_, kind, message)| {
                kind == "merge" && message.starts_with(starts) && !message.contains("stopped")
            })
            .map(|(at, _, _)| *at)
            .collect();
        times.sort();
        times
    };
    // The loser's rewind of its suffix, and a merge-back that ran to its end.
    let rewinds = of_kind("rewound");
    // Each complete merge-back: when, on which node, and whether of that node's own orphans.
    let mut merges: Vec<(i64, &str, bool)> = [("a", &a_events), ("b", &b_events)]
        .into_iter()
        .flat_map(|(node, events)| {
            events
                .iter()
                .filter(|(_, kind, message)| {
                    kind == "merge"
                        && message.starts_with("merge-back")
                        && !message.contains("stopped")
                })
                .map(move |(at, _, message)| {
                    (
                        *at,
                        node,
                        message.starts_with("merge-back of this node's own"),
                    )
                })
        })
        .collect();
    merges.sort();
    // Which node each rewind was on.
    let rewound_on: std::collections::HashMap<i64, &str> = [("a", &a_events), ("b", &b_events)]
        .into_iter()
        .flat_map(|(node, events)| {
            events
                .iter()
                .filter(|(_, kind, message)| kind == "merge" && message.starts_with("rewound"))
                .map(move |(at, _, _)| (*at, node))
        })
        .collect();
    // (start, end, the rewind whose merge-back ends it, if any yet).
    let mut splits: Vec<(i64, i64, Option<i64>)> = Vec::new();
    for (a_start, a_end) in &a {
        for (b_start, b_end) in &b {
            let (start, end) = ((*a_start).max(*b_start), (*a_end).min(*b_end));
            let cause = timeline
                .iter()
                .rev()
                .find(|(_, at)| *at <= start)
                .map(|(fault, _)| *fault);
            if start < end && cause == Some(Fault::Partition) {
                // The loser's rewind: the first at or after the split began. It may come after
                // the next split has begun (a second cut before the loser rejoined): until then
                // the active serves without the loser's orphans, as pair mode allows, and one
                // merge-back ends both splits.
                let rewind = rewinds.iter().find(|at| **at >= start).copied();
                splits.push((start, end, rewind));
            }
        }
    }
    // A divergence without two actives (the active was killed or stopped with writes the other
    // node did not have: committed and shown to readers but not yet acknowledged by the peer,
    // or acknowledged alone while degraded, and the other node took over) also ends in a rewind
    // and a merge-back: until that merge the new active serves without the orphans. Each cut's
    // split claims its loser's rewind, the first at or after the split began; every other
    // rewind gets a window from the kill or stop that began its divergence (the earliest since
    // the previous rewind, at most DIVERGENCE_LOOKBACK_MS before it; DIVERGENCE_LEAD_MS earlier,
    // for what was committed just before the fault) to the rewind. Failing a kill or a stop,
    // from the first fault of any kind since the previous rewind.
    let claimed: HashSet<i64> = splits.iter().filter_map(|(_, _, rewind)| *rewind).collect();
    let mut previous_rewind = i64::MIN;
    for rewind in &rewinds {
        if !claimed.contains(rewind) {
            let floor = (*rewind - DIVERGENCE_LOOKBACK_MS).max(previous_rewind);
            let since_floor = || {
                timeline
                    .iter()
                    .filter(move |(_, at)| *at >= floor && *at <= *rewind)
            };
            let kill_or_stop = since_floor()
                .filter(|(fault, _)| matches!(fault, Fault::KillRestart | Fault::StopCont))
                .map(|(_, at)| *at - DIVERGENCE_LEAD_MS)
                .min();
            let any = since_floor().map(|(_, at)| *at).min();
            if let Some(start) = kill_or_stop.or(any) {
                splits.push((start, *rewind, Some(*rewind)));
            }
        }
        previous_rewind = *rewind;
    }
    splits.sort();
    let mut result = Vec::new();
    for (start, end, rewind) in &splits {
        // The merge that ends the window: the first complete merge-back of that rewind's
        // orphans after it, by the other node (orphans "from the peer") or by the rewound node
        // itself once active (its "own orphans"). A merge of other orphans in between does not
        // end it: reads while the right one runs may see its half-applied state.
        let merged = rewind
            .and_then(|rewind| {
                let node = rewound_on.get(&rewind).copied();
                merges
                    .iter()
                    .find(|(at, on, own)| {
                        *at >= rewind
                            && match node {
                                Some(node) => (*on == node) == *own,
                                None => true,
                            }
                    })
                    .map(|(at, _, _)| *at)
            })
            .map_or(*end, |at| at.max(*end));
        // Milliseconds to microseconds, widened each way: events are stamped in whole
        // milliseconds, just after the role changed.
        result.push(SplitWindow {
            start_us: (start - EVENT_SLACK_MS) * 1000,
            end_us: (end + EVENT_SLACK_MS) * 1000,
            merged_us: (merged + EVENT_SLACK_MS) * 1000,
        });
    }
    Ok(result)
}
