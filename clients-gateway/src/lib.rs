//! tandem's clients gateway (DESIGN.md §5): logins, sessions, calls and CDRs, admitted only on
//! the active node, kept in replicated tables; and `PairClient`, the library remote services use
//! to talk to both nodes.
//!
//! # Layout
//! - `schema`: the gateway's tables and the CDR conflict rule.
//! - `backend`: what the gateway needs from the node (admission, database, writer, roles).
//! - `gateway`: the shared state and checks; `sessions`, `calls`, `blocks`, `users`: the
//!   requests; `service`: the gRPC edge.
//! - `password` (argon2 on a bounded pool), `secret` (tokens, ids, hashes), `limiter` (failed
//!   logins).
//! - `client`: `PairClient`.
//!
//! Not here: the node's side (`tandem-node`'s `gateway_node`), which implements `Backend`,
//! closes stale calls after a takeover and runs `--when-idle` switchovers.

pub mod backend;
pub mod blocks;
pub mod calls;
pub mod client;
pub mod error;
pub mod gateway;
pub mod limiter;
pub mod password;
pub mod schema;
pub mod secret;
pub mod service;
pub mod sessions;
pub mod users;

pub use backend::{Backend, RoleStream, RoleView, Written};
pub use blocks::{Block, Blocks};
pub use error::GatewayError;
pub use gateway::{Gateway, GatewayConfig};
pub use password::PasswordPool;
pub use service::GatewayService;
