//! One direction of a proxied connection: read, apply the mode, write.

use std::collections::VecDeque;
use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::mode::{Direction, Flow};
use super::mode_watch::ModeWatch;
use super::stats::Counters;

/// Size of one read, and so the largest chunk.
const CHUNK_BYTES_MAX: usize = 16 * 1024;

/// Chunks read but not yet written, per direction. With [`CHUNK_BYTES_MAX`] this bounds a
/// direction's buffer to 1 MiB. When it is full the pump stops reading, so the sender's kernel
/// buffers fill and its writes block, as they would on a slow link.
const QUEUED_CHUNKS_MAX: usize = 64;

/// How a pump ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// The sender closed its side and everything read was delivered, with the close.
    Closed,
    /// The connection must be reset on both sides.
    Reset,
}

/// A chunk on its way through the proxy.
struct Chunk {
    /// When it may be written: read time plus the mode's delay.
    due: Instant,
    /// The bytes as read.
    bytes: Vec<u8>,
    /// How many of them are already written; a write may be partial.
    written: usize,
}

/// What woke the pump.
enum Event {
    ModeChanged,
    Read(io::Result<usize>),
    Due,
    Written(io::Result<usize>),
}

/// Moves the bytes of one direction, with its own small delay line so that `Delay` adds latency
/// without limiting throughput to one chunk per delay.
pub(crate) struct Pump<'a> {
    /// Which direction this is, to pick the mode's flow and the counters.
    direction: Direction,
    /// The proxy's mode as this connection sees it.
    watch: ModeWatch,
    /// Where forwarded and dropped bytes are counted.
    counters: &'a Counters,
    /// Chunks read but not yet written, oldest first; at most [`QUEUED_CHUNKS_MAX`].
    queue: VecDeque<Chunk>,
    /// The sender closed its side; its close is passed on once the queue is empty.
    read_closed: bool,
    /// Some bytes of this direction were discarded. The stream can never be valid again (a TLS
    /// record would fail its check), so when bytes would flow again the connection is reset
    /// instead, which is what the endpoints of a real partition eventually see too.
    gap: bool,
    /// The read buffer, reused for every read.
    buffer: Box<[u8]>,
}

impl<'a> Pump<'a> {
    pub(crate) fn new(direction: Direction, watch: ModeWatch, counters: &'a Counters) -> Pump<'a> {
        Pump {
            direction,
            watch,
            counters,
            queue: VecDeque::new(),
            read_closed: false,
            gap: false,
            buffer: vec![0; CHUNK_BYTES_MAX].into_boxed_slice(),
        }
    }

    pub(crate) async fn run(
        mut self,
        from: &mut OwnedReadHalf,
        to: &mut OwnedWriteHalf,
    ) -> PumpEnd {
        loop {
            let flow = self.watch.flow(self.direction);
            let forwarding = matches!(flow, Flow::Forward(_));
            if flow == Flow::Reset || (self.gap && forwarding) {
                return PumpEnd::Reset;
            }
            if self.read_closed && self.queue.is_empty() && forwarding {
                return match to.shutdown().await {
                    Ok(()) => PumpEnd::Closed,
                    Err(_) => PumpEnd::Reset,
                };
            }
            let event = self.next_event(from, to).await;
            if let Some(end) = self.handle(event) {
                return end;
            }
        }
    }

    async fn next_event(&mut self, from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf) -> Event {
        let now = Instant::now();
        let due = self.queue.front().map(|chunk| chunk.due);
        let ready = due.is_some_and(|due| due <= now);
        let unwritten = self
            .queue
            .front()
            .map_or(&[][..], |chunk| &chunk.bytes[chunk.written..]);
        let can_read = !self.read_closed && self.queue.len() < QUEUED_CHUNKS_MAX;
        // Biased: a mode change is seen before bytes that arrive with it.
        tokio::select! {
            biased;
            () = self.watch.changed() => Event::ModeChanged,
            read = from.read(&mut self.buffer), if can_read => Event::Read(read),
            () = tokio::time::sleep_until(due.unwrap_or(now)), if due.is_some() && !ready => Event::Due,
            written = to.write(unwritten), if ready => Event::Written(written),
        }
    }

    /// Applies one event; `Some` ends the pump.
    fn handle(&mut self, event: Event) -> Option<PumpEnd> {
        match event {
            Event::ModeChanged | Event::Due => None,
            Event::Read(Ok(0)) => {
                self.read_closed = true;
                None
            }
            Event::Read(Ok(read)) => self.accept_read(read),
            Event::Written(Ok(written)) if written > 0 => {
                self.mark_written(written);
                None
            }
            Event::Read(Err(_)) | Event::Written(_) => Some(PumpEnd::Reset),
        }
    }

    /// Queues or discards what was read, under the mode in force now: a `set_mode` that returned
    /// before the sender wrote these bytes must apply to them, even if this task has not yet
    /// looked at the change.
    fn accept_read(&mut self, read: usize) -> Option<PumpEnd> {
        match self.watch.flow(self.direction) {
            Flow::Forward(delay) => self.queue.push_back(Chunk {
                due: Instant::now() + delay,
                bytes: self.buffer[..read].to_vec(),
                written: 0,
            }),
            Flow::Discard => {
                self.counters.dropped(self.direction, read);
                self.gap = true;
            }
            Flow::Reset => return Some(PumpEnd::Reset),
        }
        None
    }

    fn mark_written(&mut self, written: usize) {
        self.counters.forwarded(self.direction, written);
        let Some(chunk) = self.queue.front_mut() else {
            return;
        };
        chunk.written += written;
        if chunk.written == chunk.bytes.len() {
            self.queue.pop_front();
        }
    }
}
