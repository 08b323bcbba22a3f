//! The proxy's accept loop. It owns the listener: it closes it for `Refuse`, re-opens it on the
//! same port afterwards, and hands every accepted connection to a task of its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection;
use super::mode::Mode;
use super::shared::Shared;

/// At most this many connections are proxied at once. At the bound the loop stops accepting: new
/// dials complete in the kernel's backlog and wait there until a connection ends. A pair opens a
/// handful of connections, so the bound is only hit by a leak.
pub(crate) const CONNECTIONS_MAX: usize = 128;

/// The listen backlog when the listener is re-opened.
const BACKLOG: u32 = 128;

/// Pause after a failed `accept` (out of file descriptors, say), so a persistent error does not
/// spin the proxy's thread.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

pub(crate) struct AcceptLoop {
    /// Mode, counters and target, shared with the connections.
    shared: Arc<Shared>,
    /// The listener, `None` while the mode is `Refuse` so that dials get ECONNREFUSED.
    listener: Option<TcpListener>,
    /// The address to re-open the listener on: a proxy keeps its port for life, because the
    /// nodes' configs name it.
    listen_addr: SocketAddr,
    /// One permit per live connection; see [`CONNECTIONS_MAX`].
    permits: Arc<Semaphore>,
}

impl AcceptLoop {
    pub(crate) fn new(shared: Arc<Shared>, listener: TcpListener) -> io::Result<AcceptLoop> {
        Ok(AcceptLoop {
            shared,
            listen_addr: listener.local_addr()?,
            listener: Some(listener),
            permits: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
        })
    }

    pub(crate) fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Runs until the proxy is dropped.
    pub(crate) async fn run(mut self) {
        let mut state_rx = self.shared.state.subscribe();
        loop {
            let state = *state_rx.borrow_and_update();
            let result = self.apply(state.mode);
            self.shared.acknowledge(state.generation, &result);
            tokio::select! {
                changed = state_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                accepted = accept_bounded(&self.listener, &self.permits) => {
                    self.spawn_connection(accepted, state.refusals).await;
                }
            }
        }
    }

    /// Closes or re-opens the listener for `mode`.
    fn apply(&mut self, mode: Mode) -> io::Result<()> {
        if mode == Mode::Refuse {
            self.listener = None;
        } else if self.listener.is_none() {
            self.listener = Some(listen(self.listen_addr)?);
        }
        Ok(())
    }

    async fn spawn_connection(
        &self,
        accepted: io::Result<(TcpStream, OwnedSemaphorePermit)>,
        refusals: u64,
    ) {
        match accepted {
            Ok((client, permit)) => {
                self.shared.counters.accepted();
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    connection::serve(client, &shared, refusals).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "fault proxy: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Waits for a permit, then for a connection. Never completes while there is no listener.
async fn accept_bounded(
    listener: &Option<TcpListener>,
    permits: &Arc<Semaphore>,
) -> io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    let (client, _) = listener.accept().await?;
    Ok((client, permit))
}

/// Re-opens the listener on its old port. SO_REUSEADDR lets the bind succeed while connections
/// accepted on that port are still closing.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
