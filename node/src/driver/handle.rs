//! What the servers and tasks around the driver hold: the `DriverHandle` and the `Input` they
//! send. A leaf of the folder: it imports nothing of the driver's loop, so everything that talks
//! to the driver can import it without importing the loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tandem_proto::peer as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::admission::Admission;
use crate::admin::status::Status;
use crate::role::{AdminRequest, DialOutcome};
use crate::state::store::StateStore;

/// Inputs queued for the driver beyond this bound make their senders wait.
pub const INPUT_QUEUE_BOUND: usize = 1024;
/// Outbound peer messages buffered for the dialers; a slow dialer skips the oldest.
pub const OUTBOUND_BOUND: usize = 64;
/// How long an admin command waits for the driver's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub type AdminReply = Result<String, String>;

/// Everything the driver reacts to besides its own ticker.
#[derive(Debug)]
pub enum Input {
    /// A message that arrived on a keep-alive stream from the peer.
    Peer(Box<pb::PeerMessage>),
    /// A keep-alive stream to or from the peer ended.
    PeerStreamEnded,
    FastPathDial {
        peer_port: DialOutcome,
        client_port: DialOutcome,
        /// The stream end this round belongs to; rounds of an older one are dropped.
        generation: u64,
    },
    Reachability(bool),
    /// An event from elsewhere in the node (replication), recorded in order with the driver's.
    Record {
        kind: String,
        message: String,
    },
    /// The active's verdict on this node's disk, from the replication stream.
    SetDisk {
        disk: crate::role::DiskState,
        reason: String,
        /// From this node's own snapshot receiving, not the active's verdict.
        local: bool,
    },
    Admin {
        request: AdminRequest,
        reply: oneshot::Sender<AdminReply>,
    },
    Shutdown,
    /// The `fence_peer` hook finished: whether it succeeded.
    FenceResult(bool),
    /// The witness client's report (witness mode).
    Witness(crate::witness::client::WitnessReport),
}

/// What the servers and tasks around the driver share with it.
#[derive(Clone)]
pub struct DriverHandle {
    pub inputs: mpsc::Sender<Input>,
    pub status: watch::Receiver<Status>,
    pub store: StateStore,
    /// Outbound messages for the dialers.
    pub outbound: broadcast::Sender<pb::PeerMessage>,
    /// Set while a fast-path probe should keep dialling; only the driver writes it.
    pub fast_path_wanted: Arc<AtomicBool>,
    /// Bumped by the driver at every stream end; tags the prober's rounds.
    pub fast_path_generation: Arc<AtomicU64>,
    /// Whether this node admits clients now; the gateway and the admin status read it.
    pub admission: Arc<Admission>,
    /// Witness mode: when the newest renewal the witness granted *with the peer recorded
    /// outdated* was sent; `None` after a granted renewal that said the peer is not outdated,
    /// and always in pair mode. The shipper holds the acknowledgement of a write it commits
    /// alone until this is later than the moment it degraded (DESIGN.md §12, fencing).
    pub outdated_confirmed: watch::Receiver<Option<std::time::Instant>>,
}

impl DriverHandle {
    /// Passes an admin `request` to the driver and waits for its answer (at most 30 s). The
    /// admin service, `switchover --when-idle`, auto-failback and the supervisor ask this way.
    pub async fn command(&self, request: AdminRequest) -> Result<String, String> {
        let (reply, answer) = oneshot::channel::<AdminReply>();
        self.inputs
            .send(Input::Admin { request, reply })
            .await
            .map_err(|_| "the node is stopping".to_string())?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the node stopped before answering".into()),
            Err(_) => Err("no answer within 30 s; see `tandemctl events`".into()),
        }
    }
}
