//! Rate limiting of failed password attempts, per user and per source address (DESIGN.md §5).
//!
//! A sans-IO struct: the caller passes the time. Each key keeps the times of its failures within
//! `window`; once it holds `failures_max`, further attempts for that key are refused until the
//! oldest failure leaves the window. A success does not erase failures (a guesser who also knows
//! one password gains nothing). Bounds: at most `failures_max` times per key and `keys_max` keys
//! per kind; past that, keys whose failures have all aged out are dropped, and if none have, the
//! key with the oldest last failure is. Not replicated: each node limits what it sees.

use std::collections::{HashMap, VecDeque};

/// What an attempt is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    User,
    Source,
}

#[derive(Clone, Debug)]
pub struct LimiterConfig {
    pub window_ms: u64,
    pub failures_per_user_max: usize,
    pub failures_per_source_max: usize,
    pub keys_max: usize,
}

impl Default for LimiterConfig {
    fn default() -> LimiterConfig {
        LimiterConfig {
            window_ms: 60_000,
            failures_per_user_max: 5,
            failures_per_source_max: 20,
            keys_max: 100_000,
        }
    }
}

#[derive(Debug, Default)]
struct Failures {
    by_key: HashMap<String, VecDeque<u64>>,
}

impl Failures {
    /// Drops the failures of `key` that are `window_ms` old or older at `now_ms`.
    fn forget_old(&mut self, key: &str, now_ms: u64, window_ms: u64) {
        if let Some(times) = self.by_key.get_mut(key) {
            while times
                .front()
                .is_some_and(|at| at.saturating_add(window_ms) <= now_ms)
            {
                times.pop_front();
            }
            if times.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// When the key may try again, if it may not now.
    fn retry_at(&mut self, key: &str, max: usize, now_ms: u64, window_ms: u64) -> Option<u64> {
        self.forget_old(key, now_ms, window_ms);
        let times = self.by_key.get(key)?;
        (times.len() >= max).then(|| times.front().copied().unwrap_or(now_ms) + window_ms)
    }

    fn add(&mut self, key: &str, max: usize, keys_max: usize, now_ms: u64, window_ms: u64) {
        if !self.by_key.contains_key(key) && self.by_key.len() >= keys_max {
            self.by_key.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|at| at.saturating_add(window_ms) > now_ms)
            });
            if self.by_key.len() >= keys_max {
                let oldest = self
                    .by_key
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied().unwrap_or(0))
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    self.by_key.remove(&oldest);
                }
            }
        }
        let times = self.by_key.entry(key.to_string()).or_default();
        times.push_back(now_ms);
        while times.len() > max {
            times.pop_front();
        }
    }
}

#[derive(Debug)]
pub struct FailedLogins {
    config: LimiterConfig,
    users: Failures,
    sources: Failures,
}

impl FailedLogins {
    pub fn new(config: LimiterConfig) -> FailedLogins {
        FailedLogins {
            config,
            users: Failures::default(),
            sources: Failures::default(),
        }
    }

    /// `Err((what, retry_in_ms))` when `user` or `source` has failed too often lately.
    pub fn check(&mut self, user: &str, source: &str, now_ms: u64) -> Result<(), (Limited, u64)> {
        let window = self.config.window_ms;
        if let Some(at) =
            self.sources
                .retry_at(source, self.config.failures_per_source_max, now_ms, window)
        {
            return Err((Limited::Source, at.saturating_sub(now_ms)));
        }
        if let Some(at) =
            self.users
                .retry_at(user, self.config.failures_per_user_max, now_ms, window)
        {
            return Err((Limited::User, at.saturating_sub(now_ms)));
        }
        Ok(())
    }

    /// Counts a failed attempt against both keys.
    pub fn failed(&mut self, user: &str, source: &str, now_ms: u64) {
        let c = &self.config;
        self.users.add(
            user,
            c.failures_per_user_max,
            c.keys_max,
            now_ms,
            c.window_ms,
        );
        self.sources.add(
            source,
            c.failures_per_source_max,
            c.keys_max,
            now_ms,
            c.window_ms,
        );
    }

    /// Keys tracked now, per kind (for tests and status).
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.by_key.len(), self.sources.by_key.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: usize, per_source: usize, keys_max: usize) -> FailedLogins {
        FailedLogins::new(LimiterConfig {
            window_ms: 1_000,
            failures_per_user_max: per_user,
            failures_per_source_max: per_source,
            keys_max,
        })
    }

    #[test]
    fn a_user_is_refused_after_its_failures_until_the_oldest_ages_out() {
        let mut limits = limiter(3, 100, 10);
        for at in [0, 100, 200] {
            assert_eq!(limits.check("alice", "10.0.0.1", at), Ok(()));
            limits.failed("alice", "10.0.0.1", at);
        }
        assert_eq!(
            limits.check("alice", "10.0.0.9", 300),
            Err((Limited::User, 700))
        );
        // Another user from the same source is not refused.
        assert_eq!(limits.check("bob", "10.0.0.1", 300), Ok(()));
        // The first failure leaves the window at 1000.
        assert_eq!(limits.check("alice", "10.0.0.1", 1_000), Ok(()));
    }

    #[test]
    fn a_source_is_refused_across_users() {
        let mut limits = limiter(100, 2, 10);
        limits.failed("a", "198.51.100.7", 0);
        limits.failed("b", "198.51.100.7", 10);
        assert_eq!(
            limits.check("c", "198.51.100.7", 20),
            Err((Limited::Source, 980))
        );
        assert_eq!(limits.check("c", "198.51.100.8", 20), Ok(()));
    }

    #[test]
    fn keys_are_bounded() {
        let mut limits = limiter(2, 2, 3);
        for (at, user) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            limits.failed(user, user, at as u64);
        }
        assert_eq!(limits.tracked(), (3, 3));
        // The newest keys are kept.
        limits.failed("e", "e", 10);
        assert_eq!(limits.check("e", "e", 11), Err((Limited::Source, 993)));
    }
}
