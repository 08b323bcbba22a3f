//! File replication (DESIGN.md §7): the sync loop on the active, the peer's `Files` service, and
//! the watcher that wakes the loop.
//!
//! Each `[[files]]` entry has one task. While this node is active and the link is `ok`, a cycle
//! scans the directory into the manifest (`files.db`), asks the peer for its manifest (the peer
//! scans too), runs the three-way plan (`tandem_replication::files::plan`) and carries it out:
//! pushes, pulls, deletions, conflict copies and settling. A cycle runs when the inotify watcher
//! sees a change (after a short debounce), every `scan_interval`, after the link comes back, on
//! `tandemctl resync --files`, and when a switchover asks for one (it waits for the files).
//! A file modified less than [`SETTLE`] ago is left for a later cycle, and the sender gives up a
//! file that changes while it is read, so a file still being written is not shipped half done.
//!
//! Transfers use a gRPC channel of their own to the peer's port (never the keep-alives'
//! connection), are read and written on blocking threads, and respect the entry's bandwidth.
//! The peer's service refuses a path that escapes the directory, and refuses to be written to
//! while it is itself the active.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_proto::files as pb;
use tandem_proto::files::files_client::FilesClient;
use tandem_replication::files::manifest::Manifest;
use tandem_replication::files::path::{PathError, RelPath};
use tandem_replication::files::plan::{self, Action, Row, Side, Version};
use tandem_replication::files::scan;
use tandem_replication::files::transfer::{self, IncomingFile, OutgoingFile, TransferError};
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status as RpcStatus, Streaming};

use crate::admin::status::{FilesStatus, Status};
use crate::config::{Config, FilesConfig};
use crate::driver::{DriverHandle, Input};

/// A file modified less than this long ago is left for a later cycle.
const SETTLE: Duration = Duration::from_millis(300);
/// After a watcher event, the wait for more before a cycle starts.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long a switchover (or a resync) waits for files still settling before it goes ahead
/// without them; well below the switchover's own deadline.
const SETTLING_WAIT_MAX: Duration = Duration::from_secs(2);
/// After a failed cycle, the wait before the next.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long a request from the peer waits for an entry that this node's own cycle holds. Both
/// nodes run a cycle while both are active (a split brain, a hand-over in progress), each
/// holding its own entry and asking the other: without a bound the two requests would wait for
/// each other forever and no file would move again.
const PEER_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Chunks in flight between the reading thread and the stream.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Why the reading thread stopped when the stream it fed was dropped.
const PEER_HUNG_UP: &str = "the peer hung up";

/// The running file replication; cheap to clone.
#[derive(Clone)]
pub struct FileSync {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    peer: String,
    entries: Vec<FilesConfig>,
    manifest: Manifest,
    node_status: watch::Receiver<Status>,
    driver: DriverHandle,
    client: FilesClient<Channel>,
    status: watch::Sender<Vec<FilesStatus>>,
    /// Per entry: wakes its task.
    wake: Vec<Notify>,
    /// Cycles asked for (by a switchover or resync), and the last asked one each entry finished
    /// without an error.
    requested: AtomicU64,
    completed: Vec<AtomicU64>,
    /// One operation at a time per entry (the loop here, the service for the peer).
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Keeps the inotify watchers alive.
    _watchers: Mutex<Vec<notify::RecommendedWatcher>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Manifest(#[from] tandem_replication::files::manifest::ManifestError),
    #[error("cannot set up the channel to the peer: {0}")]
    Channel(String),
}

impl FileSync {
    pub async fn start(
        config: &Config,
        handle: &DriverHandle,
        peer_tls: Arc<rustls::ClientConfig>,
    ) -> Result<FileSync, FilesError> {
        let manifest = Manifest::open(&config.node.data_dir).await?;
        let channel = crate::tls::connect_lazy(
            &config.peer.address,
            &config.peer.name,
            peer_tls,
            Duration::from_secs(2),
        )
        .map_err(|error| FilesError::Channel(error.to_string()))?;
        let entries = config.files.clone();
        for entry in &entries {
            let removed = transfer::sweep_temp_files(&entry.dir);
            if removed > 0 {
                tracing::info!(entry = %entry.name, removed, "removed temp files a crash left behind");
            }
        }
        let (status, _) = watch::channel(
            entries
                .iter()
                .map(|entry| FilesStatus {
                    name: entry.name.clone(),
                    ..FilesStatus::default()
                })
                .collect(),
        );
        let inner = Arc::new(Inner {
            node: config.node.name.clone(),
            peer: config.peer.name.clone(),
            manifest,
            node_status: handle.status.clone(),
            driver: handle.clone(),
            client: FilesClient::new(channel),
            status,
            wake: entries.iter().map(|_| Notify::new()).collect(),
            requested: AtomicU64::new(0),
            completed: entries.iter().map(|_| AtomicU64::new(0)).collect(),
            locks: entries
                .iter()
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            _watchers: Mutex::new(Vec::new()),
            entries,
        });
        let sync = FileSync { inner };
        sync.start_watchers();
        for index in 0..sync.inner.entries.len() {
            tokio::spawn(sync.clone().run(index));
        }
        Ok(sync)
    }

    pub fn status(&self) -> watch::Receiver<Vec<FilesStatus>> {
        self.inner.status.subscribe()
    }

    /// `status.files` now.
    pub fn current(&self) -> Vec<FilesStatus> {
        self.inner.status.borrow().clone()
    }

    pub fn service(&self) -> FilesService {
        FilesService { sync: self.clone() }
    }

    /// Asks every entry for a full cycle; returns the number to wait for with [`synced_through`].
    pub fn request_sync(&self) -> u64 {
        let target = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        for wake in &self.inner.wake {
            wake.notify_one();
        }
        target
    }

    /// Whether every entry finished a cycle asked for at `target` or later without an error.
    pub fn synced_through(&self, target: u64) -> bool {
        self.inner
            .completed
            .iter()
            .all(|done| done.load(Ordering::SeqCst) >= target)
    }

    /// `tandemctl resync --files`: a full cycle of every entry, waited for (up to 10 minutes).
    pub async fn admin_resync(&self) -> Result<String, RpcStatus> {
        if self.inner.entries.is_empty() {
            return Err(RpcStatus::failed_precondition(
                "no [[files]] entries are configured",
            ));
        }
        if self.inner.node_status.borrow().node.role != "active" {
            return Err(RpcStatus::failed_precondition(
                "file replication runs from the active: run resync --files there",
            ));
        }
        let target = self.request_sync();
        let mut status = self.status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            if self.synced_through(target) {
                let names: Vec<&str> = self.inner.entries.iter().map(|e| e.name.as_str()).collect();
                return Ok(format!(
                    "files scanned and in sync on both nodes: {}",
                    names.join(", ")
                ));
            }
            let errors: Vec<String> = status
                .borrow()
                .iter()
                .filter(|entry| !entry.error.is_empty())
                .map(|entry| format!("{}: {}", entry.name, entry.error))
                .collect();
            if !errors.is_empty() && !self.may_sync() {
                return Err(RpcStatus::unavailable(errors.join("; ")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok("the scan is still running; see `tandemctl status` (files)".into());
            }
            // The cycle's completion is counted just after its last status change: look again
            // shortly even without one.
            if let Ok(Err(_)) =
                tokio::time::timeout(Duration::from_millis(100), status.changed()).await
            {
                return Err(RpcStatus::unavailable("the node is stopping"));
            }
        }
    }

    fn start_watchers(&self) {
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

    fn set_status(&self, index: usize, change: impl FnOnce(&mut FilesStatus)) {
        self.inner.status.send_modify(|all| {
            if let Some(entry) = all.get_mut(index) {
                change(entry);
            }
        });
    }

    fn term(&self) -> u64 {
        self.inner
            .node_status
            .borrow()
            .node
            .term
            .as_ref()
            .map_or(0, |term| term.epoch)
    }

    fn may_sync(&self) -> bool {
        let status = self.inner.node_status.borrow();
        status.node.role == "active"
            && status.peer.state == "ok"
            && status.node.monitoring != "stopped"
    }

    async fn record(&self, kind: &str, message: String) {
        tracing::warn!(kind, "{message}");
        let _ = self
            .inner
            .driver
            .inputs
            .send(Input::Record {
                kind: kind.into(),
                message,
            })
            .await;
    }

    /// One entry's task: a cycle whenever woken, on its interval, and when the link comes back.
    async fn run(self, index: usize) {
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

    async fn store(&self, entry: &str, rows: Vec<(RelPath, Option<Row>)>) -> Result<(), String> {
        self.inner
            .manifest
            .store(entry, &rows)
            .await
            .map_err(|error| error.to_string())
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

    async fn settle_peer(&self, entry: &str, rows: Vec<pb::SettleRow>) -> Result<(), String> {
        self.inner
            .client
            .clone()
            .settle(pb::SettleRequest {
                entry: entry.to_string(),
                rows,
            })
            .await
            .map(drop)
            .map_err(|status| format!("settle on the peer: {}", status.message()))
    }

    async fn carry_out(
        &self,
        entry: &FilesConfig,
        action: &Action,
        local: &BTreeMap<RelPath, Row>,
        peer: &BTreeMap<RelPath, Row>,
    ) -> Result<(), String> {
        let current = |rows: &BTreeMap<RelPath, Row>, path: &RelPath| {
            rows.get(path).and_then(|row| row.current.clone())
        };
        match action {
            Action::Agree(_) => Ok(()),
            Action::Push(path) => {
                let Some(version) = current(local, path) else {
                    return Ok(());
                };
                self.push(entry, path, path, &version).await
            }
            Action::Pull(path) => self.pull(entry, path, path).await,
            Action::DeleteOnPeer(path) => {
                let expected = current(peer, path).map(|v| v.key()).unwrap_or_default();
                self.inner
                    .client
                    .clone()
                    .remove(pb::RemoveRequest {
                        entry: entry.name.clone(),
                        path: path.to_string(),
                        expected,
                    })
                    .await
                    .map_err(|status| format!("delete {path} on the peer: {}", status.message()))?;
                self.store(&entry.name, vec![(path.clone(), None)]).await
            }
            Action::DeleteLocal(path) => {
                if let Some(version) = current(local, path) {
                    let on_disk = transfer::stat(&entry.dir, path).map_err(|e| e.to_string())?;
                    if on_disk.map(|(size, mtime, _)| (size, mtime))
                        != Some((version.size, version.mtime_ns))
                    {
                        return Ok(()); // changed since the scan: the next cycle decides
                    }
                }
                let dir = entry.dir.clone();
                let target = path.clone();
                blocking(move || transfer::remove(&dir, &target)).await?;
                self.settle_peer(
                    &entry.name,
                    vec![pb::SettleRow {
                        path: path.to_string(),
                        synced: String::new(),
                    }],
                )
                .await?;
                self.store(&entry.name, vec![(path.clone(), None)]).await
            }
            Action::Conflict {
                path,
                winner,
                loser_copy,
            } => {
                match winner {
                    Side::Local => {
                        // The peer's version is kept as the copy on both sides.
                        self.pull(entry, path, loser_copy).await?;
                        let copy = current_after_write(&entry.dir, loser_copy)?;
                        self.push(entry, loser_copy, loser_copy, &copy).await?;
                        let Some(mine) = current(local, path) else {
                            return Ok(());
                        };
                        self.push(entry, path, path, &mine).await?;
                    }
                    Side::Peer => {
                        let Some(mine) = current(local, path) else {
                            return Ok(());
                        };
                        let (dir, from, to) = (entry.dir.clone(), path.clone(), loser_copy.clone());
                        blocking(move || transfer::rename_within(&dir, &from, &to)).await?;
                        let moved = mine;
                        self.store(
                            &entry.name,
                            vec![
                                (path.clone(), None),
                                (
                                    loser_copy.clone(),
                                    Some(Row {
                                        current: Some(moved.clone()),
                                        synced: None,
                                        term: self.term(),
                                    }),
                                ),
                            ],
                        )
                        .await?;
                        self.push(entry, loser_copy, loser_copy, &moved).await?;
                        self.pull(entry, path, path).await?;
                    }
                }
                let (kept, copied) = match winner {
                    Side::Local => (self.inner.node.as_str(), self.inner.peer.as_str()),
                    Side::Peer => (self.inner.peer.as_str(), self.inner.node.as_str()),
                };
                self.record(
                    "file_conflict",
                    format!(
                        "{}/{path} changed on both nodes: {kept}'s newer version stays, {copied}'s is kept as {loser_copy} on both",
                        entry.name
                    ),
                )
                .await;
                Ok(())
            }
        }
    }

    /// Sends the local file `from` to the peer as `to`, then records it as synced here.
    async fn push(
        &self,
        entry: &FilesConfig,
        from: &RelPath,
        to: &RelPath,
        version: &Version,
    ) -> Result<(), String> {
        let (messages, outcome) = read_for_sending(
            entry.dir.clone(),
            entry.name.clone(),
            from.clone(),
            to.clone(),
            version.clone(),
            self.term(),
            entry.bandwidth,
        );
        let result = self
            .inner
            .client
            .clone()
            .push(Request::new(ReceiverStream::new(messages)))
            .await;
        let read = outcome
            .await
            .unwrap_or_else(|_| Err("the reader stopped".into()));
        match (read, result) {
            (Err(error), _) if error.contains("changed while it was read") => Ok(()),
            // The peer ended the stream early (a full disk, a refused path): its reason is the
            // one to report, not that the stream was dropped.
            (Err(error), Err(status)) if error == PEER_HUNG_UP => Err(format!(
                "send {from} to {}: {}",
                self.inner.peer,
                status.message()
            )),
            (Err(error), _) => Err(format!("send {from}: {error}")),
            (Ok(_), Err(status)) => Err(format!("send {from}: {}", status.message())),
            (Ok(hash), Ok(_)) => {
                let mut sent = version.clone();
                sent.hash = hash;
                let key = sent.key();
                self.store(
                    &entry.name,
                    vec![(
                        to.clone(),
                        Some(Row {
                            current: Some(sent),
                            synced: Some(key),
                            term: self.term(),
                        }),
                    )],
                )
                .await
            }
        }
    }

    /// Copies the peer's `from` to the local `to`, records it here and settles it on the peer.
    async fn pull(&self, entry: &FilesConfig, from: &RelPath, to: &RelPath) -> Result<(), String> {
        let stream = self
            .inner
            .client
            .clone()
            .fetch(pb::FetchRequest {
                entry: entry.name.clone(),
                path: from.to_string(),
            })
            .await
            .map_err(|status| format!("fetch {from}: {}", status.message()))?
            .into_inner();
        let stream = stream.map(|item| item.map_err(|status| status.message().to_string()));
        let (version, term) = receive(entry.dir.clone(), Some(to.clone()), stream)
            .await
            .map_err(|error| format!("fetch {from}: {error}"))?;
        let key = version.key();
        self.store(
            &entry.name,
            vec![(
                to.clone(),
                Some(Row {
                    current: Some(version),
                    synced: Some(key.clone()),
                    term,
                }),
            )],
        )
        .await?;
        if from == to {
            self.settle_peer(
                &entry.name,
                vec![pb::SettleRow {
                    path: from.to_string(),
                    synced: key,
                }],
            )
            .await?;
        }
        Ok(())
    }
}

/// Scans an entry's directory against its manifest and stores what changed.
async fn scan_entry(
    manifest: &Manifest,
    entry: &FilesConfig,
    term: u64,
) -> Result<BTreeMap<RelPath, Row>, String> {
    let previous = manifest
        .load(&entry.name)
        .await
        .map_err(|e| e.to_string())?;
    let (dir, filter) = (entry.dir.clone(), entry.filter.clone());
    let scanned = tokio::task::spawn_blocking(move || {
        scan::scan(&dir, &filter, &previous, term).map(|s| (s, previous))
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| format!("scan {}: {error}", entry.dir.display()))?;
    let (scanned, _previous) = scanned;
    for problem in &scanned.unreadable {
        tracing::warn!(entry = %entry.name, "cannot read {problem}");
    }
    let changes: Vec<(RelPath, Option<Row>)> = scanned
        .changed
        .iter()
        .map(|path| (path.clone(), scanned.rows.get(path).cloned()))
        .collect();
    manifest
        .store(&entry.name, &changes)
        .await
        .map_err(|error| error.to_string())?;
    Ok(scanned.rows)
}

fn current_after_write(dir: &Path, path: &RelPath) -> Result<Version, String> {
    let (size, mtime_ns, mode) = transfer::stat(dir, path)
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("{path} vanished"))?;
    let hash =
        scan::hash_file(&dir.join(path.as_str())).map_err(|error| format!("{path}: {error}"))?;
    Ok(Version {
        size,
        mtime_ns,
        mode,
        hash,
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())
}

/// Reads `path` on a blocking thread into push messages (header, chunks, trailer), at most
/// `bandwidth` bytes a second. The outcome is the content's hash, or why it stopped.
fn read_for_sending(
    dir: PathBuf,
    entry: String,
    from: RelPath,
    to: RelPath,
    version: Version,
    term: u64,
    bandwidth: Option<u64>,
) -> (
    mpsc::Receiver<pb::PushMessage>,
    tokio::sync::oneshot::Receiver<Result<String, String>>,
) {
    use pb::push_message::Body;
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (done, outcome) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<String, String> {
            let mut file = OutgoingFile::open(&dir, &from, &version).map_err(|e| e.to_string())?;
            let header = pb::PushMessage {
                body: Some(Body::Header(pb::FileHeader {
                    entry,
                    path: to.to_string(),
                    size: version.size,
                    mtime_ns: version.mtime_ns,
                    mode: version.mode,
                    term,
                })),
            };
            tx.blocking_send(header)
                .map_err(|_| PEER_HUNG_UP.to_string())?;
            let started = Instant::now();
            let mut sent = 0u64;
            while let Some(chunk) = file.next_chunk().map_err(|e| e.to_string())? {
                sent += chunk.data.len() as u64;
                let message = pb::PushMessage {
                    body: Some(Body::Chunk(pb::FileChunk {
                        offset: chunk.offset,
                        data: chunk.data,
                        checksum: chunk.checksum,
                    })),
                };
                tx.blocking_send(message)
                    .map_err(|_| PEER_HUNG_UP.to_string())?;
                if let Some(limit) = bandwidth {
                    let due = Duration::from_secs_f64(sent as f64 / limit as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            let hash = file.finish().map_err(|e| e.to_string())?;
            let trailer = pb::PushMessage {
                body: Some(Body::Trailer(pb::FileTrailer { hash: hash.clone() })),
            };
            tx.blocking_send(trailer)
                .map_err(|_| PEER_HUNG_UP.to_string())?;
            Ok(hash)
        })();
        let _ = done.send(result);
    });
    (rx, outcome)
}

/// Receives one file (header, chunks, trailer) into `dir`, at `target` or the header's path.
/// Returns the version written and the sender's term.
async fn receive(
    dir: PathBuf,
    target: Option<RelPath>,
    mut stream: impl Stream<Item = Result<pb::PushMessage, String>> + Unpin,
) -> Result<(Version, u64), ReceiveError> {
    use pb::push_message::Body;
    let header = match stream.next().await {
        Some(Ok(pb::PushMessage {
            body: Some(Body::Header(header)),
        })) => header,
        Some(Err(error)) => return Err(ReceiveError::Stream(error)),
        _ => {
            return Err(ReceiveError::Protocol(
                "the stream does not start with a header".into(),
            ));
        }
    };
    let path = match target {
        Some(target) => target,
        None => RelPath::parse(&header.path).map_err(ReceiveError::Path)?,
    };
    let (tx, mut rx) = mpsc::channel::<Body>(CHUNKS_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || -> Result<Version, ReceiveError> {
        let mut file = IncomingFile::begin(&dir, &path, header.size, header.mtime_ns, header.mode)?;
        while let Some(body) = rx.blocking_recv() {
            match body {
                Body::Chunk(chunk) => {
                    file.write_chunk(chunk.offset, &chunk.data, &chunk.checksum)?
                }
                Body::Trailer(trailer) => return Ok(file.finish(&trailer.hash)?),
                Body::Header(_) => {
                    return Err(ReceiveError::Protocol("a second header".into()));
                }
            }
        }
        Err(ReceiveError::Protocol(
            "the stream ended before the trailer".into(),
        ))
    });
    while let Some(item) = stream.next().await {
        let body = match item {
            Ok(pb::PushMessage { body: Some(body) }) => body,
            Ok(_) => continue,
            Err(error) => {
                drop(tx);
                let _ = writer.await;
                return Err(ReceiveError::Stream(error));
            }
        };
        let last = matches!(body, Body::Trailer(_));
        if tx.send(body).await.is_err() || last {
            break;
        }
    }
    drop(tx);
    let version = writer
        .await
        .map_err(|error| ReceiveError::Protocol(error.to_string()))??;
    Ok((version, header.term))
}

#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error(transparent)]
    Path(PathError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Stream(String),
}

impl From<ReceiveError> for RpcStatus {
    fn from(error: ReceiveError) -> RpcStatus {
        match &error {
            ReceiveError::Path(_) | ReceiveError::Transfer(TransferError::Path(_)) => {
                RpcStatus::invalid_argument(error.to_string())
            }
            ReceiveError::Transfer(TransferError::Io { message, .. })
                if message.contains("No space left") =>
            {
                RpcStatus::resource_exhausted(error.to_string())
            }
            // What arrived is not what the header and the checksums promised.
            ReceiveError::Transfer(
                TransferError::ChunkChecksum { .. }
                | TransferError::ChunkOrder { .. }
                | TransferError::Size { .. }
                | TransferError::Hash { .. },
            )
            | ReceiveError::Protocol(_) => RpcStatus::data_loss(error.to_string()),
            _ => RpcStatus::internal(error.to_string()),
        }
    }
}

fn row_from_pb(row: pb::ManifestRow) -> Row {
    Row {
        current: row.current.map(|version| Version {
            size: version.size,
            mtime_ns: version.mtime_ns,
            mode: version.mode,
            hash: version.hash,
        }),
        synced: (!row.synced.is_empty()).then_some(row.synced),
        term: row.term,
    }
}

fn row_to_pb(path: &RelPath, row: &Row) -> pb::ManifestRow {
    pb::ManifestRow {
        path: path.to_string(),
        current: row.current.as_ref().map(|version| pb::FileVersion {
            size: version.size,
            mtime_ns: version.mtime_ns,
            mode: version.mode,
            hash: version.hash.clone(),
        }),
        synced: row.synced.clone().unwrap_or_default(),
        term: row.term,
    }
}

/// Whether a watcher event may mean that a file changed. Opening a file does not: this node opens
/// its files itself to hash and send them, and waking on that would start the next cycle at once,
/// so a transfer the peer keeps refusing would be retried in a tight loop instead of after
/// [`RETRY_AFTER`]. Closing a file that was open for writing does.
fn may_be_a_change(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// The `Files` service on the peer port: what the active asks of this node.
#[derive(Clone)]
pub struct FilesService {
    sync: FileSync,
}

impl FilesService {
    fn entry(&self, name: &str) -> Result<(usize, FilesConfig), RpcStatus> {
        self.sync
            .inner
            .entries
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.name == name)
            .map(|(index, entry)| (index, entry.clone()))
            .ok_or_else(|| {
                RpcStatus::not_found(format!("this node has no [[files]] entry named {name:?}"))
            })
    }

    /// A node that is itself active takes no writes from its peer.
    fn refuse_if_active(&self) -> Result<(), RpcStatus> {
        if self.sync.inner.node_status.borrow().node.role == "active" {
            return Err(RpcStatus::failed_precondition(
                "this node is active: its files are the source, not a copy",
            ));
        }
        Ok(())
    }

    fn path(&self, entry: &str, text: &str) -> Result<RelPath, RpcStatus> {
        RelPath::parse(text).map_err(|error| {
            tracing::warn!(entry, "refused a path from the peer: {error}");
            RpcStatus::invalid_argument(format!("refused: {error}"))
        })
    }
}

type FetchStream = ReceiverStream<Result<pb::PushMessage, RpcStatus>>;

/// Takes `lock` for a request from the peer, or refuses with UNAVAILABLE after `wait` (this
/// node's own cycle holds the entry); the peer's cycle then ends with that error, lets go of
/// its own entry, and retries.
async fn lock_within<'a>(
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

#[tonic::async_trait]
impl pb::files_server::Files for FilesService {
    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListReply>, RpcStatus> {
        let (index, entry) = self.entry(&request.into_inner().entry)?;
        let _lock = lock_within(&self.sync.inner.locks[index], PEER_LOCK_WAIT, &entry.name).await?;
        let rows = scan_entry(&self.sync.inner.manifest, &entry, self.sync.term())
            .await
            .map_err(RpcStatus::internal)?;
        Ok(Response::new(pb::ListReply {
            rows: rows
                .iter()
                .map(|(path, row)| row_to_pb(path, row))
                .collect(),
        }))
    }

    async fn push(
        &self,
        request: Request<Streaming<pb::PushMessage>>,
    ) -> Result<Response<pb::FileAck>, RpcStatus> {
        self.refuse_if_active()?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::PushMessage {
                body: Some(pb::push_message::Body::Header(header)),
            })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(RpcStatus::invalid_argument("a push starts with its header")),
        };
        let (index, entry) = self.entry(&header.entry)?;
        let path = self.path(&entry.name, &header.path)?;
        let _lock = lock_within(&self.sync.inner.locks[index], PEER_LOCK_WAIT, &entry.name).await?;
        self.refuse_if_active()?;
        let first = pb::PushMessage {
            body: Some(pb::push_message::Body::Header(header)),
        };
        let rest = stream.map(|item| item.map_err(|status| status.message().to_string()));
        let all = tokio_stream::once(Ok(first)).chain(rest);
        let (version, term) = receive(entry.dir.clone(), Some(path.clone()), Box::pin(all))
            .await
            .map_err(|error| {
                tracing::warn!(entry = %entry.name, "refused a file from the peer: {error}");
                RpcStatus::from(error)
            })?;
        let key = version.key();
        self.sync
            .store(
                &entry.name,
                vec![(
                    path.clone(),
                    Some(Row {
                        current: Some(version),
                        synced: Some(key),
                        term,
                    }),
                )],
            )
            .await
            .map_err(RpcStatus::internal)?;
        Ok(Response::new(pb::FileAck {
            message: format!("{path} written"),
        }))
    }

    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<FetchStream>, RpcStatus> {
        let request = request.into_inner();
        let (index, entry) = self.entry(&request.entry)?;
        let path = self.path(&entry.name, &request.path)?;
        let version = {
            let _lock =
                lock_within(&self.sync.inner.locks[index], PEER_LOCK_WAIT, &entry.name).await?;
            let rows = self
                .sync
                .inner
                .manifest
                .load(&entry.name)
                .await
                .map_err(|error| RpcStatus::internal(error.to_string()))?;
            rows.get(&path)
                .and_then(|row| row.current.clone())
                .ok_or_else(|| {
                    RpcStatus::not_found(format!("{path} is not in this node's manifest"))
                })?
        };
        let (messages, outcome) = read_for_sending(
            entry.dir.clone(),
            entry.name.clone(),
            path.clone(),
            path,
            version,
            self.sync.term(),
            entry.bandwidth,
        );
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(async move {
            let mut messages = ReceiverStream::new(messages);
            while let Some(message) = messages.next().await {
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            if let Ok(Err(error)) = outcome.await {
                let _ = tx.send(Err(RpcStatus::aborted(error))).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::FileAck>, RpcStatus> {
        self.refuse_if_active()?;
        let request = request.into_inner();
        let (index, entry) = self.entry(&request.entry)?;
        let path = self.path(&entry.name, &request.path)?;
        let _lock = lock_within(&self.sync.inner.locks[index], PEER_LOCK_WAIT, &entry.name).await?;
        self.refuse_if_active()?;
        let rows = self
            .sync
            .inner
            .manifest
            .load(&entry.name)
            .await
            .map_err(|error| RpcStatus::internal(error.to_string()))?;
        let current = rows
            .get(&path)
            .and_then(|row| row.current.as_ref())
            .map(Version::key);
        if !request.expected.is_empty() && current.as_deref() != Some(request.expected.as_str()) {
            return Err(RpcStatus::aborted(format!(
                "{path} changed here; not deleted"
            )));
        }
        let dir = entry.dir.clone();
        let target = path.clone();
        tokio::task::spawn_blocking(move || transfer::remove(&dir, &target))
            .await
            .map_err(|error| RpcStatus::internal(error.to_string()))?
            .map_err(|error| match error {
                // A symlink or a file on the way: the peer named something it may not touch.
                TransferError::Path(error) => {
                    tracing::warn!(entry = %entry.name, "refused a path from the peer: {error}");
                    RpcStatus::invalid_argument(format!("refused: {error}"))
                }
                error => RpcStatus::internal(error.to_string()),
            })?;
        self.sync
            .store(&entry.name, vec![(path.clone(), None)])
            .await
            .map_err(RpcStatus::internal)?;
        Ok(Response::new(pb::FileAck {
            message: format!("{path} deleted"),
        }))
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::FileAck>, RpcStatus> {
        self.refuse_if_active()?;
        let request = request.into_inner();
        let (index, entry) = self.entry(&request.entry)?;
        let _lock = lock_within(&self.sync.inner.locks[index], PEER_LOCK_WAIT, &entry.name).await?;
        self.refuse_if_active()?;
        let rows = self
            .sync
            .inner
            .manifest
            .load(&entry.name)
            .await
            .map_err(|error| RpcStatus::internal(error.to_string()))?;
        let mut changes = Vec::with_capacity(request.rows.len());
        for settle in request.rows {
            let path = self.path(&entry.name, &settle.path)?;
            if settle.synced.is_empty() {
                if rows.get(&path).is_none_or(|row| row.current.is_none()) {
                    changes.push((path, None));
                }
                continue;
            }
            if let Some(row) = rows.get(&path)
                && row.current.as_ref().map(Version::key).as_deref() == Some(settle.synced.as_str())
            {
                let mut row = row.clone();
                row.synced = Some(settle.synced);
                changes.push((path, Some(row)));
            }
        }
        let count = changes.len();
        self.sync
            .store(&entry.name, changes)
            .await
            .map_err(RpcStatus::internal)?;
        Ok(Response::new(pb::FileAck {
            message: format!("{count} settled"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_request_gives_up_on_an_entry_this_node_holds() {
        let lock = tokio::sync::Mutex::new(());
        let held = lock.lock().await;
        let refused = lock_within(&lock, Duration::from_millis(20), "recordings")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(
            refused.message().contains("[[files]] recordings"),
            "{refused:?}"
        );
        drop(held);
        assert!(
            lock_within(&lock, Duration::from_millis(20), "recordings")
                .await
                .is_ok()
        );
    }
}
