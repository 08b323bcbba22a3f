//! The command line of `tandemctl`, as clap parses it: the global target options and every
//! command with its arguments. Not here: what the commands do (one file per command group).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// A witness (DESIGN.md §12): `witness status` lists its pairs. --config names the
    /// witness's witness.toml; or --node ADDR --ca --cert --key (e.g. the admin certificate).
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
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
    /// Create the CA, the node certificates and the admin certificate; with --witness also the
    /// witness's. With --witness and no --nodes: issue only the witness's certificate from the
    /// CA already in DIR (a witness added to a running pair, or its renewal).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Node names, comma-separated: a,b
        #[arg(long, value_delimiter = ',', required_unless_present = "witness")]
        nodes: Vec<String>,
        /// The witness's certificate name (a node's `[witness] server_name`, by default
        /// "tandem-witness").
        #[arg(long)]
        witness: Option<String>,
        /// Days every certificate (the CA's too) is valid for.
        #[arg(long, default_value_t = tandem_node::tls::certs::VALIDITY_DAYS_DEFAULT)]
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
        #[arg(long, default_value_t = tandem_node::tls::certs::VALIDITY_DAYS_DEFAULT)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Each pair the witness serves: its active node, term, lease time left, connected nodes.
    Status {
        /// The name in the witness's certificate (with --node; --config reads it).
        #[arg(long, default_value = tandem_node::tls::certs::WITNESS_NAME_DEFAULT)]
        server_name: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BlockWhat {
    Logins,
    Calls,
}

impl BlockWhat {
    pub fn as_str(self) -> &'static str {
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
