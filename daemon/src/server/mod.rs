//! The listeners: the Unix socket (always) and TCP (when configured), one task per
//! connection, a cap on connections, and no accept spin when file descriptors run out.

pub(crate) mod admission;
mod auth;
mod connection;
mod lean_reader;
mod peer;
mod reads;
mod tls;
mod unix_socket;

pub use auth::Authenticator;
pub use connection::ConnLimits;
pub(crate) use lean_reader::LeanReader;
pub use tls::{TlsFiles, TlsServer};

use crate::engine::{ConnId, EngineInput, Peer, PlainStream, StateView};
use baton_proto::frame;
use baton_proto::message::HelloReply;
use baton_proto::{ErrorCode, ErrorReply, Principal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, error, info, info_span, warn};

/// Pause after a failed accept (e.g. out of file descriptors) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bound listeners, ready to serve.
pub struct Listeners {
    unix: UnixListener,
    unix_path: PathBuf,
    tcp: Option<TcpListener>,
}

impl Listeners {
    /// Binds the TCP address, if given, and then the Unix socket: whoever waits for the
    /// socket to answer (a script, the tests) finds the TCP port listening too.
    pub async fn bind(socket: &Path, tcp: Option<SocketAddr>) -> std::io::Result<Listeners> {
        let tcp = match tcp {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let unix = unix_socket::bind(socket)?;
        Ok(Listeners { unix, unix_path: socket.to_owned(), tcp })
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Accepts and serves connections until `shutdown` turns true; then stops accepting, asks
    /// the engine to finish what is queued and say goodbye to every client, waits (briefly)
    /// for the connections to close, and removes the socket file.
    pub async fn serve(
        self,
        (engine, state): (mpsc::Sender<EngineInput>, StateView),
        limits: ConnLimits,
        connections_max: usize,
        auth: Authenticator,
        tls: Option<TlsServer>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let auth = std::sync::Arc::new(auth);
        let tls = tls.map(std::sync::Arc::new);
        let admission = admission::Admission::new(connections_max, limits.connections_per_peer_max);
        let next_id = AtomicU64::new(1);
        let mut tasks = JoinSet::new();
        info!(socket = %self.unix_path.display(), tcp = ?self.tcp_addr(), "listening");
        loop {
            let accepted: std::io::Result<(Incoming, Peer)> = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                // The engine stopped on its own: a fatal error. Stop serving.
                () = engine.closed() => break,
                accepted = self.unix.accept() => accepted.and_then(|(s, _)| {
                    let peer = peer::unix_peer(&s)?;
                    Ok((Incoming::Unix(s), peer))
                }),
                accepted = accept_tcp(self.tcp.as_ref()) => accepted.map(|(s, addr)| {
                    let _ = s.set_nodelay(true);
                    (Incoming::Tcp(s), Peer::Tcp(addr))
                }),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let conn: ConnId = next_id.fetch_add(1, Ordering::Relaxed);
            let permit = match admission.admit(peer) {
                Ok(permit) => permit,
                Err(why) => {
                    warn!(conn, ?peer, "connection refused: {why}");
                    tasks.spawn(refuse(stream.boxed(), why, limits.frame_len_max));
                    continue;
                }
            };
            let span = info_span!("conn", id = conn, peer = ?peer);
            let (engine, state) = (engine.clone(), state.clone());
            let (auth, tls) = (auth.clone(), tls.clone());
            tasks.spawn(
                async move {
                    // What the transport proves: SO_PEERCRED, or a client certificate. A plain
                    // socket is shared with the engine, which may write to it too (not TLS: its
                    // records are the stream's own).
                    let (stream, principals, socket): (Box<dyn Stream>, _, _) = match (stream, peer, &tls) {
                        (Incoming::Tcp(tcp), _, Some(tls)) => match tls.accept(tcp, limits.handshake_timeout).await {
                            Ok((stream, principal)) => (Box::new(stream), vec![principal], None),
                            Err(why) => return warn!(conn, ?peer, "connection refused: {why}"),
                        },
                        (stream, peer, _) => {
                            let principals = match peer {
                                Peer::Unix { uid, gid, .. } => vec![Principal::Uid(uid), Principal::Gid(gid)],
                                Peer::Tcp(_) => Vec::new(),
                            };
                            let plain = stream.shared();
                            (Box::new(plain.clone()), principals, Some(plain))
                        }
                    };
                    connection::serve(stream, conn, (peer, principals), &auth, (engine, state), limits, socket).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        let _ = engine.send(EngineInput::Shutdown).await;
        drop(engine);
        if tokio::time::timeout(Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            warn!(remaining = tasks.len(), "connections still open at shutdown; dropping them");
        }
        if let Err(e) = std::fs::remove_file(&self.unix_path) {
            error!(socket = %self.unix_path.display(), error = %e, "cannot remove the socket file");
        }
    }
}

/// A connection just accepted, before any TLS.
enum Incoming {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Incoming {
    /// The plain socket, to be shared by the connection's task and the engine.
    fn shared(self) -> PlainStream {
        match self {
            Incoming::Unix(s) => PlainStream::Unix(Arc::new(s)),
            Incoming::Tcp(s) => PlainStream::Tcp(Arc::new(s)),
        }
    }

    fn boxed(self) -> Box<dyn Stream> {
        match self {
            Incoming::Unix(s) => Box::new(s),
            Incoming::Tcp(s) => Box::new(s),
        }
    }
}

/// Every stream type, boxed so one connection task serves any.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Answers a connection over the cap with a refusal instead of a hello.
async fn refuse(mut stream: Box<dyn Stream>, why: String, frame_len_max: u32) {
    let refusal = HelloReply::Refused(ErrorReply::new(ErrorCode::LimitExceeded, why));
    if let Ok(bytes) = frame::to_frame(&refusal, frame_len_max) {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    }
}
