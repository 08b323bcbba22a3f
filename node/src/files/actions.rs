//! Carrying out one action of the plan against the peer: push a file, pull one, delete on either
//! side, keep both versions of a conflict, and settle what was done on the peer.

use std::collections::BTreeMap;
use std::path::Path;

use tandem_proto::files as pb;
use tandem_replication::files::path::RelPath;
use tandem_replication::files::plan::{Action, Row, Side, Version};
use tandem_replication::files::scan;
use tandem_replication::files::transfer::{self, TransferError};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use crate::config::FilesConfig;

use super::chunks::{PEER_HUNG_UP, read_for_sending, receive};
use super::handle::FileSync;

impl FileSync {
    pub(super) async fn settle_peer(
        &self,
        entry: &str,
        rows: Vec<pb::SettleRow>,
    ) -> Result<(), String> {
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

    pub(super) async fn carry_out(
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
