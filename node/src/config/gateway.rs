//! `[gateway]`: settings of the clients gateway (DESIGN.md §5). The gateway itself is
//! `crate::clients`; this only reads its settings.

use std::time::Duration;

use super::error::ConfigError;
use super::raw::RawGateway;
use super::validate::Validator;

/// `[gateway]` (DESIGN.md §5).
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// A session token expires this long after the password login that made it.
    pub session_ttl: Duration,
}

impl Validator<'_> {
    pub(super) fn gateway(&self, raw: &RawGateway) -> Result<GatewaySettings, ConfigError> {
        let session_ttl = self.duration("gateway.session_ttl", &raw.session_ttl)?;
        if session_ttl < Duration::from_secs(1) {
            return Err(self.invalid("gateway.session_ttl", "must be at least 1s"));
        }
        Ok(GatewaySettings { session_ttl })
    }
}
