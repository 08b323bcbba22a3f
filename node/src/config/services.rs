//! `[[service]]`: the processes this node supervises, where they run, how they are restarted and
//! how their health is probed. Supervising them is `crate::ops::supervisor`; this only reads them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::ConfigError;
use super::raw::{RawHealth, RawService};
use super::validate::{Validator, check_host_port, check_name};

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

impl Validator<'_> {
    pub(super) fn services(
        &self,
        raws: Vec<RawService>,
    ) -> Result<Vec<ServiceConfig>, ConfigError> {
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
}
