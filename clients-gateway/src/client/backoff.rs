//! Bounded, jittered exponential back-off: how long to wait before the next attempt.
//!
//! Pure: the caller passes the randomness in, so tests can pin it. Not here: the decision to
//! retry at all (`route`), or the waiting itself (`pair_client`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

/// Past this many doublings the delay is at its maximum anyway; the cap keeps the shift in
/// range however long an outage lasts.
const DOUBLINGS_MAX: u32 = 30;

/// Exponential back-off from `min` to `max`, doubling after every failure, with "equal jitter":
/// each delay is uniformly spread over the upper half of its step, so clients that failed
/// together (a failover drops thousands at once) do not come back together.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// The first step. Delays are never shorter than half of it.
    min: Duration,
    /// The last step. Delays never exceed it.
    max: Duration,
    /// Failures since the last reset: the number of doublings of the next step.
    failures: u32,
}

impl Backoff {
    /// A back-off that starts at `min` and stops growing at `max` (`min` is raised to `max` if
    /// it is larger).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min: min.min(max),
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt; every call doubles the next step up to `max`.
    /// `random` is any uniformly random number.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let delay = jittered(self.step(), random);
        self.failures = self.failures.saturating_add(1).min(DOUBLINGS_MAX);
        delay
    }

    /// Starts again from `min`, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The current step: `min * 2^failures`, at most `max`.
    fn step(&self) -> Duration {
        let factor = 1u32 << self.failures.min(DOUBLINGS_MAX);
        self.min.saturating_mul(factor).min(self.max)
    }
}

/// A random number for the jitter. If the system's generator fails (it does not in practice),
/// the clock's nanoseconds serve: jitter needs spread, not secrecy.
pub fn random_u64(random: &SystemRandom) -> u64 {
    let mut bytes = [0u8; 8];
    match random.fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos())),
    }
}

/// A delay spread uniformly over `[step / 2, step]`.
fn jittered(step: Duration, random: u64) -> Duration {
    let half = step / 2;
    let spread_nanos = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % spread_nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(25);
    const MAX: Duration = Duration::from_secs(1);

    #[test]
    fn steps_double_from_min_and_stop_at_max() {
        let mut backoff = Backoff::new(MIN, MAX);
        // With random 0 each delay is half its step.
        let lows: Vec<Duration> = (0..9).map(|_| backoff.next_delay(0)).collect();
        assert_eq!(
            lows,
            [
                12_500, 25_000, 50_000, 100_000, 200_000, 400_000, 500_000, 500_000, 500_000
            ]
            .map(Duration::from_micros)
        );
    }

    #[test]
    fn delays_stay_within_bounds_for_any_random_number() {
        let randoms = [
            0,
            1,
            7,
            12_499_999,
            12_500_000,
            987_654_321,
            u64::MAX / 3,
            u64::MAX,
        ];
        for random in randoms {
            let mut backoff = Backoff::new(MIN, MAX);
            let mut step = MIN;
            for _ in 0..100 {
                let delay = backoff.next_delay(random);
                assert!(delay >= step / 2, "{delay:?} below half of step {step:?}");
                assert!(delay <= step, "{delay:?} above step {step:?}");
                assert!(delay <= MAX, "{delay:?} above max");
                step = (step * 2).min(MAX);
            }
        }
    }

    #[test]
    fn jitter_spreads_over_the_upper_half_of_the_step() {
        let step = Duration::from_millis(100);
        assert_eq!(jittered(step, 0), Duration::from_millis(50));
        assert_eq!(jittered(step, 50_000_000), Duration::from_millis(100));
        assert_eq!(jittered(step, 50_000_001), Duration::from_millis(50));
        assert_eq!(jittered(step, 25_000_000), Duration::from_millis(75));
    }

    #[test]
    fn reset_starts_again_from_min() {
        let mut backoff = Backoff::new(MIN, MAX);
        for _ in 0..10 {
            backoff.next_delay(0);
        }
        assert_eq!(backoff.next_delay(0), MAX / 2);
        backoff.reset();
        assert_eq!(backoff.next_delay(0), MIN / 2);
    }

    #[test]
    fn min_above_max_is_clamped() {
        let mut backoff = Backoff::new(Duration::from_secs(5), MAX);
        assert!(backoff.next_delay(u64::MAX) <= MAX);
    }

    #[test]
    fn zero_durations_give_zero_delays() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(backoff.next_delay(u64::MAX), Duration::ZERO);
    }
}
