//! A local SMTP sink: accepts every mail on 127.0.0.1 and keeps it, so tests can check what
//! `tandemd` mailed through lettre. It speaks enough SMTP for a client without TLS or auth
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). `stop` closes the listener, so dials are
//! refused, as when a mail server is down; `start_at` brings it back on the same address.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One received mail: the envelope and the raw DATA (headers and body).
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The value of a header (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.data
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
    }
}

pub struct SmtpSink {
    address: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    stopped: Arc<AtomicBool>,
}

impl SmtpSink {
    /// A sink on a free port.
    pub fn start() -> io::Result<SmtpSink> {
        SmtpSink::start_at(crate::ports::free_addr()?, Arc::new(Mutex::new(Vec::new())))
    }

    /// A sink on `address`, adding to `mails` (pass another sink's `mails` to carry on).
    pub fn start_at(address: SocketAddr, mails: Arc<Mutex<Vec<Mail>>>) -> io::Result<SmtpSink> {
        let listener = TcpListener::bind(address)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let (stop, kept) = (stopped.clone(), mails.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let kept = kept.clone();
                    thread::spawn(move || {
                        let _ = serve(stream, &kept);
                    });
                }
            }
        });
        Ok(SmtpSink {
            address,
            mails,
            stopped,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The shared store of mails, to hand to a restarted sink.
    pub fn store(&self) -> Arc<Mutex<Vec<Mail>>> {
        self.mails.clone()
    }

    /// Closes the listener: new connections are refused until a sink starts on the address.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    out.write_all(b"220 tandem-test-sink ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-tandem-test-sink\r\n250 8BITMIME\r\n")?,
            "HELO" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "RSET" => {
                from.clear();
                to.clear();
                out.write_all(b"250 OK\r\n")?;
            }
            "MAIL" => {
                from = command
                    .split_once(':')
                    .map_or(String::new(), |(_, a)| a.to_string());
                out.write_all(b"250 OK\r\n")?;
            }
            "RCPT" => {
                to.push(
                    command
                        .split_once(':')
                        .map_or(String::new(), |(_, a)| a.to_string()),
                );
                out.write_all(b"250 OK\r\n")?;
            }
            "DATA" => {
                out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line.trim_end_matches(['\r', '\n']) == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                if let Ok(mut kept) = mails.lock() {
                    kept.push(Mail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data: data.replace("\r\n", "\n"),
                    });
                }
                out.write_all(b"250 OK queued\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"502 not implemented\r\n")?,
        }
    }
}
