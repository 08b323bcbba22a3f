//! Witness mode's promise, checked from the outside: at no instant do both nodes admit clients
//! (issue 16, DESIGN.md §12).
//!
//! Each node records every change of its admission gate as an `admission` event that names the
//! instant (Unix ms) it changed: "admitting from T", or "not admitting from T" (for a gate that
//! closed because its votes lapsed, T is when they lapsed, which may be before the node noticed,
//! after a stop, say). A kill ends a node's admission at the kill. Laying the two nodes'
//! intervals side by side, any overlap is a dual-admitting instant.

use anyhow::anyhow;

use super::Kill;
use crate::Cluster;

/// `node`'s gate changes from its events: (admitting, from Unix ms), in the order recorded.
pub fn admissions(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(bool, i64)>> {
    super::check::events(cluster, node)?
        .into_iter()
        .filter(|(_, kind, _)| kind == "admission")
        .map(|(_, _, message)| parse(&message))
        .collect()
}

/// One `admission` event's message: (admitting, from Unix ms).
pub fn parse(message: &str) -> anyhow::Result<(bool, i64)> {
    let admitting = message.starts_with("admitting from ");
    let from = message
        .split_whitespace()
        .nth(if admitting { 2 } else { 3 })
        .and_then(|word| word.trim_end_matches(':').parse::<i64>().ok())
        .ok_or_else(|| anyhow!("an admission event without a time: {message}"))?;
    Ok((admitting, from))
}

/// The intervals in which one node admitted, from its gate changes and its kills; one still
/// open ends at `until`.
pub fn intervals(
    changes: &[(bool, i64)],
    node: &str,
    kills: &[Kill],
    until: i64,
) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, bool)> = changes.iter().map(|(admits, at)| (*at, *admits)).collect();
    all.extend(
        kills
            .iter()
            .filter(|kill| kill.node == node)
            .map(|kill| (kill.at_ms, false)),
    );
    // Stable: a change and a kill at the same millisecond keep their order.
    all.sort_by_key(|(at, _)| *at);
    super::check::intervals_of(all, until)
}

/// Every instant both nodes admitted, as violations.
pub fn overlaps(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<String> {
    let mut violations = Vec::new();
    for (a_start, a_end) in a {
        for (b_start, b_end) in b {
            let (start, end) = ((*a_start).max(*b_start), (*a_end).min(*b_end));
            if start < end {
                violations.push(format!(
                    "both nodes admitted clients for {} ms from {start} (Unix ms): a from \
                     {a_start} to {a_end}, b from {b_start} to {b_end}",
                    end - start
                ));
            }
        }
    }
    violations
}

/// The check on a cluster: both nodes' events, cut at their kills.
pub fn check(cluster: &Cluster, kills: &[Kill]) -> anyhow::Result<(usize, Vec<String>)> {
    let now = super::wall_ms();
    let a = intervals(&admissions(cluster, "a")?, "a", kills, now);
    let b = intervals(&admissions(cluster, "b")?, "b", kills, now);
    Ok((a.len() + b.len(), overlaps(&a, &b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_event_parse_and_a_message_without_a_time_is_an_error() {
        assert_eq!(parse("admitting from 1700").unwrap(), (true, 1700));
        assert_eq!(parse("not admitting from 1800").unwrap(), (false, 1800));
        assert_eq!(
            parse("not admitting from 1750: neither the peer's nor the witness's vote holds")
                .unwrap(),
            (false, 1750)
        );
        assert!(parse("admitting soon").is_err());
    }

    #[test]
    fn a_handover_that_touches_is_fine_and_one_millisecond_of_overlap_is_caught() {
        let a = intervals(&[(true, 100), (false, 200)], "a", &[], 1000);
        let touching = intervals(&[(true, 200)], "b", &[], 1000);
        assert_eq!(overlaps(&a, &touching), Vec::<String>::new());
        let early = intervals(&[(true, 199)], "b", &[], 1000);
        let found = overlaps(&a, &early);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("for 1 ms from 199"), "{found:?}");
    }

    #[test]
    fn a_kill_ends_admission_and_an_open_gate_lasts_until_now() {
        let kills = [Kill {
            node: "a".into(),
            at_ms: 150,
        }];
        assert_eq!(
            intervals(&[(true, 100), (true, 300)], "a", &kills, 1000),
            vec![(100, 150), (300, 1000)]
        );
        // The other node's kill does not end this one's admission.
        assert_eq!(
            intervals(&[(true, 100)], "b", &kills, 1000),
            vec![(100, 1000)]
        );
    }
}
