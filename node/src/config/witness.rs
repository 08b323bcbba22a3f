//! `[witness]` in a node's config (DESIGN.md §12): the witness this node asks for the third vote,
//! and the lease rules' numbers. Without the section the pair runs in pair mode, exactly as
//! before. The etcd backend (`etcd`, `etcd_prefix`) is not built yet and is refused by name.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::validate::{Validator, check_host_port};

/// The validated `[witness]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessSettings {
    /// host:port of `tandemd witness`.
    pub address: String,
    /// The name in the witness's certificate.
    pub server_name: String,
    /// The lease a vote gives; the witness's `lease` must be the same.
    pub lease: Duration,
    /// The clocks' drift the leases allow for, as a fraction.
    pub max_drift: f64,
}

impl WitnessSettings {
    /// How long a vote counts on this node's clock after the request that won it was sent:
    /// the lease less twice the drift, so it ends before the grantor's side of it.
    pub fn holder_lease(&self) -> Duration {
        self.lease.mul_f64((1.0 - 2.0 * self.max_drift).max(0.0))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWitness {
    address: Option<String>,
    #[serde(default = "default_server_name")]
    server_name: String,
    #[serde(default = "super::witness_file::default_lease")]
    lease: String,
    #[serde(default = "super::witness_file::default_drift")]
    max_drift: String,
    #[serde(default = "default_on_lost")]
    on_lost: String,
    etcd: Option<Vec<String>>,
    etcd_prefix: Option<String>,
}

fn default_server_name() -> String {
    crate::tls::certs::WITNESS_NAME_DEFAULT.to_string()
}

fn default_on_lost() -> String {
    "stay".into()
}

impl Validator<'_> {
    pub(super) fn witness(&self, raw: RawWitness) -> Result<WitnessSettings, ConfigError> {
        if raw.etcd.is_some() || raw.etcd_prefix.is_some() {
            return Err(self.invalid(
                "witness.etcd",
                "the etcd backend is not built yet: run `tandemd witness` and set \
                 witness.address",
            ));
        }
        let address = raw
            .address
            .ok_or_else(|| self.invalid("witness.address", "is required (host:port)"))?;
        check_host_port(&address).map_err(|message| self.invalid("witness.address", message))?;
        crate::tls::certs::check_witness_name(&raw.server_name)
            .map_err(|error| self.invalid("witness.server_name", error.to_string()))?;
        if raw.on_lost != "stay" {
            return Err(self.invalid(
                "witness.on_lost",
                format!(
                    "\"{}\" is not a policy: \"stay\" (the active stays while it sees its peer) \
                     is the only one",
                    raw.on_lost
                ),
            ));
        }
        Ok(WitnessSettings {
            address,
            server_name: raw.server_name,
            lease: self.lease("witness.lease", &raw.lease)?,
            max_drift: self.drift("witness.max_drift", &raw.max_drift)?,
        })
    }
}
