//! The file as written, as serde parses it: strings where the validated form has durations, sizes
//! and addresses, and the defaults of keys left out. Every table denies unknown fields, so a
//! misspelt key is an error rather than a setting silently ignored.
//!
//! Nothing here checks a value: `validate.rs` and the section files turn these structs into the
//! typed config, and only they (inside this folder) see them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The file as written: strings where the validated form has durations and addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) cluster: String,
    #[serde(default = "default_clock_offset")]
    pub(super) max_clock_offset: String,
    #[serde(default = "default_auto_failback")]
    pub(super) auto_failback: String,
    pub(super) node: RawNode,
    #[serde(default)]
    pub(super) listen: RawListen,
    pub(super) peer: RawPeer,
    #[serde(default)]
    pub(super) timers: RawTimers,
    #[serde(default)]
    pub(super) replication: RawReplication,
    #[serde(default)]
    pub(super) gateway: RawGateway,
    pub(super) alerts: Option<RawAlerts>,
    #[serde(default)]
    pub(super) hooks: RawHooks,
    #[serde(default)]
    pub(super) service: Vec<RawService>,
    #[serde(default)]
    pub(super) files: Vec<RawFiles>,
    pub(super) tls: RawTls,
    pub(super) witness: Option<super::witness::RawWitness>,
}

/// One `[[files]]` entry (DESIGN.md §7).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFiles {
    pub(super) name: String,
    pub(super) dir: String,
    #[serde(default)]
    pub(super) include: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default = "default_true")]
    pub(super) recursive: bool,
    #[serde(default = "default_scan_interval")]
    pub(super) scan_interval: String,
    /// Bytes per second at most, e.g. "20MiB"; "0" for no limit.
    #[serde(default = "default_bandwidth")]
    pub(super) bandwidth: String,
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
pub(super) struct RawService {
    pub(super) name: String,
    pub(super) command: String,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default = "default_run_on")]
    pub(super) run_on: String,
    #[serde(default)]
    pub(super) critical: bool,
    #[serde(default = "default_max_restarts")]
    pub(super) max_restarts: u32,
    #[serde(default = "default_restart_window")]
    pub(super) restart_window: String,
    #[serde(default = "default_restart_delay")]
    pub(super) restart_delay: String,
    #[serde(default = "default_stop_timeout")]
    pub(super) stop_timeout: String,
    pub(super) health: Option<RawHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) tcp: Option<String>,
    pub(super) command: Option<String>,
    #[serde(default = "default_health_interval")]
    pub(super) interval: String,
    #[serde(default = "default_health_timeout")]
    pub(super) timeout: String,
    #[serde(default = "default_health_failures")]
    pub(super) failures: u32,
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
pub(super) struct RawHooks {
    pub(super) on_active: String,
    pub(super) on_passive: String,
    pub(super) on_fault: String,
    pub(super) fence_peer: String,
    pub(super) timeout: String,
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
pub(super) struct RawAlerts {
    pub(super) smtp_host: String,
    #[serde(default = "default_smtp_port")]
    pub(super) smtp_port: u16,
    #[serde(default = "default_security")]
    pub(super) security: String,
    #[serde(default)]
    pub(super) user: String,
    #[serde(default)]
    pub(super) password: String,
    pub(super) from: String,
    pub(super) to: Vec<String>,
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
pub(super) struct RawGateway {
    pub(super) session_ttl: String,
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
pub(super) struct RawReplication {
    pub(super) mode: String,
    pub(super) sync_strict: bool,
    pub(super) sync_timeout: String,
    pub(super) migrations: Option<String>,
    pub(super) tables: Vec<String>,
    pub(super) conflict_policy: std::collections::BTreeMap<String, String>,
    pub(super) log_retention: RawRetention,
    pub(super) resync_rate: String,
    pub(super) request_retention: String,
    pub(super) verify_every: String,
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
pub(super) struct RawRetention {
    pub(super) entries: u64,
    pub(super) bytes: String,
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
pub(super) struct RawNode {
    pub(super) name: String,
    #[serde(default = "default_priority")]
    pub(super) priority: u32,
    #[serde(default = "default_data_dir")]
    pub(super) data_dir: String,
    #[serde(default)]
    pub(super) reachability: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawListen {
    pub(super) peer: String,
    pub(super) client: String,
    pub(super) admin: String,
    pub(super) http: String,
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
pub(super) struct RawPeer {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) client_address: String,
    #[serde(default)]
    pub(super) extra_addresses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTimers {
    pub(super) keepalive_interval: String,
    pub(super) warn_after_misses: u32,
    pub(super) failover_after_misses: u32,
    pub(super) startup_failover_after_misses: u32,
    pub(super) min_failover_interval: String,
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
pub(super) struct RawTls {
    pub(super) ca: String,
    pub(super) cert: String,
    pub(super) key: String,
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
