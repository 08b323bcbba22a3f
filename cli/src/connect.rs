//! Dialing a node's admin port: from `--config node.toml` (that node's admin address and
//! certificate) or from `--node ADDR --ca --cert --key`; and reading its status.

use std::time::Duration;

use tandem_node::admin::status::Status;
use tandem_node::config::Config;
use tandem_node::tls::{self, TlsFiles};
use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::args::Cli;
use crate::failure::{Failure, rpc_failure};

/// The name every node certificate carries, so an administrator can dial any node by address.
pub const NODE_SERVER_NAME: &str = "tandem-node";
pub const NO_TARGET: &str =
    "say which node: --config node.toml, or --node ADDR --ca F --cert F --key F";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to dial and with which files, from --config or from --node/--ca/--cert/--key.
fn target(cli: &Cli) -> Result<(String, TlsFiles), Failure> {
    if let Some(path) = &cli.config {
        let config = Config::load(path)?;
        let mut admin = config.listen.admin;
        if admin.ip().is_unspecified() {
            admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        return Ok((admin.to_string(), config.tls));
    }
    flag_target(cli).ok_or_else(|| Failure(NO_TARGET.into()))
}

/// The address and files of `--node ADDR --ca F --cert F --key F`, if all were given.
pub fn flag_target(cli: &Cli) -> Option<(String, TlsFiles)> {
    match (&cli.node, &cli.ca, &cli.cert, &cli.key) {
        (Some(node), Some(ca), Some(cert), Some(key)) => Some((
            node.clone(),
            TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            },
        )),
        _ => None,
    }
}

pub async fn connect(cli: &Cli) -> Result<AdminClient<Channel>, Failure> {
    let (address, files) = target(cli)?;
    connect_admin(&address, &files).await
}

/// Dials a node's admin port with a cluster-CA client certificate.
pub async fn connect_admin(
    address: &str,
    files: &TlsFiles,
) -> Result<AdminClient<Channel>, Failure> {
    let config = tls::client_config(files, true)?;
    let channel = tls::connect(address, NODE_SERVER_NAME, config, CONNECT_TIMEOUT)
        .await
        .map_err(|error| Failure(format!("cannot reach the node's admin port: {error}")))?;
    Ok(AdminClient::new(channel))
}

/// Reads one node's status.
pub async fn fetch_status(client: &mut AdminClient<Channel>) -> Result<Status, Failure> {
    let reply = client
        .status(pb::StatusRequest {})
        .await
        .map_err(rpc_failure)?;
    Ok(tandem_node::admin::status_wire::status_from_pb(
        reply.into_inner(),
    ))
}
