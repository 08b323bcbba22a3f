//! [`FileSync`], the running file replication, and its shared state: start-up (sweeping temp
//! files a crash left, spawning one task per `[[files]]` entry), the status it publishes, the
//! cycles a switchover or `tandemctl resync --files` asks for, and the events it records through
//! the [`NodeLink`] the daemon hands it. The loop itself is `cycle`, the watcher `watcher`, the
//! peer's service `peer_service`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_proto::files::files_client::FilesClient;
use tandem_replication::files::manifest::Manifest;
use tandem_replication::files::transfer;
use tokio::sync::{Notify, watch};
use tonic::Status as RpcStatus;
use tonic::transport::Channel;

use crate::admin::status::{FilesStatus, Status};
use crate::config::{Config, FilesConfig};

use super::error::FilesError;

/// Records one event (kind, message) in the node's event log; the daemon builds it around the
/// driver's inputs.
pub type RecordEvent =
    Arc<dyn Fn(String, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// All that file replication sees of the rest of the node: the node's status (to know when it
/// may sync) and a way to record events. It takes no commands and reaches no other part.
#[derive(Clone)]
pub struct NodeLink {
    pub status: watch::Receiver<Status>,
    pub record: RecordEvent,
}

/// The running file replication; cheap to clone.
#[derive(Clone)]
pub struct FileSync {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) node: String,
    pub(super) peer: String,
    pub(super) entries: Vec<FilesConfig>,
    pub(super) manifest: Manifest,
    pub(super) node_status: watch::Receiver<Status>,
    pub(super) record_event: RecordEvent,
    pub(super) client: FilesClient<Channel>,
    pub(super) status: watch::Sender<Vec<FilesStatus>>,
    /// Per entry: wakes its task.
    pub(super) wake: Vec<Notify>,
    /// Cycles asked for (by a switchover or resync), and the last asked one each entry finished
    /// without an error.
    pub(super) requested: AtomicU64,
    pub(super) completed: Vec<AtomicU64>,
    /// One operation at a time per entry (the loop here, the service for the peer).
    pub(super) locks: Vec<tokio::sync::Mutex<()>>,
    /// Keeps the inotify watchers alive.
    pub(super) _watchers: Mutex<Vec<notify::RecommendedWatcher>>,
}

impl FileSync {
    pub async fn start(
        config: &Config,
        link: NodeLink,
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
            node_status: link.status,
            record_event: link.record,
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

    pub(super) fn set_status(&self, index: usize, change: impl FnOnce(&mut FilesStatus)) {
        self.inner.status.send_modify(|all| {
            if let Some(entry) = all.get_mut(index) {
                change(entry);
            }
        });
    }

    pub(super) fn term(&self) -> u64 {
        self.inner
            .node_status
            .borrow()
            .node
            .term
            .as_ref()
            .map_or(0, |term| term.epoch)
    }

    pub(super) fn may_sync(&self) -> bool {
        let status = self.inner.node_status.borrow();
        status.node.role == "active"
            && status.peer.state == "ok"
            && status.node.monitoring != "stopped"
    }

    pub(super) async fn record(&self, kind: &str, message: String) {
        tracing::warn!(kind, "{message}");
        (self.inner.record_event)(kind.to_string(), message).await;
    }
}
