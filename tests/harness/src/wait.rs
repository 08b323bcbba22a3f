//! Waiting on a condition with a deadline, the only way the harness and its tests wait.
//!
//! A fixed sleep either wastes time or flakes; a poll with a deadline returns as soon as the
//! condition holds and fails with a message that says what was awaited and what was last seen.
//! This module knows nothing about clusters; `Cluster::wait_until` adds the node logs.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// How long to pause between two polls. Short enough that a test notices a change within a
/// couple of keep-alive intervals, long enough not to load two cores with `tandemctl` processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `poll` every [`POLL_INTERVAL`] until it returns `Ok(Some(value))`, then returns the value.
///
/// `Ok(None)` means "not yet"; `Err` also means "not yet" and is remembered for the failure
/// message (a node that is restarting does not answer, which is not a reason to stop waiting).
/// `poll` runs at least once, and once more at the deadline, so a slow poll cannot make the wait
/// give up without looking. Fails after `timeout` with a message naming `what`.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut poll: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let deadline_passed = Instant::now() >= deadline;
        let last_error = match poll() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        if deadline_passed {
            return Err(timed_out(timeout, what, last_error));
        }
        thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn timed_out(timeout: Duration, what: &str, last_error: Option<anyhow::Error>) -> anyhow::Error {
    match last_error {
        Some(error) => {
            anyhow!("timed out after {timeout:?} waiting for {what}; last error: {error:#}")
        }
        None => anyhow!("timed out after {timeout:?} waiting for {what}; the condition never held"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut polls = 0;
        let value = wait_until(Duration::from_secs(5), "three polls", || {
            polls += 1;
            Ok((polls == 3).then_some(polls))
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn failure_names_what_was_awaited_and_the_last_error() {
        let mut polls = 0;
        let error = wait_until::<()>(Duration::from_millis(50), "the moon", || {
            polls += 1;
            Err(anyhow!("poll {polls} failed"))
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("the moon"), "{error}");
        assert!(error.contains(&format!("poll {polls} failed")), "{error}");
    }

    #[test]
    fn polls_at_least_once_with_a_zero_timeout() {
        let value = wait_until(Duration::ZERO, "anything", || Ok(Some(7))).unwrap();
        assert_eq!(value, 7);
    }
}
