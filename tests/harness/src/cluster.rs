//! A pair of real `tandemd` processes on 127.0.0.1, in a temp directory of its own.
//!
//! `Cluster::prepare` generates certificates (`tandemctl certs init`), allocates ports, starts
//! the fault proxies if asked, and writes both configs; `Cluster::start` also starts the nodes.
//! Directory layout:
//! ```text
//! DIR/certs/               ca.pem, ca.key, a.pem, a.key, b.pem, b.key, admin.pem, admin.key
//! DIR/<name>/node.toml     the node's config
//! DIR/<name>/data/         [node] data_dir
//! DIR/<name>/tandemd.log   stdout and stderr of every run of the node
//! ```
//! The directory is removed on drop, unless the test failed (it panicked, or a start or a
//! `wait_until` of this cluster failed) and `TANDEM_KEEP_TMP` is set.
//!
//! Talking to the nodes (`status`, `wait_until`, ...) is in `cluster_status.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::binaries::Binaries;
use crate::child_process::output_with_timeout;
use crate::cluster_node::ClusterNode;
use crate::cluster_spec::ClusterSpec;
use crate::fault_proxy::FaultProxy;
use crate::node_config::{ConfigInputs, NodeConfig};
use crate::node_process::NodeProcess;
use crate::ports::NodeAddrs;

/// The environment variable that keeps a failed test's cluster directory.
pub const KEEP_TMP_ENV: &str = "TANDEM_KEEP_TMP";

/// How long `tandemctl certs init` may take; key generation in a debug build is the slow part.
const CERTS_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or prepared) pair. Dropping it kills the nodes, stops the proxies and removes the
/// directory.
pub struct Cluster {
    /// The binaries under test.
    pub(crate) bins: Binaries,
    /// The nodes, in start order.
    pub(crate) nodes: Vec<ClusterNode>,
    /// Fault proxies by (dialing node, dialed node); empty unless the spec asked for them.
    proxies: HashMap<(String, String), FaultProxy>,
    /// Witness mode: the witness process, and each node's proxy to it.
    witness: Option<NodeProcess>,
    witness_proxies: HashMap<String, FaultProxy>,
    /// How the witness process is started: `tandemd witness`, or `etcd` (program, arguments).
    witness_command: Option<(PathBuf, Vec<PathBuf>)>,
    /// How long one `tandemctl` call may run before it is killed.
    pub(crate) ctl_timeout: Duration,
    /// Certificates, configs, data and logs of both nodes.
    dir: TempDir,
    /// Set when something a test treats as failure happened (a start or a wait failed), so that
    /// drop keeps the directory even when the test returns an `Err` instead of panicking.
    pub(crate) failed: AtomicBool,
}

/// The witness's certificate name in witness mode (the nodes' default `server_name`).
const WITNESS_NAME: &str = "tandem-witness";

/// The etcd witness's certificate name.
const ETCD_NAME: &str = "etcd";

impl Cluster {
    /// Prepares the pair and starts both nodes, in the spec's order.
    pub fn start(spec: ClusterSpec, bins: &Binaries) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::prepare(spec, bins)?;
        let names: Vec<String> = cluster.nodes.iter().map(|node| node.name.clone()).collect();
        for name in &names {
            cluster.start_node(name)?;
        }
        Ok(cluster)
    }

    /// Everything but starting the nodes: certificates, ports, proxies and configs.
    pub fn prepare(spec: ClusterSpec, bins: &Binaries) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("tandem-")
            .tempdir()
            .context("create the cluster directory")?;
        let mut cluster = Cluster {
            bins: bins.clone(),
            nodes: Vec::new(),
            proxies: HashMap::new(),
            witness: None,
            witness_proxies: HashMap::new(),
            witness_command: None,
            ctl_timeout: spec.ctl_timeout,
            dir,
            failed: AtomicBool::new(false),
        };
        let prepared = cluster.build(&spec);
        cluster.record(prepared)?;
        if spec.witness {
            let started = cluster.start_witness();
            cluster.record(started)?;
        }
        Ok(cluster)
    }

    /// Starts a node that was never started, or starts again one whose process has ended.
    pub fn start_node(&mut self, name: &str) -> anyhow::Result<()> {
        let started = self.start_node_process(name);
        self.record(started)
    }

    fn start_node_process(&mut self, name: &str) -> anyhow::Result<()> {
        let tandemd = self.bins.tandemd.clone();
        let node = self.node_entry_mut(name);
        match &mut node.process {
            Some(process) => process.restart(),
            None => {
                let args = [PathBuf::from("--config"), node.config_path()];
                node.process = Some(NodeProcess::start(name, tandemd, args, node.log_path())?);
                Ok(())
            }
        }
    }

    fn build(&mut self, spec: &ClusterSpec) -> anyhow::Result<()> {
        let names = spec.node_names();
        assert_eq!(names.len(), 2, "a pair has two nodes");
        self.init_certs(&names)?;
        let addrs = names
            .iter()
            .map(|_| NodeAddrs::allocate())
            .collect::<Result<Vec<_>, _>>()
            .context("allocate ports")?;
        if spec.proxies {
            self.start_proxies(&names, &addrs)?;
        }
        if spec.witness && spec.etcd {
            self.prepare_etcd(&names)?;
        } else if spec.witness {
            self.prepare_witness(&spec.cluster_name, &names)?;
        }
        for (index, node) in spec.nodes.iter().enumerate() {
            let peer = 1 - index;
            let dir = self.dir.path().join(&node.name);
            std::fs::create_dir_all(dir.join("data"))
                .with_context(|| format!("create {}", dir.display()))?;
            let inputs = ConfigInputs {
                cluster_name: &spec.cluster_name,
                max_clock_offset: spec.max_clock_offset,
                node,
                addrs: addrs[index],
                data_dir: &dir.join("data"),
                certs_dir: &self.certs_dir(),
                peer_name: names[peer],
                peer_address: self.peer_dial_addr(&node.name, names[peer], addrs[peer].peer),
                peer_client_address: addrs[peer].client,
                timers: &spec.timers,
            };
            let mut config = NodeConfig::generate(&inputs);
            if let Some(proxy) = self.witness_proxies.get(&node.name) {
                config.append_toml(&if spec.etcd {
                    format!("[witness]\netcd = [\"https://{}\"]\n", proxy.listen_addr())
                } else {
                    format!("[witness]\naddress = \"{}\"\n", proxy.listen_addr())
                });
            }
            let cluster_node = ClusterNode {
                name: node.name.clone(),
                addrs: addrs[index],
                dir,
                config,
                process: None,
            };
            cluster_node.config.write(&cluster_node.config_path())?;
            self.nodes.push(cluster_node);
        }
        Ok(())
    }

    fn init_certs(&self, names: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new(&self.bins.tandemctl);
        command
            .args(["certs", "init", "--dir"])
            .arg(self.certs_dir())
            .args(["--nodes", &names.join(",")]);
        let output = output_with_timeout(command, CERTS_TIMEOUT)
            .with_context(|| format!("run {} certs init", self.bins.tandemctl.display()))?;
        if !output.status.success() {
            bail!(
                "tandemctl certs init failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// One proxy per direction: `(a, b)` carries what `a` dials to `b`'s peer port.
    fn start_proxies(&mut self, names: &[&str], addrs: &[NodeAddrs]) -> anyhow::Result<()> {
        for (from, to) in [(0, 1), (1, 0)] {
            let proxy = FaultProxy::start(addrs[to].peer).context("start a fault proxy")?;
            self.proxies
                .insert((names[from].to_owned(), names[to].to_owned()), proxy);
        }
        Ok(())
    }

    /// Witness mode: its certificate, `witness.toml` beside the nodes' dirs, a proxy per node.
    fn prepare_witness(&mut self, cluster_name: &str, names: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new(&self.bins.tandemctl);
        command
            .args(["certs", "init", "--dir"])
            .arg(self.certs_dir())
            .args(["--witness", WITNESS_NAME]);
        let output = output_with_timeout(command, CERTS_TIMEOUT)?;
        if !output.status.success() {
            bail!(
                "tandemctl certs init --witness failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let address = crate::ports::free_addr()?;
        let nodes: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
        let dir = self.dir.path().join("witness");
        std::fs::create_dir_all(&dir)?;
        let certs = self.certs_dir();
        std::fs::write(
            dir.join("witness.toml"),
            format!(
                "data_dir = \"data\"\n[listen]\nwitness = \"{address}\"\n[tls]\n\
                 ca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\
                 [[pair]]\ncluster = \"{cluster_name}\"\nnodes = [{nodes}]\n",
                ca = certs.join("ca.pem").display(),
                cert = certs.join(format!("{WITNESS_NAME}.pem")).display(),
                key = certs.join(format!("{WITNESS_NAME}.key")).display(),
                nodes = nodes.join(", "),
            ),
        )?;
        for name in names {
            let proxy = FaultProxy::start(address).context("start a witness proxy")?;
            self.witness_proxies.insert((*name).to_owned(), proxy);
        }
        Ok(())
    }

    /// The etcd witness: its certificate (`etcd`, from the cluster CA, for 127.0.0.1), a
    /// one-member cluster's command line that requires client certificates of the cluster CA,
    /// and a proxy per node to its client port. Each node names its proxy in `[witness] etcd`.
    fn prepare_etcd(&mut self, names: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new(&self.bins.tandemctl);
        command
            .args(["certs", "init", "--dir"])
            .arg(self.certs_dir())
            .args(["--witness", ETCD_NAME]);
        let output = output_with_timeout(command, CERTS_TIMEOUT)?;
        if !output.status.success() {
            bail!(
                "tandemctl certs init --witness {ETCD_NAME} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let client = crate::ports::free_addr()?;
        let peer = crate::ports::free_addr()?;
        let dir = self.dir.path().join("witness");
        std::fs::create_dir_all(&dir)?;
        let certs = self.certs_dir();
        let args: Vec<String> = vec![
            "--name=witness".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=https://{client}"),
            format!("--advertise-client-urls=https://{client}"),
            format!("--listen-peer-urls=http://{peer}"),
            format!("--initial-advertise-peer-urls=http://{peer}"),
            format!("--initial-cluster=witness=http://{peer}"),
            format!(
                "--cert-file={}",
                certs.join(format!("{ETCD_NAME}.pem")).display()
            ),
            format!(
                "--key-file={}",
                certs.join(format!("{ETCD_NAME}.key")).display()
            ),
            format!("--trusted-ca-file={}", certs.join("ca.pem").display()),
            "--client-cert-auth".into(),
        ];
        self.witness_command = Some((
            PathBuf::from("etcd"),
            args.into_iter().map(PathBuf::from).collect(),
        ));
        for name in names {
            let proxy = FaultProxy::start(client).context("start an etcd proxy")?;
            self.witness_proxies.insert((*name).to_owned(), proxy);
        }
        Ok(())
    }

    fn start_witness(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path().join("witness");
        let (program, args) = self.witness_command.clone().unwrap_or_else(|| {
            (
                self.bins.tandemd.clone(),
                vec![
                    PathBuf::from("witness"),
                    PathBuf::from("--config"),
                    dir.join("witness.toml"),
                ],
            )
        });
        self.witness = Some(NodeProcess::start(
            "witness",
            program,
            args,
            dir.join("witness.log"),
        )?);
        Ok(())
    }

    /// Witness mode: the witness process (to kill, stop or restart).
    ///
    /// # Panics
    /// If the cluster has no witness (`ClusterSpec::with_witness`).
    pub fn witness(&mut self) -> &mut NodeProcess {
        self.witness
            .as_mut()
            .expect("no witness; use ClusterSpec::with_witness(true)")
    }

    /// Witness mode: the proxy `node` reaches the witness through.
    ///
    /// # Panics
    /// If the cluster has no witness.
    pub fn witness_proxy(&self, node: &str) -> &FaultProxy {
        self.witness_proxies
            .get(node)
            .unwrap_or_else(|| panic!("no witness proxy for {node}; use with_witness(true)"))
    }

    /// Witness mode: `witness.toml`.
    pub fn witness_config_path(&self) -> PathBuf {
        self.dir.path().join("witness").join("witness.toml")
    }

    /// Where `from` dials `to`: the proxy between them if there is one.
    fn peer_dial_addr(&self, from: &str, to: &str, peer_port: SocketAddr) -> SocketAddr {
        self.proxies
            .get(&(from.to_owned(), to.to_owned()))
            .map_or(peer_port, FaultProxy::listen_addr)
    }

    /// Marks the run as failed, so drop keeps the files when `TANDEM_KEEP_TMP` is set (a check
    /// that found violations, say).
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Passes `result` through, remembering a failure for drop.
    pub(crate) fn record<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        result.map_err(|error| error.context(format!("cluster in {}", self.dir().display())))
    }

    /// The cluster's root directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir().join("certs")
    }

    /// The node names, in start order.
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|node| node.name.as_str()).collect()
    }

    pub fn addrs(&self, name: &str) -> NodeAddrs {
        self.node_entry(name).addrs
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.node_entry(name).data_dir()
    }

    pub fn config_path(&self, name: &str) -> PathBuf {
        self.node_entry(name).config_path()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.node_entry(name).log_path()
    }

    /// The node's config as last written.
    pub fn config(&self, name: &str) -> &NodeConfig {
        &self.node_entry(name).config
    }

    /// Changes a node's config and rewrites its file; a running node sees it at its next start.
    pub fn update_config(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut NodeConfig),
    ) -> anyhow::Result<()> {
        let node = self.node_entry_mut(name);
        change(&mut node.config);
        node.config.write(&node.config_path())
    }

    /// The node's process.
    ///
    /// # Panics
    /// If the node was never started: the test is wrong.
    pub fn node(&self, name: &str) -> &NodeProcess {
        self.node_entry(name)
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("node {name} was never started"))
    }

    /// The node's process, to signal, kill or restart it.
    ///
    /// # Panics
    /// If the node was never started: the test is wrong.
    pub fn node_mut(&mut self, name: &str) -> &mut NodeProcess {
        self.node_entry_mut(name)
            .process
            .as_mut()
            .unwrap_or_else(|| panic!("node {name} was never started"))
    }

    /// The proxy that carries what `from` dials to `to`'s peer port.
    ///
    /// # Panics
    /// If the cluster has no proxies (`ClusterSpec::with_proxies`) or no such nodes.
    pub fn proxy(&self, from: &str, to: &str) -> &FaultProxy {
        self.proxies
            .get(&(from.to_owned(), to.to_owned()))
            .unwrap_or_else(|| {
                panic!("no proxy from {from} to {to}; use ClusterSpec::with_proxies(true)")
            })
    }

    /// A `tandemctl --config <name's config>` command, for a test that runs it itself (a
    /// streaming `events --follow`, say). Prefer `ctl`, which has a timeout.
    pub fn ctl_command(&self, name: &str) -> Command {
        let mut command = Command::new(&self.bins.tandemctl);
        command.arg("--config").arg(self.config_path(name));
        command
    }

    pub(crate) fn node_entry(&self, name: &str) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the cluster"))
    }

    fn node_entry_mut(&mut self, name: &str) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the cluster"))
    }

    fn keep_or_explain(&mut self) {
        if std::env::var_os(KEEP_TMP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "tandem-harness: cluster files kept in {}",
                self.dir().display()
            );
        } else {
            eprintln!(
                "tandem-harness: set {KEEP_TMP_ENV}=1 to keep a failed test's cluster files \
                 (configs, data, logs)"
            );
        }
    }
}

impl Drop for Cluster {
    /// Nodes first, so they do not log a storm of proxy errors; then proxies; then the files.
    fn drop(&mut self) {
        let failed = self.failed.load(Ordering::SeqCst) || thread::panicking();
        for node in &mut self.nodes {
            node.process = None;
        }
        self.witness = None;
        self.proxies.clear();
        self.witness_proxies.clear();
        if failed {
            self.keep_or_explain();
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let processes: Vec<_> = self.nodes.iter().map(|node| &node.process).collect();
        formatter
            .debug_struct("Cluster")
            .field("dir", &self.dir())
            .field("nodes", &processes)
            .field("proxies", &self.proxies)
            .finish()
    }
}

#[cfg(test)]
mod tests;
