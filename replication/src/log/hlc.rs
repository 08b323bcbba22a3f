//! The hybrid logical clock: `Hlc` stamps `(ms, logical, node)` and the `HlcClock` that issues them.
//!
//! Stamps order the changes of both nodes for the `newest` conflict policy of merge-back (DESIGN.md
//! §4). The clock follows the wall clock when it moves forward and counts `logical` when it does
//! not, so stamps are strictly increasing even if the wall clock steps back. A remote stamp more than
//! `max_clock_offset_ms` ahead of our wall clock is clamped, so one peer with a wild clock cannot
//! drag ours into the future; the caller raises the alert.
//!
//! It deliberately reads no clock: the wall clock comes in as `wall_ms` (milliseconds since the Unix
//! epoch, read by the driver). It does not persist itself either: after a restart the driver seeds
//! it with the newest stamp in the log (`HlcClock::resume`).

/// One stamp. The derived order is the total order: `ms`, then `logical`, then `node`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Physical part: wall-clock milliseconds since the Unix epoch, as the issuing clock saw it.
    pub ms: u64,
    /// Logical part: orders stamps issued within one `ms`.
    pub logical: u32,
    /// The node that issued the stamp: breaks the last tie, so two nodes never issue equal stamps.
    pub node: String,
}

impl Hlc {
    pub fn new(ms: u64, logical: u32, node: impl Into<String>) -> Hlc {
        Hlc {
            ms,
            logical,
            node: node.into(),
        }
    }
}

/// What `HlcClock::observe` returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Observed {
    /// The local stamp issued for the receive: after every stamp issued before, and after the
    /// remote stamp unless that was clamped.
    pub stamp: Hlc,
    /// The remote stamp was more than `max_clock_offset_ms` ahead of our wall clock and was
    /// treated as `wall_ms + max_clock_offset_ms`: the caller raises an alert.
    pub clamped: bool,
}

/// Issues stamps for one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HlcClock {
    /// This node's name, put in every stamp it issues.
    node: String,
    /// `max_clock_offset` of the config: how far ahead of our wall clock a remote stamp may be.
    max_clock_offset_ms: u64,
    /// Physical part of the last stamp issued; every new stamp is above `(last_ms, last_logical)`.
    last_ms: u64,
    /// Logical part of the last stamp issued.
    last_logical: u32,
}

impl HlcClock {
    /// A clock that has issued nothing yet.
    pub fn new(node: impl Into<String>, max_clock_offset_ms: u64) -> HlcClock {
        HlcClock {
            node: node.into(),
            max_clock_offset_ms,
            last_ms: 0,
            last_logical: 0,
        }
    }

    /// A clock whose next stamp follows `last`, the newest stamp in the log after a restart.
    pub fn resume(node: impl Into<String>, max_clock_offset_ms: u64, last: &Hlc) -> HlcClock {
        HlcClock {
            last_ms: last.ms,
            last_logical: last.logical,
            ..HlcClock::new(node, max_clock_offset_ms)
        }
    }

    /// The last stamp issued (`(0, 0)` before the first).
    pub fn last(&self) -> Hlc {
        Hlc::new(self.last_ms, self.last_logical, self.node.clone())
    }

    /// A stamp for a local event at wall-clock time `wall_ms`.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        if wall_ms > self.last_ms {
            self.set(wall_ms, 0)
        } else {
            self.set_after(self.last_ms, self.last_logical)
        }
    }

    /// A stamp for receiving `remote` at wall-clock time `wall_ms`; it follows `remote` too, unless
    /// `remote` is too far ahead and is clamped.
    pub fn observe(&mut self, remote: &Hlc, wall_ms: u64) -> Observed {
        let limit_ms = wall_ms.saturating_add(self.max_clock_offset_ms);
        let clamped = remote.ms > limit_ms;
        // A clamped stamp counts as the earliest stamp of the limit's millisecond.
        let (remote_ms, remote_logical) = if clamped {
            (limit_ms, 0)
        } else {
            (remote.ms, remote.logical)
        };
        let ms = wall_ms.max(self.last_ms).max(remote_ms);
        let stamp = match (ms == self.last_ms, ms == remote_ms) {
            (true, true) => self.set_after(ms, self.last_logical.max(remote_logical)),
            (true, false) => self.set_after(ms, self.last_logical),
            (false, true) => self.set_after(ms, remote_logical),
            (false, false) => self.set(ms, 0),
        };
        Observed { stamp, clamped }
    }

    /// Issues the stamp right after `(ms, logical)`. `logical` has 2^32 values per millisecond;
    /// at the bound the stamp moves on to the next millisecond, which keeps the order total.
    fn set_after(&mut self, ms: u64, logical: u32) -> Hlc {
        match logical.checked_add(1) {
            Some(next) => self.set(ms, next),
            None => self.set(ms + 1, 0),
        }
    }

    fn set(&mut self, ms: u64, logical: u32) -> Hlc {
        self.last_ms = ms;
        self.last_logical = logical;
        self.last()
    }
}
