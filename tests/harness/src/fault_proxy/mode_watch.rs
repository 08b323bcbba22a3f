//! One connection's view of the proxy's mode.

use std::future::Future;

use tokio::sync::watch;

use super::mode::{Direction, Flow, Mode, ProxyState};

/// The mode as one connection sees it: the proxy's current mode, except that a `Refuse` since the
/// connection was accepted means "reset", even if the mode has moved on since.
#[derive(Clone)]
pub(crate) struct ModeWatch {
    /// The proxy's state; cloned into both pumps of a connection.
    state_rx: watch::Receiver<ProxyState>,
    /// [`ProxyState::refusals`] when the connection was accepted.
    refusals_at_accept: u64,
}

impl ModeWatch {
    pub(crate) fn new(state_rx: watch::Receiver<ProxyState>, refusals_at_accept: u64) -> ModeWatch {
        ModeWatch {
            state_rx,
            refusals_at_accept,
        }
    }

    /// The current mode, and marks it seen so [`changed`](Self::changed) waits for the next one.
    pub(crate) fn mode(&mut self) -> Mode {
        self.state_rx.borrow_and_update().mode
    }

    /// Whether this connection must be reset because the proxy refused since it was accepted.
    pub(crate) fn refused(&mut self) -> bool {
        let state = *self.state_rx.borrow_and_update();
        state.mode == Mode::Refuse || state.refusals != self.refusals_at_accept
    }

    /// What to do with bytes read in `direction` now.
    pub(crate) fn flow(&mut self, direction: Direction) -> Flow {
        if self.refused() {
            return Flow::Reset;
        }
        self.mode().flow(direction)
    }

    /// Completes when the mode changes. The sender lives as long as the tasks that watch it, so
    /// it never goes away under a connection; if it did, this would simply never complete.
    pub(crate) async fn changed(&mut self) {
        if self.state_rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs `future` to completion, or returns `None` as soon as the proxy refuses.
    pub(crate) async fn unless_refused<T>(&mut self, future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        loop {
            if self.refused() {
                return None;
            }
            tokio::select! {
                output = &mut future => return Some(output),
                () = self.changed() => {}
            }
        }
    }
}
