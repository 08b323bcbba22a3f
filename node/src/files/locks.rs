//! The per-entry lock as the peer's requests take it: bounded, so that two nodes that both run
//! a cycle (both active) do not wait for each other forever.

use std::time::Duration;

use tonic::Status as RpcStatus;

/// How long a request from the peer waits for an entry that this node's own cycle holds. Both
/// nodes run a cycle while both are active (a split brain, a hand-over in progress), each
/// holding its own entry and asking the other: without a bound the two requests would wait for
/// each other forever and no file would move again.
pub(super) const PEER_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes `lock` for a request from the peer, or refuses with UNAVAILABLE after `wait` (this
/// node's own cycle holds the entry); the peer's cycle then ends with that error, lets go of
/// its own entry, and retries.
pub(super) async fn lock_within<'a>(
    lock: &'a tokio::sync::Mutex<()>,
    wait: Duration,
    entry: &str,
) -> Result<tokio::sync::MutexGuard<'a, ()>, RpcStatus> {
    tokio::time::timeout(wait, lock.lock()).await.map_err(|_| {
        RpcStatus::unavailable(format!(
            "[[files]] {entry}: this node's own sync cycle holds it (both nodes active?); try again"
        ))
    })
}
