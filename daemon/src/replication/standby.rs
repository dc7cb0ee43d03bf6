//! The standby's side: connect to the primary, authenticate, set aside a divergent tail if
//! this node was a primary whose last writes never reached the new one, then hand everything
//! received to the engine and acknowledge what is durable. Reconnects until promoted.
//!
//! Also [`check_epoch`]: a primary configured with its peer asks it for its epoch, and stops
//! accepting writes if the peer's is newer (it was promoted).

use super::auth::Token;
use super::{HandshakeError, PEER_FRAME_LEN_MAX, Welcome, greet};
use crate::engine::{EngineInput, PeerReport};
use crate::store::{Snapshot, StoreReader};
use crate::wire::{read_message, write_message};
use baton_proto::message::Role;
use baton_proto::replication::{ToPrimary, ToStandby};
use baton_proto::txn::decode_record;
use baton_proto::{ErrorCode, Zxid};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the follower needs.
pub struct StandbySide {
    pub primary: String,
    pub token: Arc<Token>,
    pub reader: StoreReader,
    pub engine: mpsc::Sender<EngineInput>,
    pub data_dir: PathBuf,
}

/// Follows the primary until this node is promoted or shuts down.
pub async fn follow(side: StandbySide, mut role: watch::Receiver<Role>, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(50);
    loop {
        let outcome = tokio::select! {
            () = super::until(&mut shutdown, |stop| *stop) => return,
            () = super::until(&mut role, |r| *r == Role::Primary) => {
                info!("promoted: no longer following {}", side.primary);
                return;
            }
            outcome = stream_once(&side) => outcome,
        };
        match outcome {
            Ok(()) => pause = Duration::from_millis(50),
            Err(e) => warn!(primary = %side.primary, error = %e, "replication link down; retrying"),
        }
        report(&side, false, Zxid::ZERO).await;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RECONNECT_PAUSE_MAX);
    }
}

async fn report(side: &StandbySide, connected: bool, primary_zxid: Zxid) {
    let report = PeerReport::Primary { addr: side.primary.clone(), connected, primary_zxid };
    let _ = side.engine.send(EngineInput::Peer(report)).await;
}

/// One connection's worth of streaming.
async fn stream_once(side: &StandbySide) -> Result<(), String> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&side.primary))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let reader = side.reader.clone();
    let (epoch, last_zxid) = tokio::task::spawn_blocking(move || reader.last())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let welcome = match greet(&mut stream, &side.token, epoch, last_zxid).await {
        Ok(welcome) => welcome,
        Err(HandshakeError::Refused(reason)) if reason.code == ErrorCode::Fenced => {
            return Err(format!("the primary is older than this node: {reason}"));
        }
        Err(e) => return Err(e.to_string()),
    };
    info!(primary_zxid = %welcome.last_zxid, ours = %last_zxid, "following the primary");
    report(side, true, welcome.last_zxid).await;
    if let Some(after) = welcome.diverged_after {
        quarantine(side, after).await?;
    }
    receive(side, stream, welcome).await
}

/// Sets the log entries after `after` aside into a recovery file; a snapshot follows.
async fn quarantine(side: &StandbySide, after: Zxid) -> Result<(), String> {
    let reader = side.reader.clone();
    let entries = tokio::task::spawn_blocking(move || reader.entries_after(after))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if entries.is_empty() {
        return Ok(());
    }
    let (first, last) = (entries[0].0, entries[entries.len() - 1].0);
    let path = side.data_dir.join(format!("recovery-{:016x}-{:016x}.txns", first.0, last.0));
    let mut file = std::fs::File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    for (_, record) in &entries {
        file.write_all(&(record.len() as u32).to_le_bytes()).map_err(|e| e.to_string())?;
        file.write_all(record).map_err(|e| e.to_string())?;
    }
    file.sync_all().map_err(|e| e.to_string())?;
    error!(
        file = %path.display(),
        txns = entries.len(),
        %first,
        %last,
        "this node holds transactions the new primary never had; they are set aside (read them with `baton admin recovery FILE`) and the state is resynchronised"
    );
    Ok(())
}

/// Applies the stream until it ends.
async fn receive(side: &StandbySide, stream: TcpStream, welcome: Welcome) -> Result<(), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut snapshot: Option<Snapshot> = None;
    let mut primary_zxid = welcome.last_zxid;
    loop {
        let message: ToStandby = read_message(&mut reader, PEER_FRAME_LEN_MAX).await.map_err(|e| e.to_string())?;
        let durable = match message {
            ToStandby::Txns(records) => {
                let txns = records
                    .iter()
                    .map(|r| decode_record(r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                primary_zxid = primary_zxid.max(txns.last().map_or(Zxid::ZERO, |t| t.zxid));
                let (done, applied) = oneshot::channel();
                side.engine.send(EngineInput::Replicate { txns, done }).await.map_err(|e| e.to_string())?;
                Some(applied.await.map_err(|e| e.to_string())?)
            }
            ToStandby::SnapshotBegin { epoch, last_zxid } => {
                snapshot = Some(Snapshot { epoch, last_zxid, ..Snapshot::default() });
                None
            }
            ToStandby::SnapshotNodes(nodes) => {
                snapshot.as_mut().ok_or("snapshot nodes outside a snapshot")?.nodes.extend(nodes);
                None
            }
            ToStandby::SnapshotSessions(sessions) => {
                snapshot.as_mut().ok_or("snapshot sessions outside a snapshot")?.sessions.extend(sessions);
                None
            }
            ToStandby::SnapshotEnd => {
                let snapshot = snapshot.take().ok_or("snapshot end without a beginning")?;
                let (done, installed) = oneshot::channel();
                side.engine.send(EngineInput::InstallSnapshot { snapshot, done }).await.map_err(|e| e.to_string())?;
                Some(installed.await.map_err(|e| e.to_string())?)
            }
            ToStandby::Heartbeat { last_zxid, .. } => {
                primary_zxid = primary_zxid.max(last_zxid);
                report(side, true, primary_zxid).await;
                None
            }
            ToStandby::Refused(reason) => return Err(format!("the primary refused: {reason}")),
            other => return Err(format!("unexpected message from the primary: {other:?}")),
        };
        if let Some(durable_zxid) = durable {
            write_message(&mut writer, &ToPrimary::Ack { durable_zxid }, PEER_FRAME_LEN_MAX)
                .await
                .map_err(|e| e.to_string())?;
            report(side, true, primary_zxid).await;
        }
    }
}

/// Asks the peer for its epoch; if it is newer than ours, tells the engine to stop writes.
/// Returns the peer's epoch, if it could be reached.
pub async fn check_epoch(
    peer: &str,
    token: &Token,
    reader: &StoreReader,
    engine: &mpsc::Sender<EngineInput>,
) -> Option<u32> {
    let reader = reader.clone();
    let (epoch, last_zxid) = tokio::task::spawn_blocking(move || reader.last()).await.ok()?.ok()?;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await.ok()?.ok()?;
    let peer_epoch = match greet(&mut stream, token, epoch, last_zxid).await {
        Ok(welcome) => welcome.epoch,
        Err(HandshakeError::Refused(reason)) if reason.code == ErrorCode::Fenced => return Some(epoch),
        Err(e) => {
            warn!(peer, error = %e, "cannot check the peer's epoch");
            return None;
        }
    };
    if peer_epoch > epoch {
        let _ = engine.send(EngineInput::EpochSeen { epoch: peer_epoch, from: peer.to_owned() }).await;
    }
    Some(peer_epoch)
}
