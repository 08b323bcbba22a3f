//! The node config: a TOML file, parsed and then validated in full before anything starts.
//!
//! Every problem is reported as one `ConfigError` that names the key or the file, and `tandemd`
//! exits with status 2 on it. This module only reads and checks; it opens no sockets and writes
//! no files. Relative paths are resolved against the config file's directory.

pub mod duration;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The file as written: strings where the validated form has durations and addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: String,
    #[serde(default = "default_clock_offset")]
    max_clock_offset: String,
    #[serde(default = "default_auto_failback")]
    auto_failback: String,
    node: RawNode,
    #[serde(default)]
    listen: RawListen,
    peer: RawPeer,
    #[serde(default)]
    timers: RawTimers,
    #[serde(default)]
    replication: RawReplication,
    #[serde(default)]
    gateway: RawGateway,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    files: Vec<RawFiles>,
    tls: RawTls,
}

/// One `[[files]]` entry (DESIGN.md §7).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    name: String,
    dir: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "default_true")]
    recursive: bool,
    #[serde(default = "default_scan_interval")]
    scan_interval: String,
    /// Bytes per second at most, e.g. "20MiB"; "0" for no limit.
    #[serde(default = "default_bandwidth")]
    bandwidth: String,
}

fn default_true() -> bool {
    true
}

fn default_scan_interval() -> String {
    "1m".into()
}

fn default_bandwidth() -> String {
    "0".into()
}

/// One `[[service]]` entry (DESIGN.md §6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default = "default_run_on")]
    run_on: String,
    #[serde(default)]
    critical: bool,
    #[serde(default = "default_max_restarts")]
    max_restarts: u32,
    #[serde(default = "default_restart_window")]
    restart_window: String,
    #[serde(default = "default_restart_delay")]
    restart_delay: String,
    #[serde(default = "default_stop_timeout")]
    stop_timeout: String,
    health: Option<RawHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    tcp: Option<String>,
    command: Option<String>,
    #[serde(default = "default_health_interval")]
    interval: String,
    #[serde(default = "default_health_timeout")]
    timeout: String,
    #[serde(default = "default_health_failures")]
    failures: u32,
}

fn default_run_on() -> String {
    "active".into()
}

fn default_max_restarts() -> u32 {
    3
}

fn default_restart_window() -> String {
    "5m".into()
}

fn default_restart_delay() -> String {
    "1s".into()
}

fn default_stop_timeout() -> String {
    "10s".into()
}

fn default_health_interval() -> String {
    "5s".into()
}

fn default_health_timeout() -> String {
    "2s".into()
}

fn default_health_failures() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHooks {
    on_active: String,
    on_passive: String,
    on_fault: String,
    fence_peer: String,
    timeout: String,
}

impl Default for RawHooks {
    fn default() -> RawHooks {
        RawHooks {
            on_active: String::new(),
            on_passive: String::new(),
            on_fault: String::new(),
            fence_peer: String::new(),
            timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    smtp_host: String,
    #[serde(default = "default_smtp_port")]
    smtp_port: u16,
    #[serde(default = "default_security")]
    security: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    from: String,
    to: Vec<String>,
}

fn default_auto_failback() -> String {
    "never".into()
}

fn default_smtp_port() -> u16 {
    25
}

fn default_security() -> String {
    "none".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGateway {
    session_ttl: String,
}

impl Default for RawGateway {
    fn default() -> RawGateway {
        RawGateway {
            session_ttl: "12h".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawReplication {
    mode: String,
    sync_strict: bool,
    sync_timeout: String,
    migrations: Option<String>,
    tables: Vec<String>,
    conflict_policy: std::collections::BTreeMap<String, String>,
    log_retention: RawRetention,
    resync_rate: String,
    request_retention: String,
    verify_every: String,
}

impl Default for RawReplication {
    fn default() -> Self {
        RawReplication {
            mode: "sync".into(),
            sync_strict: false,
            sync_timeout: "2s".into(),
            migrations: None,
            tables: Vec::new(),
            conflict_policy: std::collections::BTreeMap::new(),
            log_retention: RawRetention::default(),
            resync_rate: "0".into(),
            request_retention: "24h".into(),
            verify_every: "24h".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetention {
    entries: u64,
    bytes: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            entries: 1_000_000,
            bytes: "1GiB".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    #[serde(default = "default_priority")]
    priority: u32,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default)]
    reachability: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawListen {
    peer: String,
    client: String,
    admin: String,
    http: String,
}

impl Default for RawListen {
    fn default() -> Self {
        RawListen {
            peer: "0.0.0.0:7400".into(),
            client: "0.0.0.0:7401".into(),
            admin: "127.0.0.1:7402".into(),
            http: "0.0.0.0:7480".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: String,
    address: String,
    client_address: String,
    #[serde(default)]
    extra_addresses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimers {
    keepalive_interval: String,
    warn_after_misses: u32,
    failover_after_misses: u32,
    startup_failover_after_misses: u32,
    min_failover_interval: String,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers {
            keepalive_interval: "100ms".into(),
            warn_after_misses: 3,
            failover_after_misses: 8,
            startup_failover_after_misses: 50,
            min_failover_interval: "5m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: String,
    cert: String,
    key: String,
}

fn default_clock_offset() -> String {
    "500ms".into()
}

fn default_priority() -> u32 {
    100
}

fn default_data_dir() -> String {
    "/var/lib/tandem".into()
}

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
}

/// One `[[files]]` entry (DESIGN.md §7): paired with the peer's entry of the same name.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    pub name: String,
    pub dir: PathBuf,
    pub filter: tandem_replication::files::scan::Filter,
    /// The periodic full scan that repairs what the watcher missed.
    pub scan_interval: Duration,
    /// Bytes per second the sender may use; `None`: no limit.
    pub bandwidth: Option<u64>,
}

/// Where a supervised service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOn {
    /// Only while this node is active: started on promotion, stopped on demotion.
    Active,
    /// Always, on both nodes.
    Both,
}

impl RunOn {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOn::Active => "active",
            RunOn::Both => "both",
        }
    }
}

/// How a supervised service's health is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthProbe {
    /// A TCP connect to this host:port succeeds.
    Tcp(String),
    /// This shell command exits 0.
    Command(String),
}

#[derive(Clone, Debug)]
pub struct HealthConfig {
    pub probe: HealthProbe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed checks after which the service counts as failed and is restarted.
    pub failures: u32,
}

/// One `[[service]]` (DESIGN.md §6).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub run_on: RunOn,
    pub critical: bool,
    /// Failures within `restart_window` after which a critical service hands over.
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// The first restart's delay; each further failure in the window doubles it, up to a minute.
    pub restart_delay: Duration,
    /// After SIGTERM, how long a stopping service gets before SIGKILL.
    pub stop_timeout: Duration,
    pub health: Option<HealthConfig>,
}

/// `[hooks]` (DESIGN.md §6): shell commands; empty means none.
#[derive(Clone, Debug, Default)]
pub struct HooksConfig {
    pub on_active: String,
    pub on_passive: String,
    pub on_fault: String,
    pub fence_peer: String,
    pub timeout: Duration,
}

impl HooksConfig {
    /// The command of the hook called `name`, if one is set.
    pub fn command(&self, name: &str) -> Option<&str> {
        let command = match name {
            "on_active" => &self.on_active,
            "on_passive" => &self.on_passive,
            "on_fault" => &self.on_fault,
            "fence_peer" => &self.fence_peer,
            _ => return None,
        };
        (!command.trim().is_empty()).then_some(command.as_str())
    }
}

/// `auto_failback` (DESIGN.md §3): "never", "when_idle", or a duration such as "10m".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoFailback {
    Never,
    /// Once the preferred node is caught up and no call is running.
    WhenIdle,
    /// Once the preferred node has been caught up for this long.
    After(Duration),
}

impl AutoFailback {
    pub fn as_str(&self) -> String {
        match self {
            AutoFailback::Never => "never".into(),
            AutoFailback::WhenIdle => "when_idle".into(),
            AutoFailback::After(after) => crate::config::duration::largest_whole_unit(*after),
        }
    }
}

/// How the connection to the mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

/// `[alerts]` (DESIGN.md §6, §9).
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    /// With `password`; both empty: no authentication.
    pub user: String,
    pub password: String,
    pub from: String,
    pub to: Vec<String>,
}

/// `[gateway]` (DESIGN.md §5).
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// A session token expires this long after the password login that made it.
    pub session_ttl: Duration,
}

/// How writes wait for the peer (DESIGN.md §4, modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationMode {
    Sync,
    Async,
}

/// A table's conflict policy for merge-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    Newest,
    KeepActive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub mode: ReplicationMode,
    pub sync_strict: bool,
    pub sync_timeout: Duration,
    /// Directory of `NNN_name.sql` files; `None` when the default directory does not exist.
    pub migrations: Option<PathBuf>,
    pub tables: Vec<String>,
    /// The policy of tables not named in `conflict_policy`.
    pub default_policy: ConflictPolicy,
    pub table_policies: Vec<(String, ConflictPolicy)>,
    pub retention_entries: u64,
    pub retention_bytes: u64,
    /// Bytes per second a snapshot is sent at; 0 for no limit.
    pub resync_rate: u64,
    /// How long a request id is remembered (a retry within it returns the first outcome).
    pub request_retention: Duration,
    /// How often the active runs `verify` by itself.
    pub verify_every: Duration,
}

impl ReplicationConfig {
    pub fn policy_of(&self, table: &str) -> ConflictPolicy {
        self.table_policies
            .iter()
            .find(|(name, _)| name == table)
            .map_or(self.default_policy, |(_, policy)| *policy)
    }
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub priority: u32,
    pub data_dir: PathBuf,
    /// host:port targets; at least one must answer before this node may take over.
    pub reachability: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ListenConfig {
    pub peer: SocketAddr,
    pub client: SocketAddr,
    pub admin: SocketAddr,
    pub http: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub name: String,
    /// host:port of the peer's peer port (keep-alives).
    pub address: String,
    /// host:port of the peer's client port, handed to refused clients and dialled by the fast path.
    pub client_address: String,
    /// More keep-alive paths, for a second network card.
    pub extra_addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    pub keepalive_interval: Duration,
    pub warn_after_misses: u32,
    pub failover_after_misses: u32,
    pub startup_failover_after_misses: u32,
    pub min_failover_interval: Duration,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as if read from `path` (used for relative paths and messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().replace('\n', "\n  "),
        })?;
        Validator {
            path,
            base: path.parent().unwrap_or(Path::new(".")),
        }
        .validate(raw)
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
        let digest = ring::digest::digest(&ring::digest::SHA256, shared.as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

struct Validator<'a> {
    path: &'a Path,
    base: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

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
            auto_failback: match raw.auto_failback.as_str() {
                "never" => AutoFailback::Never,
                "when_idle" => AutoFailback::WhenIdle,
                text => AutoFailback::After(self.duration("auto_failback", text).map_err(|_| {
                    self.invalid(
                        "auto_failback",
                        format!("\"{text}\" is not \"never\", \"when_idle\" or a duration such as \"10m\""),
                    )
                })?),
            },
            listen: self.listen(&raw.listen)?,
            timers: self.timers(&raw.timers)?,
            replication: self.replication(raw.replication)?,
            gateway: self.gateway(&raw.gateway)?,
            alerts: raw.alerts.map(|alerts| self.alerts(alerts)).transpose()?,
            hooks: self.hooks(raw.hooks)?,
            services: self.services(raw.service)?,
            files: self.files(raw.files)?,
            tls: self.tls(&raw.tls)?,
            node,
            peer,
        };
        Ok(config)
    }

    fn duration(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        parse_duration(text).map_err(|message| self.invalid(key, message))
    }

    fn node(&self, raw: RawNode) -> Result<NodeConfig, ConfigError> {
        check_name(&raw.name).map_err(|message| self.invalid("node.name", message))?;
        for (index, target) in raw.reachability.iter().enumerate() {
            check_host_port(target)
                .map_err(|message| self.invalid(&format!("node.reachability[{index}]"), message))?;
        }
        if raw.data_dir.trim().is_empty() {
            return Err(self.invalid("node.data_dir", "must not be empty"));
        }
        Ok(NodeConfig {
            name: raw.name,
            priority: raw.priority,
            data_dir: self.resolve(&raw.data_dir),
            reachability: raw.reachability,
        })
    }

    fn peer(&self, raw: RawPeer, own_name: &str) -> Result<PeerConfig, ConfigError> {
        check_name(&raw.name).map_err(|message| self.invalid("peer.name", message))?;
        if raw.name == own_name {
            return Err(self.invalid(
                "peer.name",
                format!(
                    "\"{}\" is this node's own name (node.name); name the other node",
                    raw.name
                ),
            ));
        }
        check_host_port(&raw.address).map_err(|message| self.invalid("peer.address", message))?;
        check_host_port(&raw.client_address)
            .map_err(|message| self.invalid("peer.client_address", message))?;
        for (index, address) in raw.extra_addresses.iter().enumerate() {
            check_host_port(address).map_err(|message| {
                self.invalid(&format!("peer.extra_addresses[{index}]"), message)
            })?;
        }
        Ok(PeerConfig {
            name: raw.name,
            address: raw.address,
            client_address: raw.client_address,
            extra_addresses: raw.extra_addresses,
        })
    }

    fn listen(&self, raw: &RawListen) -> Result<ListenConfig, ConfigError> {
        let entries = [
            ("listen.peer", &raw.peer),
            ("listen.client", &raw.client),
            ("listen.admin", &raw.admin),
            ("listen.http", &raw.http),
        ];
        let mut parsed: Vec<(&str, SocketAddr)> = Vec::new();
        for (key, text) in entries {
            let address: SocketAddr = text.parse().map_err(|_| {
                self.invalid(
                    key,
                    format!("\"{text}\" is not an address such as \"0.0.0.0:7400\""),
                )
            })?;
            if let Some((other, _)) = parsed.iter().find(|(_, seen)| ports_clash(*seen, address)) {
                return Err(self.invalid(
                    key,
                    format!("port {} is already used by {other}", address.port()),
                ));
            }
            parsed.push((key, address));
        }
        Ok(ListenConfig {
            peer: parsed[0].1,
            client: parsed[1].1,
            admin: parsed[2].1,
            http: parsed[3].1,
        })
    }

    fn timers(&self, raw: &RawTimers) -> Result<Timers, ConfigError> {
        let keepalive_interval =
            self.duration("timers.keepalive_interval", &raw.keepalive_interval)?;
        if keepalive_interval < Duration::from_millis(10)
            || keepalive_interval > Duration::from_secs(60)
        {
            return Err(self.invalid("timers.keepalive_interval", "must be between 10ms and 60s"));
        }
        if raw.warn_after_misses == 0 {
            return Err(self.invalid("timers.warn_after_misses", "must be at least 1"));
        }
        if raw.failover_after_misses < 2 {
            return Err(self.invalid("timers.failover_after_misses", "must be at least 2"));
        }
        if raw.warn_after_misses >= raw.failover_after_misses {
            return Err(self.invalid(
                "timers.warn_after_misses",
                "must be below timers.failover_after_misses, or the peer is never suspect first",
            ));
        }
        if raw.startup_failover_after_misses < raw.failover_after_misses {
            return Err(self.invalid(
                "timers.startup_failover_after_misses",
                "must be at least timers.failover_after_misses",
            ));
        }
        Ok(Timers {
            keepalive_interval,
            warn_after_misses: raw.warn_after_misses,
            failover_after_misses: raw.failover_after_misses,
            startup_failover_after_misses: raw.startup_failover_after_misses,
            min_failover_interval: self
                .duration("timers.min_failover_interval", &raw.min_failover_interval)?,
        })
    }

    fn replication(&self, raw: RawReplication) -> Result<ReplicationConfig, ConfigError> {
        let mode = match raw.mode.as_str() {
            "sync" => ReplicationMode::Sync,
            "async" => ReplicationMode::Async,
            other => {
                return Err(self.invalid(
                    "replication.mode",
                    format!("\"{other}\" is not \"sync\" or \"async\""),
                ));
            }
        };
        let sync_timeout = self.duration("replication.sync_timeout", &raw.sync_timeout)?;
        if sync_timeout < Duration::from_millis(10) {
            return Err(self.invalid("replication.sync_timeout", "must be at least 10ms"));
        }
        let migrations = match &raw.migrations {
            Some(text) => {
                let dir = self.resolve(text);
                if !dir.is_dir() {
                    return Err(self.invalid(
                        "replication.migrations",
                        format!("directory {} does not exist", dir.display()),
                    ));
                }
                Some(dir)
            }
            None => Some(self.resolve("migrations")).filter(|dir| dir.is_dir()),
        };
        for (index, table) in raw.tables.iter().enumerate() {
            let valid = !table.is_empty()
                && table.len() <= 128
                && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !table.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!("\"{table}\" is not a table name (letters, digits, underscores)"),
                ));
            }
            if table.to_ascii_lowercase().starts_with("_tandem") {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!("\"{table}\" is one of tandem's own tables"),
                ));
            }
            if table.to_ascii_lowercase().starts_with("tandem_") {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!(
                        "\"{table}\": tables named tandem_* are the node's (clients cannot \
                         write them); name application tables otherwise"
                    ),
                ));
            }
            if tandem_gateway::schema::TABLES
                .iter()
                .any(|name| name.eq_ignore_ascii_case(table))
            {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!(
                        "\"{table}\" is one of the clients gateway's tables, which are always \
                         replicated; remove it from the list"
                    ),
                ));
            }
        }
        let policy = |key: &str, text: &str| match text {
            "newest" => Ok(ConflictPolicy::Newest),
            "keep_active" => Ok(ConflictPolicy::KeepActive),
            other => Err(self.invalid(
                key,
                format!("\"{other}\" is not \"newest\" or \"keep_active\""),
            )),
        };
        let mut default_policy = ConflictPolicy::Newest;
        let mut table_policies = Vec::new();
        for (table, text) in &raw.conflict_policy {
            let key = format!("replication.conflict_policy.{table}");
            let parsed = policy(&key, text)?;
            if table == "default" {
                default_policy = parsed;
            } else if !raw.tables.contains(table) {
                return Err(self.invalid(&key, format!("\"{table}\" is not in replication.tables")));
            } else {
                table_policies.push((table.clone(), parsed));
            }
        }
        if raw.log_retention.entries == 0 || raw.log_retention.entries > 10_000_000 {
            return Err(self.invalid(
                "replication.log_retention.entries",
                "must be between 1 and 10000000",
            ));
        }
        let retention_bytes = parse_bytes(&raw.log_retention.bytes)
            .map_err(|message| self.invalid("replication.log_retention.bytes", message))?;
        if retention_bytes < 1024 {
            return Err(self.invalid("replication.log_retention.bytes", "must be at least 1KiB"));
        }
        let resync_rate = parse_bytes(&raw.resync_rate)
            .map_err(|message| self.invalid("replication.resync_rate", message))?;
        let request_retention =
            self.duration("replication.request_retention", &raw.request_retention)?;
        if request_retention < Duration::from_secs(1) {
            return Err(self.invalid("replication.request_retention", "must be at least 1s"));
        }
        let verify_every = self.duration("replication.verify_every", &raw.verify_every)?;
        if verify_every < Duration::from_secs(1) {
            return Err(self.invalid("replication.verify_every", "must be at least 1s"));
        }
        Ok(ReplicationConfig {
            resync_rate,
            request_retention,
            verify_every,
            mode,
            sync_strict: raw.sync_strict,
            sync_timeout,
            migrations,
            tables: raw.tables,
            default_policy,
            table_policies,
            retention_entries: raw.log_retention.entries,
            retention_bytes,
        })
    }

    fn gateway(&self, raw: &RawGateway) -> Result<GatewaySettings, ConfigError> {
        let session_ttl = self.duration("gateway.session_ttl", &raw.session_ttl)?;
        if session_ttl < Duration::from_secs(1) {
            return Err(self.invalid("gateway.session_ttl", "must be at least 1s"));
        }
        Ok(GatewaySettings { session_ttl })
    }

    fn hooks(&self, raw: RawHooks) -> Result<HooksConfig, ConfigError> {
        let timeout = self.duration("hooks.timeout", &raw.timeout)?;
        if timeout < Duration::from_millis(100) {
            return Err(self.invalid("hooks.timeout", "must be at least 100ms"));
        }
        Ok(HooksConfig {
            on_active: raw.on_active,
            on_passive: raw.on_passive,
            on_fault: raw.on_fault,
            fence_peer: raw.fence_peer,
            timeout,
        })
    }

    fn services(&self, raws: Vec<RawService>) -> Result<Vec<ServiceConfig>, ConfigError> {
        let mut services: Vec<ServiceConfig> = Vec::with_capacity(raws.len());
        for (index, raw) in raws.into_iter().enumerate() {
            let key = |field: &str| format!("service[{index}].{field}");
            check_name(&raw.name).map_err(|message| self.invalid(&key("name"), message))?;
            if services.iter().any(|service| service.name == raw.name) {
                return Err(
                    self.invalid(&key("name"), format!("\"{}\" names two services", raw.name))
                );
            }
            if raw.command.trim().is_empty() {
                return Err(self.invalid(&key("command"), "must not be empty"));
            }
            // A path with a slash is relative to the config; a bare name is looked up in PATH.
            let command = if raw.command.contains('/') {
                self.resolve(&raw.command).display().to_string()
            } else {
                raw.command
            };
            let run_on = match raw.run_on.as_str() {
                "active" => RunOn::Active,
                "both" => RunOn::Both,
                other => {
                    return Err(self.invalid(
                        &key("run_on"),
                        format!("\"{other}\" is not \"active\" or \"both\""),
                    ));
                }
            };
            if raw.max_restarts == 0 {
                return Err(self.invalid(&key("max_restarts"), "must be at least 1"));
            }
            let restart_window = self.duration(&key("restart_window"), &raw.restart_window)?;
            let restart_delay = self.duration(&key("restart_delay"), &raw.restart_delay)?;
            if restart_delay < Duration::from_millis(10) || restart_delay > Duration::from_secs(60)
            {
                return Err(self.invalid(&key("restart_delay"), "must be between 10ms and 1m"));
            }
            let stop_timeout = self.duration(&key("stop_timeout"), &raw.stop_timeout)?;
            for name in raw.env.keys() {
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    return Err(self.invalid(
                        &key("env"),
                        format!("{name:?} is not an environment variable name"),
                    ));
                }
            }
            let health = match raw.health {
                None => None,
                Some(health) => Some(self.health(&key("health"), health)?),
            };
            services.push(ServiceConfig {
                name: raw.name,
                command,
                args: raw.args,
                env: raw.env,
                run_on,
                critical: raw.critical,
                max_restarts: raw.max_restarts,
                restart_window,
                restart_delay,
                stop_timeout,
                health,
            });
        }
        Ok(services)
    }

    fn files(&self, raws: Vec<RawFiles>) -> Result<Vec<FilesConfig>, ConfigError> {
        let mut entries: Vec<FilesConfig> = Vec::with_capacity(raws.len());
        for (index, raw) in raws.into_iter().enumerate() {
            let key = |field: &str| format!("files[{index}].{field}");
            check_name(&raw.name).map_err(|message| self.invalid(&key("name"), message))?;
            if entries.iter().any(|entry| entry.name == raw.name) {
                return Err(self.invalid(
                    &key("name"),
                    format!("\"{}\" names two [[files]] entries", raw.name),
                ));
            }
            let dir = self.resolve(&raw.dir);
            if !dir.is_dir() {
                return Err(
                    self.invalid(&key("dir"), format!("{} is not a directory", dir.display()))
                );
            }
            if entries
                .iter()
                .any(|entry| dir.starts_with(&entry.dir) || entry.dir.starts_with(&dir))
            {
                return Err(self.invalid(&key("dir"), "overlaps another [[files]] entry's dir"));
            }
            let filter = tandem_replication::files::scan::Filter::new(
                &raw.include,
                &raw.exclude,
                raw.recursive,
            )
            .map_err(|message| self.invalid(&key("include"), format!("bad glob {message}")))?;
            let scan_interval = self.duration(&key("scan_interval"), &raw.scan_interval)?;
            if scan_interval < Duration::from_secs(1) {
                return Err(self.invalid(&key("scan_interval"), "must be at least 1s"));
            }
            let bandwidth = parse_bytes(&raw.bandwidth)
                .map_err(|message| self.invalid(&key("bandwidth"), message))?;
            if bandwidth != 0 && bandwidth < 64 * 1024 {
                return Err(
                    self.invalid(&key("bandwidth"), "must be 0 (no limit) or at least 64KiB")
                );
            }
            entries.push(FilesConfig {
                name: raw.name,
                dir,
                filter,
                scan_interval,
                bandwidth: (bandwidth != 0).then_some(bandwidth),
            });
        }
        Ok(entries)
    }

    fn health(&self, key: &str, raw: RawHealth) -> Result<HealthConfig, ConfigError> {
        let probe = match (raw.tcp, raw.command) {
            (Some(tcp), None) => {
                check_host_port(&tcp)
                    .map_err(|message| self.invalid(&format!("{key}.tcp"), message))?;
                HealthProbe::Tcp(tcp)
            }
            (None, Some(command)) if !command.trim().is_empty() => HealthProbe::Command(command),
            (None, Some(_)) => {
                return Err(self.invalid(&format!("{key}.command"), "must not be empty"));
            }
            _ => {
                return Err(self.invalid(
                    key,
                    "give exactly one of tcp = \"host:port\" or command = \"...\"",
                ));
            }
        };
        let interval = self.duration(&format!("{key}.interval"), &raw.interval)?;
        if interval < Duration::from_millis(100) {
            return Err(self.invalid(&format!("{key}.interval"), "must be at least 100ms"));
        }
        let timeout = self.duration(&format!("{key}.timeout"), &raw.timeout)?;
        if timeout < Duration::from_millis(10) || timeout > interval {
            return Err(self.invalid(
                &format!("{key}.timeout"),
                "must be at least 10ms and at most the interval",
            ));
        }
        if raw.failures == 0 {
            return Err(self.invalid(&format!("{key}.failures"), "must be at least 1"));
        }
        Ok(HealthConfig {
            probe,
            interval,
            timeout,
            failures: raw.failures,
        })
    }

    fn alerts(&self, raw: RawAlerts) -> Result<AlertsConfig, ConfigError> {
        if raw.smtp_host.trim().is_empty() {
            return Err(self.invalid("alerts.smtp_host", "must not be empty"));
        }
        if raw.smtp_port == 0 {
            return Err(self.invalid("alerts.smtp_port", "must not be 0"));
        }
        let security = match raw.security.as_str() {
            "none" => SmtpSecurity::None,
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            other => {
                return Err(self.invalid(
                    "alerts.security",
                    format!("\"{other}\" is not one of none, starttls, tls"),
                ));
            }
        };
        if raw.user.is_empty() != raw.password.is_empty() {
            return Err(self.invalid(
                "alerts.user",
                "user and password go together: give both, or neither",
            ));
        }
        let mailbox = |key: &str, text: &str| {
            text.parse::<lettre::message::Mailbox>()
                .map(drop)
                .map_err(|error| {
                    self.invalid(key, format!("\"{text}\" is not a mail address: {error}"))
                })
        };
        mailbox("alerts.from", &raw.from)?;
        if raw.to.is_empty() {
            return Err(self.invalid("alerts.to", "must name at least one recipient"));
        }
        for (index, to) in raw.to.iter().enumerate() {
            mailbox(&format!("alerts.to[{index}]"), to)?;
        }
        Ok(AlertsConfig {
            smtp_host: raw.smtp_host,
            smtp_port: raw.smtp_port,
            security,
            user: raw.user,
            password: raw.password,
            from: raw.from,
            to: raw.to,
        })
    }

    fn tls(&self, raw: &RawTls) -> Result<crate::tls::TlsFiles, ConfigError> {
        let file = |key: &str, text: &str| -> Result<PathBuf, ConfigError> {
            let path = self.resolve(text);
            if !path.is_file() {
                return Err(self.invalid(
                    key,
                    format!(
                        "file {} does not exist (create certificates with `tandemctl certs init`)",
                        path.display()
                    ),
                ));
            }
            Ok(path)
        };
        Ok(crate::tls::TlsFiles {
            ca: file("tls.ca", &raw.ca)?,
            cert: file("tls.cert", &raw.cert)?,
            key: file("tls.key", &raw.key)?,
        })
    }

    fn resolve(&self, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}

/// Parses a size such as "1GiB", "512MiB", "64KiB", "1000" (bytes).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size such as \"1GiB\" or \"512MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// Two listeners clash when they share a port on the same or an unspecified address.
fn ports_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a valid node name: use letters, digits and '-'"
        ))
    }
}

fn check_host_port(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("\"{text}\" is not host:port"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("\"{text}\" is not host:port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid config in `dir`, with certificate files present, plus `extra` lines appended.
    fn write_config(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        for file in ["ca.pem", "a.pem", "a.key"] {
            std::fs::write(certs.join(file), "x").unwrap();
        }
        let mut text = "cluster = \"t\"\n[node]\nname = \"a\"\ndata_dir = \"data\"\n\
            [listen]\npeer = \"127.0.0.1:7400\"\nclient = \"127.0.0.1:7401\"\nadmin = \"127.0.0.1:7402\"\nhttp = \"127.0.0.1:7480\"\n\
            [peer]\nname = \"b\"\naddress = \"10.0.0.2:7400\"\nclient_address = \"10.0.0.2:7401\"\n\
            [timers]\nkeepalive_interval = \"100ms\"\n\
            [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/a.pem\"\nkey = \"certs/a.key\"\n"
            .to_string();
        for (from, to) in replace {
            assert!(text.contains(from), "{from}");
            text = text.replace(from, to);
        }
        let path = dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn error_for(replace: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), replace);
        Config::load(&path).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_config_loads_with_defaults_and_resolved_paths() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&write_config(dir.path(), &[])).unwrap();
        assert_eq!(config.timers.failover_after_misses, 8);
        assert_eq!(
            config.timers.min_failover_interval,
            Duration::from_secs(300)
        );
        assert_eq!(config.node.priority, 100);
        assert_eq!(config.node.data_dir, dir.path().join("data"));
        assert_eq!(config.tls.ca, dir.path().join("certs/ca.pem"));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let error = error_for(&[("[timers]\n", "[timers]\nfailover_aftr_misses = 3\n")]);
        assert!(error.contains("failover_aftr_misses"), "{error}");
        assert!(error.contains("node.toml"), "{error}");
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let error = error_for(&[("certs/a.key", "certs/missing.key")]);
        assert!(
            error.contains("tls.key") && error.contains("missing.key"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_duration_is_named() {
        let error = error_for(&[("\"100ms\"", "\"fast\"")]);
        assert!(
            error.contains("timers.keepalive_interval") && error.contains("\"fast\""),
            "{error}"
        );
    }

    #[test]
    fn a_peer_with_our_own_name_is_refused() {
        let error = error_for(&[("name = \"b\"", "name = \"a\"")]);
        assert!(
            error.contains("peer.name") && error.contains("own name"),
            "{error}"
        );
    }

    #[test]
    fn a_port_clash_names_both_keys() {
        let error = error_for(&[("127.0.0.1:7402", "127.0.0.1:7400")]);
        assert!(
            error.contains("listen.admin") && error.contains("listen.peer"),
            "{error}"
        );
        let wildcard = error_for(&[("127.0.0.1:7480", "0.0.0.0:7401")]);
        assert!(
            wildcard.contains("listen.http") && wildcard.contains("listen.client"),
            "{wildcard}"
        );
    }

    #[test]
    fn bad_addresses_and_thresholds_are_named() {
        assert!(error_for(&[("10.0.0.2:7400", "10.0.0.2")]).contains("peer.address"));
        assert!(error_for(&[("127.0.0.1:7401", "nowhere")]).contains("listen.client"));
        let error = error_for(&[("[timers]\n", "[timers]\nfailover_after_misses = 60\n")]);
        assert!(error.contains("startup_failover_after_misses"), "{error}");
    }

    #[test]
    fn a_toml_syntax_error_is_reported_with_the_file() {
        let error = error_for(&[("cluster = \"t\"", "cluster = ")]);
        assert!(error.contains("node.toml"), "{error}");
    }

    #[test]
    fn the_digest_covers_shared_settings_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = Config::load(&write_config(dir.path(), &[])).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let renamed = Config::load(&write_config(
            other_dir.path(),
            &[("data_dir = \"data\"", "data_dir = \"elsewhere\"")],
        ))
        .unwrap();
        assert_eq!(a.digest(), renamed.digest());
        let third = tempfile::tempdir().unwrap();
        let retimed =
            Config::load(&write_config(third.path(), &[("\"100ms\"", "\"200ms\"")])).unwrap();
        assert_ne!(a.digest(), retimed.digest());
    }

    fn with_replication(section: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &[("[tls]\n", &format!("{section}\n[tls]\n"))]);
        match Config::load(&path) {
            Ok(config) => format!("ok {:?}", config.replication),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn replication_defaults_are_sync_with_the_designed_retention() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&write_config(dir.path(), &[])).unwrap();
        let replication = config.replication;
        assert_eq!(replication.mode, ReplicationMode::Sync);
        assert!(!replication.sync_strict);
        assert_eq!(replication.sync_timeout, Duration::from_secs(2));
        assert_eq!(replication.retention_entries, 1_000_000);
        assert_eq!(replication.retention_bytes, 1 << 30);
        assert_eq!(
            replication.migrations, None,
            "no migrations directory, none used"
        );
        assert_eq!(replication.resync_rate, 0);
        assert_eq!(
            replication.request_retention,
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(config.gateway.session_ttl, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn bad_replication_settings_name_their_key() {
        let cases = [
            ("[replication]\nmode = \"semi\"", "replication.mode"),
            (
                "[replication]\nsync_timeout = \"soon\"",
                "replication.sync_timeout",
            ),
            (
                "[replication]\nmigrations = \"nowhere\"",
                "replication.migrations",
            ),
            ("[replication]\ntables = [\"a b\"]", "replication.tables[0]"),
            (
                "[replication]\ntables = [\"_tandem_log\"]",
                "replication.tables[0]",
            ),
            (
                "[replication]\ntables = [\"tandem_notes\"]",
                "replication.tables[0]",
            ),
            (
                "[replication]\ntables = [\"extensions\", \"CDRS\"]",
                "replication.tables[1]",
            ),
            (
                "[gateway]\nsession_ttl = \"forever\"",
                "gateway.session_ttl",
            ),
            ("[gateway]\nsession_ttl = \"10ms\"", "gateway.session_ttl"),
            ("[gateway]\nsession_tll = \"1h\"", "session_tll"),
            ("[hooks]\ntimeout = \"1ms\"", "hooks.timeout"),
            ("[hooks]\non_actve = \"x\"", "on_actve"),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"\"",
                "service[0].command",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrun_on = \"passive\"",
                "service[0].run_on",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\n[[service]]\nname = \"pbx\"\ncommand = \"y\"",
                "service[1].name",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nmax_restarts = 0",
                "service[0].max_restarts",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrestart_window = \"soon\"",
                "service[0].restart_window",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { tcp = \"nowhere\" }",
                "service[0].health.tcp",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { tcp = \"h:1\", command = \"true\" }",
                "service[0].health",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { command = \"true\", interval = \"1s\", timeout = \"5s\" }",
                "service[0].health.timeout",
            ),
            (
                "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrestrat = 1",
                "restrat",
            ),
            (
                "[[files]]\nname = \"vm\"\ndir = \"nowhere\"",
                "files[0].dir",
            ),
            (
                "[[files]]\nname = \"vm\"\ndir = \"certs\"\ninclude = [\"a[\"]",
                "files[0].include",
            ),
            (
                "[[files]]\nname = \"vm\"\ndir = \"certs\"\nbandwidth = \"fast\"",
                "files[0].bandwidth",
            ),
            (
                "[[files]]\nname = \"vm\"\ndir = \"certs\"\n[[files]]\nname = \"vm\"\ndir = \"data\"",
                "files[1].name",
            ),
            (
                "[[files]]\nname = \"vm\"\ndir = \"certs\"\nrecursve = true",
                "recursve",
            ),
            (
                "[alerts]\nsmtp_host = \"127.0.0.1\"\nfrom = \"not an address\"\nto = [\"ops@example.com\"]",
                "alerts.from",
            ),
            (
                "[alerts]\nsmtp_host = \"127.0.0.1\"\nfrom = \"t@example.com\"\nto = []",
                "alerts.to",
            ),
            (
                "[alerts]\nsmtp_host = \"h\"\nsecurity = \"ssl\"\nfrom = \"t@example.com\"\nto = [\"o@example.com\"]",
                "alerts.security",
            ),
            (
                "[alerts]\nsmtp_host = \"h\"\nuser = \"u\"\nfrom = \"t@example.com\"\nto = [\"o@example.com\"]",
                "alerts.user",
            ),
            (
                "[replication]\ntables = [\"t\"]\nconflict_policy = { t = \"loudest\" }",
                "replication.conflict_policy.t",
            ),
            (
                "[replication]\nconflict_policy = { u = \"newest\" }",
                "replication.conflict_policy.u",
            ),
            (
                "[replication]\nlog_retention = { entries = 0 }",
                "replication.log_retention.entries",
            ),
            (
                "[replication]\nlog_retention = { bytes = \"1 parsec\" }",
                "replication.log_retention.bytes",
            ),
            (
                "[replication]\nrequest_retention = \"500ms\"",
                "replication.request_retention",
            ),
            (
                "[replication]\nverify_every = \"daily\"",
                "replication.verify_every",
            ),
            (
                "[replication]\nresync_rate = \"fast\"",
                "replication.resync_rate",
            ),
            ("[replication]\nshipping = true", "shipping"),
        ];
        for (section, key) in cases {
            let message = with_replication(section);
            assert!(message.contains(key), "{section}: {message}");
        }
    }

    #[test]
    fn services_parse_with_defaults_and_resolved_commands() {
        let dir = tempfile::tempdir().unwrap();
        let section = "[[service]]\nname = \"pbx\"\ncommand = \"bin/pbx\"\nargs = [\"-f\"]\nenv = { LANG = \"C\" }\ncritical = true\nhealth = { tcp = \"127.0.0.1:5060\" }\n\
            [[service]]\nname = \"agent\"\ncommand = \"sleep\"\nrun_on = \"both\"\nrestart_window = \"1m\"\n";
        let path = write_config(dir.path(), &[("[tls]\n", &format!("{section}[tls]\n"))]);
        let config = Config::load(&path).unwrap();
        let [pbx, agent] = config.services.as_slice() else {
            panic!("two services: {:?}", config.services);
        };
        assert_eq!(
            pbx.command,
            dir.path().join("bin/pbx").display().to_string()
        );
        assert_eq!(pbx.args, ["-f"]);
        assert_eq!(pbx.env.get("LANG").map(String::as_str), Some("C"));
        assert_eq!(pbx.run_on, RunOn::Active);
        assert!(pbx.critical);
        assert_eq!(pbx.max_restarts, 3);
        assert_eq!(pbx.restart_window, Duration::from_secs(300));
        let health = pbx.health.as_ref().unwrap();
        assert_eq!(health.probe, HealthProbe::Tcp("127.0.0.1:5060".into()));
        assert_eq!(
            (health.interval, health.failures),
            (Duration::from_secs(5), 3)
        );
        assert_eq!(agent.command, "sleep");
        assert_eq!(agent.run_on, RunOn::Both);
        assert!(!agent.critical && agent.health.is_none());
        assert_eq!(agent.restart_window, Duration::from_secs(60));
    }

    #[test]
    fn auto_failback_takes_never_when_idle_or_a_duration() {
        let dir = tempfile::tempdir().unwrap();
        let load = |value: &str| {
            let line = format!("cluster = \"t\"\nauto_failback = \"{value}\"\n");
            Config::load(&write_config(dir.path(), &[("cluster = \"t\"\n", &line)]))
        };
        assert_eq!(load("never").unwrap().auto_failback, AutoFailback::Never);
        assert_eq!(
            load("when_idle").unwrap().auto_failback,
            AutoFailback::WhenIdle
        );
        assert_eq!(
            load("10m").unwrap().auto_failback,
            AutoFailback::After(Duration::from_secs(600))
        );
        let error = load("sometimes").unwrap_err().to_string();
        assert!(
            error.contains("auto_failback") && error.contains("when_idle"),
            "{error}"
        );
    }

    #[test]
    fn sizes_and_policies_parse() {
        let message = with_replication(
            "[replication]\nmode = \"async\"\ntables = [\"t\", \"u\"]\n\
             conflict_policy = { default = \"keep_active\", u = \"newest\" }\n\
             log_retention = { entries = 10, bytes = \"512MiB\" }\nresync_rate = \"64KiB\"",
        );
        assert!(message.starts_with("ok"), "{message}");
        assert!(message.contains("mode: Async"), "{message}");
        assert!(message.contains("default_policy: KeepActive"), "{message}");
        assert!(message.contains("(\"u\", Newest)"), "{message}");
        assert!(message.contains("retention_bytes: 536870912"), "{message}");
        assert!(message.contains("resync_rate: 65536"), "{message}");
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(
            parse_bytes("99999999999TiB")
                .unwrap_err()
                .contains("too large")
        );
    }
}
