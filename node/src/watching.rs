//! Waiting on a `watch` channel that may be absent (a part not attached) or closed.

use tokio::sync::watch;

/// The next change on `slot`'s receiver: `true` when a new value arrived. When the sender is
/// gone the slot is emptied and this returns `false` once; an empty slot never returns, so it
/// can sit in a `select!` beside branches that do.
pub async fn next_change<T>(slot: &mut Option<watch::Receiver<T>>) -> bool {
    let Some(receiver) = slot.as_mut() else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_ok() {
        return true;
    }
    *slot = None;
    false
}
