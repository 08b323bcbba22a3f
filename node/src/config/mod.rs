//! The node config: a TOML file, parsed and then validated in full before anything starts.
//!
//! Every problem is reported as one `ConfigError` that names the key or the file, and `tandemd`
//! exits with status 2 on it. This module only reads and checks; it opens no sockets and writes
//! no files. Relative paths are resolved against the config file's directory.
//!
//! The folder holds:
//! - `load.rs`: the validated [`Config`] as a whole: reading and parsing the file, the top-level
//!   keys, the digest both nodes compare;
//! - `raw.rs`: the file as written (serde structs and the defaults of keys left out);
//! - `validate.rs`: the `Validator` that turns raw into typed, and the checks sections share;
//! - one file per part of the file, each with its typed form and its checks: `node.rs`
//!   (`[node]`, `[listen]`, `[peer]`), `timers.rs`, `replication.rs`, `gateway.rs`, `alerts.rs`,
//!   `hooks.rs`, `services.rs` (`[[service]]`), `files.rs` (`[[files]]`), `tls.rs`, and
//!   `failback.rs` (the top-level `auto_failback`); `witness.rs` (`[witness]`), `witness_file.rs`: `witness.toml`, the
//!   witness process's own file;
//! - `error.rs` ([`ConfigError`]), and the value formats `duration.rs` and `bytes.rs`.
//!
//! IO: it reads the config file from disk, and looks whether the files and directories the file
//! names exist; nothing else. It must not open sockets, write or create files, read the named
//! files' contents (certificates are loaded by `crate::tls`), or start anything: a config is
//! checked here and acted on elsewhere. Nothing outside this folder sees the raw structs or the
//! `Validator`; the typed items are re-exported below, so paths such as `crate::config::Config`
//! are the public ones.

pub mod duration;

mod alerts;
mod bytes;
mod error;
mod failback;
mod files;
mod gateway;
mod hooks;
mod load;
mod node;
mod raw;
mod replication;
mod services;
mod timers;
mod tls;
mod validate;
mod witness;
mod witness_file;

#[cfg(test)]
mod tests;

pub use alerts::{AlertsConfig, SmtpSecurity};
pub use error::ConfigError;
pub use failback::AutoFailback;
pub use files::FilesConfig;
pub use gateway::GatewaySettings;
pub use hooks::HooksConfig;
pub use load::Config;
pub use node::{ListenConfig, NodeConfig, PeerConfig};
pub use replication::{ConflictPolicy, ReplicationConfig, ReplicationMode};
pub use services::{HealthConfig, HealthProbe, RunOn, ServiceConfig};
pub use timers::Timers;
pub use witness::{ETCD_LEASE_MIN, EtcdSettings, WitnessSettings};
pub use witness_file::{LEASE_MAX, LEASE_MIN, WitnessConfig, WitnessPair};
