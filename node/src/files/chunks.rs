//! One file over a stream of push messages (header, checksummed chunks, trailer): the reading
//! thread that sends a file at the entry's bandwidth, the receiving end that writes one, and how a
//! refused file is answered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tandem_proto::files as pb;
use tandem_replication::files::path::{PathError, RelPath};
use tandem_replication::files::plan::Version;
use tandem_replication::files::transfer::{IncomingFile, OutgoingFile, TransferError};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::Status as RpcStatus;

/// Chunks in flight between the reading thread and the stream.
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;
/// Why the reading thread stopped when the stream it fed was dropped.
pub(super) const PEER_HUNG_UP: &str = "the peer hung up";

/// Reads `path` on a blocking thread into push messages (header, chunks, trailer), at most
/// `bandwidth` bytes a second. The outcome is the content's hash, or why it stopped.
pub(super) fn read_for_sending(
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
pub(super) async fn receive(
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
pub(super) enum ReceiveError {
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
