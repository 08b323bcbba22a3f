//! Handshakes in flight per remote address, for the TLS acceptor (`acceptor.rs`).
//!
//! One address may hold at most [`PER_ADDRESS_MAX`] handshakes at once; a new connection past
//! that ends the address's oldest handshake. A single host opening many silent connections (a
//! slow-loris) therefore holds a few of the listener's slots, never all of them, and its own
//! newest connection is the one that gets through. Not here: the listener-wide bound (a
//! semaphore in the acceptor) and the handshake itself.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::task::AbortHandle;

/// Handshakes one remote address may have in flight on one listener.
pub const PER_ADDRESS_MAX: usize = 32;

/// The handshake tasks in flight, by remote address, oldest first.
#[derive(Default)]
pub struct InFlight {
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    next_id: u64,
    by_address: HashMap<IpAddr, VecDeque<(u64, AbortHandle)>>,
}

impl InFlight {
    /// Spawns `start(id)` as the handshake of a connection from `address`, first ending the
    /// address's oldest handshake if it is at the bound. The task must call [`InFlight::done`]
    /// with its id when the handshake is over. Returns whether an older handshake was ended.
    pub fn spawn<F>(&self, address: IpAddr, start: impl FnOnce(u64) -> F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // The lock is held across the spawn, so a task that ends at once finds its own entry.
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let id = tasks.next_id;
        tasks.next_id += 1;
        let queue = tasks.by_address.entry(address).or_default();
        let mut evicted = false;
        while queue.len() >= PER_ADDRESS_MAX {
            if let Some((_, oldest)) = queue.pop_front() {
                oldest.abort();
                evicted = true;
            }
        }
        let handle = tokio::spawn(start(id)).abort_handle();
        queue.push_back((id, handle));
        evicted
    }

    /// The handshake `id` from `address` is over (established or refused).
    pub fn done(&self, address: IpAddr, id: u64) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(queue) = tasks.by_address.get_mut(&address) {
            queue.retain(|(task, _)| *task != id);
            if queue.is_empty() {
                tasks.by_address.remove(&address);
            }
        }
    }

    /// Handshakes in flight from `address`.
    #[cfg(test)]
    pub fn count(&self, address: IpAddr) -> usize {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        tasks.by_address.get(&address).map_or(0, VecDeque::len)
    }
}
