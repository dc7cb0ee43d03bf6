//! Replication to a warm standby: log shipping over an authenticated TCP link.
//!
//! - [`primary`]: the primary's listener; per standby, a handshake, then the retained log
//!   from the standby's position (or a snapshot when that is gone or diverged), then every
//!   new commit from the engine's feed.
//! - [`standby`]: the standby's follower; it hands what it receives to its engine, which
//!   applies it with the same code as the primary and recovery, and acknowledges what is
//!   durable. A primary configured with its peer also uses it to check the peer's epoch.
//! - [`auth`]: the shared-token proof both sides give.

pub mod auth;
mod chunks;
pub mod primary;
pub mod standby;

use crate::config::Config;
use crate::engine::{EngineInput, Feed};
use crate::store::StoreReader;
use crate::wire::{read_message, write_message};
use anyhow::Context;
use baton_proto::message::Role;
use baton_proto::replication::ReplicationMode;
use baton_proto::replication::{PEER_MAGIC, PEER_PROTOCOL_VERSION, ToPrimary, ToStandby};
use baton_proto::{ErrorCode, ErrorReply, Zxid};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, watch};

/// The longest replication frame. Messages of records or snapshot entries are cut at
/// `chunks::PEER_MESSAGE_BYTES`; only a single record larger than that needs more: a client's
/// txn (its request is at most `frame_len_max`, itself at most `FRAME_LEN_MAX_CAP`) or a
/// session's expiry, which names each of its ephemerals (100,000 paths of up to 1 KiB by
/// default, about 100 MiB).
pub const PEER_FRAME_LEN_MAX: u32 = 256 * 1024 * 1024;
/// How long each side may take to answer during the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a primary tells an idle standby it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// How often a primary with a peer checks the peer's epoch.
pub const EPOCH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What replication needs of the engine.
pub struct EngineHandles {
    pub feed: broadcast::Sender<Feed>,
    pub role: watch::Receiver<Role>,
    pub reader: StoreReader,
    pub engine: mpsc::Sender<EngineInput>,
}

/// Starts what the configuration asks for: the standby listener, following a primary, and
/// the peer's epoch check (once before anything is served, then periodically).
///
/// # Errors
/// The token cannot be read, or the replication address cannot be bound.
pub async fn start(config: &Config, handles: EngineHandles, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let Some(token_file) = &config.replication_token_file else { return Ok(()) };
    let token = Arc::new(auth::Token::load(token_file).map_err(anyhow::Error::msg)?);
    if let Some(addr) = config.replication_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for standbys on {addr}"))?;
        let side = primary::PrimarySide {
            token: token.clone(),
            reader: handles.reader.clone(),
            feed: handles.feed.clone(),
            engine: handles.engine.clone(),
            mode: config.replication_mode().unwrap_or(ReplicationMode::Async),
        };
        tokio::spawn(primary::listen(listener, side, shutdown.clone()));
    }
    if let Some(primary) = &config.standby_of {
        let side = standby::StandbySide {
            primary: primary.clone(),
            token: token.clone(),
            reader: handles.reader.clone(),
            engine: handles.engine.clone(),
            data_dir: config.data_dir.clone(),
        };
        tokio::spawn(standby::follow(side, handles.role.clone(), shutdown.clone()));
    }
    if let Some(peer) = config.peer.clone() {
        // Before any client is served: a deposed primary must not take a single write.
        if standby::check_epoch(&peer, &token, &handles.reader, &handles.engine).await.is_none() {
            tracing::warn!(peer, "the peer could not be reached to check its epoch; serving, and checking again");
        }
        let (reader, engine, mut shutdown) = (handles.reader, handles.engine, shutdown);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(EPOCH_CHECK_INTERVAL);
            loop {
                tokio::select! {
                    () = until(&mut shutdown, |stop| *stop) => return,
                    _ = interval.tick() => {}
                }
                standby::check_epoch(&peer, &token, &reader, &engine).await;
            }
        });
    }
    Ok(())
}

/// Completes once `watched` satisfies `condition` (or its sender is gone). Unlike
/// `wait_for`, its output holds no borrow, so it can sit in a `select!` of a spawned task.
pub async fn until<T>(watched: &mut tokio::sync::watch::Receiver<T>, condition: impl FnMut(&T) -> bool) {
    let _ = watched.wait_for(condition).await;
}

/// What the standby learns from a successful handshake.
#[derive(Clone, Copy, Debug)]
pub struct Welcome {
    pub epoch: u32,
    pub last_zxid: Zxid,
    pub diverged_after: Option<Zxid>,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("replication link: {0}")]
    Io(String),
    #[error("the peer failed authentication")]
    Auth,
    #[error("the peer refused: {0}")]
    Refused(ErrorReply),
}

/// The standby's side of the handshake: hello, check the primary's proof, give ours, and
/// read the welcome.
pub async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    token: &auth::Token,
    epoch: u32,
    last_zxid: Zxid,
) -> Result<Welcome, HandshakeError> {
    let io = |e: &dyn std::fmt::Display| HandshakeError::Io(e.to_string());
    let ours = auth::nonce().map_err(|e| io(&e))?;
    let hello =
        ToPrimary::Hello { magic: PEER_MAGIC, protocol_version: PEER_PROTOCOL_VERSION, epoch, last_zxid, nonce: ours };
    write_message(stream, &hello, PEER_FRAME_LEN_MAX).await.map_err(|e| io(&e))?;
    let challenge = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(stream, PEER_FRAME_LEN_MAX))
        .await
        .map_err(|e| io(&e))?
        .map_err(|e| io(&e))?;
    let theirs = match challenge {
        ToStandby::Challenge { nonce, mac } if token.verify("primary", &ours, &nonce, &mac) => nonce,
        ToStandby::Challenge { .. } => return Err(HandshakeError::Auth),
        ToStandby::Refused(reason) => return Err(HandshakeError::Refused(reason)),
        other => return Err(HandshakeError::Io(format!("expected a challenge, got {other:?}"))),
    };
    let proof = ToPrimary::Proof { mac: token.prove("standby", &theirs, &ours) };
    write_message(stream, &proof, PEER_FRAME_LEN_MAX).await.map_err(|e| io(&e))?;
    let welcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(stream, PEER_FRAME_LEN_MAX))
        .await
        .map_err(|e| io(&e))?
        .map_err(|e| io(&e))?;
    match welcome {
        ToStandby::Welcome { epoch, last_zxid, diverged_after, .. } => Ok(Welcome { epoch, last_zxid, diverged_after }),
        ToStandby::Refused(reason) if reason.code == ErrorCode::NoAuth => Err(HandshakeError::Auth),
        ToStandby::Refused(reason) => Err(HandshakeError::Refused(reason)),
        other => Err(HandshakeError::Io(format!("expected a welcome, got {other:?}"))),
    }
}
