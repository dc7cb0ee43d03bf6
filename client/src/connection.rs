//! One connection to a server: opening the socket (Unix or TCP), the hello handshake, and
//! framed reads and writes. It knows nothing of sessions, requests or watches.
//!
//! Reading is cancellation-safe (bytes are kept in a buffer until a whole frame is there), so
//! the session task can `select!` on it; so is sending (what was sent is counted). A read also
//! sends what is queued meanwhile: the daemon stops reading a connection's requests while its
//! replies wait for the client to take them, so a client that stopped reading until its own
//! large requests were sent would wait for a daemon waiting for it.

use crate::addr::Endpoint;
use crate::options::Credentials;
use crate::tls::TlsClient;
use baton_proto::frame::{self, FrameError, HEADER_LEN};
use baton_proto::token::TokenHello;
use baton_proto::{ErrorCode, ErrorReply, Hello, HelloReply, PROTOCOL_VERSION, ServerHello};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Read buffer space kept free for a read, when no larger frame is known to be coming.
const READ_CHUNK: usize = 8 * 1024;
/// An idle read buffer larger than this is shrunk back, so one large reply does not pin
/// memory for the connection's lifetime.
const READ_BUF_KEEP: usize = 64 * 1024;

/// A byte stream to a server.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Why a connection failed.
#[derive(Debug, Error)]
pub(crate) enum ConnError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Eof,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the server refused the session: {0}")]
    Refused(ErrorReply),
}

/// A framed connection.
pub(crate) struct Connection {
    io: Box<dyn Io>,
    peer: String,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    /// How much of `write_buf` is sent.
    written: usize,
    frame_len_max: u32,
}

impl Connection {
    /// Opens a socket to `endpoint`, sends `hello` and waits for the server's answer, all
    /// within `timeout`.
    /// With a `token`, the hello names it and the server's challenge is answered.
    pub async fn open(
        endpoint: &Endpoint,
        hello: &Hello,
        credentials: Credentials<'_>,
        frame_len_max: u32,
        timeout: Duration,
    ) -> Result<(Connection, ServerHello), ConnError> {
        let token = credentials.token;
        let mut client_nonce = [0u8; baton_proto::token::SECRET_LEN];
        if token.is_some() {
            getrandom::fill(&mut client_nonce).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
        }
        let hello =
            Hello { token: token.map(|t| TokenHello { name: t.name().to_owned(), client_nonce }), ..hello.clone() };
        let hello = &hello;
        let attempt = async {
            let io = connect_socket(endpoint, credentials.tls).await?;
            let mut conn = Connection {
                io,
                peer: endpoint.to_string(),
                read_buf: Vec::with_capacity(READ_CHUNK),
                write_buf: Vec::new(),
                written: 0,
                frame_len_max,
            };
            conn.queue(hello)?;
            conn.flush().await?;
            let mut reply = conn.read::<HelloReply>().await?;
            if let (HelloReply::Challenge(challenge), Some(token)) = (&reply, token) {
                conn.queue(&token.prove(&client_nonce, challenge))?;
                conn.flush().await?;
                reply = conn.read::<HelloReply>().await?;
            }
            let server_hello = match reply {
                HelloReply::Accepted(h) => h,
                HelloReply::Refused(reply) => return Err(ConnError::Refused(reply)),
                HelloReply::Challenge(_) => {
                    let reply = ErrorReply::new(ErrorCode::BadRequest, "the server challenged a token never offered");
                    return Err(ConnError::Refused(reply));
                }
            };
            // The server refuses versions it cannot serve; one it accepted is fine.
            if server_hello.protocol_version != PROTOCOL_VERSION {
                tracing::debug!(
                    server = server_hello.protocol_version,
                    client = PROTOCOL_VERSION,
                    "the server speaks another protocol version"
                );
            }
            Ok((conn, server_hello))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ConnError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ))),
        }
    }

    /// The address this connection goes to, for logs.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Reads the next message, sending what is queued meanwhile.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a partly received frame stays buffered for the next call, and what was
    /// sent stays counted.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<T, ConnError> {
        poll_fn(|cx| {
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Err(ConnError::Io(e)));
            }
            self.poll_receive(cx)
        })
        .await
    }

    fn poll_receive<T: DeserializeOwned>(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, ConnError>> {
        loop {
            if let Some(message) = self.parse()? {
                return Poll::Ready(Ok(message));
            }
            // A read future dropped while pending has read nothing.
            if ready!(pin!(self.io.read_buf(&mut self.read_buf)).poll(cx))? == 0 {
                return Poll::Ready(Err(ConnError::Eof));
            }
        }
    }

    /// Takes one whole frame off the read buffer, if there is one, and makes room for the
    /// rest of it otherwise. The announced length is checked before anything is reserved.
    fn parse<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ConnError> {
        let needed = match self.read_buf.first_chunk::<HEADER_LEN>() {
            None => HEADER_LEN,
            Some(header) => {
                let len = HEADER_LEN + frame::payload_len(*header, self.frame_len_max)?;
                if self.read_buf.len() >= len {
                    let message = frame::decode(&self.read_buf[HEADER_LEN..len])?;
                    self.read_buf.drain(..len);
                    if self.read_buf.is_empty() && self.read_buf.capacity() > READ_BUF_KEEP {
                        self.read_buf.shrink_to(READ_CHUNK);
                    }
                    return Ok(Some(message));
                }
                len
            }
        };
        let want = (needed - self.read_buf.len()).max(READ_CHUNK);
        self.read_buf.reserve(want);
        Ok(None)
    }

    /// Appends `message` as a frame to the write buffer; [`Connection::flush`] and
    /// [`Connection::read`] send it. On error (too large a message) the buffer is left as it
    /// was.
    pub fn queue<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        frame::encode(message, self.frame_len_max, &mut self.write_buf)
    }

    /// Sends everything queued.
    ///
    /// # Cancellation safety
    /// Cancel-safe: what was sent stays counted, and the rest goes with the next call (or read).
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_send(cx)).await
    }

    /// Sends what the socket takes now, without waiting; the rest goes with the next read.
    pub fn send_now(&mut self) -> io::Result<()> {
        match self.poll_send(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }

    /// Sends the queued bytes, then flushes the stream (a TLS stream's records).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.written < self.write_buf.len() {
            // A write future dropped while pending has written nothing.
            let sent = ready!(pin!(self.io.write(&self.write_buf[self.written..])).poll(cx))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += sent;
        }
        ready!(pin!(self.io.flush()).poll(cx))?;
        self.write_buf.clear();
        self.written = 0;
        if self.write_buf.capacity() > READ_BUF_KEEP {
            self.write_buf.shrink_to(READ_CHUNK);
        }
        Poll::Ready(Ok(()))
    }
}

async fn connect_socket(endpoint: &Endpoint, tls: Option<&TlsClient>) -> io::Result<Box<dyn Io>> {
    match endpoint {
        Endpoint::Unix(path) => Ok(Box::new(UnixStream::connect(path).await?)),
        Endpoint::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port)).await?;
            // Requests are small and latency-bound; writes are already batched per flush.
            stream.set_nodelay(true)?;
            match tls {
                Some(tls) => Ok(Box::new(tls.connect(host, stream).await?)),
                None => Ok(Box::new(stream)),
            }
        }
    }
}

#[cfg(test)]
impl Connection {
    /// A connection over an in-memory stream, for tests.
    pub fn from_stream(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static, frame_len_max: u32) -> Self {
        Connection {
            io: Box::new(stream),
            peer: "test".to_owned(),
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            written: 0,
            frame_len_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{Op, Request, ServerMessage, WatchEvent, Zxid};

    #[tokio::test]
    async fn frames_survive_being_split_across_reads() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut conn = Connection::from_stream(client, 1 << 20);
        let message = ServerMessage::Event(WatchEvent {
            zxid: Zxid(7),
            path: "/x".repeat(100),
            kind: baton_proto::EventKind::Created,
        });
        let bytes = frame::to_frame(&message, 1 << 20).unwrap();
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(5) {
                server.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        });
        assert_eq!(conn.read::<ServerMessage>().await.unwrap(), message);
        drop(writer.await.unwrap());
        assert!(matches!(conn.read::<ServerMessage>().await, Err(ConnError::Eof)));
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_it() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut conn = Connection::from_stream(client, 1024);
        server.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(matches!(conn.read::<ServerMessage>().await, Err(ConnError::Frame(FrameError::TooLong { .. }))));
        assert!(conn.read_buf.capacity() < 1024 * 1024);
    }

    #[tokio::test]
    async fn queued_frames_go_out_together() {
        let (client, server) = tokio::io::duplex(1024);
        let mut conn = Connection::from_stream(client, 1024);
        let mut peer = Connection::from_stream(server, 1024);
        for id in 1..=3 {
            conn.queue(&Request { id, op: Op::Ping }).unwrap();
        }
        conn.flush().await.unwrap();
        for id in 1..=3 {
            assert_eq!(peer.read::<Request>().await.unwrap().id, id);
        }
    }

    /// The peer here, like the daemon, takes no more requests while its own large message
    /// waits to be taken: the read must take it while the large request waits to be sent.
    #[tokio::test]
    async fn a_read_takes_messages_while_a_large_request_waits_to_be_sent() {
        let (client, server) = tokio::io::duplex(4096);
        let mut conn = Connection::from_stream(client, 1 << 20);
        let mut peer = Connection::from_stream(server, 1 << 20);
        let large = Request { id: 1, op: Op::Sync { path: "/x".repeat(100_000) } };
        conn.queue(&large).unwrap();
        conn.send_now().unwrap();
        assert!(conn.written > 0 && conn.written < conn.write_buf.len(), "the request waits, partly sent");
        let path = "/y".repeat(100_000);
        let event = ServerMessage::Event(WatchEvent { zxid: Zxid(9), path, kind: baton_proto::EventKind::Created });
        let sent = event.clone();
        let peer = tokio::spawn(async move {
            peer.queue(&sent).unwrap();
            peer.flush().await.unwrap();
            let request = peer.read::<Request>().await.unwrap();
            (peer, request)
        });
        let exchange = async {
            assert_eq!(conn.read::<ServerMessage>().await.unwrap(), event);
            // The next read (here: one that finds the peer gone) finishes sending.
            let reading = tokio::spawn(async move { conn.read::<ServerMessage>().await });
            let (peer, request) = peer.await.unwrap();
            assert_eq!(request, large, "the large request arrived whole");
            drop(peer);
            assert!(matches!(reading.await.unwrap(), Err(ConnError::Eof)));
        };
        tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("the two ends waited for each other");
    }
}
