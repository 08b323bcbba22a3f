//! The validated config as a whole: [`Config`], reading the file and parsing it into one, the
//! checks of the top-level keys, the pass that has every section checked, and the digest both
//! nodes compare.
//!
//! `Config::load` is the one place in this folder that reads from disk. Each section's type and
//! checks are in the section's own file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::alerts::AlertsConfig;
use super::error::ConfigError;
use super::failback::AutoFailback;
use super::files::FilesConfig;
use super::gateway::GatewaySettings;
use super::hooks::HooksConfig;
use super::node::{ListenConfig, NodeConfig, PeerConfig};
use super::raw::RawConfig;
use super::replication::ReplicationConfig;
use super::services::ServiceConfig;
use super::timers::Timers;
use super::validate::Validator;

/// A validated node config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: PathBuf,
    /// Cluster id; both nodes must agree, and it travels in every heartbeat.
    pub cluster: String,
    /// Clock skew to the peer above this raises an event.
    pub max_clock_offset: Duration,
    /// When the preferred node (the higher priority) takes the active role back on its own.
    pub auto_failback: AutoFailback,
    pub node: NodeConfig,
    pub listen: ListenConfig,
    pub peer: PeerConfig,
    pub timers: Timers,
    pub replication: ReplicationConfig,
    pub gateway: GatewaySettings,
    /// `[alerts]`: where selected events are mailed; `None` mails nothing.
    pub alerts: Option<AlertsConfig>,
    pub hooks: HooksConfig,
    /// `[[service]]`: the services this node supervises.
    pub services: Vec<ServiceConfig>,
    /// `[[files]]`: the directories replicated to the peer.
    pub files: Vec<FilesConfig>,
    pub tls: crate::tls::TlsFiles,
    /// `[witness]`: the third vote (DESIGN.md §12); `None` is pair mode.
    pub witness: Option<super::WitnessSettings>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        super::validate::load_file(path, None, |validator, raw: RawConfig| {
            validator.validate(raw)
        })
    }

    /// Validates `text` as if read from `path` (used for relative paths and messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        super::validate::load_file(path, Some(text), |validator, raw: RawConfig| {
            validator.validate(raw)
        })
    }

    /// Digest of the settings both nodes must share; a mismatch raises an event.
    pub fn digest(&self) -> String {
        let millis = |duration: Duration| duration.as_millis().to_string();
        let timers = &self.timers;
        let shared = [
            self.cluster.clone(),
            millis(self.max_clock_offset),
            millis(timers.keepalive_interval),
            timers.warn_after_misses.to_string(),
            timers.failover_after_misses.to_string(),
            timers.startup_failover_after_misses.to_string(),
            millis(timers.min_failover_interval),
            format!("{:?}", self.replication.mode),
            self.replication.sync_strict.to_string(),
            self.replication.tables.join(","),
        ]
        .join("|");
        // Both nodes must agree on witness mode and its lease; pair mode's digest is unchanged.
        let shared = match &self.witness {
            Some(witness) => match &witness.etcd {
                None => format!("{shared}|witness:{}", millis(witness.lease)),
                Some(etcd) => format!("{shared}|etcd:{}:{}", millis(witness.lease), etcd.prefix),
            },
            None => shared,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, shared.as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl Validator<'_> {
    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.cluster.trim().is_empty() {
            return Err(self.invalid("cluster", "must not be empty"));
        }
        let node = self.node(raw.node)?;
        let peer = self.peer(raw.peer, &node.name)?;
        let config = Config {
            path: self.path.to_path_buf(),
            cluster: raw.cluster,
            max_clock_offset: self.duration("max_clock_offset", &raw.max_clock_offset)?,
            auto_failback: self.auto_failback(&raw.auto_failback)?,
            listen: self.listen(&raw.listen)?,
            timers: self.timers(&raw.timers)?,
            replication: self.replication(raw.replication)?,
            gateway: self.gateway(&raw.gateway)?,
            alerts: raw.alerts.map(|alerts| self.alerts(alerts)).transpose()?,
            hooks: self.hooks(raw.hooks)?,
            services: self.services(raw.service)?,
            files: self.files(raw.files)?,
            tls: self.tls(&raw.tls)?,
            witness: raw.witness.map(|raw| self.witness(raw)).transpose()?,
            node,
            peer,
        };
        Ok(config)
    }
}
