//! The state one fault proxy's handle, accept loop and connection tasks share.

use std::io;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::mode::{Mode, ProxyState};
use super::stats::Counters;

/// Shared by the [`FaultProxy`](super::FaultProxy) handle and every task on its runtime.
pub(crate) struct Shared {
    /// Where accepted connections are forwarded to.
    pub(crate) target: SocketAddr,
    /// The mode in force; every task watches it, so a change reaches existing connections too.
    pub(crate) state: watch::Sender<ProxyState>,
    /// What was forwarded and dropped, for [`ProxyStats`](super::ProxyStats).
    pub(crate) counters: Counters,
    /// The last generation the accept loop applied, and whether applying it failed. `set_mode`
    /// blocks on it so that "set Refuse, then dial" is not a race in a test.
    applied: Mutex<Applied>,
    /// Signalled whenever `applied` changes.
    applied_changed: Condvar,
}

/// The accept loop's answer to a `set_mode`.
struct Applied {
    /// The newest [`ProxyState::generation`] the accept loop has acted on.
    generation: u64,
    /// Why re-opening the listener failed, if it did (another process took the port). A string,
    /// because `io::Error` cannot be cloned for several waiters.
    error: Option<String>,
}

impl Shared {
    pub(crate) fn new(target: SocketAddr) -> Shared {
        Shared {
            target,
            state: watch::Sender::new(ProxyState::initial()),
            counters: Counters::default(),
            applied: Mutex::new(Applied {
                generation: 0,
                error: None,
            }),
            applied_changed: Condvar::new(),
        }
    }

    /// Publishes a new mode and returns its generation.
    pub(crate) fn publish(&self, mode: Mode) -> u64 {
        let mut generation = 0;
        self.state.send_modify(|state| {
            state.generation += 1;
            state.refusals += u64::from(mode == Mode::Refuse);
            state.mode = mode;
            generation = state.generation;
        });
        generation
    }

    /// Called by the accept loop once it has acted on `generation`.
    pub(crate) fn acknowledge(&self, generation: u64, result: &io::Result<()>) {
        if let Ok(mut applied) = self.applied.lock() {
            applied.generation = generation;
            applied.error = result.as_ref().err().map(|error| error.to_string());
        }
        self.applied_changed.notify_all();
    }

    /// Blocks until the accept loop has acted on `generation` or a later one.
    pub(crate) fn wait_applied(&self, generation: u64, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut applied = self.applied.lock().map_err(|_| poisoned())?;
        while applied.generation < generation {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the fault proxy did not apply the mode in time",
                ));
            }
            applied = self
                .applied_changed
                .wait_timeout(applied, left)
                .map_err(|_| poisoned())?
                .0;
        }
        match &applied.error {
            Some(error) => Err(io::Error::other(error.clone())),
            None => Ok(()),
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("a fault proxy thread panicked while holding its state")
}
