//! `witness.toml`: the config of `tandemd witness` (DESIGN.md §12), a file of its own beside the
//! nodes' configs. It names where the witness listens, where it keeps `witness.db`, its TLS
//! files, the lease it grants, and the pairs it serves:
//!
//! ```toml
//! name = "tandem-witness"          # its certificate's name (default)
//! data_dir = "/var/lib/tandem-witness"
//! lease = "1s"                     # default; the nodes' `[witness] lease` must match
//! max_drift = "1%"                 # default
//! [listen]
//! witness = "0.0.0.0:7400"
//! [tls]
//! ca = "certs/ca.pem"
//! cert = "certs/tandem-witness.pem"
//! key = "certs/tandem-witness.key"
//! [[pair]]
//! cluster = "pbx"
//! nodes = ["pbx-a", "pbx-b"]
//! ```
//!
//! A node's certificate names only the node, so node names must be unique across the pairs one
//! witness serves: the name is how the witness knows which pair a connection belongs to.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::raw::RawTls;
use super::validate::{Validator, check_name};

/// The validated `witness.toml`.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    pub path: PathBuf,
    /// The name its certificate carries (what the nodes dial it as).
    pub name: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub lease: Duration,
    /// The clocks' drift the leases allow for, as a fraction (0.01 for "1%").
    pub max_drift: f64,
    pub tls: crate::tls::TlsFiles,
    pub pairs: Vec<WitnessPair>,
}

/// One `[[pair]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPair {
    pub cluster: String,
    pub nodes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitnessConfig {
    #[serde(default = "default_name")]
    name: String,
    data_dir: String,
    #[serde(default = "default_lease")]
    lease: String,
    #[serde(default = "default_drift")]
    max_drift: String,
    listen: RawWitnessListen,
    tls: RawTls,
    #[serde(default)]
    pair: Vec<RawPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitnessListen {
    witness: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    cluster: String,
    nodes: Vec<String>,
}

fn default_name() -> String {
    crate::tls::certs::WITNESS_NAME_DEFAULT.to_string()
}

pub(super) fn default_lease() -> String {
    "1s".into()
}

pub(super) fn default_drift() -> String {
    "1%".into()
}

/// The shortest lease: shorter ones would be renewed faster than a stream can carry them.
pub const LEASE_MIN: Duration = Duration::from_millis(200);
/// The longest lease: a vanished host costs one lease.
pub const LEASE_MAX: Duration = Duration::from_secs(60);

impl WitnessConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<WitnessConfig, ConfigError> {
        super::validate::load_file(path, None, |validator, raw: RawWitnessConfig| {
            validator.witness_file(raw)
        })
    }
}

impl Validator<'_> {
    fn witness_file(&self, raw: RawWitnessConfig) -> Result<WitnessConfig, ConfigError> {
        crate::tls::certs::check_witness_name(&raw.name)
            .map_err(|error| self.invalid("name", error.to_string()))?;
        if raw.data_dir.trim().is_empty() {
            return Err(self.invalid("data_dir", "must not be empty"));
        }
        let listen: SocketAddr = raw.listen.witness.parse().map_err(|_| {
            self.invalid(
                "listen.witness",
                format!("\"{}\" is not an address (ip:port)", raw.listen.witness),
            )
        })?;
        let lease = self.lease("lease", &raw.lease)?;
        let max_drift = self.drift("max_drift", &raw.max_drift)?;
        if raw.pair.is_empty() {
            return Err(self.invalid("pair", "list at least one [[pair]] the witness serves"));
        }
        let mut clusters = BTreeSet::new();
        let mut nodes_seen = BTreeSet::new();
        let mut pairs = Vec::new();
        for (index, pair) in raw.pair.into_iter().enumerate() {
            let key = |field: &str| format!("pair[{index}].{field}");
            if pair.cluster.trim().is_empty() {
                return Err(self.invalid(&key("cluster"), "must not be empty"));
            }
            if !clusters.insert(pair.cluster.clone()) {
                let message = format!("the pair {:?} is listed twice", pair.cluster);
                return Err(self.invalid(&key("cluster"), message));
            }
            if pair.nodes.len() != 2 {
                let message = format!("a pair has 2 nodes, not {}", pair.nodes.len());
                return Err(self.invalid(&key("nodes"), message));
            }
            for node in &pair.nodes {
                check_name(node).map_err(|message| self.invalid(&key("nodes"), message))?;
                if !nodes_seen.insert(node.to_ascii_lowercase()) {
                    let message = format!(
                        "the node {node:?} is listed twice: node names must be unique across the \
                         pairs one witness serves (a certificate names only its node)"
                    );
                    return Err(self.invalid(&key("nodes"), message));
                }
                if node.eq_ignore_ascii_case(&raw.name) {
                    let message = format!("{node:?} is the witness's own name");
                    return Err(self.invalid(&key("nodes"), message));
                }
            }
            pairs.push(WitnessPair {
                cluster: pair.cluster,
                nodes: pair.nodes,
            });
        }
        Ok(WitnessConfig {
            path: self.path.to_path_buf(),
            name: raw.name,
            data_dir: self.resolve(&raw.data_dir),
            listen,
            lease,
            max_drift,
            tls: self.tls(&raw.tls)?,
            pairs,
        })
    }

    /// A lease length, within [`LEASE_MIN`]..=[`LEASE_MAX`].
    pub(super) fn lease(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        let lease = self.duration(key, text)?;
        if !(LEASE_MIN..=LEASE_MAX).contains(&lease) {
            return Err(self.invalid(key, "must be between 200ms and 60s"));
        }
        Ok(lease)
    }

    /// A drift such as "1%": a fraction of at least 0 and at most 10 %.
    pub(super) fn drift(&self, key: &str, text: &str) -> Result<f64, ConfigError> {
        let number = text
            .trim()
            .strip_suffix('%')
            .and_then(|number| number.trim().parse::<f64>().ok())
            .filter(|percent| percent.is_finite())
            .ok_or_else(|| {
                self.invalid(key, format!("\"{text}\" is not a percentage like \"1%\""))
            })?;
        if !(0.0..=10.0).contains(&number) {
            return Err(self.invalid(key, "must be between 0% and 10%"));
        }
        Ok(number / 100.0)
    }
}
