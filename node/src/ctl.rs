//! `tandemctl`: the administrator's command line. It talks gRPC to one node's admin port.
//!
//! Exit status: 0 on success, 1 when the command was refused or failed (the message says why),
//! 2 for usage errors (clap's own exit status for bad arguments).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::config::Config;
use crate::status::Status;
use crate::tls::{self, TlsFiles};

/// The name every node certificate carries, so an administrator can dial any node by address.
pub const NODE_SERVER_NAME: &str = "tandem-node";
const NO_TARGET: &str =
    "say which node: --config node.toml, or --node ADDR --ca F --cert F --key F";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Parser, Debug)]
#[command(name = "tandemctl", version, about = "Drive a tandem pair")]
pub struct Cli {
    /// A node's config file: talk to that node's admin address with its certificate.
    #[arg(long, global = true, conflicts_with = "node")]
    pub config: Option<PathBuf>,
    /// A node's admin address (host:port), for a remote administrator; needs --ca, --cert, --key.
    #[arg(long, global = true, requires_all = ["ca", "cert", "key"])]
    pub node: Option<String>,
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Both nodes, roles, terms and the peer link.
    Status,
    /// The terms: who held each one, when, and why.
    History,
    /// The event log; --follow keeps printing new events.
    Events {
        #[arg(long)]
        follow: bool,
        /// How many of the newest events to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Hand over from the active node (run against it) to the passive one.
    Switchover {
        #[arg(long)]
        when_idle: bool,
        #[arg(long)]
        block_new_calls: bool,
        #[arg(long)]
        timeout: Option<String>,
        #[arg(long)]
        cancel: bool,
    },
    /// Run against the passive: take over now (a switchover if the active answers).
    FailoverNow {
        /// Take over even with an outdated disk or unreachable targets.
        #[arg(long)]
        force: bool,
    },
    /// Pair-wide automatic failover: suspend, resume or stop (stop also halts replication).
    Monitoring { mode: MonitoringMode },
    /// Make this node ineligible to become active (on), or eligible again (off).
    Maintenance { state: OnOff },
    /// Run one SQL statement against the active node (from either node).
    Sql { statement: String },
    /// Force a full copy of the database: --to-peer on the active, --from-peer on the passive.
    /// Waits and prints progress until the copy is installed. --files (on the active) runs a
    /// full scan of every [[files]] entry on both nodes and waits until it is carried out.
    Resync {
        #[arg(
            long,
            conflicts_with_all = ["from_peer", "files"],
            required_unless_present_any = ["from_peer", "files"]
        )]
        to_peer: bool,
        #[arg(long, conflicts_with = "files")]
        from_peer: bool,
        #[arg(long)]
        files: bool,
        /// Start the copy and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Compare row hashes of the replicated tables on both nodes at one log index.
    Verify,
    /// List merge-back conflicts: the losing image of each.
    Conflicts {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Turn away new logins or new calls on the pair (replicated; run on the active).
    Block { what: BlockWhat },
    /// Admit new logins or new calls again.
    Unblock { what: BlockWhat },
    /// E-mail alerts: `alerts test` sends a test mail now and prints the server's answer.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// The clients gateway's users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Certificates: for a new pair, or a renewed one for a node.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Start a local pair, run a scripted scenario and print what happened.
    Demo {
        /// Keep the demo's directory (configs, logs, data) instead of deleting it.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the CA, the node certificates and the admin certificate.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Node names, comma-separated: a,b
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Days every certificate (the CA's too) is valid for.
        #[arg(long, default_value_t = crate::certs::VALIDITY_DAYS_DEFAULT)]
        days: u32,
    },
    /// Issue a new certificate and key for one node (or admin) from DIR/ca.pem and DIR/ca.key,
    /// replacing DIR/<name>.pem and DIR/<name>.key; install them and send the node SIGHUP.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// The node's name (or "admin").
        #[arg(long)]
        name: String,
        /// Days the certificate is valid for.
        #[arg(long, default_value_t = crate::certs::VALIDITY_DAYS_DEFAULT)]
        days: u32,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BlockWhat {
    Logins,
    Calls,
}

impl BlockWhat {
    fn as_str(self) -> &'static str {
        match self {
            BlockWhat::Logins => "logins",
            BlockWhat::Calls => "calls",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Send a test mail through [alerts] now.
    Test,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; without --password, prompts for it (without echo) or reads a line of stdin.
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Change a user's password (prompts, or reads a line of stdin).
    Passwd {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete a user and end its sessions.
    Del { name: String },
    /// List the users.
    List,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MonitoringMode {
    Suspend,
    Resume,
    Stop,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OnOff {
    On,
    Off,
}

/// A failure to report: exit status 1 with this message.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

/// Runs `tandemctl` with the process arguments; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let needs_node = !matches!(
        cli.command,
        CtlCommand::Certs { .. } | CtlCommand::Demo { .. }
    );
    if needs_node && cli.config.is_none() && cli.node.is_none() {
        eprintln!("tandemctl: {NO_TARGET}");
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
        Config::load(path).map_err(|error| error.to_string())?;
    }
    if let CtlCommand::Switchover {
        timeout: Some(text),
        ..
    } = &cli.command
    {
        crate::duration::parse_duration(text).map_err(|error| format!("--timeout: {error}"))?;
    }
    Ok(())
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    tls::install_crypto_provider();
    match &cli.command {
        CtlCommand::Certs { command } => return certs(command),
        CtlCommand::Demo { keep } => return crate::demo::run(*keep).await.map_err(Failure),
        _ => {}
    }
    let mut client = connect(&cli).await?;
    match cli.command {
        CtlCommand::Status => status(&mut client, cli.json).await,
        CtlCommand::History => history(&mut client, cli.json).await,
        CtlCommand::Events { follow, limit } => events(&mut client, follow, limit, cli.json).await,
        CtlCommand::Switchover {
            when_idle,
            block_new_calls,
            timeout,
            cancel,
        } => {
            let timeout_ms = match timeout {
                Some(text) => {
                    let duration = crate::duration::parse_duration(&text)
                        .map_err(|e| Failure(format!("--timeout: {e}")))?;
                    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
                }
                None => 0,
            };
            let request = pb::SwitchoverRequest {
                when_idle,
                block_new_calls,
                timeout_ms,
                cancel,
            };
            print_reply(client.switchover(request).await, cli.json)
        }
        CtlCommand::FailoverNow { force } => print_reply(
            client.failover_now(pb::FailoverNowRequest { force }).await,
            cli.json,
        ),
        CtlCommand::Monitoring { mode } => {
            let mode = match mode {
                MonitoringMode::Suspend => "suspended",
                MonitoringMode::Resume => "on",
                MonitoringMode::Stop => "stopped",
            };
            let request = pb::SetMonitoringRequest { mode: mode.into() };
            print_reply(client.set_monitoring(request).await, cli.json)
        }
        CtlCommand::Maintenance { state } => {
            let request = pb::SetMaintenanceRequest {
                on: matches!(state, OnOff::On),
            };
            print_reply(client.set_maintenance(request).await, cli.json)
        }
        CtlCommand::Sql { statement } => sql(&mut client, statement, cli.json).await,
        CtlCommand::Verify => verify(&mut client, cli.json).await,
        CtlCommand::Resync { files: true, .. } => resync_files(&mut client, cli.json).await,
        CtlCommand::Resync {
            to_peer, no_wait, ..
        } => resync(&mut client, to_peer, no_wait, cli.json).await,
        CtlCommand::Conflicts { limit } => conflicts(&mut client, limit, cli.json).await,
        CtlCommand::Block { what } | CtlCommand::Unblock { what } => {
            let request = pb::SetBlockRequest {
                what: what.as_str().into(),
                on: matches!(cli.command, CtlCommand::Block { .. }),
                reason: String::new(),
            };
            print_reply(client.set_block(request).await, cli.json)
        }
        CtlCommand::User { command } => user(&mut client, command, cli.json).await,
        CtlCommand::Alerts {
            command: AlertsCommand::Test,
        } => print_reply(client.alerts_test(pb::AlertsTestRequest {}).await, cli.json),
        CtlCommand::Certs { .. } | CtlCommand::Demo { .. } => Ok(()),
    }
}

fn certs(command: &CertsCommand) -> Result<(), Failure> {
    let written = match command {
        CertsCommand::Init { dir, nodes, days } => {
            crate::certs::init_certs_valid_for(dir, nodes, *days)?
        }
        CertsCommand::Issue { dir, name, days } => crate::certs::issue_cert(dir, name, *days)?,
    };
    for path in written {
        match crate::certs::read_cert_summary(&path) {
            Ok(cert) => println!(
                "wrote {} (CN {}, serial {}, valid until {})",
                path.display(),
                cert.subject,
                cert.serial_hex,
                cert.not_after_utc()
            ),
            Err(_) => println!("wrote {}", path.display()),
        }
    }
    Ok(())
}

async fn user(
    client: &mut AdminClient<Channel>,
    command: UserCommand,
    json: bool,
) -> Result<(), Failure> {
    let password = |name: &str, given: Option<String>| match given {
        Some(password) => Ok(password),
        None => crate::password_prompt::read_new_password(name).map_err(Failure),
    };
    match command {
        UserCommand::Add {
            name,
            password: given,
        } => {
            let password = password(&name, given)?;
            let request = pb::UserAddRequest { name, password };
            print_reply(client.user_add(request).await, json)
        }
        UserCommand::Passwd {
            name,
            password: given,
        } => {
            let password = password(&name, given)?;
            let request = pb::UserPasswdRequest { name, password };
            print_reply(client.user_passwd(request).await, json)
        }
        UserCommand::Del { name } => {
            print_reply(client.user_del(pb::UserDelRequest { name }).await, json)
        }
        UserCommand::List => {
            let users = client
                .user_list(pb::UserListRequest {})
                .await
                .map_err(rpc_failure)?
                .into_inner()
                .users;
            if json {
                let list: Vec<serde_json::Value> = users
                    .iter()
                    .map(|user| {
                        serde_json::json!({
                            "name": user.name,
                            "created_at_ms": user.created_at_ms,
                            "changed_at_ms": user.changed_at_ms,
                            "sessions": user.sessions,
                            "calls_active": user.calls_active,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if users.is_empty() {
                println!("no users; `tandemctl user add NAME` adds one");
                return Ok(());
            }
            println!("{:<24} {:>8} {:>6}  created", "user", "sessions", "calls");
            for user in users {
                println!(
                    "{:<24} {:>8} {:>6}  {}",
                    user.name,
                    user.sessions,
                    user.calls_active,
                    tandem_gateway::gateway::format_ms(user.created_at_ms)
                );
            }
            Ok(())
        }
    }
}

async fn sql(
    client: &mut AdminClient<Channel>,
    statement: String,
    json: bool,
) -> Result<(), Failure> {
    let reply = client
        .sql(pb::SqlRequest { sql: statement })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    let rows: Vec<serde_json::Value> = reply
        .rows_json
        .iter()
        .map(|row| serde_json::from_str(row).unwrap_or(serde_json::Value::Null))
        .collect();
    if json {
        let out = serde_json::json!({
            "node": reply.node,
            "columns": reply.columns,
            "rows": rows,
            "rows_affected": reply.rows_affected,
            "log_index": reply.log_index,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if reply.columns.is_empty() {
        let affected: u64 = reply.rows_affected.iter().sum();
        println!(
            "{affected} rows changed on {} (log index {})",
            reply.node, reply.log_index
        );
        return Ok(());
    }
    println!("{}", reply.columns.join(" | "));
    for row in &rows {
        let cells: Vec<String> = row
            .as_array()
            .map(|cells| {
                cells
                    .iter()
                    .map(|cell| match cell {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!("{}", cells.join(" | "));
    }
    println!("({} rows from {})", rows.len(), reply.node);
    Ok(())
}

async fn resync_files(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let reply = client
        .resync(pb::ResyncRequest {
            direction: "files".into(),
        })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        println!("{}", serde_json::json!({ "message": reply.message }));
    } else {
        println!("{}", reply.message);
    }
    Ok(())
}

async fn resync(
    client: &mut AdminClient<Channel>,
    to_peer: bool,
    no_wait: bool,
    json: bool,
) -> Result<(), Failure> {
    let direction = if to_peer { "to_peer" } else { "from_peer" };
    let reply = client
        .resync(pb::ResyncRequest {
            direction: direction.into(),
        })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        println!("{}", serde_json::json!({ "message": reply.message }));
    } else {
        println!("{}", reply.message);
    }
    if no_wait {
        return Ok(());
    }
    // Progress is on this node's status: the sender's bytes sent, the receiver's received.
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(3600);
    let mut seen = false;
    let mut last_shown = -1i64;
    loop {
        let status = fetch_status(client).await?;
        match status.replication.snapshot_progress {
            Some(fraction) => {
                seen = true;
                let percent = (fraction * 100.0).floor() as i64;
                if percent / 10 != last_shown / 10 && !json {
                    println!("snapshot {percent}%");
                    last_shown = percent;
                }
            }
            None if seen => break,
            // A small copy can be over before the first look.
            None if started.elapsed() > std::time::Duration::from_secs(5) => break,
            None => {}
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure("the snapshot did not finish within an hour".into()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !json {
        println!("snapshot sent; see `tandemctl events` and `tandemctl verify`");
    }
    Ok(())
}

async fn verify(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let reply = client
        .verify(pb::VerifyRequest {})
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        let tables: Vec<_> = reply
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({"table": t.table, "local_rows": t.local_rows,
                    "peer_rows": t.peer_rows, "same": t.same})
            })
            .collect();
        let out = serde_json::json!({"index": reply.index, "node": reply.node,
            "peer": reply.peer, "identical": reply.identical, "tables": tables});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "compared {} and {} at log index {}",
            reply.node, reply.peer, reply.index
        );
        for table in &reply.tables {
            println!(
                "  {:<24} {:>8} rows here  {:>8} rows on the peer  {}",
                table.table,
                table.local_rows,
                table.peer_rows,
                if table.same { "same" } else { "DIFFERENT" }
            );
        }
    }
    if reply.identical {
        if !json {
            println!("identical");
        }
        Ok(())
    } else {
        let differ: Vec<_> = reply
            .tables
            .iter()
            .filter(|t| !t.same)
            .map(|t| t.table.as_str())
            .collect();
        Err(Failure(format!("tables differ: {}", differ.join(", "))))
    }
}

async fn conflicts(
    client: &mut AdminClient<Channel>,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let reply = client
        .conflicts(pb::ConflictsRequest { limit })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        let rows: Vec<_> = reply
            .conflicts
            .iter()
            .map(|c| {
                serde_json::json!({"at_ms": c.at_ms, "table": c.table, "primary_key": c.primary_key,
                    "reason": c.reason, "losing_image": c.losing_image, "kept_image": c.kept_image,
                    "losing_hlc": c.losing_hlc, "kept_hlc": c.kept_hlc,
                    "during_merge": c.during_merge})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if reply.conflicts.is_empty() {
        println!("no conflicts");
        return Ok(());
    }
    let during = reply.conflicts.iter().filter(|c| c.during_merge).count();
    println!(
        "{} {}; {during} decided against a write made during the merge",
        reply.conflicts.len(),
        plural(reply.conflicts.len(), "conflict", "conflicts")
    );
    let image = |text: &str| {
        if text.is_empty() {
            "(deleted)".to_string()
        } else {
            text.to_string()
        }
    };
    let stamp = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("  stamp {text}")
        }
    };
    for conflict in &reply.conflicts {
        println!(
            "{}  {} {}  {}{}\n    lost: {}{}\n    kept: {}{}",
            conflict.at_ms,
            conflict.table,
            conflict.primary_key,
            conflict.reason,
            if conflict.during_merge {
                "  (decided against a write made during the merge)"
            } else {
                ""
            },
            image(&conflict.losing_image),
            stamp(&conflict.losing_hlc),
            image(&conflict.kept_image),
            stamp(&conflict.kept_hlc),
        );
    }
    Ok(())
}

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
    match (&cli.node, &cli.ca, &cli.cert, &cli.key) {
        (Some(node), Some(ca), Some(cert), Some(key)) => Ok((
            node.clone(),
            TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            },
        )),
        _ => Err(Failure(NO_TARGET.into())),
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

fn rpc_failure(status: tonic::Status) -> Failure {
    Failure(status.message().to_string())
}

fn print_reply(
    result: Result<tonic::Response<pb::CommandReply>, tonic::Status>,
    json: bool,
) -> Result<(), Failure> {
    let message = result.map_err(rpc_failure)?.into_inner().message;
    if json {
        println!("{}", serde_json::json!({ "message": message }));
    } else {
        println!("{message}");
    }
    Ok(())
}

/// Reads one node's status.
pub async fn fetch_status(client: &mut AdminClient<Channel>) -> Result<Status, Failure> {
    let reply = client
        .status(pb::StatusRequest {})
        .await
        .map_err(rpc_failure)?;
    Ok(crate::status_wire::status_from_pb(reply.into_inner()))
}

async fn status(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let status = fetch_status(client).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&status));
    }
    Ok(())
}

/// The status as a short table for people.
pub fn render_status(status: &Status) -> String {
    let node = &status.node;
    let peer = &status.peer;
    let term = node.term.as_ref().map_or_else(
        || "none".to_string(),
        |term| format!("({}, {})", term.epoch, term.node),
    );
    let on_off = |flag: bool| if flag { "on" } else { "off" };
    let mut text = format!("cluster     {}\n", status.cluster);
    text.push_str(&format!(
        "this node   {:<8} {:<9} term {term}  epoch {}  priority {}  disk {}  admitting {}\n",
        node.name,
        node.role,
        node.epoch,
        node.priority,
        node.disk,
        if node.admitting { "yes" } else { "no" }
    ));
    let last_seen = peer
        .last_seen_ms
        .map_or_else(|| "never".to_string(), |ms| format!("{ms} ms ago"));
    text.push_str(&format!(
        "peer        {:<8} {:<9} link {}  last seen {last_seen}  missed {}  skew {} ms\n",
        peer.name,
        peer.role,
        peer.state,
        peer.missed_keepalives,
        peer.clock_skew_ms.unwrap_or(0)
    ));
    text.push_str(&format!(
        "monitoring  {}   maintenance {} (peer {})   switchover {}\n",
        node.monitoring,
        on_off(node.maintenance),
        on_off(peer.maintenance),
        status.switchover.state
    ));
    let replication = &status.replication;
    text.push_str(&format!(
        "replication {}{}  last index {}  peer acked {}  lag {}",
        replication.mode,
        if replication.degraded {
            " (degraded)"
        } else {
            ""
        },
        replication.last_index,
        replication.peer_acked_index,
        replication.lag_entries
    ));
    if let Some(progress) = replication.snapshot_progress {
        text.push_str(&format!("  snapshot {:.0}%", progress * 100.0));
    }
    if replication.orphans > 0 || replication.conflicts > 0 {
        text.push_str(&format!(
            "  orphans {}  conflicts {}",
            replication.orphans, replication.conflicts
        ));
    }
    text.push('\n');
    if !replication.halted.is_empty() {
        text.push_str(&format!("halted      {}\n", replication.halted));
    }
    let blocked = |on: bool| if on { "blocked" } else { "open" };
    text.push_str(&format!(
        "clients     sessions {}  calls {}  logins {}  calls {}",
        status.sessions,
        status.calls_active,
        blocked(status.blocks.logins),
        blocked(status.blocks.calls)
    ));
    if status.switchover.state == "waiting_idle" {
        text.push_str(&format!(
            "  (switchover waits for {} calls)",
            status.switchover.waiting_calls
        ));
    }
    text.push('\n');
    if !status.failback.policy.is_empty() && status.failback.policy != "never" {
        text.push_str(&format!(
            "failback    {}  {}\n",
            status.failback.policy,
            if status.failback.time_left.is_empty() {
                "nothing pending"
            } else {
                &status.failback.time_left
            }
        ));
    }
    for service in &status.services {
        let peer_copy = peer
            .services
            .iter()
            .find(|copy| copy.name == service.name)
            .map_or("-", |copy| copy.state.as_str());
        text.push_str(&format!(
            "service     {:<12} {:<9} {:<9} pid {}  restarts {}  run_on {}{}  peer {peer_copy}\n",
            service.name,
            service.state,
            if service.healthy {
                "healthy"
            } else {
                "unhealthy"
            },
            service
                .pid
                .map_or_else(|| "-".to_string(), |pid| pid.to_string()),
            service.restarts,
            service.run_on,
            if service.critical { "  critical" } else { "" },
        ));
        if !service.last_exit.is_empty() && !service.healthy {
            text.push_str(&format!("            last: {}\n", service.last_exit));
        }
    }
    for files in &status.files {
        let last = files.last_sync.map_or_else(
            || "never".to_string(),
            |ms| format_time(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        text.push_str(&format!(
            "files       {:<12} pending {} files, {} bytes  last sync {last}\n",
            files.name, files.pending_files, files.pending_bytes
        ));
        if !files.error.is_empty() {
            text.push_str(&format!("            error: {}\n", files.error));
        }
    }
    if peer.version_mismatch || peer.config_mismatch {
        text.push_str("warning     the peer's version or shared settings differ (see events)\n");
    }
    text
}

async fn history(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let terms = client
        .history(pb::HistoryRequest {})
        .await
        .map_err(rpc_failure)?
        .into_inner()
        .terms;
    if json {
        let rows: Vec<_> = terms
            .iter()
            .map(|t| serde_json::json!({"epoch": t.epoch, "node": t.node, "started_at_ms": t.started_at_ms, "reason": t.reason}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:>6}  {:<10} {:<24} reason", "epoch", "node", "started");
    for term in terms {
        println!(
            "{:>6}  {:<10} {:<24} {}",
            term.epoch,
            term.node,
            format_time(term.started_at_ms),
            term.reason
        );
    }
    Ok(())
}

async fn events(
    client: &mut AdminClient<Channel>,
    follow: bool,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let mut stream = client
        .events(pb::EventsRequest { follow, limit })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(rpc_failure)? {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": event.id, "at_ms": event.at_ms, "kind": event.kind, "message": event.message})
            );
        } else {
            println!(
                "{}  {:<20} {}",
                format_time(event.at_ms),
                event.kind,
                event.message
            );
        }
    }
    Ok(())
}

/// UTC time of a Unix timestamp in milliseconds, as "2026-11-24 03:04:05.678Z".
pub fn format_time(at_ms: i64) -> String {
    let seconds = at_ms.div_euclid(1000);
    let millis = at_ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let time_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03}Z",
        time_of_day / 3600,
        time_of_day % 3600 / 60,
        time_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's civil calendar algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `one` for a count of 1, `many` otherwise.
fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_milliseconds_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18 11:06:40.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00.000Z");
    }
}
