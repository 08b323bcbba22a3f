//! The inotify watcher (the `notify` crate) that wakes an entry's task when its directory
//! changes, and the times around it: how long a file must be left alone before it is shipped
//! ([`SETTLE`]) and how long a wake-up waits for more events ([`DEBOUNCE`]). A missed event is
//! harmless: the periodic scan finds every change.

use std::sync::Arc;
use std::time::Duration;

use super::handle::FileSync;

/// A file modified less than this long ago is left for a later cycle.
pub(super) const SETTLE: Duration = Duration::from_millis(300);
/// After a watcher event, the wait for more before a cycle starts.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(50);

impl FileSync {
    pub(super) fn start_watchers(&self) {
        use notify::Watcher;
        let mut watchers = Vec::new();
        for (index, entry) in self.inner.entries.iter().enumerate() {
            let inner = Arc::downgrade(&self.inner);
            let handler = move |event: notify::Result<notify::Event>| {
                let Some(inner) = inner.upgrade() else { return };
                match &event {
                    Err(error) => {
                        tracing::warn!(%error, "file watcher error; the next cycle scans everything");
                    }
                    Ok(event) if !may_be_a_change(event) => return,
                    Ok(_) => {}
                }
                inner.wake[index].notify_one();
            };
            let mode = if entry.filter.recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            match notify::recommended_watcher(handler)
                .and_then(|mut watcher| watcher.watch(&entry.dir, mode).map(|()| watcher))
            {
                Ok(watcher) => watchers.push(watcher),
                Err(error) => tracing::error!(
                    entry = %entry.name, %error,
                    "cannot watch the directory; only the periodic scan will find changes"
                ),
            }
        }
        if let Ok(mut kept) = self.inner._watchers.lock() {
            *kept = watchers;
        }
    }
}

/// Whether a watcher event may mean that a file changed. Opening a file does not: this node opens
/// its files itself to hash and send them, and waking on that would start the next cycle at once,
/// so a transfer the peer keeps refusing would be retried in a tight loop instead of after
/// [`RETRY_AFTER`](super::cycle::RETRY_AFTER). Closing a file that was open for writing does.
fn may_be_a_change(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}
