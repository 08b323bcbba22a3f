//! The link between the two nodes: `link`, the keep-alive streams, the dialers, the fast-path
//! prober and the reachability prober; `wire`, the heartbeat and hand-over messages' protobuf
//! edge.
//!
//! May touch: the network. Must not: decide; it reports what it saw to the driver as inputs.

pub mod link;
pub mod wire;
