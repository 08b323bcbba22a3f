//! The `Files` gRPC service on the peer port, which the active's cycle calls: its manifest
//! (`list`), writing a file (`push`), reading one (`fetch`), deleting one (`remove`) and
//! recording what both sides agree on (`settle`). It refuses a path that escapes the directory,
//! and refuses to be written to while this node is itself the active.

use tandem_proto::files as pb;
use tandem_replication::files::path::RelPath;
use tandem_replication::files::plan::{Row, Version};
use tandem_replication::files::transfer::{self, TransferError};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as RpcStatus, Streaming};

use crate::config::FilesConfig;

use super::chunks::{CHUNKS_IN_FLIGHT, read_for_sending, receive};
use super::handle::FileSync;
use super::locks::{PEER_LOCK_WAIT, lock_within};
use super::manifest::{row_to_pb, scan_entry};

impl FileSync {
    pub fn service(&self) -> FilesService {
        FilesService { sync: self.clone() }
    }
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
