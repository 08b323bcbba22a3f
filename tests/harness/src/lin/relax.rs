//! The pair-mode rule for a peer-link cut (issue 26).
//!
//! Without a witness a cut makes two nodes active, and merge-back reconciles them after the
//! heal (DESIGN.md §3, §4). The same holds for an active that degraded (acknowledged writes
//! alone) and was then killed or stopped while the other took over: its suffix is rewound into
//! orphans and merged back. Linearizability cannot hold while either lasts (a window: from the
//! split, or the fault that began the divergence, to the merge), so the check relaxes exactly
//! this much, and no more:
//! - a read that overlaps a split, from its start until the merge that ends it is done, may see
//!   either side: it constrains nothing;
//! - a write that overlaps the split itself keeps its place in real time, but if its value is
//!   the losing image of a `tandem_conflicts` row it may also not take effect at all;
//! - a compare-and-set that overlaps the split or the merge was decided against one side's rows
//!   (the merge re-applies a split's compare-and-set as the write of its new value): a
//!   successful one counts as that write, a failed one constrains nothing;
//! - every other operation must linearize. So a write acknowledged by the sole active after the
//!   split (during the merge, say) can never be overwritten by an older one.
//!
//! And, apart from the search: every write acknowledged during a split either took effect (its
//! value is in the surviving log) or is in `tandem_conflicts`.

use std::collections::HashSet;

use super::check::Effect;
use super::history::{Op, OpKind, Value};

/// An interval during which two nodes were active, and when its merge was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitWindow {
    /// Wall-clock microseconds: the second node became active.
    pub start_us: i64,
    /// The first of the two stopped being active.
    pub end_us: i64,
    /// The merge-back that followed was recorded as done (at least `end_us`).
    pub merged_us: i64,
}

/// The effect of each operation under the rule above. `lost` holds the (register, value) pairs
/// that are the losing image of a conflict row.
pub fn effects_for_splits(
    ops: &[Op],
    windows: &[SplitWindow],
    lost: &HashSet<(usize, Value)>,
) -> Vec<Effect> {
    ops.iter()
        .map(|op| {
            let effect = Effect::of(op);
            let in_split = windows
                .iter()
                .any(|window| op.overlaps(window.start_us, window.end_us));
            let before_merged = windows
                .iter()
                .any(|window| op.overlaps(window.start_us, window.merged_us));
            let lost = |value: Value| lost.contains(&(op.key, value));
            match (&op.kind, op.complete_us) {
                (OpKind::Read { .. }, _) if before_merged => Effect::Nothing,
                // A compare-and-set decided against either side, or against the active's rows
                // before the merge brought the other side's in: its write stands, its test
                // constrains nothing.
                (
                    OpKind::Cas {
                        succeeded: Some(false),
                        ..
                    },
                    _,
                ) if before_merged => Effect::Nothing,
                // Unanswered, or answered "failed" after an attempt that may have run: it may
                // have written, or not.
                (OpKind::Cas { to, .. }, None)
                | (
                    OpKind::Cas {
                        to,
                        succeeded: None,
                        ..
                    },
                    _,
                ) if before_merged => Effect::MaybeWrite(*to),
                (OpKind::Cas { to, .. }, Some(_)) if before_merged => {
                    if in_split && lost(*to) {
                        Effect::MaybeWrite(*to)
                    } else {
                        Effect::Write(*to)
                    }
                }
                (OpKind::Write { value }, Some(_)) if in_split && lost(*value) => {
                    Effect::MaybeWrite(*value)
                }
                _ => effect,
            }
        })
        .collect()
}

/// Writes acknowledged during a split that neither took effect nor lost a merge into
/// `tandem_conflicts`. `applied` holds the (register, value) pairs of the surviving node's log;
/// an operation that began before `log_from_us` (where the retained log begins) is not judged:
/// it may have been appended before the oldest retained entry.
pub fn vanished_writes(
    ops: &[Op],
    windows: &[SplitWindow],
    applied: &HashSet<(usize, Value)>,
    lost: &HashSet<(usize, Value)>,
    log_from_us: i64,
    origin_us: i64,
) -> Vec<String> {
    ops.iter()
        .filter(|op| op.acknowledged_write())
        .filter(|op| op.invoke_us >= log_from_us)
        .filter(|op| {
            windows
                .iter()
                .any(|window| op.overlaps(window.start_us, window.end_us))
        })
        .filter_map(|op| {
            let value = op.written()?;
            let kept = applied.contains(&(op.key, value)) || lost.contains(&(op.key, value));
            (!kept).then(|| {
                format!(
                    "an acknowledged write of the split neither took effect nor is in \
                     tandem_conflicts: {}",
                    op.describe(origin_us)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::check::check_effects;
    use super::*;

    fn op(client: usize, kind: OpKind, invoke: i64, complete: i64, node: &str) -> Op {
        Op {
            client,
            key: 0,
            kind,
            invoke_us: invoke,
            complete_us: Some(complete),
            node: node.into(),
        }
    }

    fn write(client: usize, value: Value, at: (i64, i64), node: &str) -> Op {
        op(client, OpKind::Write { value }, at.0, at.1, node)
    }

    fn read(client: usize, value: Value, at: (i64, i64), node: &str) -> Op {
        op(
            client,
            OpKind::Read { value: Some(value) },
            at.0,
            at.1,
            node,
        )
    }

    /// The split of issue 26: 1,000 to 2,000, merged at 3,000.
    fn window() -> Vec<SplitWindow> {
        vec![SplitWindow {
            start_us: 1_000,
            end_us: 2_000,
            merged_us: 3_000,
        }]
    }

    fn check(ops: &[Op], lost: &[(usize, Value)]) -> bool {
        let lost: HashSet<(usize, Value)> = lost.iter().copied().collect();
        let effects = effects_for_splits(ops, &window(), &lost);
        check_effects(ops, &effects, 0, 0).is_linearizable()
    }

    #[test]
    fn reads_during_the_split_and_the_merge_may_see_either_side() {
        let history = vec![
            write(0, 1, (1_100, 1_200), "a"),
            write(1, 2, (1_300, 1_400), "b"),
            // b's reader still sees its own side, and during the merge the older value.
            read(2, 2, (1_500, 1_600), "b"),
            read(2, 2, (2_100, 2_200), "b"),
            // Once merged: the newest.
            read(2, 2, (3_100, 3_200), "b"),
        ];
        assert!(check(&history, &[(0, 1)]));
    }

    #[test]
    fn a_write_that_lost_the_merge_may_vanish_only_through_a_conflict_row() {
        // a's 1 (the later one) lost to b's 2 under keep_active, say: the final read sees 2.
        let history = vec![
            write(1, 2, (1_100, 1_200), "b"),
            write(0, 1, (1_300, 1_400), "a"),
            read(2, 2, (3_100, 3_200), "b"),
        ];
        assert!(check(&history, &[(0, 1)]));
        assert!(!check(&history, &[]), "without the conflict row it is lost");
    }

    #[test]
    fn a_write_of_the_sole_active_during_the_merge_is_never_overwritten_by_an_older_one() {
        // Issue 26's loss: a's split write is merged over b's later write.
        let history = vec![
            write(0, 4_000_339, (1_600, 1_687), "a"),
            write(1, 2_000_364, (2_200, 2_227), "b"),
            read(2, 4_000_339, (2_277, 2_300), "b"),
            read(2, 4_000_339, (3_500, 3_600), "b"),
        ];
        assert!(!check(&history, &[]));
        // Even with a conflict row for b's write: it was acknowledged by the sole active.
        assert!(!check(&history, &[(0, 2_000_364)]));
        // The fixed merge: b's write stands, a's is in the conflicts.
        let mut fixed = history.clone();
        fixed[3] = read(2, 2_000_364, (3_500, 3_600), "b");
        assert!(check(&fixed, &[(0, 4_000_339)]));
    }

    #[test]
    fn a_compare_and_set_of_unknown_outcome_in_a_split_may_or_may_not_have_written() {
        // Answered, but after an attempt that may have run elsewhere: its outcome is unknown.
        let unknown = op(
            3,
            OpKind::Cas {
                from: 0,
                to: 5,
                succeeded: None,
            },
            1_300,
            1_400,
            "a",
        );
        let not_written = vec![unknown.clone(), read(2, 0, (4_100, 4_200), "a")];
        assert!(check(&not_written, &[]));
        let written = vec![unknown, read(2, 5, (4_100, 4_200), "a")];
        assert!(check(&written, &[]));
    }

    #[test]
    fn a_compare_and_set_before_the_merge_counts_as_its_write_only() {
        // The sole active, before the merge brought b's split write in, still held 0: its
        // compare-and-set from 0 succeeded, and stands.
        let cas = |from, to, ok, at: (i64, i64)| {
            op(
                3,
                OpKind::Cas {
                    from,
                    to,
                    succeeded: Some(ok),
                },
                at.0,
                at.1,
                "a",
            )
        };
        let history = vec![
            write(1, 2, (1_300, 1_400), "b"),
            cas(0, 5, true, (2_100, 2_200)),
            cas(2, 6, false, (2_300, 2_400)),
            read(2, 5, (3_100, 3_200), "a"),
        ];
        assert!(check(&history, &[]));
        // After the merge the same compare-and-set is held to the rules: b's write took effect
        // (it is in no conflict row), so the register no longer held 0.
        let mut late = history.clone();
        late[1] = cas(0, 5, true, (3_300, 3_400));
        late[3] = read(2, 5, (3_500, 3_600), "a");
        assert!(!check(&late, &[]));
        assert!(check(&late, &[(0, 2)]), "unless b's write lost the merge");
    }

    #[test]
    fn every_acknowledged_split_write_took_effect_or_lost_a_merge() {
        let history = vec![
            write(0, 1, (1_100, 1_200), "a"),
            write(1, 2, (1_300, 1_400), "b"),
            write(1, 3, (5_000, 5_100), "b"),
        ];
        let applied: HashSet<(usize, Value)> = [(0, 2), (0, 3)].into();
        let lost: HashSet<(usize, Value)> = [(0, 1)].into();
        assert!(vanished_writes(&history, &window(), &applied, &lost, 0, 0).is_empty());
        let vanished = vanished_writes(&history, &window(), &applied, &HashSet::new(), 0, 0);
        assert_eq!(vanished.len(), 1, "{vanished:?}");
        assert!(vanished[0].contains("write 1 on a"), "{vanished:?}");
    }
}
