//! One client connection: the hello, then a reader feeding requests to the engine and a
//! writer draining the connection's bounded outbox, until either side ends.
//!
//! Framing violations (an oversized length, an undecodable hello or request without an id)
//! close the connection after a `Closing` message saying why; an undecodable op with a
//! readable id gets an error reply in order and the connection carries on.

use super::auth::Authenticator;
use super::lean_reader::LeanReader;
use super::reads::{Answered, LocalReads};
use crate::engine::{ConnId, ConnLink, EngineInput, Peer, PlainStream, SharedSocket, StateView};
use crate::wire::{self, ReadError, read_frame, write_message};
use baton_proto::frame;
use baton_proto::message::{Hello, HelloReply, Request, ServerMessage};
use baton_proto::{ErrorCode, ErrorReply, Principal};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// What a connection needs to know of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub frame_len_max: u32,
    pub handshake_timeout: Duration,
    pub outbound_messages_max: usize,
    pub connections_per_peer_max: usize,
    /// Requests sent and not yet answered, past which the connection is closed.
    pub requests_in_flight_max: usize,
    /// Bytes queued for the client, past which it is cut off as too slow (the engine checks).
    pub outbound_bytes_max: usize,
}

/// Reads answered on the connection in a row before its writer gets a turn.
const ANSWERED_HERE_BURST: u64 = 64;
/// How long a goodbye may take to write before the connection is simply dropped.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one connection to the end. Cancellation safe: dropping it drops the connection
/// (the engine learns of it from the closed outbox or the `Disconnected` sent here).
///
/// `principals` is what the transport proved (SO_PEERCRED, a TLS certificate); a token the
/// hello names is proved here, through `auth`. `socket`, the plain socket `stream` reads and
/// writes, lets the engine write to it itself (see `engine::SharedSocket`).
pub async fn serve<S>(
    stream: S,
    conn: ConnId,
    (peer, mut principals): (Peer, Vec<Principal>),
    auth: &Authenticator,
    (engine, state): (mpsc::Sender<EngineInput>, StateView),
    limits: ConnLimits,
    socket: Option<PlainStream>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let hello =
        match tokio::time::timeout(limits.handshake_timeout, read_frame(&mut reader, limits.frame_len_max)).await {
            Err(_) => return goodbye_hello(&mut writer, ErrorCode::BadRequest, "no hello in time", limits).await,
            Ok(Err(ReadError::Io(e))) => return debug!(conn, error = %e, "closed before hello"),
            Ok(Err(ReadError::Frame(e))) => return goodbye_hello(&mut writer, ErrorCode::TooLarge, &e, limits).await,
            Ok(Ok(payload)) => match frame::decode::<Hello>(&payload) {
                Ok(hello) => hello,
                Err(e) => {
                    return goodbye_hello(&mut writer, ErrorCode::BadRequest, &format!("bad hello: {e}"), limits).await;
                }
            },
        };
    let (outbox, mut outbox_rx) = mpsc::channel(limits.outbound_messages_max);
    let (kill, kill_rx) = oneshot::channel();
    let (reply, reply_rx) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counters = (queued_bytes.clone(), in_flight.clone());
    let shared = socket.map(|socket| Arc::new(SharedSocket::new(socket, counters, limits.frame_len_max)));
    let link = Arc::new(ConnLink::default());
    let io = (&mut reader, &mut writer);
    let proved = auth.authenticate(
        hello.token.as_ref(),
        peer,
        &mut principals,
        io,
        limits.frame_len_max,
        limits.handshake_timeout,
    );
    if let Err(refusal) = proved.await {
        warn!(conn, ?peer, reason = %refusal, "connection refused");
        return refuse(&mut writer, refusal, limits).await;
    }
    let input = EngineInput::Hello {
        conn,
        hello,
        peer,
        principals,
        outbox,
        kill,
        reply,
        queued_bytes: queued_bytes.clone(),
        link: Some(link.clone()),
        socket: shared.clone(),
    };
    if engine.send(input).await.is_err() {
        return;
    }
    let Ok(answer) = reply_rx.await else { return };
    let session = match &answer {
        HelloReply::Accepted(server) => Some(server.session_id),
        _ => None,
    };
    if write_message(&mut writer, &answer, limits.frame_len_max).await.is_err() {
        return finish(&engine, conn, session.is_some()).await;
    }
    // The answer is out: the engine may write to the socket from now on.
    let shared = shared.as_deref();
    if let Some(shared) = shared {
        shared.release();
    }
    let Some(session) = session else { return };
    let answered = Answered::default();
    let mut reads =
        LocalReads::new(state, link.clone(), session, &answered, (queued_bytes.clone(), limits.outbound_bytes_max));

    let ended = {
        // Buffered from here on (the handshake reads exact frames, so nothing is lost): a
        // request's header and payload, and pipelined requests, come in one read.
        let mut reader = LeanReader::new(reader);
        let reading = read_requests(&mut reader, conn, (&engine, &mut reads), &limits, &in_flight);
        tokio::pin!(reading);
        let mut kill_rx = kill_rx;
        let mut buf = Vec::new();
        loop {
            // Only waiting is raced, never a write: a frame is never cut in half. The engine
            // sends the kill before it drops the outbox, so `biased` sees the reason. Replies
            // answered here are looked at right after the reader that queues them.
            let first = tokio::select! {
                biased;
                reason = &mut kill_rx => break reason.ok(),
                reason = &mut reading => break reason,
                () = answered.ready() => None,
                () = leftover_ready(shared) => None,
                message = outbox_rx.recv() => match message {
                    Some(message) => Some(message),
                    None => break None,
                },
            };
            let queues = (&answered, &mut outbox_rx);
            let Some(written) = write_batch(&mut writer, first, queues, shared, &mut buf, limits.frame_len_max).await
            else {
                break None;
            };
            queued_bytes.fetch_sub(written.weight, Ordering::AcqRel);
            in_flight.fetch_sub(written.replies, Ordering::AcqRel);
            link.taken(written.others);
        }
    };
    if let Some(reason) = ended {
        info!(conn, reason = %reason, "closing connection");
        goodbye(&mut writer, (&answered, &mut outbox_rx), shared, reason, limits.frame_len_max).await;
    }
    finish(&engine, conn, true).await;
}

/// Writes what was queued before the goodbye, then the goodbye.
async fn goodbye<W: AsyncWrite + Unpin>(
    writer: &mut W,
    (answered, outbox): (&Answered, &mut mpsc::Receiver<Box<ServerMessage>>),
    shared: Option<&SharedSocket>,
    reason: ErrorReply,
    frame_len_max: u32,
) {
    let mut buf = Vec::new();
    // Held to the end: the engine writes nothing after the goodbye.
    if let Some(shared) = shared {
        shared.claim().await;
        shared.take_leftover(&mut buf);
    }
    while let Some(message) = answered.pop() {
        encode_message(&message, frame_len_max, &mut buf);
    }
    while let Ok(message) = outbox.try_recv() {
        encode_message(&message, frame_len_max, &mut buf);
    }
    encode_message(&ServerMessage::Closing(reason), frame_len_max, &mut buf);
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        writer.write_all(&buf).await?;
        writer.flush().await
    })
    .await;
}

async fn finish(engine: &mpsc::Sender<EngineInput>, conn: ConnId, registered: bool) {
    if registered {
        let _ = engine.send(EngineInput::Disconnected { conn }).await;
    }
}

async fn goodbye_hello<W: AsyncWrite + Unpin>(writer: &mut W, code: ErrorCode, message: &str, limits: ConnLimits) {
    refuse(writer, ErrorReply::new(code, message), limits).await;
}

/// Answers a hello with a refusal (briefly: a client that does not read is just dropped).
async fn refuse<W: AsyncWrite + Unpin>(writer: &mut W, refusal: ErrorReply, limits: ConnLimits) {
    let refusal = HelloReply::Refused(refusal);
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, write_message(writer, &refusal, limits.frame_len_max)).await;
}

/// Reads requests until the client leaves or breaks the framing; returns the reason to give
/// it, if any.
async fn read_requests<R: AsyncRead + Unpin>(
    reader: &mut R,
    conn: ConnId,
    (engine, reads): (&mpsc::Sender<EngineInput>, &mut LocalReads<'_>),
    limits: &ConnLimits,
    in_flight: &AtomicUsize,
) -> Option<ErrorReply> {
    let mut answered_here: u64 = 0;
    loop {
        let payload = match read_frame(reader, limits.frame_len_max).await {
            Ok(payload) => payload,
            Err(ReadError::Io(e)) => {
                debug!(conn, error = %e, "connection ended");
                return None;
            }
            Err(ReadError::Frame(e)) => {
                warn!(conn, error = %e, "framing violation");
                return Some(ErrorReply::new(ErrorCode::TooLarge, e));
            }
        };
        // A request, or what the engine answers in its place.
        let decoded = match Request::decode(&payload) {
            Ok(request) => Ok(request),
            Err(e) => match e.id {
                Some(id) => {
                    let code = if e.unknown_op { ErrorCode::Unimplemented } else { ErrorCode::BadRequest };
                    Err(EngineInput::Undecodable { conn, id, error: ErrorReply::new(code, e.reason) })
                }
                None => {
                    return Some(ErrorReply::new(ErrorCode::BadRequest, format!("undecodable request: {}", e.reason)));
                }
            },
        };
        let unanswered = in_flight.fetch_add(1, Ordering::AcqRel);
        if unanswered >= limits.requests_in_flight_max {
            let max = limits.requests_in_flight_max;
            warn!(conn, max, "too many requests in flight");
            return Some(ErrorReply::new(ErrorCode::LimitExceeded, format!("more than {max} requests in flight")));
        }
        if reads.take(decoded.as_ref().ok(), unanswered) {
            // Reads answered here never wait, so a client that pipelines many would keep this
            // future busy and its replies unwritten: step aside now and then for the writer.
            answered_here += 1;
            if answered_here % ANSWERED_HERE_BURST == 0 {
                tokio::task::yield_now().await;
            }
            continue;
        }
        let input = match decoded {
            Ok(request) => EngineInput::Request { conn, request },
            Err(input) => input,
        };
        if engine.send(input).await.is_err() {
            return Some(ErrorReply::new(ErrorCode::ShuttingDown, "the daemon is shutting down"));
        }
    }
}

/// What one write carried: its queued weight, the replies it answers, the other messages.
#[derive(Default)]
struct Written {
    weight: usize,
    replies: usize,
    others: u64,
}

/// Resolves when the engine left part of a frame for the writer; never without a shared socket.
async fn leftover_ready(shared: Option<&SharedSocket>) {
    match shared {
        Some(shared) => shared.leftover_ready().await,
        None => std::future::pending().await,
    }
}

/// Writes what the engine left of a frame, the replies answered here, then `first` (from the
/// outbox) and whatever else is queued there (up to a chunk), in one write, holding the shared
/// socket; `None` if the connection failed. The answered replies go before the outbox:
/// whatever the engine queued was queued after them (see `reads`).
async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    first: Option<Box<ServerMessage>>,
    (answered, outbox): (&Answered, &mut mpsc::Receiver<Box<ServerMessage>>),
    shared: Option<&SharedSocket>,
    buf: &mut Vec<u8>,
    frame_len_max: u32,
) -> Option<Written> {
    buf.clear();
    let mut written = Written::default();
    if let Some(shared) = shared {
        shared.claim().await;
        written.weight += shared.take_leftover(buf);
    }
    while let Some(message) = answered.pop() {
        take(&message, frame_len_max, buf, &mut written);
    }
    if let Some(first) = first {
        take(&first, frame_len_max, buf, &mut written);
    }
    while buf.len() < wire::WRITE_CHUNK {
        match outbox.try_recv() {
            Ok(next) => take(&next, frame_len_max, buf, &mut written),
            Err(_) => break,
        }
    }
    let sent = writer.write_all(buf).await.is_ok() && writer.flush().await.is_ok();
    if let Some(shared) = shared {
        shared.release();
    }
    if !sent {
        return None;
    }
    wire::trim_output_buffer(buf);
    Some(written)
}

fn take(message: &ServerMessage, frame_len_max: u32, buf: &mut Vec<u8>, written: &mut Written) {
    encode_message(message, frame_len_max, buf);
    written.weight += wire::weight(message);
    if matches!(message, ServerMessage::Reply { .. }) {
        written.replies += 1;
    } else {
        written.others += 1;
    }
}

/// Frames a message; a reply too large for a frame becomes a `TooLarge` error reply.
fn encode_message(message: &ServerMessage, frame_len_max: u32, buf: &mut Vec<u8>) {
    if let Err(e) = frame::encode(message, frame_len_max, buf) {
        let (id, zxid) = match message {
            ServerMessage::Reply { id, zxid, .. } => (*id, *zxid),
            _ => return warn!(error = %e, "dropping an unencodable server message"),
        };
        let error = ErrorReply::new(ErrorCode::TooLarge, format!("reply too large: {e}"));
        let fallback = ServerMessage::Reply { id, zxid, result: Err(error) };
        if let Err(e) = frame::encode(&fallback, frame_len_max, buf) {
            warn!(error = %e, "cannot encode even an error reply");
        }
    }
}
