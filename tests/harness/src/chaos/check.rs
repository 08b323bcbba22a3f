//! The history checker of a chaos run, once the faults stopped and the pair healed:
//! - every acknowledged row and every acknowledged call's CDR is on both nodes;
//! - nothing appears that was never written (no row from a refused insert, no CDR of an unknown
//!   call), and no CDR twice;
//! - `verify` finds the two databases identical, and the replicated directories are the same,
//!   with every acknowledged file in them;
//! - two nodes were never active at once outside a fault window (a partition, a one-way cut, a
//!   delay or a SIGSTOP, plus [`super::HEAL_GRACE`]), computed from both nodes' `role_change`
//!   events; and every dual-active episode ended in a split-brain resolution;
//! - each merge-back conflict kept both versions (the losing image, and the kept one in its
//!   table), a row that lost a merge counts as kept, and both nodes hold the same conflicts.
//!
//! Each violation is a sentence naming what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tandem_proto::data::data_client::DataClient;
use tandem_proto::data::{self as pb, value::Kind};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::workload::{History, Outcome};
use super::{FaultWindow, FileDirs, Kill};
use crate::Cluster;

const CONVERGE: Duration = Duration::from_secs(180);

pub fn check(
    cluster: &Cluster,
    history: &History,
    windows: &[FaultWindow],
    kills: &[Kill],
    dirs: &FileDirs,
) -> Vec<String> {
    let mut violations = Vec::new();
    if let Err(error) = converge(cluster, dirs) {
        violations.push(format!(
            "the pair did not converge after the faults: {error:#}"
        ));
        return violations;
    }
    match read_tables(cluster) {
        Ok(tables) => {
            check_rows(history, &tables, &mut violations);
            check_conflicts(&tables, &mut violations);
            check_cdrs(history, &tables, &mut violations);
        }
        Err(error) => violations.push(format!("cannot read the databases: {error:#}")),
    }
    check_verify(cluster, &mut violations);
    check_files(history, dirs, &mut violations);
    check_roles(cluster, windows, kills, &mut violations);
    violations
}

/// Waits until replication and the files have caught up. On a timeout the error says what
/// was still apart at the last look: the active's replication figures, and the files that
/// differ.
fn converge(cluster: &Cluster, dirs: &FileDirs) -> anyhow::Result<()> {
    super::wait_healthy(cluster)?;
    let last_look = std::cell::RefCell::new(String::from("no active node"));
    let waited = cluster.wait_until(
        CONVERGE,
        "replication caught up and the directories equal",
        |c| {
            let active = c.active_nodes();
            let Some(active) = active.first() else {
                return Ok(None);
            };
            let status = c.status(active)?;
            let replication = &status["replication"];
            let caught_up = replication["lag_entries"] == 0
                && replication["peer_acked_index"] == replication["last_index"];
            let (a, b) = (tree(&dirs["a"]), tree(&dirs["b"]));
            let differ = differing_files(&a, &b);
            *last_look.borrow_mut() = format!(
                "active {active}: replication {replication}, files {}; files apart: {differ:?}",
                status["files"]
            );
            Ok((caught_up && differ.is_empty()).then_some(()))
        },
    );
    waited.map_err(|error| error.context(format!("at the last look: {}", last_look.borrow())))
}

/// The names whose content differs between the two trees, or that only one holds (at most 10,
/// each marked with where it is).
fn differing_files(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) if x == y => None,
            (Some(_), Some(_)) => Some(format!("{name} (differs)")),
            (Some(_), None) => Some(format!("{name} (only on a)")),
            _ => Some(format!("{name} (only on b)")),
        })
        .take(10)
        .collect()
}

/// Every file under `dir` by name and content (temp files excluded).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tandem-part-") {
                continue;
            }
            if let Ok(content) = std::fs::read(entry.path()) {
                files.insert(name, content);
            }
        }
    }
    files
}

struct Tables {
    /// Per node: the chaos row ids.
    rows: BTreeMap<String, BTreeSet<String>>,
    /// Per node: CDR call ids, with duplicates counted.
    cdrs: BTreeMap<String, Vec<String>>,
    /// Per node: the merge-back conflicts (`tandem_conflicts`).
    conflicts: BTreeMap<String, Vec<Conflict>>,
}

/// One row of `tandem_conflicts`: a change that lost a merge, with the image it would have
/// written and the image kept in its place.
#[derive(Debug, Clone, Default)]
struct Conflict {
    id: String,
    table: String,
    /// The primary key as the log writes it, a JSON object (`{"id":"w0-1"}`).
    pk: String,
    losing: Option<String>,
    kept: Option<String>,
}

impl Conflict {
    /// The chaos row id this conflict is about, when it is about a chaos row.
    fn chaos_row(&self) -> Option<String> {
        if self.table != "chaos_rows" {
            return None;
        }
        let key: Value = serde_json::from_str(&self.pk).ok()?;
        key["id"].as_str().map(str::to_string)
    }
}

fn read_tables(cluster: &Cluster) -> anyhow::Result<Tables> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ca = std::fs::read(cluster.certs_dir().join("ca.pem"))?;
    let mut rows = BTreeMap::new();
    let mut cdrs = BTreeMap::new();
    let mut conflicts = BTreeMap::new();
    for node in ["a", "b"] {
        let address = cluster.addrs(node).client.to_string();
        let node_rows = runtime.block_on(async {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca))
                .domain_name(node);
            let channel = Channel::from_shared(format!("https://{address}"))?
                .tls_config(tls)?
                .timeout(Duration::from_secs(30))
                .connect()
                .await?;
            let mut client = DataClient::new(channel).max_decoding_message_size(256 << 20);
            let first = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
                rows.into_iter()
                    .filter_map(|row| row.into_iter().next().flatten())
                    .collect()
            };
            let ids = first(query_texts(&mut client, "chaos_rows", &["id"]).await?);
            let cdrs = first(query_texts(&mut client, "cdrs", &["call_id"]).await?);
            let columns = ["id", "tbl", "pk", "losing_image", "kept_image"];
            let node_conflicts = query_texts(&mut client, "tandem_conflicts", &columns)
                .await?
                .into_iter()
                .map(|row| {
                    let mut row = row.into_iter();
                    let mut next = || row.next().flatten();
                    Conflict {
                        id: next().unwrap_or_default(),
                        table: next().unwrap_or_default(),
                        pk: next().unwrap_or_default(),
                        losing: next(),
                        kept: next(),
                    }
                })
                .collect();
            anyhow::Ok((ids, cdrs, node_conflicts))
        })?;
        let (node_rows, node_cdrs, node_conflicts) = node_rows;
        rows.insert(node.to_string(), node_rows.into_iter().collect());
        cdrs.insert(node.to_string(), node_cdrs);
        conflicts.insert(node.to_string(), node_conflicts);
    }
    Ok(Tables {
        rows,
        cdrs,
        conflicts,
    })
}

/// The text `columns` of every row of `table`, the first column its text key, read in pages
/// ordered by that key (the Data API returns at most 10,000 rows a query). NULL and non-text
/// values read as `None`.
async fn query_texts(
    client: &mut DataClient<Channel>,
    table: &str,
    columns: &[&str],
) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    const PAGE: usize = 5000;
    let key = columns[0];
    let list = columns.join(", ");
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let reply = client
            .query(pb::QueryRequest {
                statement: Some(pb::Statement {
                    sql: format!(
                        "SELECT {list} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {PAGE}"
                    ),
                    params: vec![pb::Value {
                        kind: Some(Kind::Text(after.clone())),
                    }],
                }),
                allow_stale: true,
            })
            .await?
            .into_inner();
        let page: Vec<Vec<Option<String>>> = reply
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|value| match value.kind {
                        Some(Kind::Text(text)) => Some(text),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let done = page.len() < PAGE;
        if let Some(Some(last)) = page.last().and_then(|row| row.first()) {
            after = last.clone();
        }
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

fn check_rows(history: &History, tables: &Tables, violations: &mut Vec<String>) {
    for (node, rows) in &tables.rows {
        // A row that lost a merge is not lost: its image is kept in the conflicts table.
        let kept_as_conflict: BTreeSet<String> = tables
            .conflicts
            .get(node)
            .into_iter()
            .flatten()
            .filter(|conflict| conflict.losing.is_some())
            .filter_map(Conflict::chaos_row)
            .collect();
        let lost: Vec<&String> = history
            .rows
            .iter()
            .filter(|(id, outcome)| {
                **outcome == Outcome::Acked
                    && !rows.contains(*id)
                    && !kept_as_conflict.contains(*id)
            })
            .map(|(id, _)| id)
            .collect();
        if !lost.is_empty() {
            violations.push(format!(
                "{} acknowledged rows are missing on {node}, first {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }
        let invented: Vec<&String> = rows
            .iter()
            .filter(|id| {
                !matches!(
                    history.rows.get(*id),
                    Some(Outcome::Acked | Outcome::Unknown)
                )
            })
            .collect();
        if !invented.is_empty() {
            violations.push(format!(
                "{} rows on {node} were never written or were refused, first {:?}",
                invented.len(),
                &invented[..invented.len().min(5)]
            ));
        }
    }
    if tables.rows.get("a") != tables.rows.get("b") {
        violations.push("the chaos rows differ between a and b".into());
    }
}

/// Each conflict keeps both versions: the losing image in the conflicts table and, unless the
/// winner was a delete, the kept one, which for a chaos row is the row in the table. Both nodes
/// hold the same conflicts.
fn check_conflicts(tables: &Tables, violations: &mut Vec<String>) {
    for (node, conflicts) in &tables.conflicts {
        for conflict in conflicts {
            if conflict.losing.is_none() && conflict.kept.is_none() {
                violations.push(format!(
                    "conflict {} on {} {} on {node} kept neither version",
                    conflict.id, conflict.table, conflict.pk
                ));
            }
            let Some(id) = conflict.chaos_row() else {
                continue;
            };
            let in_table = tables.rows.get(node).is_some_and(|rows| rows.contains(&id));
            if conflict.kept.is_some() && !in_table {
                violations.push(format!(
                    "conflict {} kept chaos row {id}, but {node}'s table does not hold it",
                    conflict.id
                ));
            }
        }
    }
    let ids = |node: &str| -> BTreeSet<String> {
        tables
            .conflicts
            .get(node)
            .into_iter()
            .flatten()
            .map(|conflict| conflict.id.clone())
            .collect()
    };
    if ids("a") != ids("b") {
        violations.push("the conflicts tables differ between a and b".into());
    }
}

fn check_cdrs(history: &History, tables: &Tables, violations: &mut Vec<String>) {
    for (node, cdrs) in &tables.cdrs {
        let unique: BTreeSet<&String> = cdrs.iter().collect();
        if unique.len() != cdrs.len() {
            violations.push(format!("{node} holds a CDR twice"));
        }
        let missing: Vec<&String> = history
            .calls
            .iter()
            .filter(|(id, outcome)| **outcome == Outcome::Acked && !unique.contains(id))
            .map(|(id, _)| id)
            .collect();
        if !missing.is_empty() {
            violations.push(format!(
                "{} acknowledged calls have no CDR on {node}, first {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        // Calls we never heard of may exist only if some StartCall's outcome was unknown.
        let strangers = unique
            .iter()
            .filter(|id| !history.calls.contains_key(**id))
            .count() as u64;
        if strangers > history.calls_unknown {
            violations.push(format!(
                "{node} holds {strangers} CDRs of calls never started (only {} starts were unknown)",
                history.calls_unknown
            ));
        }
    }
}

pub(crate) fn check_verify(cluster: &Cluster, violations: &mut Vec<String>) {
    let Some(active) = cluster.active_nodes().first().cloned() else {
        violations.push("no active node for verify".into());
        return;
    };
    match cluster.ctl_ok(&active, &["verify", "--json"]) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(reply) if reply["identical"] == true => {}
            Ok(reply) => violations.push(format!("verify finds the databases different: {reply}")),
            Err(error) => violations.push(format!("verify printed no JSON: {error}")),
        },
        Err(error) => violations.push(format!("verify failed: {error:#}")),
    }
}

fn check_files(history: &History, dirs: &FileDirs, violations: &mut Vec<String>) {
    let (a, b) = (tree(&dirs["a"]), tree(&dirs["b"]));
    if a != b {
        let only: Vec<&String> = a.keys().filter(|name| !b.contains_key(*name)).collect();
        violations.push(format!(
            "the replicated directories differ ({} files on a, {} on b; only on a: {:?})",
            a.len(),
            b.len(),
            &only[..only.len().min(5)]
        ));
    }
    for (name, (content, outcome)) in &history.files {
        if *outcome != Outcome::Acked {
            continue;
        }
        for (node, files) in [("a", &a), ("b", &b)] {
            if files.get(name) != Some(content) {
                violations.push(format!(
                    "acknowledged file {name} is missing or different on {node}"
                ));
                return;
            }
        }
    }
}

/// Active intervals of one node from its `role_change` events, cut at its kills.
pub(crate) fn active_intervals(
    events: &[(i64, String, String)],
    node: &str,
    kills: &[Kill],
    until: i64,
) -> Vec<(i64, i64)> {
    let mut changes: Vec<(i64, bool)> = events
        .iter()
        .filter(|(_, kind, _)| kind == "role_change")
        .map(|(at, _, message)| (*at, message.starts_with(&format!("{node} is active"))))
        .collect();
    changes.extend(
        kills
            .iter()
            .filter(|kill| kill.node == node)
            .map(|kill| (kill.at_ms, false)),
    );
    changes.sort();
    intervals_of(changes, until)
}

/// The intervals in which a flag held, from its changes (Unix ms, in order); one still open
/// ends at `until`.
pub(crate) fn intervals_of(changes: Vec<(i64, bool)>, until: i64) -> Vec<(i64, i64)> {
    let mut intervals = Vec::new();
    let mut since = None;
    for (at, on) in changes {
        match (on, since) {
            (true, None) => since = Some(at),
            (false, Some(start)) => {
                intervals.push((start, at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        intervals.push((start, until));
    }
    intervals
}

pub(crate) fn events(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(i64, String, String)>> {
    let text = cluster.ctl_ok(node, &["events", "--json", "--limit", "1000000"])?;
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)?;
            Ok((
                event["at_ms"].as_i64().unwrap_or(0),
                event["kind"].as_str().unwrap_or_default().to_string(),
                event["message"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub(crate) fn check_roles(
    cluster: &Cluster,
    windows: &[FaultWindow],
    kills: &[Kill],
    violations: &mut Vec<String>,
) {
    let (Ok(a_events), Ok(b_events)) = (events(cluster, "a"), events(cluster, "b")) else {
        violations.push("cannot read the events of both nodes".into());
        return;
    };
    let now = super::wall_ms();
    let a = active_intervals(&a_events, "a", kills, now);
    let b = active_intervals(&b_events, "b", kills, now);
    for (a_start, a_end) in &a {
        for (b_start, b_end) in &b {
            let (start, end) = ((*a_start).max(*b_start), (*a_end).min(*b_end));
            if start >= end {
                continue;
            }
            let covered = windows
                .iter()
                .any(|window| window.start_ms <= start && end <= window.end_ms);
            if !covered {
                violations.push(format!(
                    "a and b were both active for {} ms from {start} (wall ms) outside any fault window",
                    end - start
                ));
            }
            let resolved = a_events
                .iter()
                .chain(b_events.iter())
                .any(|(at, kind, _)| *at >= start && (kind == "split_brain" || kind == "merge"));
            if !resolved && end - start > 0 {
                let ended_by_kill = kills
                    .iter()
                    .any(|kill| kill.at_ms >= start && kill.at_ms <= end + 1);
                if !ended_by_kill {
                    violations.push(format!(
                        "a and b were both active from {start} (wall ms) and no split-brain resolution was recorded"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> History {
        let mut history = History::default();
        history.rows.insert("w0-1".into(), Outcome::Acked);
        history.rows.insert("w0-2".into(), Outcome::Refused);
        history.rows.insert("w0-3".into(), Outcome::Unknown);
        history.calls.insert("c1".into(), Outcome::Acked);
        history.calls.insert("c2".into(), Outcome::Unknown);
        history
    }

    fn tables(a: &[&str], b: &[&str], cdrs: &[&str]) -> Tables {
        let set = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect();
        Tables {
            rows: [("a".to_string(), set(a)), ("b".to_string(), set(b))].into(),
            cdrs: [
                (
                    "a".to_string(),
                    cdrs.iter().map(|c| c.to_string()).collect(),
                ),
                (
                    "b".to_string(),
                    cdrs.iter().map(|c| c.to_string()).collect(),
                ),
            ]
            .into(),
            conflicts: BTreeMap::new(),
        }
    }

    #[test]
    fn a_consistent_history_passes() {
        let mut violations = Vec::new();
        let tables = tables(&["w0-1", "w0-3"], &["w0-1", "w0-3"], &["c1"]);
        check_rows(&history(), &tables, &mut violations);
        check_cdrs(&history(), &tables, &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn lost_invented_and_diverging_rows_are_violations() {
        let mut violations = Vec::new();
        check_rows(
            &history(),
            &tables(&["w0-3"], &["w0-1", "w0-2"], &[]),
            &mut violations,
        );
        let text = violations.join("\n");
        assert!(
            text.contains("acknowledged rows are missing on a"),
            "{text}"
        );
        assert!(text.contains("never written or were refused"), "{text}");
        assert!(text.contains("differ between a and b"), "{text}");
    }

    #[test]
    fn a_row_that_lost_a_merge_is_kept_and_each_conflict_needs_both_versions() {
        let conflict = |id: &str, row: &str, losing: bool, kept: bool| Conflict {
            id: id.into(),
            table: "chaos_rows".into(),
            pk: format!("{{\"id\":\"{row}\"}}"),
            losing: losing.then(|| "{}".to_string()),
            kept: kept.then(|| "{}".to_string()),
        };
        // w0-1 lost its merge on both nodes: its losing image is kept, so it is not lost.
        let mut tables = tables(&["w0-3"], &["w0-3"], &[]);
        let kept = vec![conflict("x1", "w0-1", true, false)];
        tables.conflicts = [("a".to_string(), kept.clone()), ("b".to_string(), kept)].into();
        let mut violations = Vec::new();
        check_rows(&history(), &tables, &mut violations);
        check_conflicts(&tables, &mut violations);
        assert!(violations.is_empty(), "{violations:?}");

        // A conflict that kept nothing, one that names a kept row not in the table, and
        // conflicts tables that differ.
        tables.conflicts.insert(
            "a".to_string(),
            vec![
                conflict("x1", "w0-1", false, false),
                conflict("x2", "w0-9", true, true),
            ],
        );
        let mut violations = Vec::new();
        check_rows(&history(), &tables, &mut violations);
        check_conflicts(&tables, &mut violations);
        let text = violations.join("\n");
        assert!(
            text.contains("acknowledged rows are missing on a"),
            "{text}"
        );
        assert!(text.contains("kept neither version"), "{text}");
        assert!(text.contains("kept chaos row w0-9"), "{text}");
        assert!(text.contains("conflicts tables differ"), "{text}");
    }

    #[test]
    fn a_missing_or_doubled_cdr_is_a_violation() {
        let mut violations = Vec::new();
        check_cdrs(
            &history(),
            &tables(&[], &[], &["c2", "c2", "zz"]),
            &mut violations,
        );
        let text = violations.join("\n");
        assert!(text.contains("holds a CDR twice"), "{text}");
        assert!(text.contains("acknowledged calls have no CDR"), "{text}");
        assert!(text.contains("never started"), "{text}");
    }

    #[test]
    fn active_intervals_end_at_a_role_change_or_a_kill() {
        let events = vec![
            (
                100,
                "role_change".to_string(),
                "a is active: start-up".to_string(),
            ),
            (
                200,
                "role_change".to_string(),
                "a is demoting: switchover".to_string(),
            ),
            (
                300,
                "role_change".to_string(),
                "a is active: failover".to_string(),
            ),
        ];
        let kills = [Kill {
            node: "a".into(),
            at_ms: 400,
        }];
        assert_eq!(
            active_intervals(&events, "a", &kills, 1000),
            [(100, 200), (300, 400)]
        );
        assert_eq!(
            active_intervals(&events, "a", &[], 1000),
            [(100, 200), (300, 1000)]
        );
    }
}
