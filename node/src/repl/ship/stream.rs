//! The `Replicate` connection to the peer's peer port, on a connection of its own, redialled
//! with back-off; and the shipper's configuration.

use std::time::Duration;

use tandem_proto::peer as pb;
use tandem_proto::peer::peer_client::PeerClient;
use tandem_replication::log::{LogTerm, Mode, ShipperConfig, Unavailable};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::ReplicationMode;
use crate::repl::convert;
use crate::repl::handle::Replication;
use crate::repl::messages::ShipInput;

/// Numbers every `Replicate` stream this process opens.
static STREAM_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Messages queued for one `Replicate` stream.
const STREAM_QUEUE_BOUND: usize = 64;
/// Reconnect back-off of the replication connection.
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

pub(super) fn unavailable_text(reason: Unavailable) -> String {
    match reason {
        Unavailable::SyncTimeout { waited_ms } => {
            format!("the oldest write waited {waited_ms} ms for the peer, above sync_timeout")
        }
        Unavailable::PeerFailed => "the peer is failed".into(),
    }
}

pub(super) fn shipper_config(repl: &Replication) -> ShipperConfig {
    let config = &repl.inner.config;
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    ShipperConfig {
        mode: match config.replication.mode {
            ReplicationMode::Sync => Mode::Sync,
            ReplicationMode::Async => Mode::Async,
        },
        sync_strict: config.replication.sync_strict,
        sync_timeout_ms: millis(config.replication.sync_timeout),
        tick_interval_ms: millis(config.timers.keepalive_interval),
        batches_in_flight_max: 4,
        retention_entries: config.replication.retention_entries,
        retention_bytes: config.replication.retention_bytes,
        ..ShipperConfig::default()
    }
}

/// Dials the peer for replication until the session ends (the task is aborted).
pub(super) async fn connect_loop(repl: Replication, term: LogTerm) {
    let config = &repl.inner.config;
    let inputs = repl.inner.ship.clone();
    let mut backoff = BACKOFF_FIRST;
    loop {
        // Unique across sessions, so a late message of an old session never matches.
        let generation = STREAM_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let connected = crate::tls::connect(
            &config.peer.address,
            &config.peer.name,
            repl.inner.peer_tls.clone(),
            config.timers.keepalive_interval * 5,
        )
        .await;
        match connected {
            Ok(channel) => {
                let reason = stream_on(&repl, channel, &term, generation, &inputs).await;
                let _ = inputs
                    .send(ShipInput::StreamDown { generation, reason })
                    .await;
                backoff = BACKOFF_FIRST;
            }
            Err(error) => tracing::debug!(%error, "replication dial failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

pub(super) async fn stream_on(
    repl: &Replication,
    channel: tonic::transport::Channel,
    term: &LogTerm,
    generation: u64,
    inputs: &mpsc::Sender<ShipInput>,
) -> String {
    let (sender, receiver) = mpsc::channel(STREAM_QUEUE_BOUND);
    let hello = pb::ShipMessage {
        body: Some(pb::ship_message::Body::Hello(pb::ShipHello {
            term: Some(convert::term_to_pb(term)),
            node: repl.inner.config.node.name.clone(),
            last_index: 0,
        })),
    };
    if sender.send(hello).await.is_err() {
        return "stream closed".into();
    }
    let mut client = PeerClient::new(channel)
        .max_decoding_message_size(crate::repl::receive::SHIP_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(crate::repl::receive::SHIP_MESSAGE_BYTES_MAX);
    let mut replies = match client.replicate(ReceiverStream::new(receiver)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return format!("Replicate refused: {}", status.message()),
    };
    // The session holds the only sender: when it drops it, the request stream ends, the peer
    // ends its replies, and this loop dials again.
    if inputs
        .send(ShipInput::StreamUp { generation, sender })
        .await
        .is_err()
    {
        return "ship task gone".into();
    }
    loop {
        match replies.message().await {
            Ok(Some(reply)) => {
                if inputs
                    .send(ShipInput::Reply { generation, reply })
                    .await
                    .is_err()
                {
                    return "ship task gone".into();
                }
            }
            Ok(None) => return "the peer ended the stream".into(),
            Err(status) => return format!("stream failed: {}", status.message()),
        }
    }
}
