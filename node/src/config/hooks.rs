//! `[hooks]`: the shell commands run on role changes and to fence the peer, and how long each may
//! take. Running them is `crate::ops::hooks`; this only reads them.

use std::time::Duration;

use super::error::ConfigError;
use super::raw::RawHooks;
use super::validate::Validator;

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

impl Validator<'_> {
    pub(super) fn hooks(&self, raw: RawHooks) -> Result<HooksConfig, ConfigError> {
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
}
