//! Test support for tandem: a pair of real `tandemd` processes on 127.0.0.1, and a fault proxy to
//! put between them. Used by the end-to-end tests of the root package and by `tandem-bench`.
//!
//! Everything is blocking, for plain `#[test]` functions; the fault proxy runs its own runtime on
//! its own thread. Nothing here waits with a fixed sleep: waits poll a condition with a deadline.
//! The harness treats the binaries as black boxes (configs, signals, `tandemctl`, TCP) and does
//! not link tandem's own crates.
//!
//! ```no_run
//! use std::time::Duration;
//! use tandem_harness::{Binaries, Cluster, ClusterSpec, Mode};
//!
//! // In a test of the root package: Binaries::new(env!("CARGO_BIN_EXE_tandemd"), env!("CARGO_BIN_EXE_tandemctl"))
//! let bins = Binaries::from_target_dir("target/debug");
//! let mut cluster = Cluster::start(ClusterSpec::new().with_proxies(true), &bins)?;
//! assert_eq!(cluster.wait_single_active(Duration::from_secs(10))?, "a");
//! cluster.node_mut("a").signal(tandem_harness::libc::SIGSTOP)?;
//! cluster.wait_role("b", "active", Duration::from_secs(10))?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # Layout
//! - [`cluster`]: [`Cluster`], the pair: directory, certificates, configs, processes, proxies.
//!   `cluster_status` adds the `tandemctl` calls and the waits on status fields.
//! - [`cluster_spec`]: [`ClusterSpec`], the builder a test fills; [`timers`]: [`Timers`].
//! - [`node_config`]: [`NodeConfig`], one node's TOML, overridable key by key.
//! - [`node_process`]: [`NodeProcess`], one child process: signals, kill, restart, log file.
//! - [`fault_proxy`]: [`FaultProxy`], a TCP proxy whose [`Mode`] refuses, blackholes, delays or
//!   cuts one direction (DESIGN §11).
//! - [`ports`]: free ports on 127.0.0.1, never handed out twice in one process.
//! - [`wait`]: `wait_until`, a poll with a deadline, usable without a cluster.
//! - [`smtp_sink`]: [`SmtpSink`], a local mail server that keeps what it receives.
//! - [`chaos`]: the seeded fault run and its history checks; [`lin`]: register histories and
//!   the linearizability checker its linearizability mode uses.
//! - `child_process`: every child is forked from one long-lived thread with a parent-death
//!   signal, so no process outlives the test binary.

pub mod binaries;
pub mod chaos;
mod child_process;
pub mod cluster;
mod cluster_node;
pub mod cluster_spec;
mod cluster_status;
pub mod fault_proxy;
pub mod lin;
pub mod netns;
pub mod node_config;
pub mod node_process;
pub mod ports;
pub mod smtp_sink;
pub mod timers;
pub mod wait;

/// Re-exported so tests can name signals (`libc::SIGSTOP`) without a dependency of their own.
pub use libc;
pub use toml;

pub use binaries::Binaries;
pub use cluster::Cluster;
pub use cluster_spec::ClusterSpec;
pub use fault_proxy::{Direction, FaultProxy, Mode, ProxyStats};
pub use node_config::{NodeConfig, toml_duration};
pub use node_process::NodeProcess;
pub use ports::NodeAddrs;
pub use smtp_sink::{Mail, SmtpSink};
pub use timers::Timers;
pub use wait::wait_until;
