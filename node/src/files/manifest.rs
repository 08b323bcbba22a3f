//! The manifest (`files.db`) as the cycle and the peer's service use it: scanning an entry's
//! directory into it, storing rows, and its rows' protobuf edge.

use std::collections::BTreeMap;

use tandem_proto::files as pb;
use tandem_replication::files::manifest::Manifest;
use tandem_replication::files::path::RelPath;
use tandem_replication::files::plan::{Row, Version};
use tandem_replication::files::scan;

use crate::config::FilesConfig;

use super::handle::FileSync;

impl FileSync {
    pub(super) async fn store(
        &self,
        entry: &str,
        rows: Vec<(RelPath, Option<Row>)>,
    ) -> Result<(), String> {
        self.inner
            .manifest
            .store(entry, &rows)
            .await
            .map_err(|error| error.to_string())
    }
}

/// Scans an entry's directory against its manifest and stores what changed.
pub(super) async fn scan_entry(
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

pub(super) fn row_from_pb(row: pb::ManifestRow) -> Row {
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

pub(super) fn row_to_pb(path: &RelPath, row: &Row) -> pb::ManifestRow {
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
