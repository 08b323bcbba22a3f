//! `[node]`, `[listen]` and `[peer]`: who this node is, the addresses it listens on, and how to
//! reach the other node of the pair. Together because they are one question (where each end of
//! the pair is) and are checked against each other: the peer must not bear this node's name.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::ConfigError;
use super::raw::{RawListen, RawNode, RawPeer};
use super::validate::{Validator, check_host_port, check_name};

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

impl Validator<'_> {
    pub(super) fn node(&self, raw: RawNode) -> Result<NodeConfig, ConfigError> {
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

    pub(super) fn peer(&self, raw: RawPeer, own_name: &str) -> Result<PeerConfig, ConfigError> {
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

    pub(super) fn listen(&self, raw: &RawListen) -> Result<ListenConfig, ConfigError> {
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
}

/// Two listeners clash when they share a port on the same or an unspecified address.
fn ports_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
