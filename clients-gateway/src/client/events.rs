//! What `PairClient` did behind the caller's back: counters ([`ClientStats`]) and a bounded log
//! of recent events ([`ClientEvent`]) for a caller that wants to print or record them.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Events kept until the caller drains them; when full the oldest is dropped (and counted in
/// `ClientStats::events_dropped`), so a caller that never drains costs a fixed amount of memory.
const EVENTS_MAX: usize = 256;

/// Counters since the client was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Operations that succeeded.
    pub operations_ok: u64,
    /// Operations that failed (returned an error).
    pub operations_failed: u64,
    /// Attempts re-issued after a failure (same request id).
    pub retries: u64,
    /// Refusals from a passive node that were followed to the active it named.
    pub refusals_followed: u64,
    /// Connections dropped after a failure, to be dialled again.
    pub reconnects: u64,
    /// Sessions resumed with their token (automatically or through `resume`).
    pub resumes: u64,
    /// The longest time from the start of an operation's first failed attempt to its success:
    /// how long the caller was held up by a failover, a switchover or a broken connection.
    pub longest_gap: Duration,
    /// Events dropped because the caller did not drain them in time.
    pub events_dropped: u64,
}

/// Something `PairClient` did while carrying out an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A passive node refused and named the active; the client went there.
    Followed {
        /// The passive's address.
        from: String,
        /// The active's address, as the passive named it.
        to: String,
    },
    /// An attempt failed; the client waits `delay` and tries `next`.
    Retrying {
        /// The operation ("start_call"...).
        op: &'static str,
        /// The address that failed.
        address: String,
        /// What went wrong.
        failure: String,
        /// The address of the next attempt.
        next: String,
        /// The pause before it.
        delay: Duration,
    },
    /// The session was resumed with its token on `address` (no password round).
    Resumed {
        /// The address that accepted the token.
        address: String,
        /// The name of the node behind it.
        node: String,
        /// The session that was resumed.
        session_id: String,
        /// The request id of the resuming login.
        request_id: String,
    },
    /// An operation succeeded after failed attempts.
    Recovered {
        /// The operation.
        op: &'static str,
        /// The address that answered.
        address: String,
        /// From the start of the first failed attempt to the success.
        gap: Duration,
    },
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::Followed { from, to } => {
                write!(f, "{from} is not the active; following it to {to}")
            }
            ClientEvent::Retrying {
                op,
                address,
                failure,
                next,
                delay,
            } => write!(
                f,
                "{op} failed at {address} ({failure}); retrying at {next} in {delay:?}"
            ),
            ClientEvent::Resumed { address, node, .. } => {
                write!(f, "session resumed on {node} at {address}")
            }
            ClientEvent::Recovered { op, address, gap } => {
                write!(f, "{op} succeeded at {address} after {gap:?} of failures")
            }
        }
    }
}

/// The recent events, oldest first, bounded by `EVENTS_MAX`.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: VecDeque<ClientEvent>,
}

impl EventLog {
    /// Records `event`; returns true when an older event had to be dropped to make room.
    pub(crate) fn push(&mut self, event: ClientEvent) -> bool {
        let dropped = self.events.len() >= EVENTS_MAX;
        if dropped {
            self.events.pop_front();
        }
        self.events.push_back(event);
        dropped
    }

    pub(crate) fn drain(&mut self) -> Vec<ClientEvent> {
        self.events.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> ClientEvent {
        ClientEvent::Followed {
            from: format!("a{n}"),
            to: "b".to_string(),
        }
    }

    #[test]
    fn the_log_keeps_the_newest_events_within_its_bound() {
        let mut log = EventLog::default();
        let dropped = (0..EVENTS_MAX + 3).filter(|n| log.push(event(*n))).count();
        assert_eq!(dropped, 3);
        let events = log.drain();
        assert_eq!(events.len(), EVENTS_MAX);
        assert_eq!(events[0], event(3));
        assert_eq!(events[EVENTS_MAX - 1], event(EVENTS_MAX + 2));
        assert!(log.drain().is_empty());
    }
}
