//! `auto_failback`, a top-level key: whether, and when, the preferred node (the higher priority)
//! takes the active role back on its own, and how the key's text is read.

use std::time::Duration;

use super::error::ConfigError;
use super::validate::Validator;

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

impl Validator<'_> {
    /// The top-level `auto_failback` key.
    pub(super) fn auto_failback(&self, text: &str) -> Result<AutoFailback, ConfigError> {
        Ok(match text {
            "never" => AutoFailback::Never,
            "when_idle" => AutoFailback::WhenIdle,
            text => AutoFailback::After(self.duration("auto_failback", text).map_err(|_| {
                self.invalid(
                    "auto_failback",
                    format!(
                        "\"{text}\" is not \"never\", \"when_idle\" or a duration such as \"10m\""
                    ),
                )
            })?),
        })
    }
}
