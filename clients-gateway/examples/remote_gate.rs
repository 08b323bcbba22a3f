//! remote_gate: a gate (or fax server) that places calls through a pair with `PairClient`, and
//! keeps placing them across failovers and switchovers.
//!
//! ```text
//! remote_gate --addresses A,B --ca FILE --user U --password P
//!             [--calls N (0 = forever, the default)] [--call-ms MS (default 1000)]
//!             [--report FILE] [--kind gate] [--timeout-ms MS (default 30000)]
//! ```
//!
//! It logs in, then in a loop starts a call, holds it for `--call-ms`, and ends it. It prints one
//! line per event to stdout. With `--report` it appends one JSON object per line to FILE for each
//! operation that finished (written before the next operation starts, so a test that kills the
//! process still reads every acknowledgement):
//!
//! ```text
//! {"op":"login","ts_ms":..,"user":"U","password":true,"resumed":false,"session_id":"..","node":"..","address":"..","request_id":".."}
//! {"op":"resume","ts_ms":..,"password":false,"session_id":"..","node":"..","address":"..","request_id":".."}
//! {"op":"start","ts_ms":..,"call_id":"..","request_id":"..","replayed":false,"started_at_ms":..,"address":".."}
//! {"op":"end","ts_ms":..,"call_id":"..","request_id":"..","cause":"normal","already_ended":false,"ended_at_ms":..,"duration_ms":..,"address":".."}
//! {"op":"error","ts_ms":..,"during":"start","error":".."}
//! {"op":"logout","ts_ms":..}
//! {"op":"exit","ts_ms":..,"calls":..,"retries":..,"refusals_followed":..,"reconnects":..,"resumes":..,"longest_gap_ms":..}
//! ```
//!
//! A `StartCall` or `EndCall` that times out is repeated with the same request id, so a call is
//! never started twice and every started call is ended. On SIGTERM or SIGINT, or after N calls,
//! it ends its running call, logs out and exits 0. It exits 1 when it cannot go on (a wrong
//! password, a bad configuration), 2 on bad arguments.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tandem_gateway::client::{ClientError, ClientEvent, PairClient, PairConfig};
use tokio::sync::watch;

/// How long to wait before trying again after a refusal (a block, a rate limit): an
/// administrator's decision does not change within milliseconds.
const REFUSED_PAUSE: Duration = Duration::from_secs(1);

const USAGE: &str = "usage: remote_gate --addresses A,B --ca FILE --user U --password P \
[--calls N] [--call-ms MS] [--report FILE] [--kind KIND] [--timeout-ms MS]";

/// The command line.
struct Args {
    addresses: [String; 2],
    ca: PathBuf,
    user: String,
    password: String,
    /// Calls to place; 0 places calls until a signal.
    calls: u64,
    /// How long each call is held.
    call_ms: u64,
    report: Option<PathBuf>,
    kind: String,
    /// The deadline of each operation.
    timeout_ms: u64,
}

fn parse_args(raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut addresses = None;
    let (mut ca, mut user, mut password, mut report) = (None, None, None, None);
    let (mut calls, mut call_ms, mut timeout_ms) = (0u64, 1000u64, 30_000u64);
    let mut kind = "gate".to_string();
    let mut raw = raw.peekable();
    while let Some(arg) = raw.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = match inline.or_else(|| raw.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value\n{USAGE}")),
        };
        let number = |value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} expects a number, not {value:?}"))
        };
        match flag.as_str() {
            "--addresses" => match value.split(',').map(str::trim).collect::<Vec<_>>()[..] {
                [a, b] => addresses = Some([a.to_string(), b.to_string()]),
                _ => return Err(format!("--addresses expects A,B, not {value:?}")),
            },
            "--ca" => ca = Some(PathBuf::from(value)),
            "--user" => user = Some(value),
            "--password" => password = Some(value),
            "--calls" => calls = number(&value)?,
            "--call-ms" => call_ms = number(&value)?,
            "--timeout-ms" => timeout_ms = number(&value)?,
            "--report" => report = Some(PathBuf::from(value)),
            "--kind" => kind = value,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let missing = |what: &str| format!("{what} is required\n{USAGE}");
    Ok(Args {
        addresses: addresses.ok_or_else(|| missing("--addresses"))?,
        ca: ca.ok_or_else(|| missing("--ca"))?,
        user: user.ok_or_else(|| missing("--user"))?,
        password: password.ok_or_else(|| missing("--password"))?,
        calls,
        call_ms,
        report,
        kind,
        timeout_ms,
    })
}

/// A value in a report line.
enum Json<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
}

/// The `--report` file: one JSON object per line, written straight to the file (no user-space
/// buffer) so that a killed process loses nothing it acknowledged.
struct Report {
    file: Option<File>,
}

impl Report {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Report> {
        let file = match path {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open report file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Report { file })
    }

    fn write(&mut self, op: &str, fields: &[(&str, Json<'_>)]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut line = format!("{{\"op\":{},\"ts_ms\":{}", json_string(op), now_ms());
        for (name, value) in fields {
            let value = match value {
                Json::Str(text) => json_string(text),
                Json::Bool(flag) => flag.to_string(),
                Json::Int(number) => number.to_string(),
            };
            line.push_str(&format!(",{}:{value}", json_string(name)));
        }
        line.push_str("}\n");
        if let Err(error) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            eprintln!("remote_gate: cannot write the report: {error}");
        }
    }
}

fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if u32::from(c) < 0x20 => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The gate: one client, one call at a time.
struct Gate {
    client: PairClient,
    report: Report,
    /// Turns true on SIGTERM or SIGINT.
    stop: watch::Receiver<bool>,
    user: String,
    password: String,
    call_hold: Duration,
    /// Calls started and ended.
    calls_done: u64,
}

impl Gate {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `duration` or until a stop signal, whichever comes first.
    async fn pause(&mut self, duration: Duration) {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
    }

    /// Prints what the client did meanwhile; a resumed session is also a report line.
    fn note_events(&mut self) {
        for event in self.client.drain_events() {
            println!("event: {event}");
            if let ClientEvent::Resumed {
                address,
                node,
                session_id,
                request_id,
            } = &event
            {
                self.report.write(
                    "resume",
                    &[
                        ("password", Json::Bool(false)),
                        ("session_id", Json::Str(session_id)),
                        ("node", Json::Str(node)),
                        ("address", Json::Str(address)),
                        ("request_id", Json::Str(request_id)),
                    ],
                );
            }
        }
    }

    fn note_error(&mut self, during: &str, error: &ClientError) {
        self.note_events();
        println!("error during {during}: {error}");
        let text = error.to_string();
        self.report.write(
            "error",
            &[("during", Json::Str(during)), ("error", Json::Str(&text))],
        );
    }

    /// Logs in with the password unless a session is open. Returns false when stopped first;
    /// fails when the password is wrong or the configuration cannot work.
    async fn ensure_session(&mut self) -> anyhow::Result<bool> {
        while self.client.token().is_none() {
            if self.stopping() {
                return Ok(false);
            }
            match self.client.login(&self.user, &self.password).await {
                Ok(session) => {
                    self.note_events();
                    println!(
                        "login: user {} session {} on {} at {}",
                        session.user, session.session_id, session.node, session.address
                    );
                    self.report.write(
                        "login",
                        &[
                            ("user", Json::Str(&session.user)),
                            ("password", Json::Bool(true)),
                            ("resumed", Json::Bool(session.resumed)),
                            ("session_id", Json::Str(&session.session_id)),
                            ("node", Json::Str(&session.node)),
                            ("address", Json::Str(&session.address)),
                            ("request_id", Json::Str(&session.request_id)),
                        ],
                    );
                }
                Err(error @ (ClientError::Unauthenticated { .. } | ClientError::Config(_))) => {
                    self.note_error("login", &error);
                    bail!(error);
                }
                Err(error) => {
                    self.note_error("login", &error);
                    if !matches!(error, ClientError::Timeout { .. }) {
                        self.pause(REFUSED_PAUSE).await;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Starts a call, repeating a timed-out start with the same request id. `None` when stopped
    /// or refused.
    async fn start_call(&mut self) -> anyhow::Result<Option<String>> {
        let request_id = PairClient::new_request_id();
        let to = format!("{}", 1000 + self.calls_done % 9000);
        loop {
            if !self.ensure_session().await? {
                return Ok(None);
            }
            let from = self.user.clone();
            match self
                .client
                .start_call_with_request_id(&request_id, &from, &to)
                .await
            {
                Ok(call) => {
                    self.note_events();
                    println!(
                        "start: call {} (request {}) at {}",
                        call.call_id, call.request_id, call.address
                    );
                    self.report.write(
                        "start",
                        &[
                            ("call_id", Json::Str(&call.call_id)),
                            ("request_id", Json::Str(&call.request_id)),
                            ("replayed", Json::Bool(call.replayed)),
                            ("started_at_ms", Json::Int(call.started_at_ms)),
                            ("address", Json::Str(&call.address)),
                        ],
                    );
                    return Ok(Some(call.call_id));
                }
                // Unauthenticated: the next turn logs in again and repeats the start.
                Err(
                    error @ (ClientError::Timeout { .. } | ClientError::Unauthenticated { .. }),
                ) => {
                    self.note_error("start", &error);
                    if self.stopping() {
                        return Ok(None);
                    }
                }
                Err(error) => {
                    self.note_error("start", &error);
                    self.pause(REFUSED_PAUSE).await;
                    return Ok(None);
                }
            }
        }
    }

    /// Ends a call, repeating a timed-out end with the same request id; gives up when stopping
    /// and the end still fails, or when the call is refused for good (e.g. unknown).
    async fn end_call(&mut self, call_id: &str) -> anyhow::Result<()> {
        let request_id = PairClient::new_request_id();
        loop {
            if !self.ensure_session().await? {
                return Ok(());
            }
            match self
                .client
                .end_call_with_request_id(&request_id, call_id, "normal")
                .await
            {
                Ok(ended) => {
                    self.note_events();
                    println!(
                        "end: call {} cause {} already_ended {} at {}",
                        ended.call_id, ended.cause, ended.already_ended, ended.address
                    );
                    self.report.write(
                        "end",
                        &[
                            ("call_id", Json::Str(&ended.call_id)),
                            ("request_id", Json::Str(&ended.request_id)),
                            ("cause", Json::Str(&ended.cause)),
                            ("already_ended", Json::Bool(ended.already_ended)),
                            ("ended_at_ms", Json::Int(ended.ended_at_ms)),
                            ("duration_ms", Json::Int(ended.duration_ms)),
                            ("address", Json::Str(&ended.address)),
                        ],
                    );
                    return Ok(());
                }
                Err(error) => {
                    self.note_error("end", &error);
                    let retry = match &error {
                        ClientError::Timeout { .. } | ClientError::Unauthenticated { .. } => true,
                        // Calls blocked: an administrator will unblock them.
                        refused if refused.is_blocked() => {
                            self.pause(REFUSED_PAUSE).await;
                            true
                        }
                        _ => false,
                    };
                    if !retry || self.stopping() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Places calls until `calls` are done (0: until a signal).
    async fn run(&mut self, calls: u64) -> anyhow::Result<()> {
        while calls == 0 || self.calls_done < calls {
            if self.stopping() {
                break;
            }
            let Some(call_id) = self.start_call().await? else {
                continue;
            };
            self.pause(self.call_hold).await;
            self.end_call(&call_id).await?;
            self.calls_done += 1;
        }
        Ok(())
    }

    async fn finish(&mut self) {
        if self.client.token().is_some() {
            match self.client.logout().await {
                Ok(()) => {
                    println!("logout");
                    self.report.write("logout", &[]);
                }
                Err(error) => self.note_error("logout", &error),
            }
        }
        self.note_events();
        let stats = self.client.stats();
        println!("exit: {} calls; {stats:?}", self.calls_done);
        self.report.write(
            "exit",
            &[
                (
                    "calls",
                    Json::Int(i64::try_from(self.calls_done).unwrap_or(i64::MAX)),
                ),
                (
                    "retries",
                    Json::Int(i64::try_from(stats.retries).unwrap_or(i64::MAX)),
                ),
                (
                    "refusals_followed",
                    Json::Int(i64::try_from(stats.refusals_followed).unwrap_or(i64::MAX)),
                ),
                (
                    "reconnects",
                    Json::Int(i64::try_from(stats.reconnects).unwrap_or(i64::MAX)),
                ),
                (
                    "resumes",
                    Json::Int(i64::try_from(stats.resumes).unwrap_or(i64::MAX)),
                ),
                ("longest_gap_ms", Json::Int(millis(stats.longest_gap))),
            ],
        );
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            eprintln!("remote_gate: cannot watch SIGTERM ({error}); only SIGINT stops it");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (stop_sender, stop) = watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        println!("signal: stopping");
        let _ = stop_sender.send(true);
    });
    let mut report = Report::open(args.report.as_ref())?;
    let connected = async {
        let mut config = PairConfig::from_ca_file(args.addresses, &args.ca)?;
        config.client_kind = args.kind;
        config.operation_timeout = Duration::from_millis(args.timeout_ms);
        PairClient::connect(config).await
    };
    let client = match connected.await {
        Ok(client) => client,
        Err(error) => {
            let text = error.to_string();
            report.write(
                "error",
                &[
                    ("during", Json::Str("connect")),
                    ("error", Json::Str(&text)),
                ],
            );
            return Err(error.into());
        }
    };
    println!(
        "connected: active at {}",
        client.active_address().unwrap_or_default()
    );
    let mut gate = Gate {
        client,
        report,
        stop,
        user: args.user,
        password: args.password,
        call_hold: Duration::from_millis(args.call_ms),
        calls_done: 0,
    };
    let result = gate.run(args.calls).await;
    gate.finish().await;
    result
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("remote_gate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
