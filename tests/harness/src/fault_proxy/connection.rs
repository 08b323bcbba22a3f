//! One proxied connection, from accept to close.
//!
//! A connection accepted while the proxy blackholes is held without dialing the target, as a SYN
//! lost in a real black hole never reaches the server. Once traffic flows again it is dialed,
//! unless bytes were discarded meanwhile: then it is reset, because the stream has a gap.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::mode::{Direction, Mode};
use super::mode_watch::ModeWatch;
use super::pump::{Pump, PumpEnd};
use super::shared::Shared;

/// How long a dial of the target may take before the client is reset.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Read buffer for a held connection, whose bytes are only counted and thrown away.
const HOLD_BUFFER_BYTES: usize = 16 * 1024;

/// How the set-up of a connection ended.
enum Establish {
    /// The target answered; pump bytes between the two.
    Connected(TcpStream),
    /// Reset the client: the proxy refused, discarded bytes, or the target did not answer.
    Reset,
    /// The client closed while held; there is nothing to pass on.
    Gone,
}

/// Serves an accepted connection until it closes. `refusals` is the proxy's refusal count when
/// the connection was accepted.
pub(crate) async fn serve(mut client: TcpStream, shared: &Shared, refusals: u64) {
    let mut watch = ModeWatch::new(shared.state.subscribe(), refusals);
    let _ = client.set_nodelay(true);
    match establish(&mut client, &mut watch, shared).await {
        Establish::Connected(server) => pump_both(client, server, watch, shared).await,
        Establish::Reset => reset(&client, shared),
        Establish::Gone => {}
    }
}

async fn establish(client: &mut TcpStream, watch: &mut ModeWatch, shared: &Shared) -> Establish {
    let first_bytes = match hold_while_blackholed(client, watch, shared).await {
        Hold::Proceed(first_bytes) => first_bytes,
        Hold::End(end) => return end,
    };
    let delay = match watch.mode() {
        Mode::Delay(delay) => delay,
        _ => Duration::ZERO,
    };
    match watch
        .unless_refused(dial(shared, delay, &first_bytes))
        .await
    {
        Some(Ok(server)) => Establish::Connected(server),
        Some(Err(error)) => {
            tracing::debug!(%error, target = %shared.target, "fault proxy: dial failed");
            Establish::Reset
        }
        None => Establish::Reset,
    }
}

/// How holding a connection accepted in `Blackhole` ended.
enum Hold {
    /// Dial the target and send it these bytes first: they were read just as the mode changed,
    /// under the new mode.
    Proceed(Vec<u8>),
    /// Do not dial.
    End(Establish),
}

/// While the mode is `Blackhole`, reads and discards what the client sends.
async fn hold_while_blackholed(
    client: &mut TcpStream,
    watch: &mut ModeWatch,
    shared: &Shared,
) -> Hold {
    let mut buffer = vec![0; HOLD_BUFFER_BYTES];
    let mut gap = false;
    loop {
        if watch.refused() || (gap && watch.mode() != Mode::Blackhole) {
            return Hold::End(Establish::Reset);
        }
        if watch.mode() != Mode::Blackhole {
            return Hold::Proceed(Vec::new());
        }
        // Biased: a mode change is seen before bytes that arrive with it.
        tokio::select! {
            biased;
            () = watch.changed() => {}
            read = client.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Hold::End(Establish::Gone),
                Ok(read) if !gap && watch.mode() != Mode::Blackhole => {
                    return Hold::Proceed(buffer[..read].to_vec());
                }
                Ok(read) => {
                    shared.counters.dropped(Direction::ClientToServer, read);
                    gap = true;
                }
            },
        }
    }
}

/// Dials the target after `delay` and sends it `first_bytes`.
async fn dial(shared: &Shared, delay: Duration, first_bytes: &[u8]) -> io::Result<TcpStream> {
    tokio::time::sleep(delay).await;
    let connect = TcpStream::connect(shared.target);
    let mut server = tokio::time::timeout(DIAL_TIMEOUT, connect).await??;
    server.set_nodelay(true)?;
    server.write_all(first_bytes).await?;
    shared
        .counters
        .forwarded(Direction::ClientToServer, first_bytes.len());
    Ok(server)
}

async fn pump_both(client: TcpStream, server: TcpStream, watch: ModeWatch, shared: &Shared) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let end = {
        let counters = &shared.counters;
        let to_server = Pump::new(Direction::ClientToServer, watch.clone(), counters)
            .run(&mut client_read, &mut server_write);
        let to_client = Pump::new(Direction::ServerToClient, watch, counters)
            .run(&mut server_read, &mut client_write);
        both_unless_reset(to_server, to_client).await
    };
    if end == PumpEnd::Reset {
        shared.counters.reset();
        reset_halves(client_read, client_write);
        reset_halves(server_read, server_write);
    }
}

/// Runs both pumps; the first reset ends both.
async fn both_unless_reset(
    first: impl Future<Output = PumpEnd>,
    second: impl Future<Output = PumpEnd>,
) -> PumpEnd {
    let mut first = std::pin::pin!(first);
    let mut second = std::pin::pin!(second);
    let (mut first_done, mut second_done) = (false, false);
    while !(first_done && second_done) {
        let end = tokio::select! {
            end = &mut first, if !first_done => { first_done = true; end }
            end = &mut second, if !second_done => { second_done = true; end }
        };
        if end == PumpEnd::Reset {
            return PumpEnd::Reset;
        }
    }
    PumpEnd::Closed
}

/// Reunites the halves first: dropping a lone write half would send a FIN before the RST, and
/// the peer would read a clean end of stream instead of a reset.
fn reset_halves(read: OwnedReadHalf, write: OwnedWriteHalf) {
    if let Ok(stream) = read.reunite(write) {
        set_zero_linger(&stream);
    }
}

/// Resets a connection that never reached the pumps.
fn reset(client: &TcpStream, shared: &Shared) {
    set_zero_linger(client);
    shared.counters.reset();
}

/// SO_LINGER 0: closing the socket sends RST instead of FIN.
fn set_zero_linger(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "fault proxy: could not set SO_LINGER 0");
    }
}
