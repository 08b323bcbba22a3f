//! tandem-cli: `tandemctl`, the administrator's command line. It talks gRPC to one node's admin
//! port; `demo` starts a local pair of its own.
//!
//! Exit status: 0 on success, 1 when the command was refused or failed (the message says why),
//! 2 for usage errors (clap's own exit status for bad arguments).
//!
//! # Layout
//! - `args`: the command line as clap parses it.
//! - `connect`: dialing a node's admin port and reading its status; `failure`: exit status 1.
//! - One file per command group: `status` (status, history, events), `switchover` (switchover,
//!   failover-now, monitoring, maintenance), `users` (users and blocks), `data` (sql, verify,
//!   resync, conflicts), `certs`, `alerts`, `witness` (a witness's status).
//! - `demo`: a local pair and a scripted scenario.
//! - `status_probe` and `gap_meter`: a kept-open status connection and the switchover client gap,
//!   shared by the demo and the benchmarks so both measure the same way; `password_prompt`.

pub mod alerts;
pub mod args;
pub mod certs;
pub mod connect;
pub mod data;
pub mod demo;
pub mod failure;
pub mod gap_meter;
pub mod password_prompt;
pub mod status;
pub mod status_probe;
pub mod switchover;
pub mod users;
pub mod witness;

use clap::Parser;
use tandem_node::config::Config;

use args::{AlertsCommand, Cli, CtlCommand};
use failure::Failure;

/// Runs `tandemctl` with the process arguments; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let needs_node = !matches!(
        cli.command,
        CtlCommand::Certs { .. } | CtlCommand::Demo { .. }
    );
    if needs_node && cli.config.is_none() && cli.node.is_none() {
        eprintln!("tandemctl: {}", connect::NO_TARGET);
        return 2;
    }
    if let Err(usage) = check_usage(&cli) {
        eprintln!("tandemctl: {usage}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandemctl: cannot start: {error}");
            return 1;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(Failure(message)) => {
            eprintln!("tandemctl: {message}");
            1
        }
    }
}

/// Usage errors that clap cannot see: a config file that does not load, a bad `--timeout`.
fn check_usage(cli: &Cli) -> Result<(), String> {
    if let Some(path) = &cli.config {
        if matches!(cli.command, CtlCommand::Witness { .. }) {
            tandem_node::config::WitnessConfig::load(path).map_err(|error| error.to_string())?;
        } else {
            Config::load(path).map_err(|error| error.to_string())?;
        }
    }
    if let CtlCommand::Switchover {
        timeout: Some(text),
        ..
    } = &cli.command
    {
        tandem_node::config::duration::parse_duration(text)
            .map_err(|error| format!("--timeout: {error}"))?;
    }
    Ok(())
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    tandem_node::tls::install_crypto_provider();
    match &cli.command {
        CtlCommand::Certs { command } => return certs::certs(command),
        CtlCommand::Demo { keep } => return demo::run(*keep).await.map_err(Failure),
        CtlCommand::Witness { command } => return witness::witness(&cli, command).await,
        _ => {}
    }
    let mut client = connect::connect(&cli).await?;
    let json = cli.json;
    match cli.command {
        CtlCommand::Status => status::status(&mut client, json).await,
        CtlCommand::History => status::history(&mut client, json).await,
        CtlCommand::Events { follow, limit } => {
            status::events(&mut client, follow, limit, json).await
        }
        CtlCommand::Switchover {
            when_idle,
            block_new_calls,
            timeout,
            cancel,
        } => {
            let args = switchover::SwitchoverArgs {
                when_idle,
                block_new_calls,
                timeout,
                cancel,
            };
            switchover::switchover(&mut client, args, json).await
        }
        CtlCommand::FailoverNow { force } => {
            switchover::failover_now(&mut client, force, json).await
        }
        CtlCommand::Monitoring { mode } => switchover::monitoring(&mut client, mode, json).await,
        CtlCommand::Maintenance { state } => {
            switchover::maintenance(&mut client, state, json).await
        }
        CtlCommand::Sql { statement } => data::sql(&mut client, statement, json).await,
        CtlCommand::Verify => data::verify(&mut client, json).await,
        CtlCommand::Resync { files: true, .. } => data::resync_files(&mut client, json).await,
        CtlCommand::Resync {
            to_peer, no_wait, ..
        } => data::resync(&mut client, to_peer, no_wait, json).await,
        CtlCommand::Conflicts { limit } => data::conflicts(&mut client, limit, json).await,
        CtlCommand::Block { what } => users::set_block(&mut client, what, true, json).await,
        CtlCommand::Unblock { what } => users::set_block(&mut client, what, false, json).await,
        CtlCommand::User { command } => users::user(&mut client, command, json).await,
        CtlCommand::Alerts {
            command: AlertsCommand::Test,
        } => alerts::test(&mut client, json).await,
        CtlCommand::Certs { .. } | CtlCommand::Demo { .. } | CtlCommand::Witness { .. } => Ok(()),
    }
}
