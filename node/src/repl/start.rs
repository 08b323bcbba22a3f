//! Starting the replicated database: open `data.db` (setting a damaged one aside), run the
//! migrations, and spawn the writer, ship, merge, prune and scheduled-verify tasks. The one
//! file that knows every task.

use std::sync::{Arc, Mutex};

use tandem_replication::log::HlcClock;
use tandem_replication::snapshot::{cleanup_old_generations, current_generation};
use tokio::sync::{mpsc, watch};

use super::handle::{Inner, ReplError, Replication, client_limits, mode_name};
use super::schema::{open_store, set_aside};
use super::{merge, prune, scheduled_verify, ship, writer};
use crate::admin::status::ReplicationStatus;
use crate::config::Config;
use crate::driver::handle::DriverHandle;

/// Writes waiting for the writer task at once; more wait for room.
const WRITE_QUEUE_BOUND: usize = 4096;
/// Orphan messages waiting for the merge task.
const MERGE_QUEUE_BOUND: usize = 16;

/// Inputs of the ship task queued at once.
const SHIP_QUEUE_BOUND: usize = 8192;

impl Replication {
    /// Opens `data.db`, runs the node's and the application's migrations, installs capture and
    /// starts the writer and ship tasks.
    pub async fn start(
        config: &Config,
        driver: DriverHandle,
        peer_tls: Arc<rustls::ClientConfig>,
    ) -> Result<Replication, ReplError> {
        let generation = current_generation(&config.node.data_dir)?;
        cleanup_old_generations(&config.node.data_dir)?;
        // A damaged data.db (truncated, corrupt pages) is set aside, never served: the node
        // starts on an empty one, `inconsistent`, and takes a full copy from its peer.
        let damaged = match tandem_replication::store::damage::damage(&generation.db_path).await {
            Some(problem) => Some(set_aside(
                &config.node.data_dir,
                &generation.db_path,
                &problem,
            )?),
            None => None,
        };
        let store = open_store(config, &generation.dir).await?;
        let last = store.last_log_position().await?;
        let last_term = (last.idx > 0).then(|| crate::admin::status::TermStatus {
            epoch: last.term_epoch,
            node: last.term_node.clone(),
        });
        let offset_ms = u64::try_from(config.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
        let hlc = HlcClock::new(config.node.name.clone(), offset_ms);
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE_BOUND);
        let (ship, ship_rx) = mpsc::channel(SHIP_QUEUE_BOUND);
        let (merges, merge_rx) = mpsc::channel(MERGE_QUEUE_BOUND);
        let (status, _) = watch::channel(ReplicationStatus {
            mode: mode_name(config).into(),
            last_index: last.idx,
            last_term,
            ..ReplicationStatus::default()
        });
        let replication = Replication {
            inner: Arc::new(Inner {
                store: std::sync::RwLock::new(store),
                config: config.clone(),
                writes,
                ship,
                status,
                refusing: Mutex::new(None),
                hlc: Mutex::new(hlc),
                receive_lock: Arc::new(tokio::sync::Mutex::new(())),
                merge_lock: tokio::sync::Mutex::new(()),
                merges,
                want_snapshot: tokio::sync::Notify::new(),
                receiving: std::sync::atomic::AtomicBool::new(false),
                driver,
                peer_tls,
                limits: client_limits(),
                damaged: damaged.clone(),
            }),
        };
        replication.follow_log_stamps().await?;
        replication.refresh_counts().await;
        tokio::spawn(writer::run(replication.clone(), write_rx));
        tokio::spawn(ship::run(replication.clone(), ship_rx));
        tokio::spawn(merge::run(replication.clone(), merge_rx));
        tokio::spawn(prune::run(replication.clone()));
        tokio::spawn(scheduled_verify::run(replication.clone()));
        Ok(replication)
    }
}
