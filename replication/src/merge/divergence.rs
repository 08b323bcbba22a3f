//! `DivergenceSearch`: finds the last common index of two logs by comparing rolling hashes.
//!
//! After a split brain, the rejoining node and the active each hold a log whose prefix is common
//! and whose suffixes differ (DESIGN.md §4, divergence step 1). The hash at an index covers the
//! whole log up to it, so "the hashes match at `i`" is monotone: true up to the last common index,
//! false after it. The search therefore bisects `[0, min(our_last, their_last)]`. Index 0 is the
//! genesis (hash 0 on both sides) and always matches, so it is never probed.
//!
//! The first probe is at the end of the shorter log, because the common cases (identical logs, one
//! log a prefix of the other) then take a single probe. After that it bisects, so the number of
//! probes is bounded by `1 + ceil(log2(min(our_last, their_last)))` (`probes_max`).
//!
//! A side whose log was truncated below a probe answers `Unknown`. Everything at or below that
//! index is unknown too (retention only drops a prefix), so the search goes on above it: if some
//! higher index matches, the common point is still retained. If not, the common point is below
//! retention: the result is `PastRetention`, and the driver falls back to a snapshot and keeps the
//! rejoining node's database as `diverged-<term>.db`.
//!
//! It deliberately does no IO: the driver reads the hashes (ours from our log, theirs over the
//! peer link) and passes them in.

/// The answer to a probe at one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeAnswer {
    /// Both logs still hold the index: the rolling hash of each.
    Hashes { our_hash: u64, their_hash: u64 },
    /// One of the logs no longer holds the index (it is below its first retained index).
    Unknown,
}

/// What the search has concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DivergenceOutcome {
    /// The greatest index where both hashes match (0 if none but the genesis). Both logs hold the
    /// entries after it, so the suffix can be moved to the orphans table and rewound.
    Common { index: u64 },
    /// The last common index is at or below `unknown_index`, an index one of the logs no longer
    /// holds: catch up by snapshot and keep the old database as `diverged-<term>.db`.
    PastRetention { unknown_index: u64 },
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchStep {
    /// Read both hashes at `index` and pass them to `DivergenceSearch::answer`.
    Probe { index: u64 },
    /// The search is over.
    Done(DivergenceOutcome),
}

/// An answer that does not belong to the probe in progress (a stale or misrouted message). It is
/// an operating error: the driver drops the answer and logs it; the search is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("answer for index {answered} but the search is {expected:?}")]
pub struct UnexpectedAnswer {
    /// The index the answer was for.
    pub answered: u64,
    /// The step the search is waiting on.
    pub expected: SearchStep,
}

/// The search state: an open interval `(low, high)` that still holds the answer's successor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DivergenceSearch {
    /// The greatest index known to match or known to be unknown (0, the genesis, at first).
    low: u64,
    /// Whether `low` is an index one log no longer holds rather than a match.
    low_is_unknown: bool,
    /// The smallest index known to differ, or `min(our_last, their_last) + 1` at first.
    high: u64,
    /// What the driver must do now; kept so answers can be checked against it.
    step: SearchStep,
    /// Probes proposed so far, checked against `probes_max`.
    probes: u32,
    /// The bound on probes, fixed at the start.
    probes_max: u32,
}

impl DivergenceSearch {
    /// A search between our log, whose last index is `our_last_index`, and the peer's.
    pub fn new(our_last_index: u64, their_last_index: u64) -> DivergenceSearch {
        let shorter_last = our_last_index.min(their_last_index);
        let mut search = DivergenceSearch {
            low: 0,
            low_is_unknown: false,
            high: shorter_last + 1,
            step: SearchStep::Done(DivergenceOutcome::Common { index: 0 }),
            probes: 0,
            probes_max: probes_max(shorter_last),
        };
        search.step = match shorter_last {
            0 => search.done(),
            _ => search.probe(shorter_last),
        };
        search
    }

    /// What to do now: the first probe, or the result when a log is empty.
    pub fn step(&self) -> SearchStep {
        self.step
    }

    /// The number of probes proposed so far.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// The most probes this search can take.
    pub fn probes_max(&self) -> u32 {
        self.probes_max
    }

    /// Takes the answer to the probe at `index` and says what to do next.
    pub fn answer(
        &mut self,
        index: u64,
        answer: ProbeAnswer,
    ) -> Result<SearchStep, UnexpectedAnswer> {
        if self.step != (SearchStep::Probe { index }) {
            return Err(UnexpectedAnswer {
                answered: index,
                expected: self.step,
            });
        }
        match answer {
            ProbeAnswer::Hashes {
                our_hash,
                their_hash,
            } if our_hash == their_hash => {
                self.low = index;
                self.low_is_unknown = false;
            }
            ProbeAnswer::Hashes { .. } => self.high = index,
            ProbeAnswer::Unknown => {
                self.low = index;
                self.low_is_unknown = true;
            }
        }
        self.step = match self.high - self.low {
            1 => self.done(),
            _ => self.probe(self.low + (self.high - self.low) / 2),
        };
        Ok(self.step)
    }

    fn probe(&mut self, index: u64) -> SearchStep {
        self.probes += 1;
        assert!(
            self.probes <= self.probes_max,
            "divergence search over its bound of {} probes",
            self.probes_max
        );
        SearchStep::Probe { index }
    }

    fn done(&self) -> SearchStep {
        SearchStep::Done(match self.low_is_unknown {
            true => DivergenceOutcome::PastRetention {
                unknown_index: self.low,
            },
            false => DivergenceOutcome::Common { index: self.low },
        })
    }
}

/// `1 + ceil(log2(shorter_last))` (0 for an empty log): one probe at the end of the shorter log;
/// if it differs, the open interval `(0, shorter_last)` is bisected, and each probe leaves at most
/// the larger half, so `ceil(log2(shorter_last))` probes narrow it to nothing.
fn probes_max(shorter_last: u64) -> u32 {
    match shorter_last {
        0 => 0,
        _ => 1 + (u64::BITS - (shorter_last - 1).leading_zeros()),
    }
}
