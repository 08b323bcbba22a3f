//! A local pair for the demo: certificates, two configs on free loopback ports, and two real
//! `tandemd` processes. It is not the test harness (`tests/harness`), which adds fault proxies and
//! more knobs; this is the least a newcomer's demo needs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tandem_proto::admin::admin_client::AdminClient;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use crate::status_probe::StatusProbe;
use tandem_node::admin::status::Status;
use tandem_node::tls::TlsFiles;

pub const NAMES: [&str; 2] = ["a", "b"];

/// The demo's application table, replicated.
const DEMO_SCHEMA: &str =
    "CREATE TABLE extensions (id TEXT PRIMARY KEY, name TEXT NOT NULL, written_by TEXT);\n";

/// One node of the local pair.
pub struct LocalNode {
    pub config_path: PathBuf,
    pub admin_address: String,
    /// `[listen] client`: the Data API.
    pub client_address: String,
    pub tls: TlsFiles,
    /// The running process, if any.
    pub child: Option<Child>,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    /// A kept-open status connection, so polls measure the node, not TLS handshakes.
    probe: tokio::sync::Mutex<StatusProbe>,
}

pub struct LocalPair {
    pub dir: PathBuf,
    pub nodes: Vec<LocalNode>,
    tandemd: PathBuf,
}

/// `count` distinct free loopback ports: every listener is held until all are chosen.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .map(|a| a.port())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// `tandemd` next to the running `tandemctl`.
pub fn find_tandemd() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate tandemctl: {e}"))?;
    let candidate = exe.with_file_name("tandemd");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "tandemd not found next to {} (build it with `cargo build --bins`)",
            exe.display()
        ))
    }
}

impl LocalPair {
    /// Writes certificates and configs into `dir`.
    pub fn create(dir: &Path) -> Result<LocalPair, String> {
        let tandemd = find_tandemd()?;
        let certs = dir.join("certs");
        let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        tandem_node::tls::certs::init_certs(&certs, &names).map_err(|e| e.to_string())?;
        let ports = free_ports(8)?;
        let mut nodes = Vec::new();
        for (index, name) in NAMES.into_iter().enumerate() {
            let other = 1 - index;
            let (mine, theirs) = (
                &ports[index * 4..index * 4 + 4],
                &ports[other * 4..other * 4 + 4],
            );
            let node_dir = dir.join(name);
            std::fs::create_dir_all(node_dir.join("migrations")).map_err(|e| e.to_string())?;
            std::fs::write(node_dir.join("migrations/001_demo.sql"), DEMO_SCHEMA)
                .map_err(|e| e.to_string())?;
            let config = format!(
                "cluster = \"demo\"\n\n[node]\nname = \"{name}\"\npriority = {priority}\ndata_dir = \"data\"\n\n\
                 [listen]\npeer = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n\n\
                 [peer]\nname = \"{peer}\"\naddress = \"127.0.0.1:{}\"\nclient_address = \"127.0.0.1:{}\"\n\n\
                 [replication]\nmigrations = \"migrations\"\ntables = [\"extensions\"]\n\n\
                 [tls]\nca = \"../certs/ca.pem\"\ncert = \"../certs/{name}.pem\"\nkey = \"../certs/{name}.key\"\n",
                mine[0],
                mine[1],
                mine[2],
                mine[3],
                theirs[0],
                theirs[1],
                priority = if index == 0 { 100 } else { 50 },
                peer = NAMES[other],
            );
            let config_path = node_dir.join("node.toml");
            std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
            let admin_address = format!("127.0.0.1:{}", mine[2]);
            let tls = TlsFiles {
                ca: certs.join("ca.pem"),
                cert: certs.join("admin.pem"),
                key: certs.join("admin.key"),
            };
            nodes.push(LocalNode {
                client_address: format!("127.0.0.1:{}", mine[1]),
                config_path,
                probe: tokio::sync::Mutex::new(StatusProbe::new(
                    admin_address.clone(),
                    tls.clone(),
                )),
                admin_address,
                tls,
                child: None,
                log_path: node_dir.join("tandemd.log"),
            });
        }
        Ok(LocalPair {
            dir: dir.to_path_buf(),
            nodes,
            tandemd,
        })
    }

    /// Position of `name` in `NAMES`; the demo only ever names its own two nodes.
    fn index(name: &str) -> usize {
        NAMES
            .iter()
            .position(|n| *n == name)
            .expect("the demo names only nodes a and b")
    }

    pub fn get(&self, name: &str) -> &LocalNode {
        &self.nodes[Self::index(name)]
    }

    pub fn node(&mut self, name: &str) -> &mut LocalNode {
        &mut self.nodes[Self::index(name)]
    }

    pub fn start(&mut self, name: &str) -> Result<(), String> {
        let tandemd = self.tandemd.clone();
        let node = self.node(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .map_err(|e| format!("cannot open {}: {e}", node.log_path.display()))?;
        let child = Command::new(tandemd)
            .arg("--config")
            .arg(&node.config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start tandemd for {name}: {e}"))?;
        node.child = Some(child);
        Ok(())
    }

    /// Sends `signal` to a node's process.
    pub fn signal(&mut self, name: &str, signal: i32) -> Result<(), String> {
        let pid = self
            .node(name)
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| format!("{name} is not running"))?;
        let pid = i32::try_from(pid).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) on a child process id that we spawned and have not reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(format!(
                "cannot signal {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Waits for a node's process to exit; returns its exit code.
    pub async fn wait_exit(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<i32>, String> {
        let node = self.node(name);
        let child = node
            .child
            .as_mut()
            .ok_or_else(|| format!("{name} is not running"))?;
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .map_err(|_| format!("{name} did not exit within {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        node.child = None;
        Ok(status.code())
    }

    pub async fn stop_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill().await;
            }
        }
    }
}

impl LocalNode {
    pub async fn client(&self) -> Result<AdminClient<Channel>, String> {
        crate::connect::connect_admin(&self.admin_address, &self.tls)
            .await
            .map_err(|f| f.0)
    }

    /// The node's status, or None if it does not answer.
    pub async fn status(&self) -> Option<Status> {
        self.probe.lock().await.status().await
    }
}

/// Polls `check` every few milliseconds until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(value) = check().await {
            return Some((value, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
