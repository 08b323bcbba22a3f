//! The witness (DESIGN.md §12): a third vote, so a partition never leaves two nodes admitting.
//!
//! - `grantor`: the witness's decisions, sans-IO: who holds each pair's term, leases on the
//!   witness's clock, promotion rules, and the restart rule.
//! - `store`: `witness.db`, the holder of each pair's term, fsync'd before a grant is answered.
//! - `etcd`: the etcd backend: the grantor's rules on two etcd keys, the holder's bound to an
//!   etcd lease.
//! - `client`: a node's side: the `Vote` stream, renewals and promotion requests, each answer
//!   reported to the driver with the instant its request left.
//! - `server`: `tandemd witness`: the `Witness` gRPC service around the grantor, mTLS, the
//!   prover that dials a vanished holder's ports.
//!
//! May touch: nothing in `grantor` (no IO, no clock); `store` its own `witness.db`; `server`
//! its listener and TCP dials of a holder's ports. Must not: grant a vote while another node
//! of the pair may still count on a lease it gave, or answer a grant before it is on disk.

pub mod client;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod grantor;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;
