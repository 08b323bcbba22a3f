//! The messages the writer, the ship task and merge-back pass each other: a write request and
//! its outcome, merge-back's write, and the ship task's inputs. A leaf of the folder: the tasks
//! import it, and it imports none of them.

use tandem_proto::peer as pb;
use tandem_replication::data_api::{DataError, Mode, Statement};
use tandem_replication::log::Hlc;
use tandem_replication::store::{LogEntry, StoreError, TransactionReads};
use tokio::sync::{mpsc, oneshot};

pub type WriteReply = oneshot::Sender<Result<WriteDone, WriteFailure>>;

pub struct WriteRequest {
    pub request_id: String,
    pub statements: Vec<Statement>,
    /// `Mode::Execute` for a client; `Mode::Node` for the node's own writes (merge-back).
    pub mode: Mode,
    /// Merge-back's re-application of one orphan transaction, in place of `statements`.
    pub merge: Option<MergeWrite>,
    pub reply: WriteReply,
}

/// The plan that decides a merge write's statements inside its own transaction.
pub type MergePlan =
    Box<dyn Fn(&TransactionReads<'_>) -> Result<Vec<Statement>, StoreError> + Send + Sync>;

/// One orphan transaction re-applied by merge-back (see `merge`).
pub struct MergeWrite {
    /// Decides the statements against the rows as they are when the write runs (in place of
    /// the request's statements, which run when there is none).
    pub plan: Option<MergePlan>,
    /// The orphan transaction's own id, stamp and origin: the re-applied entries keep them, so
    /// `newest` compares a later change with when the client wrote, and a re-applied orphan is
    /// known by its request id `merge:<origin>:<txid>`.
    pub txid: u64,
    pub hlc: Hlc,
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteDone {
    pub rows_affected: Vec<u64>,
    pub last_insert_rowid: i64,
    /// The write's last log entry; 0 when it changed no replicated row.
    pub log_index: u64,
    /// The stored outcome of an earlier request with the same id.
    pub replayed: bool,
}

#[derive(Debug)]
pub enum WriteFailure {
    /// This node does not admit writes: it is not the active (or its lease lapsed).
    NotActive,
    /// Refused before commit; nothing was written.
    Unavailable(String),
    /// Committed here, but the acknowledgement it waited for never came.
    OutcomeUnknown(String),
    /// The client's statements: bad SQL, refused, too large, too slow. Nothing was written.
    Invalid(DataError),
    /// The store failed; nothing was written.
    Store(String),
}

pub enum ShipInput {
    /// The writer committed entries up to `last_index`: `entries`, as stored, or none if a
    /// write had too many to hand over (the shipper then reads them from the log).
    Appended {
        last_index: u64,
        bytes: u64,
        entries: Vec<LogEntry>,
    },
    /// A committed write waits for `index` to be released.
    Wait {
        index: u64,
        done: WriteDone,
        reply: WriteReply,
    },
    /// A strict read saw the log up to `index`: answer once that is released as a write would
    /// be (sync: acknowledged by the peer), so a read never returns what a failover could take
    /// back. Unlike `Wait`, an index not yet reported `Appended` waits for it.
    ReadBarrier {
        index: u64,
        reply: WriteReply,
    },
    StreamUp {
        generation: u64,
        sender: mpsc::Sender<pb::ShipMessage>,
    },
    Reply {
        generation: u64,
        reply: pb::ShipReply,
    },
    StreamDown {
        generation: u64,
        reason: String,
    },
    /// A snapshot sent on stream `generation` finished (its last index) or failed.
    SnapshotSent {
        generation: u64,
        result: Result<u64, String>,
    },
    /// `tandemctl resync --to-peer` (or the peer's `--from-peer`).
    ForceSnapshot {
        reason: String,
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
}
