//! An entry's task and its sync cycle: when a cycle runs (woken, on the interval, when the link
//! comes back, retried after a failure), and the cycle itself: scan here, the peer's manifest,
//! files still settling left out, the three-way plan, its actions carried out (`actions`), files
//! both sides agree on settled, and the entry's status kept up to date.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tandem_proto::files as pb;
use tandem_replication::files::path::RelPath;
use tandem_replication::files::plan::{self, Action, Row};

use crate::config::FilesConfig;

use super::handle::FileSync;
use super::manifest::{row_from_pb, scan_entry};
use super::watcher::{DEBOUNCE, SETTLE};

/// How long a switchover (or a resync) waits for files still settling before it goes ahead
/// without them; well below the switchover's own deadline.
const SETTLING_WAIT_MAX: Duration = Duration::from_secs(2);
/// After a failed cycle, the wait before the next.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl FileSync {
    /// One entry's task: a cycle whenever woken, on its interval, and when the link comes back.
    pub(super) async fn run(self, index: usize) {
        let interval = self.inner.entries[index].scan_interval;
        let mut node = self.inner.node_status.clone();
        let mut could = false;
        let mut next_scan = tokio::time::Instant::now();
        // The asked-for cycle whose files were still settling, and since when.
        let mut settling_since: Option<(u64, tokio::time::Instant)> = None;
        loop {
            let able = self.may_sync();
            if able && (!could || tokio::time::Instant::now() >= next_scan) {
                // Just became able (promotion, link back) or the interval passed: a full cycle.
                self.inner.wake[index].notify_one();
            }
            could = able;
            tokio::select! {
                () = self.inner.wake[index].notified() => {}
                () = tokio::time::sleep_until(next_scan) => { continue; }
                changed = node.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !self.may_sync() {
                continue;
            }
            tokio::time::sleep(DEBOUNCE).await;
            let asked = self.inner.requested.load(Ordering::SeqCst);
            next_scan = tokio::time::Instant::now() + interval;
            match self.cycle(index).await {
                Ok(deferred) => {
                    // A file written just before a switchover is shipped before the hand-over:
                    // the request is done once a cycle leaves nothing to settle. A file still
                    // being written does not hold it up longer than `SETTLING_WAIT_MAX`: once the
                    // roles swap, the new active's comparison fetches it.
                    let waited_enough = match settling_since {
                        Some((target, since)) if target == asked => {
                            since.elapsed() >= SETTLING_WAIT_MAX
                        }
                        _ => {
                            settling_since = Some((asked, tokio::time::Instant::now()));
                            false
                        }
                    };
                    if !deferred || waited_enough {
                        self.inner.completed[index].fetch_max(asked, Ordering::SeqCst);
                        settling_since = None;
                    }
                    if deferred {
                        // A file still settling: look again once it may have.
                        let wake = self.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(SETTLE).await;
                            wake.inner.wake[index].notify_one();
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(entry = %self.inner.entries[index].name, "file sync: {error}");
                    self.set_status(index, |status| status.error = error.clone());
                    next_scan = tokio::time::Instant::now() + RETRY_AFTER;
                }
            }
        }
    }

    /// Scans both sides and carries out the plan. `Ok(true)` if some file was left to settle.
    async fn cycle(&self, index: usize) -> Result<bool, String> {
        let entry = self.inner.entries[index].clone();
        let _lock = self.inner.locks[index].lock().await;
        let local = self.scan_local(index).await?;
        let peer = self.peer_rows(&entry.name).await?;
        // Files still being written are left alone this time.
        let now_ns = wall_ns();
        let settle_ns = i64::try_from(SETTLE.as_nanos()).unwrap_or(i64::MAX);
        let young = |row: &Row| {
            row.current
                .as_ref()
                .is_some_and(|version| now_ns - version.mtime_ns < settle_ns)
        };
        let mut deferred: Vec<RelPath> = local
            .iter()
            .chain(peer.iter())
            .filter(|(_, row)| young(row))
            .map(|(path, _)| path.clone())
            .collect();
        deferred.sort();
        deferred.dedup();
        let mut local_view = local.clone();
        let mut peer_view = peer.clone();
        for path in &deferred {
            local_view.remove(path);
            peer_view.remove(path);
        }
        let actions = plan::plan(&local_view, &peer_view, &self.inner.node, &self.inner.peer);
        let size_of = |action: &Action| -> u64 {
            let rows = match action {
                Action::Push(_) => &local,
                Action::Pull(_) | Action::Conflict { .. } => &peer,
                _ => return 0,
            };
            rows.get(action.path())
                .and_then(|row| row.current.as_ref())
                .map_or(0, |version| version.size)
        };
        let moving = |action: &Action| !matches!(action, Action::Agree(_));
        let mut pending_files = actions.iter().filter(|a| moving(a)).count() as u64;
        let mut pending_bytes: u64 = actions.iter().map(size_of).sum();
        self.set_status(index, |status| {
            status.pending_files = pending_files;
            status.pending_bytes = pending_bytes;
        });
        let mut errors = Vec::new();
        let mut agreed = Vec::new();
        for action in &actions {
            if let Action::Agree(path) = action {
                agreed.push(path.clone());
                continue;
            }
            if let Err(error) = self.carry_out(&entry, action, &local, &peer).await {
                errors.push(error);
            }
            pending_files = pending_files.saturating_sub(1);
            pending_bytes = pending_bytes.saturating_sub(size_of(action));
            self.set_status(index, |status| {
                status.pending_files = pending_files;
                status.pending_bytes = pending_bytes;
            });
        }
        if !agreed.is_empty()
            && let Err(error) = self.agree(&entry, &agreed, &local).await
        {
            errors.push(error);
        }
        self.set_status(index, |status| {
            status.pending_files = 0;
            status.pending_bytes = 0;
            if errors.is_empty() {
                status.error.clear();
                if deferred.is_empty() {
                    status.last_sync = Some(u64::try_from(now_ns / 1_000_000).unwrap_or(0));
                }
            } else {
                status.error = errors.join("; ");
            }
        });
        if errors.is_empty() {
            Ok(!deferred.is_empty())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn scan_local(&self, index: usize) -> Result<BTreeMap<RelPath, Row>, String> {
        let entry = &self.inner.entries[index];
        scan_entry(&self.inner.manifest, entry, self.term()).await
    }

    async fn peer_rows(&self, entry: &str) -> Result<BTreeMap<RelPath, Row>, String> {
        let reply = self
            .inner
            .client
            .clone()
            .list(pb::ListRequest {
                entry: entry.to_string(),
            })
            .await
            .map_err(|status| format!("the peer's manifest: {}", status.message()))?
            .into_inner();
        let mut rows = BTreeMap::new();
        for row in reply.rows {
            let path = RelPath::parse(&row.path)
                .map_err(|error| format!("the peer's manifest: {error}"))?;
            rows.insert(path, row_from_pb(row));
        }
        Ok(rows)
    }

    async fn agree(
        &self,
        entry: &FilesConfig,
        paths: &[RelPath],
        local: &BTreeMap<RelPath, Row>,
    ) -> Result<(), String> {
        let mut rows = Vec::new();
        let mut settle = Vec::new();
        for path in paths {
            let current = local.get(path).and_then(|row| row.current.clone());
            match current {
                Some(version) => {
                    let key = version.key();
                    rows.push((
                        path.clone(),
                        Some(Row {
                            current: Some(version),
                            synced: Some(key.clone()),
                            term: local.get(path).map_or(0, |row| row.term),
                        }),
                    ));
                    settle.push(pb::SettleRow {
                        path: path.to_string(),
                        synced: key,
                    });
                }
                None => {
                    rows.push((path.clone(), None));
                    settle.push(pb::SettleRow {
                        path: path.to_string(),
                        synced: String::new(),
                    });
                }
            }
        }
        self.settle_peer(&entry.name, settle).await?;
        self.store(&entry.name, rows).await
    }
}

fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}
