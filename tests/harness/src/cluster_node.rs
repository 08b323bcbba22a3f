//! One node of a running test cluster: where its files are and its process.

use std::path::PathBuf;

use crate::node_config::NodeConfig;
use crate::node_process::NodeProcess;
use crate::ports::NodeAddrs;

/// A node's place in the cluster's directory, its listeners and its process.
pub(crate) struct ClusterNode {
    /// `[node] name`.
    pub(crate) name: String,
    /// Its four listeners.
    pub(crate) addrs: NodeAddrs,
    /// `DIR/<name>`: holds `node.toml`, `data/` and `tandemd.log`.
    pub(crate) dir: PathBuf,
    /// The config as last written to `node.toml`; a test changes it through
    /// `Cluster::update_config`.
    pub(crate) config: NodeConfig,
    /// The process, from its first start on; `None` for a node prepared but not started.
    pub(crate) process: Option<NodeProcess>,
}

impl ClusterNode {
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("tandemd.log")
    }
}
