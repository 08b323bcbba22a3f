//! tandem-node: one node of a tandem pair.
//!
//! # Layout, in the order data flows through a node
//! - `config`: the node's TOML config, fully validated at start-up.
//! - `tls`: mTLS for every listener and dialer, and the certificates `tandemctl certs` issues.
//! - `peer`: the keep-alive streams between the two nodes, the fast-path and reachability
//!   probes, and the heartbeat's protobuf edge. They report; they decide nothing.
//! - `driver`: the one event loop that feeds what `peer` and the admin port report to the role
//!   machine and runs its commands; the admission gate for clients.
//! - `role`: the sans-IO role machine, `step(event, now) -> Vec<Command>`: every decision.
//! - `state`: `state.db`, the node-local SQLite file (terms, disk state, events, the outbox).
//! - `repl`: the replicated database (DESIGN.md §4): the writer, shipping and receiving,
//!   snapshots, merge-back and the Data service, around `tandem-replication`.
//! - `files`: `[[files]]` replication.
//! - `clients`: the node's side of the clients gateway on the client port.
//! - `admin`: the gRPC admin service and the node's status; `http`: the status page, `/metrics`,
//!   `/health` and `/active`.
//! - `ops`: the supervisor, hooks, e-mail alerts, auto-failback and certificate reload.
//! - `daemon`: `tandemd` start-up and shutdown, wiring the parts above; `random`: OS random
//!   values. `tandemctl` and the demo are `tandem-cli`'s.

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
pub mod watching;
pub mod witness;

/// The version every heartbeat carries; a mismatch between the nodes raises an event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
