//! Sending a snapshot to the passive (DESIGN.md §4, catch-up by snapshot).
//!
//! `VACUUM INTO` a file beside the generations (it runs on a connection of its own, outside any
//! transaction, while writes carry on), then stream it in checksummed chunks, paced by
//! `resync_rate`, and finish with the whole file's digest and the copy's own last log index.
//! Progress shows in `status` (`replication.snapshot_progress`) on both nodes.

use std::time::{Duration, Instant};

use tandem_proto::peer as pb;
use tandem_replication::snapshot::{SnapshotReader, create_snapshot};
use tokio::sync::mpsc;

use super::handle::Replication;

/// Bytes per chunk.
const CHUNK_BYTES: usize = 256 * 1024;
/// The directory the outgoing copy is made in, inside `data_dir`.
const OUTGOING_DIR: &str = "outgoing-snapshot";

/// Makes and sends one snapshot; returns the snapshot's last log index.
pub async fn send(
    repl: &Replication,
    out: &mpsc::Sender<pb::ShipMessage>,
    reason: &str,
    keep_old_as: Option<String>,
) -> Result<u64, String> {
    let dir = repl.inner.config.node.data_dir.join(OUTGOING_DIR);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let result = send_from(repl, out, reason, keep_old_as, &dir).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    repl.update_status(|status| status.snapshot_progress = None);
    result
}

async fn send_from(
    repl: &Replication,
    out: &mpsc::Sender<pb::ShipMessage>,
    reason: &str,
    keep_old_as: Option<String>,
    dir: &std::path::Path,
) -> Result<u64, String> {
    let source = repl.store().path().to_path_buf();
    let info = create_snapshot(&source, dir)
        .await
        .map_err(|error| format!("cannot take a snapshot: {error}"))?;
    let message = format!(
        "sending a snapshot of {} bytes at log index {} to the peer: {reason}",
        info.bytes, info.last_log_idx
    );
    repl.record("snapshot", &message).await;
    let send = |body| async {
        out.send(pb::ShipMessage { body: Some(body) })
            .await
            .map_err(|_| "the replication stream closed during the snapshot".to_string())
    };
    send(pb::ship_message::Body::SnapshotBegin(pb::SnapshotBegin {
        total_bytes: info.bytes,
        last_index: info.last_log_idx,
        reason: reason.to_string(),
        keep_old_as: keep_old_as.unwrap_or_default(),
    }))
    .await?;
    let mut reader = SnapshotReader::open(&info, CHUNK_BYTES).map_err(|e| e.to_string())?;
    let rate = repl.inner.config.replication.resync_rate;
    let started = Instant::now();
    let mut sent = 0u64;
    repl.update_status(|status| status.snapshot_progress = Some(0.0));
    while let Some(chunk) = reader.next_chunk().map_err(|e| e.to_string())? {
        sent += chunk.bytes.len() as u64;
        send(pb::ship_message::Body::SnapshotChunk(pb::SnapshotChunk {
            offset: chunk.offset,
            data: chunk.bytes,
            checksum: chunk.checksum.to_vec(),
        }))
        .await?;
        let fraction = sent as f64 / info.bytes.max(1) as f64;
        repl.update_status(|status| status.snapshot_progress = Some(fraction));
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let manifest = reader.finish().map_err(|e| e.to_string())?;
    send(pb::ship_message::Body::SnapshotEnd(pb::SnapshotEnd {
        total_bytes: manifest.total_bytes,
        sha256: manifest.sha256.to_vec(),
        last_index: manifest.last_log_idx,
        chunk_count: manifest.chunk_count,
    }))
    .await?;
    Ok(manifest.last_log_idx)
}
