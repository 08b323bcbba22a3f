//! The admission gate: whether this node admits clients right now.
//!
//! The driver sets it synchronously while it runs `Command::SetAdmission`, so a demoted node stops
//! admitting before the next command (the heartbeat that announces the demotion) runs. While
//! open, the gate holds a short lease that the driver renews on every tick: a process that wakes
//! from a freeze (SIGSTOP, a VM pause) finds the lease expired and refuses clients before its
//! driver has even noticed the stall. In witness mode the gate also closes when this node's
//! second vote (its peer's or the witness's, `driver/quorum.rs`) runs out, on the same clock.
//! Readers (the gateway, the admin status) never wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Admission {
    /// What the role machine last said.
    open: AtomicBool,
    /// Milliseconds since `origin` until which an open gate admits.
    lease_until_ms: AtomicU64,
    /// Witness mode: milliseconds since `origin` until which this node holds a second vote
    /// (its peer's or the witness's); `u64::MAX` in pair mode.
    votes_until_ms: AtomicU64,
    /// Monotonic origin of `lease_until_ms`.
    origin: Instant,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            open: AtomicBool::new(false),
            lease_until_ms: AtomicU64::new(0),
            votes_until_ms: AtomicU64::new(u64::MAX),
            origin: Instant::now(),
        }
    }
}

impl Admission {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Opens or closes the gate; opening grants a lease of `lease`.
    pub fn set(&self, open: bool, lease: Duration) {
        if open {
            self.renew(lease);
        }
        self.open.store(open, Ordering::SeqCst);
    }

    /// Extends the lease of an open gate.
    pub fn renew(&self, lease: Duration) {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.lease_until_ms
            .store(self.now_ms().saturating_add(lease_ms), Ordering::SeqCst);
    }

    /// Witness mode: this node holds a second vote until `until` (`None`: it holds none).
    pub fn set_votes_until(&self, until: Option<Instant>) {
        let ms = until.map_or(0, |until| {
            u64::try_from(until.saturating_duration_since(self.origin).as_millis())
                .unwrap_or(u64::MAX - 1)
        });
        self.votes_until_ms.store(ms, Ordering::SeqCst);
    }

    /// True while the gate is open, its lease has not run out, and (witness mode) this node
    /// holds a second vote.
    pub fn admits(&self) -> bool {
        let now = self.now_ms();
        self.open.load(Ordering::SeqCst)
            && now < self.lease_until_ms.load(Ordering::SeqCst)
            && now < self.votes_until_ms.load(Ordering::SeqCst)
    }

    /// Witness mode: milliseconds this node still holds a second vote (`None` in pair mode).
    pub fn votes_left_ms(&self) -> Option<u64> {
        let until = self.votes_until_ms.load(Ordering::SeqCst);
        (until != u64::MAX).then(|| until.saturating_sub(self.now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_refuses_and_an_open_one_admits_within_its_lease() {
        let gate = Admission::default();
        assert!(!gate.admits());
        gate.set(true, Duration::from_secs(60));
        assert!(gate.admits());
        gate.set(false, Duration::from_secs(60));
        assert!(!gate.admits());
    }

    #[test]
    fn an_expired_lease_refuses_although_the_gate_is_open() {
        let gate = Admission::default();
        gate.set(true, Duration::ZERO);
        assert!(!gate.admits());
        gate.renew(Duration::from_secs(60));
        assert!(gate.admits());
    }
}
