//! The primary's side: accept a standby, authenticate it, bring it up to date from the
//! stored log (or a snapshot), then stream every commit as the engine makes it.

use super::auth::{self, Token};
use super::chunks::{self, PEER_MESSAGE_BYTES};
use super::{HANDSHAKE_TIMEOUT, HEARTBEAT_INTERVAL, PEER_FRAME_LEN_MAX};
use crate::engine::{EngineInput, Feed, PeerReport};
use crate::store::{LogRange, StoreReader};
use crate::wire::{read_message, write_message};
use baton_proto::replication::{PEER_MAGIC, PEER_PROTOCOL_VERSION, ReplicationMode, ToPrimary, ToStandby};
use baton_proto::{ErrorCode, ErrorReply, SessionId, Zxid};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

/// Log entries per message while catching a standby up (fewer if their records pass
/// `PEER_MESSAGE_BYTES`).
const CATCH_UP_BATCH: usize = 1000;

/// What every standby stream needs.
#[derive(Clone)]
pub struct PrimarySide {
    pub token: Arc<Token>,
    pub reader: StoreReader,
    pub feed: broadcast::Sender<Feed>,
    pub engine: mpsc::Sender<EngineInput>,
    pub mode: ReplicationMode,
}

/// Serves standbys on `listener` until `shutdown`.
pub async fn listen(listener: TcpListener, side: PrimarySide, mut shutdown: watch::Receiver<bool>) {
    info!(addr = ?listener.local_addr().ok(), "replication listener up");
    loop {
        let (stream, addr) = tokio::select! {
            () = super::until(&mut shutdown, |stop| *stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "replication accept failed; backing off");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let side = side.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move {
                let addr_text = addr.to_string();
                match serve(stream, addr, &side, shutdown).await {
                    Ok(()) => info!("standby stream ended"),
                    Err(e) => warn!(error = %e, "standby stream ended"),
                }
                let report = PeerReport::Standby { addr: addr_text, connected: false, acked_zxid: Zxid::ZERO };
                let _ = side.engine.send(EngineInput::Peer(report)).await;
            }
            .instrument(info_span!("standby", peer = %addr)),
        );
    }
}

async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    side: &PrimarySide,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (standby_epoch, standby_zxid) = authenticate(&mut reader, &mut writer, &side.token).await?;
    let reader_store = side.reader.clone();
    let (epoch, last_zxid) = blocking(move || reader_store.last()).await?;
    if standby_epoch > epoch {
        // The standby was promoted after us: we are the stale one.
        let _ = side.engine.send(EngineInput::EpochSeen { epoch: standby_epoch, from: addr.to_string() }).await;
        let refusal = ErrorReply::new(ErrorCode::Fenced, format!("this node's epoch {epoch} is older than yours"));
        let _ = write_message(&mut writer, &ToStandby::Refused(refusal), PEER_FRAME_LEN_MAX).await;
        return Err(format!("the peer has a newer epoch {standby_epoch}"));
    }
    let diverged_after = divergence(side, standby_epoch, standby_zxid, last_zxid).await?;
    let welcome = ToStandby::Welcome { epoch, last_zxid, mode: side.mode, diverged_after };
    write_message(&mut writer, &welcome, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
    info!(standby_zxid = %standby_zxid, ?diverged_after, "standby connected");
    // Subscribe before reading the log, so nothing committed in between is missed.
    let mut feed = side.feed.subscribe();
    let mut cursor = if diverged_after.is_some() { send_snapshot(&mut writer, side).await? } else { standby_zxid };
    cursor = catch_up(&mut writer, side, cursor).await?;
    let acks = read_acks(&mut reader, side, addr);
    tokio::pin!(acks);
    let mut shutdown = shutdown;
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            ended = &mut acks => return ended,
            () = super::until(&mut shutdown, |stop| *stop) => return Ok(()),
            _ = heartbeat.tick() => {
                let beat = ToStandby::Heartbeat { last_zxid: cursor, time_ms: wall_ms() };
                write_message(&mut writer, &beat, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
            }
            batch = feed.recv() => match batch {
                Ok(batch) => {
                    let records: Vec<Vec<u8>> =
                        batch.iter().filter(|(z, _)| *z > cursor).map(|(_, r)| r.clone()).collect();
                    if let Some((last, _)) = batch.last() && !records.is_empty() {
                        for run in chunks::by_size(records, Vec::len, PEER_MESSAGE_BYTES) {
                            write_message(&mut writer, &ToStandby::Txns(run), PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
                        }
                        cursor = cursor.max(*last);
                    }
                }
                // Fell behind the in-memory feed: continue from the stored log.
                Err(broadcast::error::RecvError::Lagged(_)) => cursor = catch_up(&mut writer, side, cursor).await?,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// Checks the standby's hello and proof; returns its epoch and position.
async fn authenticate<R, W>(reader: &mut R, writer: &mut W, token: &Token) -> Result<(u32, Zxid), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let read = |r: Result<Result<ToPrimary, _>, _>| match r {
        Ok(Ok(message)) => Ok(message),
        Ok(Err(e)) => Err(format!("{e}")),
        Err(_) => Err("handshake timed out".to_owned()),
    };
    let hello = read(tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(reader, PEER_FRAME_LEN_MAX)).await)?;
    let ToPrimary::Hello { magic, protocol_version, epoch, last_zxid, nonce: theirs } = hello else {
        return Err("expected a hello".into());
    };
    if magic != PEER_MAGIC || protocol_version != PEER_PROTOCOL_VERSION {
        let refusal = ErrorReply::new(ErrorCode::ProtocolMismatch, "not a Baton replication peer of this version");
        let _ = write_message(writer, &ToStandby::Refused(refusal), PEER_FRAME_LEN_MAX).await;
        return Err("protocol mismatch".into());
    }
    let ours = auth::nonce().map_err(|e| e.to_string())?;
    let challenge = ToStandby::Challenge { nonce: ours, mac: token.prove("primary", &theirs, &ours) };
    write_message(writer, &challenge, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
    let proof = read(tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(reader, PEER_FRAME_LEN_MAX)).await)?;
    match proof {
        ToPrimary::Proof { mac } if token.verify("standby", &ours, &theirs, &mac) => Ok((epoch, last_zxid)),
        _ => {
            let refusal = ErrorReply::new(ErrorCode::NoAuth, "replication authentication failed");
            let _ = write_message(writer, &ToStandby::Refused(refusal), PEER_FRAME_LEN_MAX).await;
            Err("the standby failed authentication".into())
        }
    }
}

/// Where the standby's history left ours, if it did: an old primary rejoining with
/// transactions of its epoch that this node never received.
async fn divergence(side: &PrimarySide, epoch: u32, standby_zxid: Zxid, ours: Zxid) -> Result<Option<Zxid>, String> {
    if standby_zxid > ours {
        // It has more than we do, of an epoch not newer than ours: its tail is not ours.
        let reader = side.reader.clone();
        let branch = Zxid::new(epoch + 1, 1);
        let before = blocking(move || reader.last_before(branch)).await?;
        return Ok(Some(before.unwrap_or(Zxid::ZERO)));
    }
    if standby_zxid.epoch() < ours.epoch() {
        let reader = side.reader.clone();
        let branch = Zxid::new(standby_zxid.epoch() + 1, 1);
        if let Some(before) = blocking(move || reader.last_before(branch)).await?
            && standby_zxid > before
        {
            return Ok(Some(before));
        }
    }
    Ok(None)
}

/// Streams the stored log after `cursor` until it is exhausted (a snapshot first if the log
/// no longer reaches back that far); returns the new cursor.
async fn catch_up<W: AsyncWrite + Unpin>(writer: &mut W, side: &PrimarySide, mut cursor: Zxid) -> Result<Zxid, String> {
    loop {
        let reader = side.reader.clone();
        let range = blocking(move || reader.log_after(cursor, CATCH_UP_BATCH, PEER_MESSAGE_BYTES)).await?;
        match range {
            LogRange::Compacted => cursor = send_snapshot(writer, side).await?,
            LogRange::Entries(entries) if entries.is_empty() => return Ok(cursor),
            LogRange::Entries(entries) => {
                cursor = entries.last().map_or(cursor, |(z, _)| *z);
                let records = entries.into_iter().map(|(_, r)| r).collect();
                write_message(writer, &ToStandby::Txns(records), PEER_FRAME_LEN_MAX)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

async fn send_snapshot<W: AsyncWrite + Unpin>(writer: &mut W, side: &PrimarySide) -> Result<Zxid, String> {
    let reader = side.reader.clone();
    let snapshot = blocking(move || reader.snapshot()).await?;
    info!(last_zxid = %snapshot.last_zxid, nodes = snapshot.nodes.len(), "sending a snapshot");
    let mut messages = vec![ToStandby::SnapshotBegin { epoch: snapshot.epoch, last_zxid: snapshot.last_zxid }];
    let node_size = |(path, record): &(String, Vec<u8>)| path.len() + record.len();
    let nodes = chunks::by_size(snapshot.nodes, node_size, PEER_MESSAGE_BYTES);
    messages.extend(nodes.into_iter().map(ToStandby::SnapshotNodes));
    let session_size = |(_, record): &(SessionId, Vec<u8>)| size_of::<SessionId>() + record.len();
    let sessions = chunks::by_size(snapshot.sessions, session_size, PEER_MESSAGE_BYTES);
    messages.extend(sessions.into_iter().map(ToStandby::SnapshotSessions));
    messages.push(ToStandby::SnapshotEnd);
    for message in messages {
        write_message(writer, &message, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
    }
    Ok(snapshot.last_zxid)
}

/// Reads the standby's acknowledgements and tells the engine, until the link ends.
async fn read_acks<R: AsyncRead + Unpin>(reader: &mut R, side: &PrimarySide, addr: SocketAddr) -> Result<(), String> {
    loop {
        match read_message::<_, ToPrimary>(reader, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())? {
            ToPrimary::Ack { durable_zxid } => {
                let report = PeerReport::Standby { addr: addr.to_string(), connected: true, acked_zxid: durable_zxid };
                if side.engine.send(EngineInput::Peer(report)).await.is_err() {
                    return Ok(());
                }
            }
            other => return Err(format!("unexpected message from the standby: {other:?}")),
        }
    }
}

/// Runs a store read off the async threads.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
