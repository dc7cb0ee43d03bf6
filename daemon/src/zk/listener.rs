//! The ZooKeeper-protocol TCP listener: one task per connection, serving ZooKeeper clients
//! over the same engine, sessions, watches and store as the native protocol.
//!
//! A connection starts with ZooKeeper's bare `ConnectRequest`; it becomes the native hello
//! (a new session, or a resume whose 16-byte password carries the session's secret). Then
//! each request frame is translated (`translate.rs`) and sent to the engine as a native
//! request, the ZooKeeper xid and the reply's shape kept in a queue beside it; the engine
//! answers each connection's requests in order, with every watch event before the reply that
//! reveals its change, and this task writes them back as ZooKeeper replies (xid from the
//! queue) and notifications (xid -1). Requests answered here (an unknown opcode, say) still
//! go through the engine, so that they keep their place among the replies.
//!
//! A ZooKeeper client is `anyone` in ACLs, plus the `digest` ids its `auth` packets prove.

use super::four_letter;
use super::jute::{ConnectRequest, ConnectResponse, Reader, ReplyHeader, RequestHeader, Writer, xid};
use super::translate::{self, Action, Shape};
use crate::engine::{ConnId, EngineInput, Peer};
use crate::server::admission::Admission;
use crate::server::{ConnLimits, LeanReader};
use crate::wire;
use baton_proto::message::{Hello, HelloReply, MAGIC, PROTOCOL_VERSION, Request, ServerMessage, SessionRequest};
use baton_proto::{ErrorCode, ErrorReply, SessionId, Zxid};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, trace, warn};

/// ZooKeeper connections are numbered from here, apart from the native listener's.
const CONN_BASE: ConnId = 1 << 62;
/// Pause after a failed accept (e.g. out of file descriptors) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The password ZooKeeper clients keep for a session: 16 bytes.
const PASSWORD_LEN: usize = 16;

/// Accepts and serves ZooKeeper clients until `shutdown` turns true or the engine stops.
/// Connections end when the engine says goodbye to its clients at shutdown.
pub async fn serve(
    listener: TcpListener,
    engine: mpsc::Sender<EngineInput>,
    limits: ConnLimits,
    connections_max: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let admission = Admission::new(connections_max, limits.connections_per_peer_max);
    let next_id = AtomicU64::new(CONN_BASE);
    let mut tasks = JoinSet::new();
    let addr = listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string());
    info!(%addr, "listening for ZooKeeper clients");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            () = engine.closed() => break,
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "ZooKeeper accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let permit = match admission.admit(Peer::Tcp(addr)) {
            Ok(permit) => permit,
            Err(why) => {
                // ZooKeeper has no refusal message: the connection is simply closed.
                warn!(conn, %addr, "ZooKeeper connection refused: {why}");
                continue;
            }
        };
        let engine = engine.clone();
        let span = info_span!("zk", id = conn, peer = %addr);
        tasks.spawn(
            async move {
                let _ = stream.set_nodelay(true);
                connection(stream, conn, addr, engine, limits).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    if tokio::time::timeout(Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await.is_err()
    {
        warn!(remaining = tasks.len(), "ZooKeeper connections still open at shutdown; dropping them");
    }
}

/// The password of a session: its secret, then its id (so a password presented with
/// another session's id is refused before the engine is asked).
fn password(session: SessionId, secret: u64) -> Vec<u8> {
    [secret.to_be_bytes(), session.0.to_be_bytes()].concat()
}

/// The secret a resuming client's password carries, if it is one of ours for that session.
fn secret_of(session_id: i64, passwd: &[u8]) -> Option<u64> {
    if passwd.len() != PASSWORD_LEN || passwd[8..] != session_id.to_be_bytes() {
        return None;
    }
    let mut secret = [0u8; 8];
    secret.copy_from_slice(&passwd[..8]);
    Some(u64::from_be_bytes(secret))
}

/// A request sent to the engine, awaiting its reply: the client's xid and how to answer.
struct Pending {
    id: u64,
    xid: i32,
    shape: Shape,
}

/// What the connection needs of the engine once the handshake is done.
struct Link {
    outbox: mpsc::Receiver<Box<ServerMessage>>,
    kill: oneshot::Receiver<ErrorReply>,
    queued_bytes: Arc<AtomicUsize>,
}

/// Serves one connection to the end. Cancellation safe: dropping it drops the connection.
async fn connection(
    stream: TcpStream,
    conn: ConnId,
    addr: SocketAddr,
    engine: mpsc::Sender<EngineInput>,
    limits: ConnLimits,
) {
    let (mut reader, mut writer) = stream.into_split();
    let first =
        match tokio::time::timeout(limits.handshake_timeout, read_frame(&mut reader, limits.frame_len_max)).await {
            Err(_) => return debug!(conn, "no ConnectRequest in time"),
            Ok(Err(Frame::Io(e))) => return debug!(conn, error = %e, "closed before connecting"),
            Ok(Err(Frame::FourLetterWord(word))) => return four_letter_word(&mut writer, word, &engine).await,
            Ok(Err(Frame::TooLong(len))) => return warn!(conn, len, "ConnectRequest frame too long"),
            Ok(Ok(payload)) => payload,
        };
    let connect = match ConnectRequest::decode(&first) {
        Ok(connect) => connect,
        Err(e) => return warn!(conn, error = %e, "bad ConnectRequest"),
    };
    let Some(link) = handshake(&mut writer, conn, addr, &connect, &engine, limits).await else { return };
    // Buffered from here on (the ConnectRequest was read exactly): a request's length and
    // body come in one read.
    let mut reader = LeanReader::new(reader);
    let ended = serve_requests(&mut reader, &mut writer, conn, addr, &engine, limits, link).await;
    if let Some(reason) = ended {
        info!(conn, reason = %reason, "closing ZooKeeper connection");
    }
    let _ = writer.shutdown().await;
    let _ = engine.send(EngineInput::Disconnected { conn }).await;
}

/// Turns the ConnectRequest into the native hello and writes the ConnectResponse. `None`:
/// the connection ends (refused, or an expired session told so).
async fn handshake<W: AsyncWrite + Unpin>(
    writer: &mut W,
    conn: ConnId,
    addr: SocketAddr,
    connect: &ConnectRequest,
    engine: &mpsc::Sender<EngineInput>,
    limits: ConnLimits,
) -> Option<Link> {
    let expired = ConnectResponse::expired(connect.read_only.map(|_| false));
    let session = if connect.session_id == 0 {
        let timeout_ms = u32::try_from(connect.timeout_ms).unwrap_or(0);
        SessionRequest::New { timeout_ms, connection_bound: false }
    } else if let Some(secret) = secret_of(connect.session_id, &connect.passwd) {
        SessionRequest::Resume { session_id: SessionId(connect.session_id as u64), secret }
    } else {
        info!(conn, session = connect.session_id, "wrong password: told the session expired");
        let _ = write_frame(writer, &expired.encode()).await;
        return None;
    };
    let hello = Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        client_name: "ZooKeeper client".to_owned(),
        session,
        last_zxid_seen: Zxid(u64::try_from(connect.last_zxid_seen).unwrap_or(0)),
        token: None,
    };
    let (outbox, outbox_rx) = mpsc::channel(limits.outbound_messages_max);
    let (kill, kill_rx) = oneshot::channel();
    let (reply, reply_rx) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let input = EngineInput::Hello {
        conn,
        hello,
        peer: Peer::Tcp(addr),
        principals: Vec::new(),
        outbox,
        kill,
        reply,
        queued_bytes: queued_bytes.clone(),
        link: None,
        socket: None,
    };
    if engine.send(input).await.is_err() {
        return None;
    }
    let answer = reply_rx.await.ok()?;
    let response = match answer {
        HelloReply::Accepted(hello) => ConnectResponse {
            protocol_version: 0,
            timeout_ms: i32::try_from(hello.timeout_ms).unwrap_or(i32::MAX),
            session_id: hello.session_id.0 as i64,
            passwd: password(hello.session_id, hello.secret),
            read_only: connect.read_only.map(|_| false),
        },
        HelloReply::Refused(refusal) if refusal.code == ErrorCode::SessionExpired => {
            info!(conn, session = connect.session_id, "session expired");
            let _ = write_frame(writer, &expired.encode()).await;
            return None;
        }
        HelloReply::Refused(refusal) => {
            // ZooKeeper has no refusal message: the client tries again (or another server).
            warn!(conn, reason = %refusal, "ZooKeeper client refused");
            return None;
        }
        HelloReply::Challenge(_) => return None,
    };
    let link = Link { outbox: outbox_rx, kill: kill_rx, queued_bytes };
    if write_frame(writer, &response.encode()).await.is_err() {
        // The engine attached the session to this connection: let it know it is gone.
        let _ = engine.send(EngineInput::Disconnected { conn }).await;
        return None;
    }
    Some(link)
}

/// Reads requests and writes replies and events until either side ends; returns why the
/// server ended it, if it did.
async fn serve_requests<R, W>(
    reader: &mut R,
    writer: &mut W,
    conn: ConnId,
    addr: SocketAddr,
    engine: &mpsc::Sender<EngineInput>,
    limits: ConnLimits,
    link: Link,
) -> Option<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Link { mut outbox, mut kill, queued_bytes } = link;
    let in_flight = AtomicUsize::new(0);
    // Never full: the reader stops at `requests_in_flight_max` first.
    let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(limits.requests_in_flight_max + 1);
    let ip = addr.ip().to_string();
    let reading = read_requests(reader, conn, &ip, engine, &limits, &in_flight, pending_tx);
    tokio::pin!(reading);
    let mut buf = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            reason = &mut kill => break reason.ok().map(|r| r.to_string()),
            reason = &mut reading => break reason,
            message = outbox.recv() => match message {
                Some(message) => message,
                None => break None,
            },
        };
        buf.clear();
        let mut written = (0, 0);
        let mut hang_up = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            written.0 += wire::weight(&message);
            match encode(&message, &mut pending_rx, limits.frame_len_max, &mut buf) {
                Encoded::Event => {}
                Encoded::Reply { closes } => {
                    written.1 += 1;
                    hang_up |= closes;
                }
                Encoded::Stop(why) => return Some(why),
            }
            if hang_up || buf.len() >= wire::WRITE_CHUNK {
                break;
            }
            next = outbox.try_recv().ok();
        }
        if writer.write_all(&buf).await.is_err() || writer.flush().await.is_err() {
            break None;
        }
        queued_bytes.fetch_sub(written.0, Ordering::AcqRel);
        in_flight.fetch_sub(written.1, Ordering::AcqRel);
        if hang_up {
            break None;
        }
        wire::trim_output_buffer(&mut buf);
    }
}

enum Encoded {
    Event,
    /// A reply; `closes`: the connection ends after it (closeSession).
    Reply {
        closes: bool,
    },
    /// The connection must end (the engine said goodbye, or replies came out of order).
    Stop(String),
}

/// Appends a server message to `buf` as a ZooKeeper frame.
fn encode(
    message: &ServerMessage,
    pending: &mut mpsc::Receiver<Pending>,
    frame_len_max: u32,
    buf: &mut Vec<u8>,
) -> Encoded {
    let mut w = Writer::new();
    match message {
        ServerMessage::Event(event) => {
            let (zxid, event) = translate::event(event);
            ReplyHeader { xid: xid::NOTIFICATION, zxid, err: 0 }.write(&mut w);
            event.write(&mut w);
            push_frame(buf, &w.into_bytes());
            Encoded::Event
        }
        ServerMessage::Reply { id, zxid, result } => {
            let Ok(request) = pending.try_recv() else {
                return Encoded::Stop(format!("a reply to request {id} nobody waits for"));
            };
            if request.id != *id {
                return Encoded::Stop(format!("reply to request {id} where {} was due", request.id));
            }
            let (mut err, mut body) = translate::reply(&request.shape, result.clone());
            // 16: the frame's length and the reply header.
            if body.len() + 16 > frame_len_max as usize {
                warn!(xid = request.xid, len = body.len(), "reply larger than a frame; answering an error");
                (err, body) = (translate::code::BAD_ARGUMENTS, Vec::new());
            }
            let zxid = match request.shape {
                Shape::Local { zxid: Some(zxid), .. } => zxid,
                Shape::Authenticated => 0,
                _ => zxid.0 as i64,
            };
            ReplyHeader { xid: request.xid, zxid, err }.write(&mut w);
            let mut frame = w.into_bytes();
            frame.extend_from_slice(&body);
            push_frame(buf, &frame);
            Encoded::Reply { closes: request.shape.closes() }
        }
        ServerMessage::Closing(reason) => Encoded::Stop(reason.to_string()),
    }
}

fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
}

/// Reads request frames and hands them to the engine in order until the client leaves or
/// breaks the framing; returns the reason to log, if any.
async fn read_requests<R: AsyncRead + Unpin>(
    reader: &mut R,
    conn: ConnId,
    ip: &str,
    engine: &mpsc::Sender<EngineInput>,
    limits: &ConnLimits,
    in_flight: &AtomicUsize,
    pending: mpsc::Sender<Pending>,
) -> Option<String> {
    let mut next_id: u64 = 1;
    // Whether an `auth` packet was accepted: ACLs may name `auth` from then on.
    let mut authenticated = false;
    loop {
        let payload = match read_frame(reader, limits.frame_len_max).await {
            Ok(payload) => payload,
            Err(Frame::Io(e)) => {
                debug!(conn, error = %e, "connection ended");
                return None;
            }
            Err(Frame::TooLong(len) | Frame::FourLetterWord(len)) => {
                return Some(format!("a frame of {len} bytes (the limit is {})", limits.frame_len_max));
            }
        };
        let mut r = Reader::new(&payload);
        let header = match RequestHeader::read(&mut r) {
            Ok(header) => header,
            Err(e) => return Some(format!("bad request header: {e}")),
        };
        let (action, shape) = match super::jute::Request::decode(header.op, &mut r) {
            Ok(request) => {
                debug!(conn, xid = header.xid, op = header.op, "request");
                translate::request(request, ip, authenticated)
            }
            Err(e) => {
                warn!(conn, xid = header.xid, op = header.op, error = %e, "undecodable request");
                // The bytes may hold node data: trace only.
                let head: String = payload.iter().take(128).map(|b| format!("{b:02x}")).collect::<Vec<_>>().concat();
                trace!(conn, head, "undecodable request's first bytes");
                (Action::Local, translate::undecodable())
            }
        };
        authenticated |= matches!(action, Action::Authenticate(_));
        if in_flight.fetch_add(1, Ordering::AcqRel) >= limits.requests_in_flight_max {
            return Some(format!("more than {} requests in flight", limits.requests_in_flight_max));
        }
        let id = next_id;
        next_id += 1;
        if pending.try_send(Pending { id, xid: header.xid, shape }).is_err() {
            return Some("too many requests in flight".to_owned());
        }
        let input = match action {
            Action::Engine(op) => EngineInput::Request { conn, request: Request { id, op } },
            Action::Authenticate(principal) => EngineInput::Authenticate { conn, id, principal },
            // Answered here, in its turn: the engine only keeps its place in the order.
            Action::Local => EngineInput::Undecodable {
                conn,
                id,
                error: ErrorReply::new(ErrorCode::Unimplemented, "answered by the ZooKeeper listener"),
            },
        };
        if engine.send(input).await.is_err() {
            return Some("the daemon is shutting down".to_owned());
        }
    }
}

/// Why a frame could not be read.
enum Frame {
    Io(std::io::Error),
    /// A length beyond the limit (or negative).
    TooLong(i64),
    /// The first four bytes of a connection spelled a four-letter word (ZK-PROTOCOL.md §2.9).
    FourLetterWord(i64),
}

/// Reads one frame: a big-endian `int32` length checked against the limit before anything
/// is allocated, then the payload. Cancellation safe only between frames.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, frame_len_max: u32) -> Result<Vec<u8>, Frame> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await.map_err(Frame::Io)?;
    let len = i32::from_be_bytes(header);
    if four_letter::is_word(header) {
        return Err(Frame::FourLetterWord(i64::from(len)));
    }
    let Ok(len) = u32::try_from(len) else { return Err(Frame::TooLong(i64::from(len))) };
    if len > frame_len_max {
        return Err(Frame::TooLong(i64::from(len)));
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await.map_err(Frame::Io)?;
    Ok(payload)
}

/// Answers a four-letter word and returns (the caller closes the connection). The words
/// that report the daemon's state ask the engine for it, waiting a second at most.
async fn four_letter_word<W: AsyncWrite + Unpin>(writer: &mut W, word: i64, engine: &mpsc::Sender<EngineInput>) {
    let word = (word as i32).to_be_bytes();
    let status = if four_letter::needs_status(word) {
        let (reply, answer) = oneshot::channel();
        let ask = async {
            engine.send(EngineInput::Status { reply }).await.ok()?;
            answer.await.ok()
        };
        tokio::time::timeout(Duration::from_secs(1), ask).await.ok().flatten()
    } else {
        None
    };
    if let Some(answer) = four_letter::answer(word, status.as_ref()) {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.write_all(answer.as_bytes())).await;
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 4);
    push_frame(&mut buf, payload);
    writer.write_all(&buf).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_carry_the_secret_for_their_session_only() {
        let session = SessionId(0x1_0000_0005);
        let passwd = password(session, 0xdead_beef_0102_0304);
        assert_eq!(passwd.len(), PASSWORD_LEN);
        assert_eq!(secret_of(session.0 as i64, &passwd), Some(0xdead_beef_0102_0304));
        assert_eq!(secret_of(session.0 as i64 + 1, &passwd), None, "another session's password");
        assert_eq!(secret_of(session.0 as i64, &passwd[..15]), None);
        assert_eq!(secret_of(session.0 as i64, &[0; 16]), None);
    }

    #[tokio::test]
    async fn frames_are_bounded_before_allocation_and_four_letter_words_are_known() {
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut huge, 1 << 20).await, Err(Frame::TooLong(_))));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(read_frame(&mut negative, 1 << 20).await, Err(Frame::TooLong(-2))));
        let mut ruok: &[u8] = b"ruok";
        assert!(matches!(read_frame(&mut ruok, 1 << 20).await, Err(Frame::FourLetterWord(_))));
        let mut ok: &[u8] = &[0, 0, 0, 2, 7, 8];
        assert_eq!(read_frame(&mut ok, 1 << 20).await.ok(), Some(vec![7, 8]));
    }

    #[test]
    fn replies_take_their_xid_from_the_queue_and_events_xid_minus_one() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.try_send(Pending { id: 1, xid: 42, shape: Shape::Empty }).unwrap();
        let mut buf = Vec::new();
        let event = ServerMessage::Event(baton_proto::WatchEvent {
            zxid: Zxid(7),
            path: "/a".into(),
            kind: baton_proto::message::EventKind::Created,
        });
        assert!(matches!(encode(&event, &mut rx, 1 << 20, &mut buf), Encoded::Event));
        let reply = ServerMessage::Reply { id: 1, zxid: Zxid(7), result: Ok(baton_proto::Response::Deleted) };
        assert!(matches!(encode(&reply, &mut rx, 1 << 20, &mut buf), Encoded::Reply { closes: false }));
        let expected: Vec<u8> = [
            &[0, 0, 0, 30][..],
            &(-1i32).to_be_bytes(),
            &7i64.to_be_bytes(),
            &0i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &3i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            b"/a",
            &[0, 0, 0, 16],
            &42i32.to_be_bytes(),
            &7i64.to_be_bytes(),
            &0i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(buf, expected);
        let stray = ServerMessage::Reply { id: 9, zxid: Zxid(7), result: Ok(baton_proto::Response::Deleted) };
        assert!(matches!(encode(&stray, &mut rx, 1 << 20, &mut buf), Encoded::Stop(_)));
    }
}
