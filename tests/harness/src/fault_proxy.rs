//! A TCP proxy that injects network faults between the two nodes of a test pair (DESIGN §11).
//!
//! A cluster puts one proxy in front of each node's peer port, so a test can make the network
//! refuse, swallow, delay or half-cut the traffic one node dials to the other, and heal it again,
//! without root and without touching the nodes. It is not a general proxy: it serves 127.0.0.1
//! and a few connections, and it counts rather than logs what it does.
//!
//! The proxy runs on a thread of its own with a single-threaded tokio runtime, so the blocking
//! tests that own it need no runtime. [`FaultProxy::set_mode`] returns once the listener reflects
//! the new mode (closed for `Refuse`, open otherwise); existing connections follow within
//! moments, each at its next read, write or mode change.
//!
//! What a heal does to existing connections: a mode change never resets a connection by itself,
//! except `Refuse`. A connection that lost no bytes while blackholed or cut simply carries on, as
//! a TCP connection does when a short partition heals. A connection that lost bytes in some
//! direction has a hole in its stream that no real network produces (TCP retransmits), and that
//! would surface as a TLS decoding error; so once bytes would flow in that direction again, the
//! proxy resets the connection on both sides, as the endpoints of a long partition would
//! eventually see.
//!
//! Limits: at most 128 connections at once (`accept_loop::CONNECTIONS_MAX`; further
//! dials wait in the kernel backlog), and at most 1 MiB in flight per direction (then the proxy
//! stops reading and the sender blocks). Through a proxy in `Pass` mode a dead target looks like
//! "accepted, then reset", not ECONNREFUSED; a test of the refused-dial fast path uses `Refuse`.

mod accept_loop;
mod connection;
mod mode;
mod mode_watch;
mod pump;
mod shared;
mod stats;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::oneshot;

pub use mode::{Direction, Mode};
pub use stats::ProxyStats;

use accept_loop::AcceptLoop;
use shared::Shared;

/// How long `set_mode` waits for the proxy's thread to apply a mode. Applying is a bind or a
/// close, so only a wedged thread takes this long.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running fault proxy; dropping it closes the listener and every connection.
pub struct FaultProxy {
    /// Where clients dial. It stays the same for the proxy's life, across `Refuse`, because the
    /// nodes' configs name it.
    listen_addr: SocketAddr,
    /// Mode, counters and target, shared with the proxy's thread.
    shared: Arc<Shared>,
    /// Dropping it tells the proxy's runtime to stop; an `Option` so that `drop` can take it.
    shutdown: Option<oneshot::Sender<()>>,
    /// The proxy's thread, joined on drop so that no socket outlives the proxy.
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (an ephemeral port) that forwards to `target`, in `Pass` mode.
    pub fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::new(target));
        let accept_loop = {
            let _context = runtime.enter();
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            listener.set_nonblocking(true)?;
            AcceptLoop::new(
                Arc::clone(&shared),
                tokio::net::TcpListener::from_std(listener)?,
            )?
        };
        let listen_addr = accept_loop.listen_addr();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = thread::Builder::new()
            .name(format!("fault-proxy-{}", listen_addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = accept_loop.run() => {}
                        _ = shutdown_rx => {}
                    }
                });
            })?;
        tracing::debug!(%listen_addr, %target, "fault proxy started");
        Ok(FaultProxy {
            listen_addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address to dial instead of the target.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.shared.state.borrow().mode
    }

    /// Switches the mode, for new and existing connections. Returns once the listener reflects
    /// it; fails if re-opening the listener failed (another process took the port meanwhile).
    pub fn set_mode(&self, mode: Mode) -> io::Result<()> {
        tracing::info!(listen_addr = %self.listen_addr, ?mode, "fault proxy: set mode");
        let generation = self.shared.publish(mode);
        self.shared.wait_applied(generation, APPLY_TIMEOUT)
    }

    /// What the proxy forwarded and dropped so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(listen_addr = %self.listen_addr, "fault proxy thread panicked");
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("listen_addr", &self.listen_addr)
            .field("target", &self.shared.target)
            .field("mode", &self.mode())
            .finish()
    }
}
