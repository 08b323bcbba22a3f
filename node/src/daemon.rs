//! `tandemd`: start-up, the servers, signal handling and graceful shutdown.
//!
//! Start-up order: validate the config (exit 2 on any problem), open `state.db`, bind every
//! listener (exit 1 naming the address if one is taken), start the servers, the dialers and the
//! probers, then run the driver until it exits. SIGTERM and SIGINT go to the driver, which on the
//! active switches over first; the servers then stop and the process exits. SIGHUP reloads the
//! TLS files (`cert_reload.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_proto::admin::admin_server::AdminServer;
use tandem_proto::data::data_server::DataServer;
use tandem_proto::gateway::gateway_server::GatewayServer;
use tandem_proto::peer::peer_server::PeerServer;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tonic::transport::Server;

use crate::config::{Config, ConfigError};
use crate::driver::{Driver, DriverHandle, Input};
use crate::tls::{self, ClientAuth};

/// Reachability targets are probed this often.
const REACHABILITY_EVERY: Duration = Duration::from_millis(500);
/// Largest gRPC message accepted on any port.
const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Requests served at once on one connection, and HTTP/2 streams open on one connection.
const CONCURRENT_REQUESTS_PER_CONNECTION: usize = 64;
/// Runtime threads at least, whatever the core count: SQLite work runs on the runtime's threads
/// (the writer connection's write or apply, including its COMMIT, and each of the four reader
/// connections' Data API queries, each bounded by the statement time limit), so up to five can
/// be held at once, and keep-alives must always find one more.
const MIN_RUNTIME_THREADS: usize = 6;
const CONCURRENT_STREAMS_PER_CONNECTION: u32 = 128;
/// How long the servers get to finish after the driver stopped. Long-lived streams
/// (keep-alives, `events --follow`) never finish by themselves, so this is a short grace.
const SERVERS_GRACE: Duration = Duration::from_millis(500);
/// How long the pending events may take to reach `state.db` at exit.
const EVENTS_DRAIN: Duration = Duration::from_secs(5);
/// HTTP/2 pings detect a dead peer connection that sends no RST (a black hole).
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(1);

/// Holds an exclusive `flock` on `data_dir/tandemd.lock` for the life of the process: two
/// `tandemd`s on one data directory would both write `state.db` and both claim terms.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, DaemonError> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join("tandemd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
    // SAFETY: flock(2) on a file descriptor this function owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DaemonError::Locked {
            path: path.display().to_string(),
        });
    }
    Ok(file)
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another tandemd is running on this data_dir (it holds {path})")]
    Locked { path: String },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {key} {address}: {source}")]
    Bind {
        key: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Store(#[from] crate::state::store::StoreError),
    #[error("{0}")]
    Driver(#[from] crate::driver::DriverError),
    #[error("{0}")]
    Replication(#[from] crate::repl::ReplError),
    #[error("alerts: {0}")]
    Alerts(#[from] crate::ops::alerts::AlertError),
    #[error("files: {0}")]
    Files(#[from] crate::files::FilesError),
}

impl DaemonError {
    /// Exit status: 2 for a bad config, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Config(_) | DaemonError::Tls(_) | DaemonError::Alerts(_) => 2,
            // A bad migration or a replicated table without a primary key is the config's.
            DaemonError::Replication(error) if error.is_config() => 2,
            _ => 1,
        }
    }
}

/// Loads and validates the config; also checks that the TLS files load.
pub fn load_config(path: &Path) -> Result<Config, DaemonError> {
    let config = Config::load(path)?;
    tls::server_config(&config.tls, ClientAuth::Named(config.peer.name.clone()))?;
    Ok(config)
}

async fn bind(key: &'static str, address: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Bind {
            key,
            address,
            source,
        })
}

/// Runs a node until it is told to stop.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    tls::install_crypto_provider();
    std::fs::create_dir_all(&config.node.data_dir).map_err(|source| DaemonError::DataDir {
        path: config.node.data_dir.display().to_string(),
        source,
    })?;
    let _lock = lock_data_dir(&config.node.data_dir)?;
    let store = crate::state::store::StateStore::open(&config.node.data_dir).await?;
    let mailer = crate::ops::alerts::Mailer::new(&config)?;
    if let Some(mailer) = &mailer {
        store.enable_mail();
        tokio::spawn(crate::ops::alerts::run(store.clone(), mailer.clone()));
    }
    let peer_listener = bind("listen.peer", config.listen.peer).await?;
    let client_listener = bind("listen.client", config.listen.client).await?;
    let admin_listener = bind("listen.admin", config.listen.admin).await?;
    let http_listener = bind("listen.http", config.listen.http).await?;
    let (events, event_writer) = crate::driver::event_writer::EventWriter::spawn(store.clone());
    let (mut driver, handle) = Driver::new(config.clone(), store.clone(), events).await?;
    // Listeners and dialers take the certificate and CA from here at each handshake, so that a
    // SIGHUP reload (cert_reload.rs) reaches new connections and leaves open ones alone.
    let credentials = tls::Credentials::load(&config.tls, tls::CertUse::ServerAndClient)?;
    if let Err(error) = crate::ops::cert_reload::spawn(credentials.clone(), store.clone()) {
        tracing::error!(%error, "cannot install the SIGHUP handler: certificates will not reload");
    }
    let dial_tls = tls::client_config_from(&credentials);
    let replication =
        crate::repl::Replication::start(&config, handle.clone(), dial_tls.clone()).await?;
    driver.attach_replication(replication.status());
    if let Some(reason) = replication.damaged() {
        // Before the node takes any role: an empty database must never be served or promoted.
        driver.mark_disk_inconsistent(reason).await?;
        replication.spawn_damage_recovery();
    }
    driver.attach_witness(dial_tls.clone());
    let files_link = crate::files::NodeLink {
        status: handle.status.clone(),
        record: {
            let inputs = handle.inputs.clone();
            std::sync::Arc::new(move |kind, message| {
                let inputs = inputs.clone();
                Box::pin(async move {
                    let _ = inputs.send(Input::Record { kind, message }).await;
                })
            })
        },
    };
    let files = crate::files::FileSync::start(&config, files_link, dial_tls.clone()).await?;
    driver.attach_files(files.clone());
    let supervisor = crate::ops::supervisor::Supervisor::start(&config.services, &handle);
    driver.attach_services(supervisor.status());
    let reachable = crate::peer::link::probe_reachability(&config.node.reachability).await;
    handle
        .inputs
        .send(Input::Reachability(reachable))
        .await
        .ok();
    let (stop_servers, servers_stopped) = watch::channel(false);
    let servers = start_servers(
        &config,
        &handle,
        &replication,
        (mailer, &files),
        &credentials,
        [
            peer_listener,
            client_listener,
            admin_listener,
            http_listener,
        ],
        servers_stopped,
    )?;
    crate::peer::link::spawn_dialers(&config, dial_tls, &handle);
    crate::peer::link::spawn_fast_path_prober(&config, handle.clone());
    crate::peer::link::spawn_reachability_prober(
        config.node.reachability.clone(),
        REACHABILITY_EVERY,
        handle.clone(),
    );
    spawn_signal_forwarder(handle.clone());
    tracing::info!(node = %config.node.name, "tandemd started");
    let result = driver.run().await;
    // Services stop gently when tandemd does (a crash kills them by their parent-death signal).
    supervisor.stop().await;
    // The driver is gone, so is its end of the event queue: the writer drains and ends.
    let _ = tokio::time::timeout(EVENTS_DRAIN, event_writer).await;
    let _ = stop_servers.send(true);
    let _ = tokio::time::timeout(SERVERS_GRACE, futures::future::join_all(servers)).await;
    replication.store().close().await;
    store.close().await;
    result.map_err(DaemonError::from)
}

fn start_servers(
    config: &Config,
    handle: &DriverHandle,
    replication: &crate::repl::Replication,
    (mailer, files): (Option<crate::ops::alerts::Mailer>, &crate::files::FileSync),
    credentials: &std::sync::Arc<tls::Credentials>,
    [peer, client, admin_listener, http]: [TcpListener; 4],
    stopped: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, DaemonError> {
    let peer_auth = ClientAuth::Named(config.peer.name.clone());
    let peer_tls = tls::server_config_from(credentials, peer_auth)?;
    let client_tls = tls::server_config_from(credentials, ClientAuth::None)?;
    let admin_auth = ClientAuth::Admin {
        node: config.node.name.clone(),
        peer: config.peer.name.clone(),
    };
    let admin_tls = tls::server_config_from(credentials, admin_auth)?;
    let peer_service = PeerServer::new(crate::peer::link::PeerService::new(
        handle.clone(),
        replication.clone(),
    ))
    .max_decoding_message_size(crate::repl::receive::SHIP_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(crate::repl::receive::SHIP_MESSAGE_BYTES_MAX);
    let data_service = DataServer::new(crate::repl::data_service::DataService {
        repl: replication.clone(),
    })
    .max_decoding_message_size(MESSAGE_BYTES_MAX * 8);
    let node_gateway = crate::clients::gateway::build(config, replication, handle.status.clone());
    tokio::spawn(crate::clients::gateway::run_takeover_sweeper(
        node_gateway.clone(),
        handle.status.clone(),
    ));
    tokio::spawn(crate::clients::gateway::run_session_pruner(
        node_gateway.clone(),
    ));
    let failback_view = crate::ops::failback::FailbackView::default();
    tokio::spawn(crate::ops::failback::run(
        config.auto_failback,
        config.node.priority,
        handle.clone(),
        node_gateway.clone(),
        failback_view.clone(),
    ));
    let gateway = GatewayServer::new(tandem_gateway::GatewayService::new(node_gateway.clone()))
        .max_decoding_message_size(MESSAGE_BYTES_MAX);
    let admin = std::sync::Arc::new(crate::admin::service::AdminService {
        handle: handle.clone(),
        replication: replication.clone(),
        gateway: node_gateway,
        when_idle: crate::clients::when_idle::WhenIdle::default(),
        mailer,
        failback: (config.auto_failback, failback_view.clone()),
        files: files.clone(),
    });
    let admin_service =
        AdminServer::from_arc(admin.clone()).max_decoding_message_size(MESSAGE_BYTES_MAX);
    let http_router = crate::http::server::router(admin);
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let http_server =
        axum::serve(http, http_router).with_graceful_shutdown(until_stopped(stopped.clone()));
    let builder = || {
        Server::builder()
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE * 2))
            .concurrency_limit_per_connection(CONCURRENT_REQUESTS_PER_CONNECTION)
            .max_concurrent_streams(Some(CONCURRENT_STREAMS_PER_CONNECTION))
    };
    let peer_server = builder()
        .add_service(peer_service)
        .add_service(tandem_proto::files::files_server::FilesServer::new(
            files.service(),
        ))
        .serve_with_incoming_shutdown(
            tls::tls_incoming(peer, peer_tls, "peer"),
            until_stopped(stopped.clone()),
        );
    let client_server = builder()
        .add_service(gateway)
        .add_service(data_service)
        .serve_with_incoming_shutdown(
            tls::tls_incoming(client, client_tls, "client"),
            until_stopped(stopped.clone()),
        );
    let admin_server = builder()
        .add_service(admin_service)
        .serve_with_incoming_shutdown(
            tls::tls_incoming(admin_listener, admin_tls, "admin"),
            until_stopped(stopped),
        );
    Ok(vec![
        spawn_server("peer", peer_server),
        spawn_server("client", client_server),
        spawn_server("admin", admin_server),
        tokio::spawn(async move {
            if let Err(error) = http_server.await {
                tracing::error!(server = "http", %error, "server failed");
            }
        }),
    ])
}

fn spawn_server(
    name: &'static str,
    server: impl std::future::Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(server = name, %error, "server failed");
        }
    })
}

/// SIGTERM and SIGINT ask the driver to stop (on the active: switch over first).
fn spawn_signal_forwarder(handle: DriverHandle) {
    tokio::spawn(async move {
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
                _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            }
            if handle.inputs.send(Input::Shutdown).await.is_err() {
                return;
            }
        }
    });
}

#[derive(clap::Parser, Debug)]
#[command(
    name = "tandemd",
    version,
    about = "Run one node of a tandem pair (or, with `witness`, a witness)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct DaemonArgs {
    /// The node's config file (TOML).
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

#[derive(clap::Subcommand, Debug)]
enum DaemonCommand {
    /// Run a witness: the third vote of the pairs listed in its config (DESIGN.md §12).
    Witness {
        /// The witness's config file, witness.toml.
        #[arg(long)]
        config: PathBuf,
    },
}

/// `tandemd witness --config witness.toml`: exit status 2 on a bad config, 1 on a failure.
fn witness_main(path: &std::path::Path) -> u8 {
    let config = match crate::config::WitnessConfig::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tandemd witness: {error}");
            return 2;
        }
    };
    if let Err(error) =
        tls::server_config(&config.tls, ClientAuth::AnyOf(vec![config.name.clone()]))
    {
        eprintln!("tandemd witness: {error}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MIN_RUNTIME_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandemd witness: cannot start the runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(crate::witness::server::run(config)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("tandemd witness: {error}");
            1
        }
    }
}

/// Raises the soft limit on open files to the hard limit: each client connection holds a
/// descriptor, and a login storm after a failover brings thousands at once. Best effort.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a struct this function owns.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("cannot raise the open files limit");
            }
        }
    }
}

/// `tandemd` with the process arguments; returns the exit status.
pub fn main() -> u8 {
    use clap::Parser;
    let args = DaemonArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tls::install_crypto_provider();
    raise_open_files_limit();
    let path = match args.command {
        Some(DaemonCommand::Witness { config }) => return witness_main(&config),
        None => args
            .config
            .expect("clap requires --config without a subcommand"),
    };
    let config = match load_config(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tandemd: {error}");
            return 2;
        }
    };
    let threads = std::thread::available_parallelism().map_or(MIN_RUNTIME_THREADS, |cores| {
        cores.get().max(MIN_RUNTIME_THREADS)
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandemd: cannot start the runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("tandemd: {error}");
            u8::try_from(error.exit_code()).unwrap_or(1)
        }
    }
}
