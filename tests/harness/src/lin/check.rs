//! The linearizability search: Wing and Gong's algorithm with Lowe's memoization, as Porcupine
//! runs it, over a register model.
//!
//! Registers are independent, so each is checked alone (linearizability is local). A register's
//! history is cut into segments at quiescent points, instants before which every operation has
//! completed: each segment is searched exhaustively from the set of values the register could
//! hold when it began, and yields the set it could hold when it ends. So memory stays bounded by
//! a segment, not by the run.
//!
//! The model is the powerset of a register: its state is the set of values the register may
//! hold, which makes operations that may or may not take effect (an unknown outcome, a write
//! that may have lost a merge) deterministic steps. An operation whose outcome is unknown stays
//! possible in every later segment too, so the cut loses nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::history::{Op, OpKind, Value};

/// Most states one segment's search may visit before it gives up (and says so).
const VISITED_MAX: usize = 4_000_000;
/// Most violations reported per register.
const VIOLATIONS_PER_KEY_MAX: usize = 3;
/// Most operations listed in a violation.
const LISTED_MAX: usize = 40;

/// What an operation does in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Must see exactly this value.
    Read(Value),
    /// Sets the value.
    Write(Value),
    /// Sets the value, or does nothing at all: an unknown outcome, or a write that may have
    /// lost a merge.
    MaybeWrite(Value),
    /// Compare-and-set with a known outcome.
    Cas {
        from: Value,
        to: Value,
        succeeded: bool,
    },
    /// Compare-and-set whose outcome is unknown: it may not have run at all.
    CasUnknown { from: Value, to: Value },
    /// Constrains nothing (a read with no answer, or one the rules let see anything).
    Nothing,
}

impl Effect {
    /// The effect an operation has with no relaxation.
    pub fn of(op: &Op) -> Effect {
        match (&op.kind, op.complete_us) {
            (OpKind::Read { value: Some(value) }, Some(_)) => Effect::Read(*value),
            (OpKind::Read { .. }, _) => Effect::Nothing,
            (OpKind::Write { value }, Some(_)) => Effect::Write(*value),
            (OpKind::Write { value }, None) => Effect::MaybeWrite(*value),
            (
                OpKind::Cas {
                    from,
                    to,
                    succeeded: Some(succeeded),
                },
                Some(_),
            ) => Effect::Cas {
                from: *from,
                to: *to,
                succeeded: *succeeded,
            },
            (OpKind::Cas { from, to, .. }, _) => Effect::CasUnknown {
                from: *from,
                to: *to,
            },
        }
    }

    /// Whether the operation may also never take effect.
    fn optional(&self) -> bool {
        matches!(self, Effect::MaybeWrite(_) | Effect::CasUnknown { .. })
    }

    /// The model's step when the operation takes effect: the set of values after it, or `None`
    /// if it could not have answered what it did from any value of `state`.
    fn step(&self, state: &[Value]) -> Option<Vec<Value>> {
        let contains = |value: &Value| state.binary_search(value).is_ok();
        match self {
            Effect::Read(value) => contains(value).then(|| vec![*value]),
            Effect::Write(value) | Effect::MaybeWrite(value) => Some(vec![*value]),
            Effect::Cas {
                from,
                to,
                succeeded: true,
            } => contains(from).then(|| vec![*to]),
            Effect::Cas {
                from,
                succeeded: false,
                ..
            } => {
                let next: Vec<Value> = state.iter().copied().filter(|v| v != from).collect();
                (!next.is_empty()).then_some(next)
            }
            // It ran; whether it set the value depends on the value it met.
            Effect::CasUnknown { from, to } => {
                let mut next: BTreeSet<Value> =
                    state.iter().copied().filter(|v| v != from).collect();
                if contains(from) {
                    next.insert(*to);
                }
                Some(next.into_iter().collect())
            }
            Effect::Nothing => Some(state.to_vec()),
        }
    }

    fn has_effect(&self) -> bool {
        !matches!(self, Effect::Nothing)
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Operations that took part (those with an effect in the model).
    pub operations: usize,
    /// Segments searched.
    pub segments: usize,
    /// Each a sentence naming the register, the time and the operations that cannot be ordered.
    pub violations: Vec<String>,
    /// Segments whose search was too large to finish: neither a pass nor a violation.
    pub inconclusive: Vec<String>,
}

impl CheckReport {
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.inconclusive.is_empty()
    }
}

/// Checks `ops` with no relaxation. Every register starts at `initial`; times are reported
/// relative to `origin_us`.
pub fn check_history(ops: &[Op], initial: Value, origin_us: i64) -> CheckReport {
    let effects: Vec<Effect> = ops.iter().map(Effect::of).collect();
    check_effects(ops, &effects, initial, origin_us)
}

/// Checks `ops` with the given effect for each (the relaxations of [`super::relax`]).
pub fn check_effects(
    ops: &[Op],
    effects: &[Effect],
    initial: Value,
    origin_us: i64,
) -> CheckReport {
    assert_eq!(ops.len(), effects.len(), "one effect per operation");
    let mut by_key: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        if effects[index].has_effect() {
            by_key.entry(op.key).or_default().push(index);
        }
    }
    let mut report = CheckReport::default();
    for (key, indexes) in by_key {
        report.operations += indexes.len();
        check_key(key, ops, effects, &indexes, initial, origin_us, &mut report);
    }
    report
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
struct SearchOp {
    /// Index into the history, for reports.
    index: usize,
    /// `i64::MIN` for an unknown outcome carried over from an earlier segment.
    invoke: i64,
    /// `i64::MAX` when it may still take effect after the segment (an unknown outcome).
    ret: i64,
    effect: Effect,
}

impl SearchOp {
    fn unknown(&self) -> bool {
        self.ret == i64::MAX
    }
}

/// Unknown outcomes whose having taken effect or not is tracked across segments; older ones
/// are assumed able to take effect at any later time, any number of times (which can only hide
/// a violation, never invent one).
const TRACKED_UNKNOWN_MAX: usize = 12;

/// The register between segments: for each set of tracked unknown outcomes that took effect
/// (a bitset over `Carry::tracked`), the values it may hold.
struct Carry {
    tracked: Vec<SearchOp>,
    untracked: Vec<SearchOp>,
    states: BTreeMap<Vec<u64>, BTreeSet<Value>>,
}

fn check_key(
    key: usize,
    ops: &[Op],
    effects: &[Effect],
    indexes: &[usize],
    initial: Value,
    origin_us: i64,
    report: &mut CheckReport,
) {
    let mut sorted: Vec<SearchOp> = indexes
        .iter()
        .map(|&index| SearchOp {
            index,
            invoke: ops[index].invoke_us,
            ret: ops[index].complete_us.unwrap_or(i64::MAX),
            effect: effects[index].clone(),
        })
        .collect();
    sorted.sort_by_key(|op| (op.invoke, op.ret));
    let mut carry = Carry {
        tracked: Vec::new(),
        untracked: Vec::new(),
        states: [(Vec::new(), [initial].into())].into(),
    };
    let mut violations = 0;
    for segment in segments(sorted) {
        report.segments += 1;
        let before = carry.states.clone();
        match search_segment(&mut carry, &segment) {
            Ok(()) => {}
            Err(failure) => {
                let text = describe_failure(key, failure, &segment, &before, ops, origin_us);
                match failure {
                    Failure::Inconclusive => report.inconclusive.push(text),
                    Failure::NotLinearizable => {
                        violations += 1;
                        if violations <= VIOLATIONS_PER_KEY_MAX {
                            report.violations.push(text);
                        }
                    }
                }
                // Carry on from anything the segment could have left, to find later ones.
                let mut values: BTreeSet<Value> = before.values().flatten().copied().collect();
                values.extend(segment.iter().filter_map(|op| written(&op.effect)));
                carry.untracked.append(&mut carry.tracked);
                carry
                    .untracked
                    .extend(segment.iter().filter(|op| op.unknown()).cloned());
                carry.states = [(Vec::new(), values)].into();
            }
        }
    }
    if violations > VIOLATIONS_PER_KEY_MAX {
        report.violations.push(format!(
            "register {key}: {} more segments are not linearizable",
            violations - VIOLATIONS_PER_KEY_MAX
        ));
    }
}

fn describe_failure(
    key: usize,
    failure: Failure,
    segment: &[SearchOp],
    before: &BTreeMap<Vec<u64>, BTreeSet<Value>>,
    ops: &[Op],
    origin_us: i64,
) -> String {
    let seconds = |us: i64| format!("{:.3}s", (us - origin_us) as f64 / 1e6);
    let first = segment.first().map_or(0, |op| op.invoke);
    let last = segment
        .iter()
        .map(|op| op.ret)
        .filter(|r| *r != i64::MAX)
        .max();
    let values: BTreeSet<&Value> = before.values().flatten().collect();
    let listed: Vec<String> = segment
        .iter()
        .take(LISTED_MAX)
        .map(|op| format!("  {}", ops[op.index].describe(origin_us)))
        .collect();
    let more = segment.len().saturating_sub(LISTED_MAX);
    format!(
        "register {key}, {} to {}: {failure}; it began holding one of {values:?}; its {} \
         operations:\n{}{}",
        seconds(first),
        last.map_or("the end".to_string(), seconds),
        segment.len(),
        listed.join("\n"),
        if more > 0 {
            format!("\n  ... and {more} more")
        } else {
            String::new()
        }
    )
}

fn written(effect: &Effect) -> Option<Value> {
    match effect {
        Effect::Write(value) | Effect::MaybeWrite(value) => Some(*value),
        Effect::Cas { to, .. } | Effect::CasUnknown { to, .. } => Some(*to),
        _ => None,
    }
}

/// Cuts operations sorted by invocation where every earlier one has completed. An unknown
/// outcome never blocks a cut: it is carried into the later segments instead.
fn segments(sorted: Vec<SearchOp>) -> Vec<Vec<SearchOp>> {
    let mut segments = Vec::new();
    let mut current: Vec<SearchOp> = Vec::new();
    let mut horizon = i64::MIN;
    for op in sorted {
        if !current.is_empty() && op.invoke > horizon {
            segments.push(std::mem::take(&mut current));
        }
        horizon = horizon.max(if op.unknown() { op.invoke } else { op.ret });
        current.push(op);
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NotLinearizable,
    Inconclusive,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotLinearizable => write!(f, "no order of these operations is linearizable"),
            Failure::Inconclusive => write!(
                f,
                "the search passed {VISITED_MAX} states without an answer (inconclusive)"
            ),
        }
    }
}

/// Searches one segment from every carried state and replaces them with the states it can
/// end in.
///
/// The search list is: the tracked unknown outcomes (bits `0..tracked`), the untracked ones,
/// then the segment's operations. An optional operation (an unknown outcome, or a write that
/// may have vanished) may be left out; one with a known return must then still take its
/// place before every operation invoked after that return.
fn search_segment(carry: &mut Carry, segment: &[SearchOp]) -> Result<(), Failure> {
    let carried = |op: &SearchOp| SearchOp {
        invoke: i64::MIN,
        ..op.clone()
    };
    let mut list: Vec<SearchOp> = carry.tracked.iter().map(carried).collect();
    list.extend(carry.untracked.iter().map(carried));
    list.extend(segment.iter().cloned());
    let tracked = carry.tracked.len();
    let words = list.len().div_ceil(64);
    let starts = carry.states.iter().flat_map(|(mask, values)| {
        let mut done = vec![0u64; words];
        done[..mask.len()].copy_from_slice(mask);
        let values: Vec<Value> = values.iter().copied().collect();
        std::iter::once((done, values))
    });
    let ends = explore(&list, starts)?;
    // The segment's own unknown outcomes join the tracked ones (the oldest beyond the bound
    // become untracked).
    let newly: Vec<usize> = (tracked + carry.untracked.len()..list.len())
        .filter(|i| list[*i].unknown())
        .collect();
    let mut next_tracked: Vec<usize> = (0..tracked).chain(newly.iter().copied()).collect();
    while next_tracked.len() > TRACKED_UNKNOWN_MAX {
        let oldest = next_tracked.remove(0);
        carry.untracked.push(list[oldest].clone());
    }
    let mut states: BTreeMap<Vec<u64>, BTreeSet<Value>> = BTreeMap::new();
    for (done, values) in ends {
        let mut mask = vec![0u64; next_tracked.len().div_ceil(64)];
        for (bit, i) in next_tracked.iter().enumerate() {
            if done[i / 64] & (1 << (i % 64)) != 0 {
                mask[bit / 64] |= 1 << (bit % 64);
            }
        }
        states.entry(mask).or_default().extend(values);
    }
    carry.tracked = next_tracked.iter().map(|i| list[*i].clone()).collect();
    carry.states = states;
    Ok(())
}

/// A point of the search: the operations done (a bitset over the search list) and the values
/// the register may hold.
type Node = (Vec<u64>, Vec<Value>);

/// Every order of `ops` that respects real time, from each start: the states (operations done,
/// values) in which every operation that must take effect has.
fn explore(ops: &[SearchOp], starts: impl Iterator<Item = Node>) -> Result<Vec<Node>, Failure> {
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    let mut visited: HashSet<Node> = HashSet::new();
    let mut stack: Vec<Node> = Vec::new();
    for start in starts {
        if visited.insert(start.clone()) {
            stack.push(start);
        }
    }
    let mut ends = Vec::new();
    while let Some((done, state)) = stack.pop() {
        let pending = || (0..ops.len()).filter(|i| !is_done(&done, *i));
        // Every operation that must take effect has: an end (optional ones may still follow).
        if pending().all(|i| ops[i].effect.optional()) {
            ends.push((done.clone(), state.clone()));
        }
        // An operation can go next only if it began before every pending required one ended;
        // an optional one also only if nothing done so far began after it returned.
        let first_return = pending()
            .filter(|i| !ops[*i].effect.optional())
            .map(|i| ops[i].ret)
            .min()
            .unwrap_or(i64::MAX);
        let last_invoke = (0..ops.len())
            .filter(|i| is_done(&done, *i))
            .map(|i| ops[i].invoke)
            .max()
            .unwrap_or(i64::MIN);
        for i in pending() {
            let op = &ops[i];
            if op.invoke > first_return || (op.effect.optional() && op.ret < last_invoke) {
                continue;
            }
            let Some(next) = op.effect.step(&state) else {
                continue;
            };
            let mut next_done = done.clone();
            next_done[i / 64] |= 1 << (i % 64);
            let entry = (next_done, next);
            if visited.insert(entry.clone()) {
                stack.push(entry);
            }
        }
        if visited.len() > VISITED_MAX {
            return Err(Failure::Inconclusive);
        }
    }
    if ends.is_empty() {
        Err(Failure::NotLinearizable)
    } else {
        Ok(ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, kind: OpKind, invoke: i64, complete: Option<i64>) -> Op {
        Op {
            client,
            key: 0,
            kind,
            invoke_us: invoke,
            complete_us: complete,
            node: "a".into(),
        }
    }

    fn write(client: usize, value: Value, invoke: i64, complete: i64) -> Op {
        op(client, OpKind::Write { value }, invoke, Some(complete))
    }

    fn read(client: usize, value: Value, invoke: i64, complete: i64) -> Op {
        op(
            client,
            OpKind::Read { value: Some(value) },
            invoke,
            Some(complete),
        )
    }

    fn cas(client: usize, from: Value, to: Value, ok: Option<bool>, at: (i64, Option<i64>)) -> Op {
        op(
            client,
            OpKind::Cas {
                from,
                to,
                succeeded: ok,
            },
            at.0,
            at.1,
        )
    }

    #[test]
    fn sequential_and_concurrent_histories_that_linearize_pass() {
        let history = vec![
            write(0, 1, 0, 10),
            read(1, 1, 11, 20),
            // Concurrent write and read: the read may see either value.
            write(0, 2, 30, 50),
            read(1, 1, 31, 40),
            read(1, 2, 51, 60),
            cas(0, 2, 3, Some(true), (61, Some(70))),
            cas(1, 2, 4, Some(false), (71, Some(80))),
            read(0, 3, 81, 90),
        ];
        let report = check_history(&history, 0, 0);
        assert!(report.is_linearizable(), "{report:?}");
        assert_eq!(report.operations, 8);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_a_violation() {
        let history = vec![
            write(0, 1, 0, 10),
            write(1, 2, 20, 30),
            // Both writes completed before this read began: it must see 2.
            read(0, 1, 40, 50),
        ];
        let report = check_history(&history, 0, 0);
        assert_eq!(report.violations.len(), 1, "{report:?}");
        assert!(report.violations[0].contains("register 0"), "{report:?}");
    }

    #[test]
    fn the_overwritten_acknowledged_write_of_issue_26_is_a_violation() {
        // a acknowledges 4000339, b then acknowledges 2000364, and a later read sees 4000339.
        let history = vec![
            write(0, 4_000_339, 0, 100),
            write(1, 2_000_364, 200, 300),
            read(2, 4_000_339, 400, 500),
        ];
        assert!(!check_history(&history, 0, 0).is_linearizable());
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let unknown = op(0, OpKind::Write { value: 7 }, 0, None);
        // Seen long after its invocation, after another write: fine.
        let late = vec![
            unknown.clone(),
            write(1, 1, 10, 20),
            read(1, 1, 30, 40),
            read(2, 7, 1_000, 1_010),
        ];
        assert!(check_history(&late, 0, 0).is_linearizable());
        // Never seen: fine too.
        let never = vec![unknown.clone(), read(1, 0, 10, 20), read(1, 0, 30, 40)];
        assert!(check_history(&never, 0, 0).is_linearizable());
        // But it happens once: 7, then 1, then 7 again is not possible.
        let twice = vec![
            unknown,
            read(1, 7, 10, 20),
            write(1, 1, 30, 40),
            read(1, 1, 50, 60),
            read(1, 7, 70, 80),
        ];
        assert!(!check_history(&twice, 0, 0).is_linearizable());
    }

    #[test]
    fn a_compare_and_set_must_agree_with_the_value_it_saw() {
        // It succeeded from 5, but the register held 0.
        let wrong = vec![cas(0, 5, 6, Some(true), (0, Some(10)))];
        assert!(!check_history(&wrong, 0, 0).is_linearizable());
        // It failed from 0 while the register held 0.
        let failed = vec![cas(0, 0, 6, Some(false), (0, Some(10)))];
        assert!(!check_history(&failed, 0, 0).is_linearizable());
        // An unknown one explains a later read of its value, or of the old one.
        let unknown = vec![cas(0, 0, 6, None, (0, None)), read(1, 6, 100, 110)];
        assert!(check_history(&unknown, 0, 0).is_linearizable());
    }

    #[test]
    fn registers_are_checked_apart_and_segments_carry_every_possible_value() {
        let mut history = vec![
            // Two concurrent writes: either may be last.
            write(0, 1, 0, 10),
            write(1, 2, 0, 10),
            // A quiescent point, then a read that sees 1: fine.
            read(0, 1, 20, 30),
        ];
        let mut other = read(1, 0, 20, 30);
        other.key = 1;
        history.push(other);
        let report = check_history(&history, 0, 0);
        assert!(report.is_linearizable(), "{report:?}");
        assert!(report.segments >= 3, "{report:?}");
    }

    #[test]
    fn the_search_explores_many_concurrent_clients() {
        // Six clients, 200 rounds each of overlapping writes and reads of the last round.
        let mut history = Vec::new();
        for round in 0..200i64 {
            let base = round * 100;
            for client in 0..6usize {
                let value = round * 10 + client as i64 + 1;
                history.push(write(client, value, base, base + 50));
            }
            for client in 0..6usize {
                history.push(read(client, round * 10 + 6, base + 60, base + 90));
            }
        }
        let report = check_history(&history, 0, 0);
        assert!(report.is_linearizable(), "{report:?}");
    }
}
