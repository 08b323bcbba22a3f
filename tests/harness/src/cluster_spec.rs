//! What cluster to build: the builder a test fills before `Cluster::start`.

use std::time::Duration;

use toml::Value;

use crate::timers::Timers;

/// A pair as a test wants it. The default is the pair most tests need: nodes `a` (priority 100,
/// the preferred master) and `b` (priority 50), no fault proxies, [`Timers::default`], and
/// `max_clock_offset = "500ms"`.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// `cluster` in both configs.
    pub(crate) cluster_name: String,
    /// The two nodes, in the order `Cluster::start` starts them.
    pub(crate) nodes: Vec<NodeSpec>,
    /// Whether each node dials its peer through a fault proxy.
    pub(crate) proxies: bool,
    /// Whether the pair runs in witness mode: a `tandemd witness` of its own, which each node
    /// reaches through a fault proxy of its own.
    pub(crate) witness: bool,
    /// With `witness`: the witness is a one-member etcd cluster (the `etcd` of Debian's
    /// `etcd-server`), not `tandemd witness`.
    pub(crate) etcd: bool,
    /// `[timers]` for both nodes.
    pub(crate) timers: Timers,
    /// `max_clock_offset` for both nodes.
    pub(crate) max_clock_offset: Duration,
    /// How long one `tandemctl` call may run before it is killed. A SIGSTOPped node never
    /// answers, and a poll must not hang with it.
    pub(crate) ctl_timeout: Duration,
}

/// One node of a [`ClusterSpec`].
#[derive(Clone, Debug)]
pub(crate) struct NodeSpec {
    /// `[node] name`, and the name of its certificate and directory.
    pub(crate) name: String,
    /// `[node] priority`.
    pub(crate) priority: u32,
    /// `[node] reachability`: `host:port` targets.
    pub(crate) reachability: Vec<String>,
    /// Keys set after generation, by dotted path, in order; see `NodeConfig::set`.
    pub(crate) overrides: Vec<(String, Value)>,
    /// TOML appended verbatim to the generated config.
    pub(crate) extra_toml: String,
}

impl NodeSpec {
    fn new(name: &str, priority: u32) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            priority,
            reachability: Vec::new(),
            overrides: Vec::new(),
            extra_toml: String::new(),
        }
    }
}

impl Default for ClusterSpec {
    fn default() -> ClusterSpec {
        ClusterSpec {
            cluster_name: "test".to_owned(),
            nodes: vec![NodeSpec::new("a", 100), NodeSpec::new("b", 50)],
            proxies: false,
            witness: false,
            etcd: false,
            timers: Timers::default(),
            max_clock_offset: Duration::from_millis(500),
            ctl_timeout: Duration::from_secs(3),
        }
    }
}

impl ClusterSpec {
    pub fn new() -> ClusterSpec {
        ClusterSpec::default()
    }

    /// Puts a fault proxy on each node's dial to its peer (`Cluster::proxy`).
    pub fn with_proxies(mut self, proxies: bool) -> ClusterSpec {
        self.proxies = proxies;
        self
    }

    /// Witness mode (DESIGN.md §12): the cluster starts a `tandemd witness` before the nodes,
    /// and each node dials it through its own proxy (`Cluster::witness_proxy`).
    pub fn with_witness(mut self, witness: bool) -> ClusterSpec {
        self.witness = witness;
        self
    }

    /// Witness mode with an etcd cluster as the witness (`[witness] etcd`): the cluster starts a
    /// one-member etcd with mTLS from the cluster CA, which `Cluster::witness` and
    /// `Cluster::witness_proxy` then stand for.
    pub fn with_etcd_witness(mut self) -> ClusterSpec {
        self.witness = true;
        self.etcd = true;
        self
    }

    pub fn cluster_name(mut self, name: &str) -> ClusterSpec {
        self.cluster_name = name.to_owned();
        self
    }

    pub fn timers(mut self, timers: Timers) -> ClusterSpec {
        self.timers = timers;
        self
    }

    pub fn max_clock_offset(mut self, offset: Duration) -> ClusterSpec {
        self.max_clock_offset = offset;
        self
    }

    pub fn ctl_timeout(mut self, timeout: Duration) -> ClusterSpec {
        self.ctl_timeout = timeout;
        self
    }

    /// Swaps the start order (and nothing else): `Cluster::start` starts `first` first.
    pub fn start_first(mut self, first: &str) -> ClusterSpec {
        let index = self.index(first);
        self.nodes.swap(0, index);
        self
    }

    pub fn priority(mut self, node: &str, priority: u32) -> ClusterSpec {
        self.node_mut(node).priority = priority;
        self
    }

    /// `[node] reachability` of one node.
    pub fn reachability(
        mut self,
        node: &str,
        targets: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClusterSpec {
        self.node_mut(node).reachability = targets.into_iter().map(Into::into).collect();
        self
    }

    /// Overrides one key of one node's config by dotted path (`"replication.mode"`).
    pub fn set(mut self, node: &str, path: &str, value: impl Into<Value>) -> ClusterSpec {
        self.node_mut(node)
            .overrides
            .push((path.to_owned(), value.into()));
        self
    }

    /// Overrides one key in both nodes' configs.
    pub fn set_all(mut self, path: &str, value: impl Into<Value>) -> ClusterSpec {
        let value = value.into();
        for node in &mut self.nodes {
            node.overrides.push((path.to_owned(), value.clone()));
        }
        self
    }

    /// Appends a TOML snippet verbatim to one node's config (a `[hooks]` or `[[service]]`
    /// section, say). Repeated calls append in order.
    pub fn extra_toml(mut self, node: &str, snippet: &str) -> ClusterSpec {
        let extra = &mut self.node_mut(node).extra_toml;
        extra.push_str(snippet);
        if !snippet.ends_with('\n') {
            extra.push('\n');
        }
        self
    }

    /// The node names, in start order.
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|node| node.name.as_str()).collect()
    }

    fn index(&self, node: &str) -> usize {
        let names = self.node_names();
        names
            .iter()
            .position(|name| *name == node)
            .unwrap_or_else(|| panic!("no node {node} in the cluster spec; nodes are {names:?}"))
    }

    fn node_mut(&mut self, node: &str) -> &mut NodeSpec {
        let index = self.index(node);
        &mut self.nodes[index]
    }
}
