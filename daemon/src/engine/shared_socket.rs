//! A client connection's socket, shared by the connection's writer task and the engine, so that
//! the engine can write a reply or event itself when the connection has nothing queued.
//!
//! Handing a message to the connection's outbox costs a wake-up of a tokio worker, which then
//! encodes and writes it. Under load the workers are what waits for a CPU, and that work was a
//! third of their CPU time (on this project's 2-vCPU machines; docs/BENCHMARKS.md,
//! "Optimisations"). Written by the engine, the message costs one non-blocking `write`.
//!
//! Why the order of what the client reads is unchanged:
//! - **One writer at a time.** Whoever writes holds `writing`: the connection's writer for a
//!   whole batch (across its awaits), the engine for one non-blocking write. The engine never
//!   waits for it: if the writer holds it, the message goes to the outbox.
//! - **Nothing overtaken.** The engine writes only when the connection's queued bytes are zero:
//!   every message in its outbox and every reply answered on the connection (both counted
//!   there before they are queued) has been written. Otherwise the message is queued behind
//!   them.
//! - **A partial write** leaves the rest of the frame here (counted in the queued bytes, so
//!   nothing more is written directly), and the writer is woken to send it before anything
//!   else.
//! - **Not before the hello's answer**: the writer holds the socket from the start and lets go
//!   only once the answer is written.

use super::PlainStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// Largest frame the engine writes itself; larger ones go through the outbox, so that the
/// engine's thread never copies much nor leaves much behind.
pub const ENGINE_WRITE_MAX: usize = 4096;

/// How the engine's write went.
#[derive(Debug, PartialEq, Eq)]
pub enum EngineWrite {
    /// The whole frame is in the socket.
    Written,
    /// Part of it is; the rest is left for the writer (the frame counts as written).
    Partial,
    /// Nothing was written: the writer holds the socket, or the socket is full or failed.
    /// The message goes to the outbox (a failed socket is noticed by the connection).
    NotWritten,
}

/// The socket, and who may write to it.
#[derive(Debug)]
pub struct SharedSocket {
    /// The connection's socket, shared with its task.
    socket: PlainStream,
    /// Held by whoever writes to the socket. Starts held by the connection's writer.
    writing: AtomicBool,
    /// The rest of a frame the engine could only partly write.
    leftover: Mutex<Vec<u8>>,
    /// Wakes the writer to send the leftover.
    leftover_ready: Notify,
    /// Bytes queued for the connection (see `wire::weight`); the engine adds a leftover here.
    queued_bytes: Arc<AtomicUsize>,
    /// The connection's requests not yet answered; the engine subtracts the replies it writes.
    in_flight: Arc<AtomicUsize>,
    /// The largest frame the engine writes itself.
    write_max: usize,
}

impl SharedSocket {
    /// Shares the connection's socket, its counters and its frame limit. Held by the writer
    /// until [`SharedSocket::release`].
    pub fn new(
        socket: PlainStream,
        (queued_bytes, in_flight): (Arc<AtomicUsize>, Arc<AtomicUsize>),
        frame_len_max: u32,
    ) -> Self {
        let frame_max =
            baton_proto::frame::HEADER_LEN.saturating_add(usize::try_from(frame_len_max).unwrap_or(usize::MAX));
        SharedSocket {
            socket,
            writing: AtomicBool::new(true),
            leftover: Mutex::new(Vec::new()),
            leftover_ready: Notify::new(),
            queued_bytes,
            in_flight,
            write_max: ENGINE_WRITE_MAX.min(frame_max),
        }
    }

    /// The largest frame (and message weight, see `wire::weight`) the engine writes itself:
    /// larger ones go through the outbox, whose writer also turns a reply over the frame
    /// limit into an error.
    pub fn write_max(&self) -> usize {
        self.write_max
    }

    /// Whether nothing is queued and nobody is writing, as far as a glance shows: a cheap
    /// test before encoding a frame, which [`SharedSocket::engine_write`] makes again for
    /// certain.
    pub fn looks_free(&self) -> bool {
        self.queued_bytes.load(Ordering::Relaxed) == 0 && !self.writing.load(Ordering::Relaxed)
    }

    /// The engine's write of one whole `frame`, if nothing is queued for the connection and
    /// its writer is not writing. `reply`: the frame answers a request (else it is an event).
    pub fn engine_write(&self, frame: &[u8], reply: bool) -> EngineWrite {
        if frame.len() > self.write_max || self.queued_bytes.load(Ordering::Acquire) != 0 || !self.try_claim() {
            return EngineWrite::NotWritten;
        }
        let outcome = match self.socket.try_write(frame) {
            Ok(n) if n == frame.len() => EngineWrite::Written,
            Ok(0) | Err(_) => EngineWrite::NotWritten,
            Ok(n) => {
                let rest = &frame[n..];
                self.leftover().extend_from_slice(rest);
                self.queued_bytes.fetch_add(rest.len(), Ordering::AcqRel);
                self.leftover_ready.notify_one();
                EngineWrite::Partial
            }
        };
        if outcome != EngineWrite::NotWritten && reply {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        self.release();
        outcome
    }

    /// Takes the socket for the writer, waiting out an engine write in progress.
    pub async fn claim(&self) {
        while !self.try_claim() {
            tokio::task::yield_now().await;
        }
    }

    /// Lets go of the socket.
    pub fn release(&self) {
        self.writing.store(false, Ordering::Release);
    }

    /// Resolves when the engine has left part of a frame to send.
    pub async fn leftover_ready(&self) {
        self.leftover_ready.notified().await;
    }

    /// Moves the leftover (if any) to the end of `buf`, the writer's next write, and returns
    /// its length, which the writer subtracts from the queued bytes once written. Call only
    /// while holding the socket.
    pub fn take_leftover(&self, buf: &mut Vec<u8>) -> usize {
        let mut leftover = self.leftover();
        buf.extend_from_slice(&leftover);
        let len = leftover.len();
        leftover.clear();
        len
    }

    fn try_claim(&self) -> bool {
        self.writing.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    fn leftover(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Taken only while holding the socket, never across an await: never contended.
        self.leftover.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;

    /// A shared socket over one end of a pair, released by its writer, and the other end.
    /// Both ends are tokio's: the engine writes through the same socket the connection's task
    /// serves.
    async fn pair() -> (SharedSocket, UnixStream, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // As a connection's socket is by the time the engine may write: known writable.
        ours.writable().await.unwrap();
        let (queued, in_flight) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(1)));
        let socket = PlainStream::Unix(Arc::new(ours));
        let shared = SharedSocket::new(socket, (queued.clone(), in_flight.clone()), 1 << 20);
        shared.release();
        (shared, theirs, queued, in_flight)
    }

    #[tokio::test]
    async fn the_engine_writes_only_when_nothing_is_queued_and_the_writer_is_not_writing() {
        let (shared, mut theirs, queued, in_flight) = pair().await;
        queued.store(10, Ordering::Release);
        assert_eq!(shared.engine_write(b"queued", true), EngineWrite::NotWritten);
        queued.store(0, Ordering::Release);
        assert!(shared.try_claim(), "the writer takes it");
        assert_eq!(shared.engine_write(b"writing", true), EngineWrite::NotWritten);
        shared.release();
        assert_eq!(in_flight.load(Ordering::Acquire), 1, "nothing written, nothing answered");
        assert_eq!(shared.engine_write(b"reply", true), EngineWrite::Written);
        assert_eq!(in_flight.load(Ordering::Acquire), 0, "the reply is written");
        assert_eq!(shared.engine_write(b"event", false), EngineWrite::Written);
        assert_eq!(in_flight.load(Ordering::Acquire), 0, "an event answers nothing");
        let mut got = [0u8; 10];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"replyevent");
        assert_eq!(shared.engine_write(&vec![0; ENGINE_WRITE_MAX + 1], false), EngineWrite::NotWritten);
    }

    #[tokio::test]
    async fn a_partly_written_frame_is_finished_by_the_writer_before_anything_else() {
        let (shared, mut theirs, queued, _) = pair().await;
        // A small send buffer: Linux then splits a 4 KiB write, and the second frame's
        // write stops part-way (4,096 bytes, then 4,032 of the next).
        let PlainStream::Unix(socket) = &shared.socket else { unreachable!("a Unix pair") };
        nix::sys::socket::setsockopt(&**socket, nix::sys::socket::sockopt::SndBuf, &4096).unwrap();
        let frames: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; ENGINE_WRITE_MAX]).collect();
        let mut outcomes = frames.iter().map(|frame| shared.engine_write(frame, false));
        let written = outcomes.by_ref().take_while(|o| *o == EngineWrite::Written).count();
        assert!(written < frames.len(), "the socket filled up");
        let partial = &frames[written];
        let rest = queued.load(Ordering::Acquire);
        assert!(rest > 0 && rest < partial.len(), "{rest} bytes of {} left over", partial.len());
        assert_eq!(shared.engine_write(b"later", false), EngineWrite::NotWritten, "queued bytes hold it back");
        // The writer's turn: the leftover first, then its own messages.
        let mut next_write = Vec::new();
        assert_eq!(shared.take_leftover(&mut next_write), rest);
        assert_eq!(shared.take_leftover(&mut Vec::new()), 0, "taken once");
        next_write.extend_from_slice(b"after");
        let mut expected: Vec<u8> = frames[..=written].concat();
        expected.extend_from_slice(b"after");
        let mut got = vec![0u8; expected.len() - next_write.len()];
        theirs.read_exact(&mut got).await.unwrap();
        got.extend_from_slice(&next_write);
        assert!(got == expected, "the stream holds every frame whole and in order");
    }
}
