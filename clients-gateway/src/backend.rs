//! What the gateway needs from the node it runs in: admission, the database and the writer.
//!
//! The node implements this over its role machine and its replicated store; the gateway never
//! sees the role machine or the writer's queue. Writes go through the node's one writer, as the
//! node's own (they may write the gateway's tables, which clients' Data API requests may not),
//! and are answered once released: in sync mode, once the peer has them on disk.

use std::pin::Pin;

use futures::Stream;
use tandem_replication::data_api::Statement;

/// The outcome of one replicated write.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Rows each statement changed, in order.
    pub rows_affected: Vec<u64>,
    /// True when this is the stored outcome of an earlier request with the same id: nothing ran.
    pub replayed: bool,
}

/// A role as `WatchRole` streams it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleView {
    pub node: String,
    pub role: String,
    pub epoch: u64,
    /// The active node's client address, when one is known.
    pub active_client_address: String,
    pub admitting: bool,
}

pub type RoleStream = Pin<Box<dyn Stream<Item = RoleView> + Send>>;

#[tonic::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// This node's name (kept in the rows it writes).
    fn node_name(&self) -> &str;

    /// `Ok` while this node admits clients; otherwise the refusal to hand the client:
    /// FAILED_PRECONDITION naming the active's client address (message and the
    /// `tandem-active-client-address` metadata key), or UNAVAILABLE when none is known.
    fn admits(&self) -> Result<(), tonic::Status>;

    /// The epoch of the term this node holds as the active, 0 when it holds none.
    fn active_epoch(&self) -> u64;

    /// A reader of the live database (a cheap handle).
    fn reader(&self) -> sqlx::SqlitePool;

    /// Runs `statements` in one replicated transaction as the node, under `request_id`.
    async fn write(
        &self,
        request_id: &str,
        statements: Vec<Statement>,
    ) -> Result<Written, tonic::Status>;

    /// This node's role now and at every change, until the node stops.
    fn watch_role(&self) -> RoleStream;
}
