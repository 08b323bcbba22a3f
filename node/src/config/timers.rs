//! `[timers]`: how often keep-alives go, and after how many misses the peer is suspect and then
//! failed over from. Both nodes must agree on them (they are in `Config::digest`).

use std::time::Duration;

use super::error::ConfigError;
use super::raw::RawTimers;
use super::validate::Validator;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    pub keepalive_interval: Duration,
    pub warn_after_misses: u32,
    pub failover_after_misses: u32,
    pub startup_failover_after_misses: u32,
    pub min_failover_interval: Duration,
}

impl Validator<'_> {
    pub(super) fn timers(&self, raw: &RawTimers) -> Result<Timers, ConfigError> {
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
}
