//! The divergence search: exact probe sequences and outcomes, retention, and the probe bound.

use super::*;

/// Two logs that agree up to `common` and differ after it; `first_retained` is the first index
/// both still hold (1 when nothing was truncated).
struct TwoLogs {
    common: u64,
    first_retained: u64,
}

impl TwoLogs {
    fn answer(&self, index: u64) -> ProbeAnswer {
        if index < self.first_retained {
            return ProbeAnswer::Unknown;
        }
        // Any two distinct values stand for the two sides' hashes after the common point.
        let their_hash = match index <= self.common {
            true => index * 7 + 1,
            false => index * 7 + 2,
        };
        ProbeAnswer::Hashes {
            our_hash: index * 7 + 1,
            their_hash,
        }
    }

    /// Runs a whole search; returns the probes in order and the outcome.
    fn search(&self, our_last: u64, their_last: u64) -> (Vec<u64>, DivergenceOutcome) {
        let mut search = DivergenceSearch::new(our_last, their_last);
        let mut probes = vec![];
        let mut step = search.step();
        while let SearchStep::Probe { index } = step {
            probes.push(index);
            step = search
                .answer(index, self.answer(index))
                .expect("expected answer");
        }
        assert_eq!(search.probes() as usize, probes.len());
        assert!(search.probes() <= search.probes_max());
        let SearchStep::Done(outcome) = step else {
            unreachable!()
        };
        (probes, outcome)
    }
}

fn logs(common: u64) -> TwoLogs {
    TwoLogs {
        common,
        first_retained: 1,
    }
}

fn common(index: u64) -> DivergenceOutcome {
    DivergenceOutcome::Common { index }
}

#[test]
fn identical_logs_take_one_probe_at_the_end() {
    assert_eq!(logs(10).search(10, 10), (vec![10], common(10)));
}

#[test]
fn a_log_that_is_a_prefix_of_the_other_takes_one_probe_at_its_end() {
    assert_eq!(logs(5).search(5, 12), (vec![5], common(5)));
    assert_eq!(logs(5).search(12, 5), (vec![5], common(5)));
}

#[test]
fn an_empty_log_is_done_without_probes_at_the_genesis() {
    let search = DivergenceSearch::new(0, 7);
    assert_eq!(search.step(), SearchStep::Done(common(0)));
    assert_eq!(search.probes(), 0);
}

#[test]
fn divergence_in_the_middle_bisects_to_the_last_common_index() {
    assert_eq!(logs(5).search(16, 20), (vec![16, 8, 4, 6, 5], common(5)));
    assert_eq!(
        logs(12).search(20, 20),
        (vec![20, 10, 15, 12, 13], common(12))
    );
}

#[test]
fn divergence_at_index_one_leaves_the_genesis_as_common() {
    assert_eq!(logs(0).search(8, 8), (vec![8, 4, 2, 1], common(0)));
    assert_eq!(logs(0).search(1, 3), (vec![1], common(0)));
}

#[test]
fn every_divergence_point_of_every_pair_of_short_logs_is_found() {
    for our_last in 0..=40 {
        for their_last in 0..=40 {
            for point in 0..=our_last.min(their_last) {
                let (_, outcome) = logs(point).search(our_last, their_last);
                assert_eq!(outcome, common(point), "{our_last} {their_last} {point}");
            }
        }
    }
}

#[test]
fn a_common_point_below_retention_is_past_retention() {
    let truncated = TwoLogs {
        common: 5,
        first_retained: 10,
    };
    assert_eq!(
        truncated.search(20, 20),
        (
            vec![20, 10, 5, 7, 8, 9],
            DivergenceOutcome::PastRetention { unknown_index: 9 }
        )
    );
}

#[test]
fn a_log_truncated_past_the_shorter_end_is_past_retention_after_one_probe() {
    let truncated = TwoLogs {
        common: 3,
        first_retained: 50,
    };
    assert_eq!(
        truncated.search(30, 40),
        (
            vec![30],
            DivergenceOutcome::PastRetention { unknown_index: 30 }
        )
    );
}

#[test]
fn an_unknown_probe_below_a_retained_common_point_is_passed_over() {
    let truncated = TwoLogs {
        common: 9,
        first_retained: 3,
    };
    assert_eq!(truncated.search(8, 8), (vec![8], common(8)));
    let truncated = TwoLogs {
        common: 7,
        first_retained: 5,
    };
    assert_eq!(truncated.search(16, 16), (vec![16, 8, 4, 6, 7], common(7)));
}

#[test]
fn every_common_point_and_retention_gives_the_exact_outcome() {
    for last in 1..=30 {
        for first_retained in 1..=last + 2 {
            for point in 0..=last {
                let truncated = TwoLogs {
                    common: point,
                    first_retained,
                };
                let expected = match point >= first_retained || first_retained == 1 {
                    true => common(point),
                    false => DivergenceOutcome::PastRetention {
                        unknown_index: (first_retained - 1).min(last),
                    },
                };
                let (_, outcome) = truncated.search(last, last + 3);
                assert_eq!(outcome, expected, "{last} {first_retained} {point}");
            }
        }
    }
}

#[test]
fn probes_are_bounded_by_one_plus_log2_of_the_shorter_log_and_the_bound_is_reached() {
    assert_eq!(DivergenceSearch::new(0, 0).probes_max(), 0);
    assert_eq!(DivergenceSearch::new(1, 5).probes_max(), 1);
    assert_eq!(DivergenceSearch::new(2000, 1024).probes_max(), 11);
    assert_eq!(DivergenceSearch::new(1025, 5000).probes_max(), 12);
    for (last, bound) in [(1, 1), (2, 2), (3, 3), (1024, 11), (1025, 12)] {
        let most = (0..=last)
            .map(|point| logs(point).search(last, last).0.len())
            .max();
        assert_eq!(most, Some(bound), "shorter log of {last}");
    }
    let (probes, outcome) = logs(0).search(1 << 40, 1 << 40);
    assert_eq!((probes.len(), outcome), (41, common(0)));
    assert_eq!(DivergenceSearch::new(1 << 40, 1 << 41).probes_max(), 41);
}

#[test]
fn an_answer_for_another_index_is_refused_and_changes_nothing() {
    let mut search = DivergenceSearch::new(8, 8);
    let before = search.clone();
    assert_eq!(
        search.answer(3, ProbeAnswer::Unknown),
        Err(UnexpectedAnswer {
            answered: 3,
            expected: SearchStep::Probe { index: 8 },
        })
    );
    assert_eq!(search, before);
    let hashes = ProbeAnswer::Hashes {
        our_hash: 1,
        their_hash: 1,
    };
    assert_eq!(search.answer(8, hashes), Ok(SearchStep::Done(common(8))));
    assert!(
        search.answer(8, hashes).is_err(),
        "a finished search takes no answer"
    );
}
