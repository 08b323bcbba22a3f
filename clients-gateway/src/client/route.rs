//! Where an operation goes next after a failed attempt, and how long it waits first: the pure
//! core of `PairClient`'s retries.
//!
//! - [`classify`] turns a gRPC status into a [`Verdict`]: follow the active a passive named,
//!   retry elsewhere after a pause, or hand the failure to the caller.
//! - [`Route`] keeps one operation's state across attempts and turns verdicts into [`Step`]s.
//!
//! No IO and no clock here: the caller passes the role watchers' view of the active and the
//! randomness for the jitter, and does the waiting and the deadline itself.

use std::time::Duration;

use tonic::Code;

use super::backoff::Backoff;

/// The metadata key in which a passive node names the active's client address.
pub const ACTIVE_ADDRESS_KEY: &str = "tandem-active-client-address";

/// A refusal that names an active is followed at once the first time in a row; after that each
/// follow waits like a failure, so two nodes that name each other (both stale, during an
/// election) are not ping-ponged between at full speed.
const FOLLOWS_WITHOUT_PAUSE: u32 = 1;

/// What one failed attempt means for the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The node is not the active and named the one that is: go there.
    Follow(String),
    /// The node or the connection cannot answer now (no active known, node down, connection
    /// broken, outcome unknown, no answer in time): pause, then try the other node.
    Transient,
    /// The password or the token is not valid: the caller must log in again.
    Unauthenticated,
    /// The request itself was refused (blocked, invalid, unknown call...): the caller decides.
    Refused,
}

/// What a failed attempt with `code` means. `active_address` is the value of the
/// `tandem-active-client-address` metadata key, if the refusal carried one.
pub fn classify(code: Code, active_address: Option<&str>) -> Verdict {
    match code {
        // A passive names the active; a block (logins or calls) names no address.
        Code::FailedPrecondition => match active_address.map(str::trim) {
            Some(address) if !address.is_empty() => Verdict::Follow(address.to_string()),
            _ => Verdict::Refused,
        },
        // UNAVAILABLE: no active known, a node busy or fenced, a connection that failed, or a
        // write whose outcome is unknown (the retry carries the same request id). The others are
        // what tonic reports for a connection that broke mid-request, or the per-attempt limit.
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown
        | Code::Internal => Verdict::Transient,
        Code::Unauthenticated => Verdict::Unauthenticated,
        _ => Verdict::Refused,
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait `delay` (never past the operation's deadline), then try `address`.
    Retry { address: String, delay: Duration },
    /// Stop and hand the failure to the caller.
    GiveUp,
}

/// One operation's path through the pair: the address to try next and the back-off state.
#[derive(Clone, Debug)]
pub struct Route {
    /// The two configured client addresses, to fall back on when the one tried fails.
    configured: [String; 2],
    /// The address of the next attempt.
    next: String,
    /// Refusals followed since the last other failure (see `FOLLOWS_WITHOUT_PAUSE`).
    follows_in_a_row: u32,
    /// Pauses between failed attempts.
    backoff: Backoff,
}

impl Route {
    /// A route that starts at `first` (the active as far as the client knows).
    pub fn new(configured: [String; 2], first: String, backoff: Backoff) -> Route {
        Route {
            configured,
            next: first,
            follows_in_a_row: 0,
            backoff,
        }
    }

    /// The address of the next attempt.
    pub fn address(&self) -> &str {
        &self.next
    }

    /// Decides the next attempt after the attempt at `self.address()` failed with `verdict`.
    /// `active_hint` is the active's address as the role watchers see it now; `random` feeds the
    /// jitter.
    pub fn on_failure(
        &mut self,
        verdict: &Verdict,
        active_hint: Option<&str>,
        random: u64,
    ) -> Step {
        match verdict {
            Verdict::Unauthenticated | Verdict::Refused => Step::GiveUp,
            Verdict::Follow(active) if *active != self.next => {
                self.follows_in_a_row += 1;
                let delay = if self.follows_in_a_row <= FOLLOWS_WITHOUT_PAUSE {
                    Duration::ZERO
                } else {
                    self.backoff.next_delay(random)
                };
                self.next = active.clone();
                self.retry(delay)
            }
            // A node that refuses and names itself is confused: treat it as unavailable.
            Verdict::Follow(_) | Verdict::Transient => {
                self.follows_in_a_row = 0;
                let delay = self.backoff.next_delay(random);
                self.next = self.after_transient(active_hint);
                self.retry(delay)
            }
        }
    }

    /// Points the next attempt at `active`, when the role watchers learned of a new active while
    /// the operation was waiting.
    pub fn redirect(&mut self, active: &str) {
        active.clone_into(&mut self.next);
    }

    fn retry(&self, delay: Duration) -> Step {
        Step::Retry {
            address: self.next.clone(),
            delay,
        }
    }

    /// Where to go after `self.next` failed: the active the watchers name if that is another
    /// node, else the other configured address (the first configured one when the failed
    /// address was not configured but named by a refusal).
    fn after_transient(&self, active_hint: Option<&str>) -> String {
        let failed = self.next.as_str();
        match active_hint {
            Some(active) if active != failed => active.to_string(),
            _ if failed == self.configured[0] => self.configured[1].clone(),
            _ => self.configured[0].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "127.0.0.1:7001";
    const B: &str = "127.0.0.1:7002";

    fn route(first: &str) -> Route {
        let backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(1));
        Route::new([A.to_string(), B.to_string()], first.to_string(), backoff)
    }

    fn retry_to(step: Step) -> (String, Duration) {
        match step {
            Step::Retry { address, delay } => (address, delay),
            Step::GiveUp => panic!("expected a retry, got {step:?}"),
        }
    }

    #[test]
    fn failed_precondition_with_an_address_is_followed() {
        assert_eq!(
            classify(Code::FailedPrecondition, Some(B)),
            Verdict::Follow(B.to_string())
        );
    }

    #[test]
    fn failed_precondition_without_an_address_goes_to_the_caller() {
        // A block names no active: retrying until the deadline would only hide it.
        assert_eq!(classify(Code::FailedPrecondition, None), Verdict::Refused);
        assert_eq!(
            classify(Code::FailedPrecondition, Some("  ")),
            Verdict::Refused
        );
    }

    #[test]
    fn unavailable_and_broken_connections_are_transient() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unknown,
            Code::Internal,
            Code::Aborted,
        ] {
            assert_eq!(classify(code, None), Verdict::Transient, "{code:?}");
        }
    }

    #[test]
    fn other_codes_go_to_the_caller() {
        assert_eq!(
            classify(Code::Unauthenticated, None),
            Verdict::Unauthenticated
        );
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::ResourceExhausted,
            Code::PermissionDenied,
            Code::Unimplemented,
        ] {
            assert_eq!(classify(code, None), Verdict::Refused, "{code:?}");
        }
    }

    #[test]
    fn a_refusal_is_followed_at_once_then_with_pauses() {
        let mut route = route(A);
        let step = route.on_failure(&Verdict::Follow(B.to_string()), None, 0);
        assert_eq!(retry_to(step), (B.to_string(), Duration::ZERO));
        // B names A again: both are stale; the second follow in a row waits.
        let step = route.on_failure(&Verdict::Follow(A.to_string()), None, 0);
        let (address, delay) = retry_to(step);
        assert_eq!(address, A);
        assert_eq!(delay, Duration::from_micros(12_500));
        let step = route.on_failure(&Verdict::Follow(B.to_string()), None, 0);
        assert_eq!(retry_to(step), (B.to_string(), Duration::from_millis(25)));
    }

    #[test]
    fn a_transient_failure_backs_off_and_tries_the_other_address() {
        let mut route = route(A);
        let step = route.on_failure(&Verdict::Transient, None, 0);
        assert_eq!(
            retry_to(step),
            (B.to_string(), Duration::from_micros(12_500))
        );
        let step = route.on_failure(&Verdict::Transient, None, 0);
        assert_eq!(retry_to(step), (A.to_string(), Duration::from_millis(25)));
        assert_eq!(route.address(), A);
    }

    #[test]
    fn a_transient_failure_prefers_the_watched_active_when_it_is_another_node() {
        let mut route = route(A);
        // The watchers say B: go there.
        let (address, _) = retry_to(route.on_failure(&Verdict::Transient, Some(B), 0));
        assert_eq!(address, B);
        // The watchers still say B but B just failed: the other node.
        let (address, _) = retry_to(route.on_failure(&Verdict::Transient, Some(B), 0));
        assert_eq!(address, A);
    }

    #[test]
    fn a_failed_unconfigured_address_falls_back_to_the_configured_ones() {
        let mut route = route(A);
        let elsewhere = "10.0.0.9:7001";
        let step = route.on_failure(&Verdict::Follow(elsewhere.into()), None, 0);
        let (address, _) = retry_to(step);
        assert_eq!(address, elsewhere);
        let (address, _) = retry_to(route.on_failure(&Verdict::Transient, None, 0));
        assert_eq!(address, A);
    }

    #[test]
    fn a_node_naming_itself_is_treated_as_unavailable() {
        let mut route = route(A);
        let step = route.on_failure(&Verdict::Follow(A.to_string()), None, 0);
        assert_eq!(
            retry_to(step),
            (B.to_string(), Duration::from_micros(12_500))
        );
    }

    #[test]
    fn refusals_and_bad_credentials_give_up() {
        let mut route = route(A);
        assert_eq!(
            route.on_failure(&Verdict::Refused, Some(B), 0),
            Step::GiveUp
        );
        assert_eq!(
            route.on_failure(&Verdict::Unauthenticated, Some(B), 0),
            Step::GiveUp
        );
    }

    #[test]
    fn a_transient_failure_resets_the_follow_count() {
        let mut route = route(A);
        route.on_failure(&Verdict::Follow(B.to_string()), None, 0);
        route.on_failure(&Verdict::Transient, None, 0);
        // After a transient failure the next follow is again immediate.
        let step = route.on_failure(&Verdict::Follow(B.to_string()), None, 0);
        assert_eq!(retry_to(step), (B.to_string(), Duration::ZERO));
    }

    #[test]
    fn redirect_points_the_next_attempt_at_the_new_active() {
        let mut route = route(A);
        route.redirect(B);
        assert_eq!(route.address(), B);
    }
}
