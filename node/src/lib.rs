//! tandem-node: one node of a tandem pair.
//!
//! # Layout
//! - `role`: the sans-IO role machine, `step(event, now) -> Vec<Command>`.
//! - `config` (with `duration`): the node's TOML config, fully validated at start-up.
//! - `state_store`: `state.db`, the node-local SQLite file (terms, disk state, events).
//! - `tls` and `certs`: mTLS for every listener and dialer; `tandemctl certs init` and `issue`.
//!   `tls_credentials` holds the CA, certificate and key so that `cert_reload` can swap them on
//!   SIGHUP; it also warns of expiry.
//! - `peer_link`: the keep-alive streams between the two nodes, the fast-path dials, reachability.
//! - `driver`: the one event loop that feeds the role machine and runs its commands;
//!   `admission`: the gate it opens and closes for clients.
//! - `repl`: the replicated database (DESIGN.md §4): the writer, shipping and receiving, snapshots,
//!   merge-back and the Data service, around `tandem-replication`.
//! - `admin`: the gRPC admin service; `gateway`: the client port; `status` and `wire`,
//!   `status_wire`: domain types and their protobuf edges.
//! - `http`: `/health`, `/active`, `/metrics`; `status_page`: the page on `/`.
//! - `daemon`: `tandemd` start-up and shutdown. `tandemctl` and the demo are `tandem-cli`'s.

pub mod admin;
pub mod clients;
pub mod config;
pub mod daemon;
pub mod driver;
pub mod files;
pub mod http;
pub mod ops;
pub mod peer;
pub mod random;
pub mod repl;
pub mod role;
pub mod state;
pub mod tls;

/// The version every heartbeat carries; a mismatch between the nodes raises an event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
