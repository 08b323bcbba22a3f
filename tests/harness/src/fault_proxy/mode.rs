//! What the fault proxy does to traffic: the modes of DESIGN §11 and the state the proxy's tasks
//! watch.

use std::time::Duration;

/// One direction of a proxied connection. The client is whoever dialed the proxy; the server is
/// the proxy's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes the dialing side sends towards the target.
    ClientToServer,
    /// Bytes the target sends back to the dialing side.
    ServerToClient,
}

/// A network fault, applied to new and existing connections alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything: a healthy network.
    Pass,
    /// The host answers but nothing listens: the listener is closed, so a dial gets ECONNREFUSED,
    /// and every existing connection is reset (RST) on both sides.
    Refuse,
    /// The host vanished: dials are accepted and bytes are read, in both directions, but nothing
    /// is forwarded and the bytes are discarded.
    Blackhole,
    /// Every chunk is held for this long before it is forwarded, in both directions. A new
    /// connection is also dialed to the target only after this delay.
    Delay(Duration),
    /// Bytes in this direction are read and discarded; the other direction still flows.
    Cut(Direction),
}

/// What happens to a chunk read in one direction under a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Forward it once it has waited this long.
    Forward(Duration),
    /// Throw it away.
    Discard,
    /// The connection must be reset.
    Reset,
}

impl Mode {
    pub(crate) fn flow(self, direction: Direction) -> Flow {
        match self {
            Mode::Pass => Flow::Forward(Duration::ZERO),
            Mode::Delay(delay) => Flow::Forward(delay),
            Mode::Refuse => Flow::Reset,
            Mode::Blackhole => Flow::Discard,
            Mode::Cut(cut) if cut == direction => Flow::Discard,
            Mode::Cut(_) => Flow::Forward(Duration::ZERO),
        }
    }
}

/// The value every task of one proxy watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProxyState {
    /// The mode in force.
    pub(crate) mode: Mode,
    /// Bumped by every `set_mode`, so that `set_mode` can wait until the accept loop has applied
    /// its change (closed or re-opened the listener) before it returns.
    pub(crate) generation: u64,
    /// Bumped by every switch to `Refuse`. A connection remembers the count it was accepted under
    /// and resets when it changes, so a quick `Refuse` then `Pass` still resets it even if the
    /// connection's task never saw the `Refuse` itself (a watch keeps only the latest value).
    pub(crate) refusals: u64,
}

impl ProxyState {
    pub(crate) fn initial() -> ProxyState {
        ProxyState {
            mode: Mode::Pass,
            generation: 0,
            refusals: 0,
        }
    }
}
