//! The fault proxy's modes against real sockets on 127.0.0.1. Every wait is a condition with a
//! deadline: a read with a timeout, or `wait_until` on the proxy's counters.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{Direction, FaultProxy, Mode, ProxyStats};
use crate::ports::free_addr;
use crate::wait::wait_until;

/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(5);

/// How long a read must stay silent to show that nothing was forwarded. The bytes were already
/// counted as dropped when this check runs, so a pass is certain and a failure is a real bug.
const SILENCE: Duration = Duration::from_millis(200);

/// A tiny server on 127.0.0.1 whose connections either echo or push data unprompted.
struct TestServer {
    /// Where it listens.
    addr: SocketAddr,
    /// Set on drop; the accept loop and pushers stop when they see it.
    stop: Arc<AtomicBool>,
    /// Bytes received from all clients, to tell whether a client's bytes arrived.
    received_bytes: Arc<AtomicU64>,
    /// The accept loop, joined on drop.
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    /// Send back what arrives.
    Echo,
    /// Send "tick" every few milliseconds and count what arrives.
    Push,
}

impl TestServer {
    fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received_bytes = Arc::new(AtomicU64::new(0));
        let thread = thread::spawn({
            let (stop, received_bytes) = (Arc::clone(&stop), Arc::clone(&received_bytes));
            move || accept_loop(listener, behaviour, stop, received_bytes)
        });
        TestServer {
            addr,
            stop,
            received_bytes,
            thread: Some(thread),
        }
    }

    fn received(&self) -> u64 {
        self.received_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    behaviour: Behaviour,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
        thread::spawn(move || match behaviour {
            Behaviour::Echo => echo(stream),
            Behaviour::Push => push(stream, &stop, &received),
        });
    }
}

fn echo(mut stream: TcpStream) {
    let mut buffer = [0; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
            return;
        }
    }
}

fn push(stream: TcpStream, stop: &AtomicBool, received: &Arc<AtomicU64>) {
    let mut reader = stream.try_clone().unwrap();
    let received = Arc::clone(received);
    thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(read @ 1..) = reader.read(&mut buffer) {
            received.fetch_add(read as u64, Ordering::SeqCst);
        }
    });
    let mut writer = stream;
    while !stop.load(Ordering::SeqCst) && writer.write_all(b"tick").is_ok() {
        thread::sleep(Duration::from_millis(5)); // the server's pace, not a wait in the test
    }
}

fn dial(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(message)?;
    let mut answer = vec![0; message.len()];
    stream.read_exact(&mut answer)?;
    Ok(answer)
}

fn assert_echoes(stream: &mut TcpStream) {
    assert_eq!(round_trip(stream, b"hello").unwrap(), b"hello");
}

/// The connection stays open but nothing arrives within [`SILENCE`].
fn assert_silent(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(SILENCE)).unwrap();
    let read = stream.read(&mut [0; 64]);
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let error = read.expect_err("nothing may arrive, and the connection must stay open");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
}

fn assert_reset(stream: &mut TcpStream) {
    let error = stream.read(&mut [0; 64]).expect_err("expected a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
}

fn wait_stats(proxy: &FaultProxy, what: &str, condition: impl Fn(&ProxyStats) -> bool) {
    wait_until(DEADLINE, what, || {
        Ok(condition(&proxy.stats()).then_some(()))
    })
    .unwrap();
}

#[test]
fn pass_forwards_both_ways() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    assert_eq!(proxy.target(), server.addr);
    let mut client = dial(proxy.listen_addr());
    assert_echoes(&mut client);
    wait_stats(&proxy, "5 bytes forwarded each way", |stats| {
        stats.forwarded_client_to_server_bytes == 5 && stats.forwarded_server_to_client_bytes == 5
    });
    assert_eq!(proxy.stats().connections_accepted, 1);
}

#[test]
fn refuse_refuses_dials_and_resets_connections_until_pass() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut existing = dial(proxy.listen_addr());
    assert_echoes(&mut existing);

    proxy.set_mode(Mode::Refuse).unwrap();
    let error = TcpStream::connect(proxy.listen_addr()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    assert_reset(&mut existing);

    proxy.set_mode(Mode::Pass).unwrap();
    assert_echoes(&mut dial(proxy.listen_addr()));
    assert_eq!(proxy.stats().connections_reset, 1);
}

#[test]
fn a_quick_refuse_and_pass_still_resets_existing_connections() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut existing = dial(proxy.listen_addr());
    assert_echoes(&mut existing);
    proxy.set_mode(Mode::Refuse).unwrap();
    proxy.set_mode(Mode::Pass).unwrap();
    assert_reset(&mut existing);
}

#[test]
fn blackhole_swallows_bytes_and_heal_resets_only_connections_that_lost_bytes() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut talking = dial(proxy.listen_addr());
    let mut idle = dial(proxy.listen_addr());
    assert_echoes(&mut talking);
    assert_echoes(&mut idle);

    proxy.set_mode(Mode::Blackhole).unwrap();
    talking.write_all(b"lost").unwrap();
    wait_stats(&proxy, "4 bytes dropped", |s| {
        s.dropped_client_to_server_bytes == 4
    });
    assert_silent(&mut talking);
    let mut new = dial(proxy.listen_addr());
    new.write_all(b"gone").unwrap();
    wait_stats(&proxy, "8 bytes dropped", |s| {
        s.dropped_client_to_server_bytes == 8
    });
    assert_silent(&mut new);

    proxy.set_mode(Mode::Pass).unwrap();
    assert_echoes(&mut idle);
    assert_reset(&mut talking);
    assert_reset(&mut new);
    assert_echoes(&mut dial(proxy.listen_addr()));
}

#[test]
fn a_connection_accepted_in_blackhole_reaches_the_target_after_heal_if_it_sent_nothing() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    proxy.set_mode(Mode::Blackhole).unwrap();
    let mut held = dial(proxy.listen_addr());
    proxy.set_mode(Mode::Pass).unwrap();
    assert_echoes(&mut held);
}

#[test]
fn cut_client_to_server_drops_client_bytes_while_server_bytes_flow() {
    let server = TestServer::start(Behaviour::Push);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut client = dial(proxy.listen_addr());
    client.read_exact(&mut [0; 4]).unwrap();

    proxy
        .set_mode(Mode::Cut(Direction::ClientToServer))
        .unwrap();
    let pushed_before = proxy.stats().forwarded_server_to_client_bytes;
    client.write_all(&[7; 100]).unwrap();
    wait_stats(&proxy, "100 client bytes dropped", |s| {
        s.dropped_client_to_server_bytes == 100
    });
    assert_eq!(server.received(), 0);
    client.set_read_timeout(Some(SILENCE)).unwrap();
    wait_until(DEADLINE, "server bytes after the cut", || {
        let _ = client.read(&mut [0; 4096]); // keep the pushed bytes flowing
        Ok((proxy.stats().forwarded_server_to_client_bytes > pushed_before).then_some(()))
    })
    .unwrap();
}

#[test]
fn cut_server_to_client_drops_server_bytes_while_client_bytes_flow() {
    let server = TestServer::start(Behaviour::Push);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut client = dial(proxy.listen_addr());
    client.read_exact(&mut [0; 4]).unwrap();

    proxy
        .set_mode(Mode::Cut(Direction::ServerToClient))
        .unwrap();
    client.write_all(&[7; 100]).unwrap();
    wait_until(DEADLINE, "client bytes at the server", || {
        Ok((server.received() == 100).then_some(()))
    })
    .unwrap();
    wait_stats(&proxy, "server bytes dropped", |s| {
        s.dropped_server_to_client_bytes > 0
    });
}

#[test]
fn delay_adds_at_least_the_delay_in_each_direction() {
    let delay = Duration::from_millis(150);
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let mut client = dial(proxy.listen_addr());
    assert_echoes(&mut client);

    proxy.set_mode(Mode::Delay(delay)).unwrap();
    assert_eq!(proxy.mode(), Mode::Delay(delay));
    let started = Instant::now();
    assert_echoes(&mut client);
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
}

#[test]
fn a_dead_target_resets_the_client() {
    let nobody = free_addr().unwrap();
    let proxy = FaultProxy::start(nobody).unwrap();
    let mut client = dial(proxy.listen_addr());
    assert_reset(&mut client);
    assert_eq!(proxy.stats().connections_reset, 1);
}

#[test]
fn dropping_the_proxy_closes_its_listener_and_connections() {
    let server = TestServer::start(Behaviour::Echo);
    let proxy = FaultProxy::start(server.addr).unwrap();
    let listen_addr = proxy.listen_addr();
    let mut client = dial(listen_addr);
    assert_echoes(&mut client);

    drop(proxy);
    let error = TcpStream::connect(listen_addr).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    let read = client.read(&mut [0; 64]);
    assert!(
        matches!(&read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "{read:?}"
    );
}
