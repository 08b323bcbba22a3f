//! One node's config file, as the harness generates it and a test adjusts it.
//!
//! The config is held as a TOML table, so a test can override any key by its dotted path
//! (`"timers.failover_after_misses"`) or remove one, and as a verbatim snippet appended after it,
//! for sections the harness does not know about (`[replication]`, `[hooks]`, `[[service]]`).
//! It does not validate anything: checking configs is the node's job, and a test of that needs
//! to write bad ones.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use toml::{Table, Value};

use crate::cluster_spec::NodeSpec;
use crate::ports::NodeAddrs;
use crate::timers::Timers;

/// A node's config file in the making.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeConfig {
    /// Every key the harness writes, plus the test's overrides.
    table: Table,
    /// TOML appended verbatim after `table`. It must not repeat a table that `table` has, or the
    /// file will not parse (which a test of config errors may want).
    extra_toml: String,
}

/// What the harness knows when it generates one node's config.
pub(crate) struct ConfigInputs<'a> {
    /// `cluster`.
    pub(crate) cluster_name: &'a str,
    /// `max_clock_offset`.
    pub(crate) max_clock_offset: Duration,
    /// The node: name, priority, reachability, and the test's overrides and extra TOML.
    pub(crate) node: &'a NodeSpec,
    /// `[listen]`.
    pub(crate) addrs: NodeAddrs,
    /// `[node] data_dir`.
    pub(crate) data_dir: &'a Path,
    /// Where `tandemctl certs init` wrote the CA and the node certificates.
    pub(crate) certs_dir: &'a Path,
    /// `[peer] name`.
    pub(crate) peer_name: &'a str,
    /// `[peer] address`: the peer's peer port, or the fault proxy in front of it.
    pub(crate) peer_address: SocketAddr,
    /// `[peer] client_address`: the peer's client port, never proxied.
    pub(crate) peer_client_address: SocketAddr,
    /// `[timers]`.
    pub(crate) timers: &'a Timers,
}

impl NodeConfig {
    /// An empty config; [`set`](Self::set) fills it.
    pub fn new() -> NodeConfig {
        NodeConfig::default()
    }

    /// The harness's config for one node, with the test's overrides and extra TOML applied.
    pub(crate) fn generate(inputs: &ConfigInputs<'_>) -> NodeConfig {
        let mut config = NodeConfig::new();
        config.set_top_level(inputs);
        config.set_node_and_listen(inputs);
        config.set_peer(inputs);
        config.set_timers(inputs.timers);
        config.set_tls(inputs.certs_dir, &inputs.node.name);
        for (path, value) in &inputs.node.overrides {
            config.set(path, value.clone());
        }
        config.append_toml(&inputs.node.extra_toml);
        config
    }

    fn set_top_level(&mut self, inputs: &ConfigInputs<'_>) {
        self.set("cluster", inputs.cluster_name);
        self.set("max_clock_offset", toml_duration(inputs.max_clock_offset));
    }

    fn set_node_and_listen(&mut self, inputs: &ConfigInputs<'_>) {
        let node = inputs.node;
        self.set("node.name", node.name.as_str());
        self.set("node.priority", i64::from(node.priority));
        self.set("node.data_dir", path_value(inputs.data_dir));
        self.set("node.reachability", strings(&node.reachability));
        self.set("listen.peer", inputs.addrs.peer.to_string());
        self.set("listen.client", inputs.addrs.client.to_string());
        self.set("listen.admin", inputs.addrs.admin.to_string());
        self.set("listen.http", inputs.addrs.http.to_string());
    }

    fn set_peer(&mut self, inputs: &ConfigInputs<'_>) {
        self.set("peer.name", inputs.peer_name);
        self.set("peer.address", inputs.peer_address.to_string());
        self.set(
            "peer.client_address",
            inputs.peer_client_address.to_string(),
        );
        self.set("peer.extra_addresses", Value::Array(Vec::new()));
    }

    fn set_timers(&mut self, timers: &Timers) {
        self.set(
            "timers.keepalive_interval",
            toml_duration(timers.keepalive_interval),
        );
        self.set(
            "timers.warn_after_misses",
            i64::from(timers.warn_after_misses),
        );
        self.set(
            "timers.failover_after_misses",
            i64::from(timers.failover_after_misses),
        );
        self.set(
            "timers.startup_failover_after_misses",
            i64::from(timers.startup_failover_after_misses),
        );
        self.set(
            "timers.min_failover_interval",
            toml_duration(timers.min_failover_interval),
        );
    }

    fn set_tls(&mut self, certs_dir: &Path, name: &str) {
        self.set("tls.ca", path_value(&certs_dir.join("ca.pem")));
        self.set(
            "tls.cert",
            path_value(&certs_dir.join(format!("{name}.pem"))),
        );
        self.set(
            "tls.key",
            path_value(&certs_dir.join(format!("{name}.key"))),
        );
    }

    /// Sets the key at a dotted path (`"cluster"`, `"timers.failover_after_misses"`), creating
    /// the tables on the way.
    ///
    /// # Panics
    /// If a part of the path before the last names a value that is not a table: the test's path
    /// is wrong.
    pub fn set(&mut self, path: &str, value: impl Into<Value>) -> &mut NodeConfig {
        let (sections, key) = split_path(path);
        let mut table = &mut self.table;
        for section in sections {
            let entry = table
                .entry(section)
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(inner) = entry else {
                panic!("config path {path}: {section} is not a table");
            };
            table = inner;
        }
        table.insert(key.to_owned(), value.into());
        self
    }

    /// The value at a dotted path, if there is one.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let (sections, key) = split_path(path);
        let mut table = &self.table;
        for section in sections {
            table = table.get(section)?.as_table()?;
        }
        table.get(key)
    }

    /// Removes the key at a dotted path, returning its value.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        let (sections, key) = split_path(path);
        let mut table = &mut self.table;
        for section in sections {
            table = table.get_mut(section)?.as_table_mut()?;
        }
        table.remove(key)
    }

    /// Appends a TOML snippet verbatim after the generated keys.
    pub fn append_toml(&mut self, snippet: &str) -> &mut NodeConfig {
        if !snippet.is_empty() {
            self.extra_toml.push('\n');
            self.extra_toml.push_str(snippet);
            if !snippet.ends_with('\n') {
                self.extra_toml.push('\n');
            }
        }
        self
    }

    /// The file's text.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut text = toml::to_string(&self.table).context("render the node config as TOML")?;
        text.push_str(&self.extra_toml);
        Ok(text)
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.render()?)
            .with_context(|| format!("write config {}", path.display()))
    }
}

/// A duration as the config spells it: `"2s"` for whole seconds, else `"150ms"`. Sub-millisecond
/// parts are dropped; no tandem timer is that fine.
pub fn toml_duration(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 {
        Value::from(format!("{}s", duration.as_secs()))
    } else {
        Value::from(format!("{}ms", duration.as_millis()))
    }
}

/// `"a.b.c"` into the sections `["a", "b"]` and the key `"c"`.
fn split_path(path: &str) -> (Vec<&str>, &str) {
    match path.rsplit_once('.') {
        Some((sections, key)) => (sections.split('.').collect(), key),
        None => (Vec::new(), path),
    }
}

fn path_value(path: &Path) -> Value {
    Value::from(path.to_string_lossy().into_owned())
}

fn strings(values: &[String]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|value| Value::from(value.as_str()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_remove_by_dotted_path() {
        let mut config = NodeConfig::new();
        config
            .set("cluster", "x")
            .set("timers.warn_after_misses", 3);
        config.set("replication.log_retention.entries", 10);
        assert_eq!(config.get("cluster"), Some(&Value::from("x")));
        assert_eq!(
            config.get("timers.warn_after_misses"),
            Some(&Value::from(3))
        );
        assert_eq!(
            config.get("replication.log_retention.entries"),
            Some(&Value::from(10))
        );
        assert_eq!(
            config.remove("timers.warn_after_misses"),
            Some(Value::from(3))
        );
        assert_eq!(config.get("timers.warn_after_misses"), None);
        assert_eq!(config.remove("nothing.here"), None);
    }

    #[test]
    #[should_panic(expected = "cluster is not a table")]
    fn a_path_through_a_value_is_a_test_bug() {
        NodeConfig::new()
            .set("cluster", "x")
            .set("cluster.name", "y");
    }

    #[test]
    fn rendered_config_parses_with_the_extra_snippet() {
        let mut config = NodeConfig::new();
        config.set("cluster", "x").set("node.name", "a");
        config.append_toml("[[service]]\nname = \"pbx\"");
        config.append_toml("[[service]]\nname = \"fax\"\n");
        let parsed: Table = config.render().unwrap().parse().unwrap();
        assert_eq!(parsed["cluster"].as_str(), Some("x"));
        assert_eq!(parsed["node"]["name"].as_str(), Some("a"));
        let services = parsed["service"].as_array().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[1]["name"].as_str(), Some("fax"));
    }

    #[test]
    fn durations_are_spelled_in_seconds_or_milliseconds() {
        assert_eq!(toml_duration(Duration::ZERO), Value::from("0s"));
        assert_eq!(toml_duration(Duration::from_secs(300)), Value::from("300s"));
        assert_eq!(
            toml_duration(Duration::from_millis(100)),
            Value::from("100ms")
        );
        assert_eq!(
            toml_duration(Duration::from_millis(1500)),
            Value::from("1500ms")
        );
    }
}
