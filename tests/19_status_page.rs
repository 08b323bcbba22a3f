//! The status page in a real browser: a pair with a few events (a block, a switchover) serves `/`
//! on both nodes, and headless Chromium renders the active's page without a console error, an
//! uncaught exception or a failed load, refreshes it, and keeps it within a phone's width. The
//! screenshots land in `target/test-artifacts/` (`status-page.png`, `status-page-narrow.png`).
//!
//! Chromium is driven over the DevTools protocol (a websocket on 127.0.0.1): the checker collects
//! `Runtime.exceptionThrown`, `Runtime.consoleAPICalled` errors, `Log.entryAdded` errors and
//! failed or 4xx/5xx network loads. A second test proves that the checker sees them, on a
//! deliberately broken page served from this test.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tandem_harness::{Cluster, ClusterSpec};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Debian's Chromium, installed by `scripts/install-deps.sh`.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The desktop viewport the main screenshot is taken at.
const DESKTOP_WIDTH: u32 = 1280;
/// A phone's viewport: the page must not scroll sideways there.
const PHONE_WIDTH: u32 = 390;

#[test]
fn the_status_page_renders_in_chromium_without_console_errors() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ClusterSpec::new().cluster_name("pbx-hq");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;

    phase("a few events: block new calls on a, then switch over to b");
    cluster.ctl_ok("a", &["block", "calls"])?;
    cluster.ctl_ok("a", &["switchover"])?;
    wait_steady(&cluster, "b")?;
    wait_event(&cluster, "a", "block", "")?;

    phase("both nodes serve the page; each names itself and its peer");
    let (b_page, a_page) = (
        get_page(cluster.addrs("b").http)?,
        get_page(cluster.addrs("a").http)?,
    );
    for (page, name, peer) in [(&b_page, "b", "a"), (&a_page, "a", "b")] {
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(page.contains(&format!("this node: {name}")), "{page}");
        assert!(page.contains(&format!("peer: {peer}")), "{page}");
        assert!(page.contains("<h1>pbx-hq</h1>"), "{page}");
    }
    assert!(
        b_page.contains("<title>tandem pbx-hq: b is active</title>"),
        "{b_page}"
    );
    assert!(
        a_page.contains("<title>tandem pbx-hq: a is passive</title>"),
        "{a_page}"
    );
    assert!(
        b_page.contains("<span class=\"tone warn\">blocked</span>"),
        "{b_page}"
    );
    assert!(
        b_page.contains("<span class=\"kind plain\">switchover</span>"),
        "{b_page}"
    );
    assert!(
        a_page.contains("<span class=\"kind warn\">block</span>"),
        "{a_page}"
    );
    assert!(b_page.contains("none configured"), "{b_page}");
    assert!(b_page.contains("no [[files]] entries"), "{b_page}");

    phase("Chromium renders b's page, lets it refresh itself, and logs no error");
    let url = format!("http://{}/", cluster.addrs("b").http);
    let chromium = Chromium::launch()?;
    let report = runtime()?.block_on(async {
        let mut devtools = DevTools::connect(&chromium.devtools_url).await?;
        devtools.set_viewport(DESKTOP_WIDTH, 900, false).await?;
        devtools.load(&url).await?;
        devtools.wait_for_a_refresh().await?;
        let cards = devtools
            .evaluate("document.querySelectorAll('section.card').length")
            .await?;
        ensure!(
            cards.as_u64() >= Some(8),
            "the refreshed page has {cards} cards"
        );
        let icon = devtools
            .evaluate("document.querySelector('link[rel=icon]').href.slice(0, 5)")
            .await?;
        ensure!(
            icon == "data:",
            "the icon is not inline, /favicon.ico would be fetched"
        );
        let live = devtools
            .evaluate("document.getElementById('live').className")
            .await?;
        ensure!(live == "live", "the refresh failed: #live is {live}");
        let desktop = devtools.full_page_screenshot(DESKTOP_WIDTH, false).await?;

        devtools.set_viewport(PHONE_WIDTH, 844, true).await?;
        let widths = devtools
            .evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            .await?;
        ensure!(
            widths[0].as_u64() <= widths[1].as_u64()
                && widths[1].as_u64() == Some(PHONE_WIDTH.into()),
            "the page scrolls sideways on a phone: [scrollWidth, innerWidth] = {widths}"
        );
        let phone = devtools.full_page_screenshot(PHONE_WIDTH, true).await?;
        Ok((devtools.problems(), desktop, phone))
    });
    let (problems, desktop, phone) = report.with_context(|| chromium.stderr_tail())?;
    assert!(
        problems.is_empty(),
        "the status page logged errors: {problems:#?}"
    );

    phase("the screenshots are kept as test artifacts");
    let artifacts = artifacts_dir()?;
    for (png, file, width) in [
        (&desktop, "status-page.png", DESKTOP_WIDTH),
        (&phone, "status-page-narrow.png", PHONE_WIDTH),
    ] {
        let (png_width, png_height) = png_size(png)?;
        assert_eq!(png_width, width, "{file}");
        assert!(png_height >= 600, "{file} is {png_width}x{png_height}");
        assert!(png.len() > 20_000, "{file} has only {} bytes", png.len());
        std::fs::write(artifacts.join(file), png)?;
        eprintln!("screenshot: {}", artifacts.join(file).display());
    }
    Ok(())
}

#[test]
fn the_checker_reports_console_errors_exceptions_and_failed_loads() -> anyhow::Result<()> {
    let _serial = serial();
    phase("a local page that logs an error, throws, and loads a missing and a refused image");
    let server = BrokenPageServer::start()?;
    let chromium = Chromium::launch()?;
    let problems = runtime()?
        .block_on(async {
            let mut devtools = DevTools::connect(&chromium.devtools_url).await?;
            devtools
                .load(&format!("http://{}/", server.address))
                .await?;
            // A round trip, so that every event sent before its answer has arrived.
            devtools.evaluate("1").await?;
            Ok::<_, anyhow::Error>(devtools.problems())
        })
        .with_context(|| chromium.stderr_tail())?;
    eprintln!("the checker found: {problems:#?}");
    let has = |needle: &str| problems.iter().any(|problem| problem.contains(needle));
    assert!(has("console.error: x"), "{problems:#?}");
    assert!(
        has("uncaught exception") && has("undefined_fn"),
        "{problems:#?}"
    );
    assert!(has("HTTP 404") && has("/missing.png"), "{problems:#?}");
    assert!(has("failed load") && has("/refused.png"), "{problems:#?}");
    Ok(())
}

/// GET `/` over plain HTTP/1.1; the body of a 200 with an HTML content type.
fn get_page(address: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no header end in {response:?}"))?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    ensure!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    Ok(body.to_string())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `target/test-artifacts`, created if needed.
fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or_else(|| anyhow!("CARGO_TARGET_TMPDIR has no parent"))?;
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> anyhow::Result<(u32, u32)> {
    ensure!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG"
    );
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    Ok((word(16), word(20)))
}

/// A headless Chromium with a fresh profile and the DevTools endpoint on 127.0.0.1. It runs in
/// a process group of its own, which `Drop` kills by its id (the browser's renderers and helpers
/// are in it), and dies with the test thread if the test itself dies.
struct Chromium {
    child: Child,
    /// The `ws://127.0.0.1:PORT/devtools/browser/...` address from its stderr.
    devtools_url: String,
    /// Its last stderr lines, for a failure message.
    stderr: Arc<Mutex<Vec<String>>>,
    /// Removed after the browser is gone.
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> anyhow::Result<Chromium> {
        ensure!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run `bash scripts/install-deps.sh` to install Chromium"
        );
        let profile = tempfile::tempdir()?;
        let mut command = Command::new(CHROMIUM);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().context("start chromium")?;
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (found, devtools) = mpsc::channel();
        let lines = Arc::clone(&stderr);
        // Reads stderr until Chromium exits, so that the pipe never fills; keeps the last lines.
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    let _ = found.send(url.to_string());
                }
                let mut lines = lines
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                lines.push(line);
                let excess = lines.len().saturating_sub(40);
                lines.drain(..excess);
            }
        });
        let mut chromium = Chromium {
            child,
            devtools_url: String::new(),
            stderr,
            _profile: profile,
        };
        chromium.devtools_url = devtools
            .recv_timeout(WAIT)
            .map_err(|_| anyhow!("Chromium never printed its DevTools address"))
            .with_context(|| chromium.stderr_tail())?;
        Ok(chromium)
    }

    fn stderr_tail(&self) -> String {
        let lines = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        format!("chromium's stderr ends with:\n{}", lines.join("\n"))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id()).expect("pid fits in i32");
        // SAFETY: a plain kill(2) of the process group this test created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// One page target of the browser, driven over the DevTools protocol. Every event received is
/// kept, so that the checks can look back at all of them.
struct DevTools {
    socket: WebSocketStream<MaybeTlsStream<AsyncTcpStream>>,
    next_id: u64,
    /// The flat session of the page target; empty for calls to the browser itself.
    session_id: String,
    events: Vec<Value>,
}

impl DevTools {
    /// Opens a fresh page and enables the domains whose events the checks read.
    async fn connect(browser_url: &str) -> anyhow::Result<DevTools> {
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(browser_url))
            .await
            .map_err(|_| anyhow!("timed out connecting to {browser_url}"))??;
        let mut devtools = DevTools {
            socket,
            next_id: 0,
            session_id: String::new(),
            events: Vec::new(),
        };
        let target = devtools
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let attached = devtools
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await?;
        devtools.session_id = attached["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {attached}"))?
            .to_string();
        for domain in ["Runtime", "Log", "Network", "Page"] {
            devtools
                .call(&format!("{domain}.enable"), json!({}))
                .await?;
        }
        Ok(devtools)
    }

    /// Sends a command and returns its result; events that arrive meanwhile are kept.
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session_id.is_empty() {
            message["sessionId"] = json!(self.session_id);
        }
        self.socket.send(Message::text(message.to_string())).await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self
                .next_message(deadline)
                .await
                .context(method.to_string())?;
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(reply["result"].clone());
            }
        }
    }

    async fn next_message(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| anyhow!("timed out waiting for DevTools"))?
                .ok_or_else(|| anyhow!("DevTools closed the connection"))??;
            if let Message::Text(text) = frame {
                let message: Value = serde_json::from_str(&text)?;
                if message.get("method").is_some() {
                    self.events.push(message.clone());
                }
                return Ok(message);
            }
        }
    }

    /// Waits until an event from `from` on (an index into the kept events) matches.
    async fn wait_event(
        &mut self,
        what: &str,
        from: usize,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        if let Some(event) = self.events[from..].iter().find(|event| matches(event)) {
            return Ok(event.clone());
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self
                .next_message(deadline)
                .await
                .with_context(|| format!("waiting for {what}"))?;
            if message.get("method").is_some() && matches(&message) {
                return Ok(message);
            }
        }
    }

    async fn set_viewport(&mut self, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await?;
        Ok(())
    }

    /// Navigates and waits for the load event.
    async fn load(&mut self, url: &str) -> anyhow::Result<()> {
        let from = self.events.len();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated["errorText"].as_str() {
            bail!("navigation to {url} failed: {error}");
        }
        self.wait_event("the load event", from, |event| {
            event["method"] == "Page.loadEventFired"
        })
        .await?;
        Ok(())
    }

    /// Marks the page's `<main>`, then waits until the refresh script has replaced it with a
    /// freshly fetched one (a `MutationObserver` resolves the promise; `call`'s deadline bounds
    /// the wait). A refresh that fails leaves the mark, so this times out.
    async fn wait_for_a_refresh(&mut self) -> anyhow::Result<()> {
        self.evaluate("document.querySelector('main').dataset.beforeRefresh = 'yes'")
            .await?;
        let refreshed = self
            .evaluate(
                "new Promise((done) => {
                    const check = () => document.querySelector('main[data-before-refresh]')
                        || done(document.querySelector('main') !== null);
                    new MutationObserver(check).observe(document.body, { childList: true });
                    check();
                })",
            )
            .await
            .with_context(|| {
                format!(
                    "the page never refreshed itself; problems seen: {:#?}",
                    self.problems()
                )
            })?;
        ensure!(refreshed == true, "the refreshed page has no <main>");
        Ok(())
    }

    /// Evaluates a JavaScript expression (awaiting a promise) and returns its value.
    async fn evaluate(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{expression} threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG of the whole page at `width`, as tall as its content.
    async fn full_page_screenshot(&mut self, width: u32, mobile: bool) -> anyhow::Result<Vec<u8>> {
        let height = self
            .evaluate("Math.ceil(document.documentElement.scrollHeight)")
            .await?
            .as_u64()
            .ok_or_else(|| anyhow!("no page height"))?;
        let height = u32::try_from(height)?.clamp(600, 8000);
        self.set_viewport(width, height, mobile).await?;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    /// Everything the browser's console would show as an error, and every failed load, seen so
    /// far.
    fn problems(&self) -> Vec<String> {
        let mut urls = HashMap::new();
        let mut problems = Vec::new();
        for event in &self.events {
            let params = &event["params"];
            match event["method"].as_str().unwrap_or_default() {
                "Network.requestWillBeSent" => {
                    urls.insert(
                        params["requestId"].to_string(),
                        params["request"]["url"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                "Network.responseReceived" => {
                    let status = params["response"]["status"].as_u64().unwrap_or(0);
                    if status >= 400 {
                        let url = &params["response"]["url"];
                        problems.push(format!("HTTP {status} for {url}"));
                    }
                }
                "Network.loadingFailed" => {
                    let url = urls
                        .get(&params["requestId"].to_string())
                        .map_or("an unknown url", String::as_str);
                    let error = &params["errorText"];
                    problems.push(format!("failed load of {url}: {error}"));
                }
                "Runtime.exceptionThrown" => {
                    let details = &params["exceptionDetails"];
                    let description = &details["exception"]["description"];
                    problems.push(format!(
                        "uncaught exception: {} {description}",
                        details["text"]
                    ));
                }
                "Runtime.consoleAPICalled"
                    if matches!(params["type"].as_str(), Some("error" | "assert")) =>
                {
                    let args: Vec<String> = params["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|arg| match arg["value"].as_str() {
                            Some(text) => text.to_string(),
                            None => arg["description"].to_string(),
                        })
                        .collect();
                    problems.push(format!(
                        "console.{}: {}",
                        params["type"].as_str().unwrap_or("error"),
                        args.join(" ")
                    ));
                }
                "Log.entryAdded" if params["entry"]["level"] == "error" => {
                    let entry = &params["entry"];
                    problems.push(format!(
                        "console log error: {} ({})",
                        entry["text"], entry["url"]
                    ));
                }
                _ => {}
            }
        }
        problems
    }
}

/// A local HTTP server whose page logs an error, throws, loads an image that is missing (404) and
/// one from a closed port (refused). Stops accepting when dropped.
struct BrokenPageServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// The page: `CLOSED_PORT` is replaced by a port nothing listens on.
const BROKEN_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>broken</title></head><body><p>broken</p>\
<script>console.error(\"x\"); undefined_fn()</script><img src=\"/missing.png\" alt=\"\">\
<img src=\"http://127.0.0.1:CLOSED_PORT/refused.png\" alt=\"\"></body></html>";

impl BrokenPageServer {
    fn start() -> anyhow::Result<BrokenPageServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        // A port that was free a moment ago and is closed now: the image there is refused.
        let closed_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let page = BROKEN_PAGE.replace("CLOSED_PORT", &closed_port.to_string());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve_one(stream, &page);
                }
            }
        });
        Ok(BrokenPageServer { address, stop })
    }
}

impl Drop for BrokenPageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
    }
}

/// Answers one request: the broken page on `/`, 404 for anything else.
fn serve_one(mut stream: TcpStream, page: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The rest of the head, up to the empty line.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/" {
        ("200 OK", page)
    } else {
        ("404 Not Found", "not found")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
