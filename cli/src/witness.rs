//! `witness status`: what a witness (`tandemd witness`) holds for each pair it serves. It dials
//! the witness's port: with `--config witness.toml` (on the witness's host: its address and its
//! own certificate), or with `--node ADDR --ca --cert --key` and `--server-name`.

use std::time::Duration;

use tandem_node::config::WitnessConfig;
use tandem_node::tls::{self, TlsFiles};
use tandem_proto::witness as pb;
use tandem_proto::witness::witness_client::WitnessClient;

use crate::args::{Cli, WitnessCommand};
use crate::failure::{Failure, rpc_failure};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn witness(cli: &Cli, command: &WitnessCommand) -> Result<(), Failure> {
    let WitnessCommand::Status { server_name } = command;
    let (address, files, server_name) = target(cli, server_name)?;
    let config = tls::client_config(&files, true)?;
    let channel = tls::connect(&address, &server_name, config, CONNECT_TIMEOUT)
        .await
        .map_err(|error| Failure(format!("cannot reach the witness at {address}: {error}")))?;
    let reply = WitnessClient::new(channel)
        .status(pb::WitnessStatusRequest {})
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if cli.json {
        let pairs: Vec<_> = reply.pairs.iter().map(pair_json).collect();
        let out = serde_json::json!({ "witness": reply.witness, "pairs": pairs });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let plural = if reply.pairs.len() == 1 { "" } else { "s" };
    println!(
        "witness {}: {} pair{plural}",
        reply.witness,
        reply.pairs.len()
    );
    for pair in &reply.pairs {
        println!("{}", pair_line(pair));
    }
    Ok(())
}

fn target(cli: &Cli, server_name: &str) -> Result<(String, TlsFiles, String), Failure> {
    if let Some(path) = &cli.config {
        let config = WitnessConfig::load(path)?;
        let mut address = config.listen;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        return Ok((address.to_string(), config.tls, config.name));
    }
    let (address, files) = crate::connect::flag_target(cli).ok_or_else(|| {
        Failure(
            "say which witness: --config witness.toml, or --node ADDR --ca F --cert F --key F"
                .into(),
        )
    })?;
    Ok((address, files, server_name.to_string()))
}

fn pair_line(pair: &pb::PairStatus) -> String {
    let connected = if pair.connected.is_empty() {
        "none".to_string()
    } else {
        pair.connected.join(", ")
    };
    let holder = match &pair.term {
        Some(term) => format!(
            "active {}, term ({}, {}), lease {} ms left",
            pair.active, term.epoch, term.node, pair.lease_left_ms
        ),
        None => "no active recorded yet".to_string(),
    };
    let mut line = format!(
        "pair {} ({}): {holder}; connected: {connected}",
        pair.cluster,
        pair.nodes.join(", ")
    );
    if !pair.outdated.is_empty() {
        line.push_str(&format!("; outdated: {}", pair.outdated.join(", ")));
    }
    line
}

fn pair_json(pair: &pb::PairStatus) -> serde_json::Value {
    serde_json::json!({
        "cluster": pair.cluster,
        "nodes": pair.nodes,
        "active": pair.active,
        "term": pair.term.as_ref().map(|term| serde_json::json!({"epoch": term.epoch, "node": term.node})),
        "lease_left_ms": pair.lease_left_ms,
        "connected": pair.connected,
        "outdated": pair.outdated,
    })
}
