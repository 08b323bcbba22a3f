//! Counters of what the fault proxy did, so a test can tell "the proxy dropped the keep-alives"
//! from "nobody sent any".

use std::sync::atomic::{AtomicU64, Ordering};

use super::mode::Direction;

/// A snapshot of one proxy's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Bytes delivered to the target.
    pub forwarded_client_to_server_bytes: u64,
    /// Bytes delivered back to the dialing side.
    pub forwarded_server_to_client_bytes: u64,
    /// Bytes from the dialing side thrown away by `Blackhole` or `Cut(ClientToServer)`.
    pub dropped_client_to_server_bytes: u64,
    /// Bytes from the target thrown away by `Blackhole` or `Cut(ServerToClient)`.
    pub dropped_server_to_client_bytes: u64,
    /// Connections the proxy accepted.
    pub connections_accepted: u64,
    /// Connections the proxy ended with a reset (`Refuse`, a heal after lost bytes, a failed dial
    /// of the target, or a reset from either side).
    pub connections_reset: u64,
}

/// The live counters behind [`ProxyStats`], updated by the connection tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Indexed by [`direction_index`].
    forwarded_bytes: [AtomicU64; 2],
    /// Indexed by [`direction_index`].
    dropped_bytes: [AtomicU64; 2],
    /// See [`ProxyStats::connections_accepted`].
    connections_accepted: AtomicU64,
    /// See [`ProxyStats::connections_reset`].
    connections_reset: AtomicU64,
}

impl Counters {
    pub(crate) fn forwarded(&self, direction: Direction, bytes: usize) {
        self.forwarded_bytes[direction_index(direction)].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, direction: Direction, bytes: usize) {
        self.dropped_bytes[direction_index(direction)].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn accepted(&self) {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        self.connections_reset.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ProxyStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProxyStats {
            forwarded_client_to_server_bytes: load(&self.forwarded_bytes[0]),
            forwarded_server_to_client_bytes: load(&self.forwarded_bytes[1]),
            dropped_client_to_server_bytes: load(&self.dropped_bytes[0]),
            dropped_server_to_client_bytes: load(&self.dropped_bytes[1]),
            connections_accepted: load(&self.connections_accepted),
            connections_reset: load(&self.connections_reset),
        }
    }
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}
