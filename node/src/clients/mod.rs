//! The node's side of the clients gateway: `gateway`, the `tandem_gateway::Backend` over this
//! node (admission, reads, writes through the one writer, `WatchRole`), and `when_idle`, the
//! wait for the last call before a `switchover --when-idle`.
//!
//! May touch: the driver's status and admission gate, the replicated database. Must not: admit
//! anything the driver's gate does not.

pub mod gateway;
pub mod when_idle;
