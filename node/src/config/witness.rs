//! `[witness]` in a node's config (DESIGN.md §12): the witness this node asks for the third vote,
//! and the lease rules' numbers. Without the section the pair runs in pair mode, exactly as
//! before. The witness is `tandemd witness` at `address`, or an etcd cluster at `etcd` (keys
//! under `etcd_prefix`): exactly one of the two.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::validate::{Validator, check_host_port};

/// The validated `[witness]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessSettings {
    /// host:port of `tandemd witness`; with etcd, its endpoints joined by commas (for status).
    pub address: String,
    /// The name in the witness's certificate (the witness backend).
    pub server_name: String,
    /// The etcd backend instead of `tandemd witness`.
    pub etcd: Option<EtcdSettings>,
    /// The lease a vote gives; the witness's `lease` must be the same.
    pub lease: Duration,
    /// The clocks' drift the leases allow for, as a fraction.
    pub max_drift: f64,
}

/// `[witness] etcd` and `etcd_prefix`.
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdSettings {
    /// `https://host:port` of each etcd member.
    pub endpoints: Vec<String>,
    /// Where the pair's keys live: `<prefix>/<cluster>/record` and `<prefix>/<cluster>/leader`.
    pub prefix: String,
    /// The name the members' certificates must carry, if not each endpoint's host
    /// (`[witness] server_name` set with `etcd`).
    pub server_name: Option<String>,
}

/// etcd's leases last whole seconds, and etcd raises a shorter one to its minimum (by default
/// about 2 s): the lease of the etcd backend is at least this.
pub const ETCD_LEASE_MIN: Duration = Duration::from_secs(2);

impl WitnessSettings {
    /// "etcd" or "witness", for status.
    pub fn kind(&self) -> &'static str {
        if self.etcd.is_some() {
            "etcd"
        } else {
            "witness"
        }
    }

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
    server_name: Option<String>,
    lease: Option<String>,
    #[serde(default = "super::witness_file::default_drift")]
    max_drift: String,
    #[serde(default = "default_on_lost")]
    on_lost: String,
    etcd: Option<Vec<String>>,
    etcd_prefix: Option<String>,
}

fn default_on_lost() -> String {
    "stay".into()
}

impl Validator<'_> {
    pub(super) fn witness(&self, raw: RawWitness) -> Result<WitnessSettings, ConfigError> {
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
        let max_drift = self.drift("witness.max_drift", &raw.max_drift)?;
        if let Some(server_name) = &raw.server_name {
            if raw.etcd.is_some() {
                // An etcd member's certificate name: any DNS name.
                let plain = !server_name.is_empty()
                    && server_name.len() <= 253
                    && server_name.split('.').all(|label| {
                        !label.is_empty()
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !plain {
                    return Err(self.invalid(
                        "witness.server_name",
                        format!("{server_name:?} is not a DNS name like \"etcd.example.com\""),
                    ));
                }
            } else {
                crate::tls::certs::check_witness_name(server_name)
                    .map_err(|error| self.invalid("witness.server_name", error.to_string()))?;
            }
        }
        let Some(endpoints) = raw.etcd else {
            if raw.etcd_prefix.is_some() {
                return Err(self.invalid(
                    "witness.etcd_prefix",
                    "is for the etcd backend: set witness.etcd too, or remove it",
                ));
            }
            let address = raw.address.ok_or_else(|| {
                self.invalid(
                    "witness.address",
                    "is required (host:port of `tandemd witness`), unless witness.etcd names \
                     an etcd cluster",
                )
            })?;
            check_host_port(&address)
                .map_err(|message| self.invalid("witness.address", message))?;
            let lease = raw.lease.unwrap_or_else(super::witness_file::default_lease);
            return Ok(WitnessSettings {
                address,
                server_name: raw
                    .server_name
                    .unwrap_or_else(|| crate::tls::certs::WITNESS_NAME_DEFAULT.to_string()),
                etcd: None,
                lease: self.lease("witness.lease", &lease)?,
                max_drift,
            });
        };
        if !cfg!(feature = "etcd") {
            return Err(self.invalid("witness.etcd", crate::witness::client::NO_ETCD));
        }
        if raw.address.is_some() {
            return Err(self.invalid(
                "witness.etcd",
                "set either witness.address (`tandemd witness`) or witness.etcd, not both",
            ));
        }
        if endpoints.is_empty() {
            return Err(self.invalid(
                "witness.etcd",
                "names no endpoint: list the members as [\"https://host:2379\", ...]",
            ));
        }
        for endpoint in &endpoints {
            let Some(host_port) = endpoint.strip_prefix("https://") else {
                return Err(self.invalid(
                    "witness.etcd",
                    format!(
                        "{endpoint:?} is not an https:// endpoint: the votes travel only over \
                         mutual TLS"
                    ),
                ));
            };
            check_host_port(host_port.trim_end_matches('/')).map_err(|message| {
                self.invalid("witness.etcd", format!("{endpoint:?}: {message}"))
            })?;
        }
        let prefix = raw.etcd_prefix.unwrap_or_else(|| "/tandem".to_string());
        let plain = prefix.starts_with('/')
            && prefix.len() > 1
            && !prefix.ends_with('/')
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
        if !plain {
            return Err(self.invalid(
                "witness.etcd_prefix",
                format!(
                    "{prefix:?} is not a key prefix like \"/tandem\" (a leading /, no trailing /, \
                     letters, digits, / - _ .)"
                ),
            ));
        }
        let lease = self.lease("witness.lease", raw.lease.as_deref().unwrap_or("2s"))?;
        if lease < ETCD_LEASE_MIN {
            return Err(self.invalid(
                "witness.lease",
                "must be at least 2s with etcd: etcd raises a shorter lease to its minimum",
            ));
        }
        Ok(WitnessSettings {
            address: endpoints.join(","),
            server_name: String::new(),
            etcd: Some(EtcdSettings {
                endpoints,
                prefix,
                server_name: raw.server_name,
            }),
            lease,
            max_drift,
        })
    }
}
