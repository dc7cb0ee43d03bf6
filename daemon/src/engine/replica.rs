//! The engine's replication side: its role (primary or standby), the feed of committed
//! records to a standby, applying a primary's stream and snapshots on a standby, promotion,
//! fencing by epoch, the peer's status, and the local read-only sessions a standby serves.

use super::{ConnId, Engine, EngineError, Output, wall_ms};
use crate::metrics::Gauges;
use crate::state::StateMachine;
use crate::store::Snapshot;
use baton_proto::message::{PeerStatus, Response, Role, SessionRequest, StatusReport};
use baton_proto::{ErrorCode, ErrorReply, SessionId, Txn, Zxid};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{broadcast, oneshot, watch};
use tracing::{error, info, warn};

/// One group commit's log records, as streamed to a standby.
pub type Feed = Arc<Vec<(Zxid, Vec<u8>)>>;

/// Commits buffered for a standby that is momentarily slow; past this it resyncs from the
/// stored log.
const FEED_CAPACITY: usize = 1024;
/// A standby's local sessions are numbered from here (never a zxid, so never replicated).
const LOCAL_SESSION_BASE: u64 = 1 << 63;

/// News from a replication task.
#[derive(Clone, Debug)]
pub enum PeerReport {
    /// A standby's view of its primary.
    Primary { addr: String, connected: bool, primary_zxid: Zxid },
    /// A primary's view of its standby.
    Standby { addr: String, connected: bool, acked_zxid: Zxid },
}

pub(super) struct Replica {
    pub role: watch::Sender<Role>,
    pub feed: broadcast::Sender<Feed>,
    /// Writes are refused: a newer epoch exists elsewhere.
    pub fenced: bool,
    pub peer: Option<PeerStatus>,
    /// Since when the standby has been behind (for the lag in ms).
    behind_since: Option<Instant>,
    /// A standby's sessions: connection-scoped, read-only, not replicated.
    local: HashSet<SessionId>,
    next_local: u64,
    /// Replicated batches waiting for their commit, to acknowledge them.
    pub applied: Vec<oneshot::Sender<Zxid>>,
    pub started: Instant,
    /// Synchronous replication: each round's outputs, held until the standby has the
    /// round's last zxid durably.
    held: VecDeque<(Zxid, Instant, Vec<Output>)>,
    /// The newest zxid the standby acknowledged as durable.
    acked: Zxid,
    standby_connected: bool,
    /// Synchronous replication degraded to asynchronous (an alarm).
    degraded: bool,
}

impl Replica {
    pub fn new(role: Role) -> Replica {
        Replica {
            role: watch::Sender::new(role),
            feed: broadcast::Sender::new(FEED_CAPACITY),
            fenced: false,
            peer: None,
            behind_since: None,
            local: HashSet::new(),
            next_local: LOCAL_SESSION_BASE,
            applied: Vec::new(),
            started: Instant::now(),
            held: VecDeque::new(),
            acked: Zxid::ZERO,
            standby_connected: false,
            degraded: false,
        }
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    pub fn is_local(&self, session: SessionId) -> bool {
        self.local.contains(&session)
    }

    pub fn forget_local(&mut self, session: SessionId) {
        self.local.remove(&session);
    }

    /// No round's outputs wait for a synchronous standby.
    pub fn nothing_held(&self) -> bool {
        self.held.is_empty()
    }
}

impl Engine {
    pub(super) fn is_primary(&self) -> bool {
        self.replica.role() == Role::Primary
    }

    pub(super) fn not_primary(&self) -> ErrorReply {
        let primary = self.config.peer_addr.as_deref().unwrap_or("unknown");
        ErrorReply::new(ErrorCode::NotPrimary, format!("this is a standby; the primary is {primary}"))
    }

    pub(super) fn fenced(&self) -> ErrorReply {
        ErrorReply::new(
            ErrorCode::Fenced,
            format!("epoch {} was superseded; this node no longer accepts writes", self.sm.epoch()),
        )
    }

    /// A session on a standby: new ones are local and read-only; a replicated session is
    /// resumed on the primary, not here.
    pub(super) fn standby_session(
        &mut self,
        request: &SessionRequest,
    ) -> Result<(SessionId, u64, u32, bool), ErrorReply> {
        match request {
            SessionRequest::New { timeout_ms, .. } => {
                let session = SessionId(self.replica.next_local);
                self.replica.next_local += 1;
                self.replica.local.insert(session);
                Ok((session, 0, *timeout_ms, false))
            }
            SessionRequest::Resume { session_id, .. } if self.replica.is_local(*session_id) => {
                Err(ErrorReply::new(ErrorCode::SessionExpired, "a standby's sessions end with their connection"))
            }
            SessionRequest::Resume { .. } => Err(self.not_primary()),
        }
    }

    /// Applies a primary's txns exactly as recovery and the primary do; acknowledged once
    /// they are durable.
    pub(super) fn replicate(&mut self, txns: Vec<Txn>, done: oneshot::Sender<Zxid>) {
        if self.is_primary() {
            warn!("ignoring replicated txns: this node is the primary");
            return;
        }
        for txn in txns {
            if txn.zxid > self.sm.last_zxid() {
                self.commit(&txn);
            }
        }
        self.replica.applied.push(done);
    }

    /// Replaces the whole state with a primary's snapshot. What clients watched may have
    /// changed without events, so each watched path gets a `WatchReset`.
    pub(super) fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        done: oneshot::Sender<Zxid>,
    ) -> Result<(), EngineError> {
        self.flush()?;
        self.lock_state();
        self.store.install(snapshot)?;
        self.metrics.store_bytes(self.store.file_len());
        let limits = self.sm.limits().clone();
        let history = limits.history_bound();
        let previous = std::mem::replace(&mut *self.sm, StateMachine::restore(limits, self.store.restored(history)?)?);
        info!(last_zxid = %self.sm.last_zxid(), nodes = self.sm.tree().len(), "installed a snapshot from the primary");
        for (session, event) in self.sm.adopt_watches(&previous) {
            if let Some(&conn) = self.attached.get(&session) {
                self.outputs.push(Output::Message(conn, baton_proto::ServerMessage::Event(event)));
            }
        }
        let _ = done.send(self.sm.last_zxid());
        Ok(())
    }

    pub(super) fn peer_report(&mut self, report: PeerReport) {
        let (addr, connected, mut peer_zxid) = match report {
            PeerReport::Primary { addr, connected, primary_zxid } => (addr, connected, primary_zxid),
            PeerReport::Standby { addr, connected, acked_zxid } => {
                self.standby_report(connected, acked_zxid);
                (addr, connected, acked_zxid.max(self.replica.acked))
            }
        };
        if peer_zxid == Zxid::ZERO {
            // A lost link says nothing new of the peer's position: keep the last one known.
            peer_zxid = self.replica.peer.as_ref().map_or(Zxid::ZERO, |p| p.peer_zxid);
        }
        let ours = self.sm.last_zxid();
        let (ahead, behind) = if self.is_primary() { (ours, peer_zxid) } else { (peer_zxid, ours) };
        let lag_txns = if ahead.epoch() == behind.epoch() {
            u64::from(ahead.counter().saturating_sub(behind.counter()))
        } else {
            u64::from(ahead > behind)
        };
        self.replica.behind_since = match (lag_txns, self.replica.behind_since) {
            (0, _) => None,
            (_, Some(since)) => Some(since),
            (_, None) => Some(Instant::now()),
        };
        let lag_ms = self.replica.behind_since.map_or(0, |since| since.elapsed().as_millis() as u64);
        self.replica.peer = Some(PeerStatus { addr, connected, peer_zxid, lag_txns, lag_ms });
    }

    /// A newer epoch exists (a promoted standby): a primary stops accepting writes at once.
    pub(super) fn epoch_seen(&mut self, epoch: u32, from: &str) {
        if epoch > self.sm.epoch() && self.is_primary() && !self.replica.fenced {
            error!(ours = self.sm.epoch(), seen = epoch, from, "a newer epoch exists: refusing writes from now on");
            self.replica.fenced = true;
        }
    }

    pub(super) fn status(&self) -> StatusReport {
        StatusReport {
            role: self.replica.role(),
            epoch: self.sm.epoch(),
            last_zxid: self.sm.last_zxid(),
            mode: self.config.mode,
            peer: self.replica.peer.clone(),
            sessions: (self.sm.sessions().len() + self.replica.local.len()) as u64,
            nodes: self.sm.tree().len() as u64,
            watches: self.sm.watch_count() as u64,
            connections: self.conns.len() as u64,
            uptime_ms: self.replica.started.elapsed().as_millis() as u64,
            store_bytes: self.store.file_len(),
            digest: self.sm.digest(),
            fenced: self.replica.fenced,
            sync_degraded: self.replica.degraded,
            log_floor: self.store.log_window().floor,
            log_txns: self.store.log_window().txns,
            log_bytes: self.store.log_window().bytes,
        }
    }

    /// Sets the metrics' gauges from this round's state (the store's size only after a
    /// commit: it is a `stat` of the file).
    /// The gauges of the metrics, read while the engine holds the state.
    pub(super) fn gauges(&self) -> Gauges {
        let peer = self.replica.peer.as_ref();
        Gauges {
            sessions: (self.sm.sessions().len() + self.replica.local.len()) as u64,
            watches: self.sm.watch_count() as u64,
            nodes: self.sm.tree().len() as u64,
            connections: self.conns.len() as u64,
            primary: self.is_primary(),
            fenced: self.replica.fenced,
            sync_degraded: self.replica.degraded,
            peer_connected: peer.is_some_and(|p| p.connected),
            lag_txns: peer.map_or(0, |p| p.lag_txns),
            lag_ms: peer.map_or(0, |p| p.lag_ms),
            uptime_ms: self.replica.started.elapsed().as_millis() as u64,
        }
    }

    /// Synchronous replication: queues this round's outputs behind the standby's
    /// acknowledgement and returns those now releasable, in order.
    pub(super) fn hold_for_standby(&mut self, round: Vec<Output>) -> Vec<Output> {
        let holding = self.config.sync.is_some() && self.is_primary() && !self.replica.degraded;
        if !round.is_empty() {
            self.replica.held.push_back((self.sm.last_zxid(), Instant::now(), round));
        }
        let mut ready = Vec::new();
        while let Some((zxid, _, _)) = self.replica.held.front() {
            if holding && *zxid > self.replica.acked {
                break;
            }
            if let Some((_, _, outputs)) = self.replica.held.pop_front() {
                ready.extend(outputs);
            }
        }
        ready
    }

    fn standby_report(&mut self, connected: bool, acked: Zxid) {
        self.replica.standby_connected = connected;
        if !connected {
            self.standby_gone("the standby disconnected");
            return;
        }
        self.replica.acked = self.replica.acked.max(acked);
        if self.replica.degraded && self.replica.acked >= self.sm.last_zxid() {
            self.replica.degraded = false;
            info!(acked = %self.replica.acked, "the standby caught up: synchronous replication again");
        }
    }

    /// On each tick: a standby that leaves writes unacknowledged too long counts as gone.
    pub(super) fn check_sync_standby(&mut self) {
        let Some(policy) = self.config.sync else { return };
        if let Some((_, since, _)) = self.replica.held.front()
            && since.elapsed() > policy.standby_timeout
            && !self.replica.degraded
        {
            self.standby_gone("the standby has not acknowledged writes in time");
        }
    }

    fn standby_gone(&mut self, why: &str) {
        let Some(policy) = self.config.sync else { return };
        if self.replica.degraded || !self.is_primary() {
            return;
        }
        if policy.wait_when_gone {
            warn!(why, held = self.replica.held.len(), "synchronous replication: writes wait for the standby");
        } else {
            self.replica.degraded = true;
            error!(
                why,
                "ALARM: synchronous replication degraded to asynchronous; a failover now may lose acknowledged writes"
            );
        }
    }

    /// Makes this standby the primary of a new epoch.
    pub(super) fn promote(&mut self) -> Result<Response, ErrorReply> {
        if self.is_primary() {
            return Err(ErrorReply::new(ErrorCode::InvalidArgument, "this node is already the primary"));
        }
        let last_zxid = self.sm.last_zxid();
        let primary_zxid = self.replica.peer.as_ref().map(|p| p.peer_zxid);
        let behind_txns = primary_zxid
            .filter(|p| p.epoch() == last_zxid.epoch())
            .map(|p| u64::from(p.counter().saturating_sub(last_zxid.counter())));
        let txn = self.sm.prepare_new_epoch(wall_ms());
        self.commit(&txn);
        self.replica.role.send_replace(Role::Primary);
        self.replica.peer = None;
        warn!(epoch = self.sm.epoch(), %last_zxid, ?primary_zxid, ?behind_txns, "promoted to primary");
        Ok(Response::Promoted { epoch: self.sm.epoch(), last_zxid, primary_zxid, behind_txns })
    }

    /// After a promotion: a standby's local sessions cannot write, so their clients are sent
    /// away to come back for real sessions — all but `keep`, the connection that asked for the
    /// promotion (it got its answer and may close in peace).
    pub(super) fn close_local_sessions(&mut self, keep: ConnId) {
        if !self.is_primary() || self.replica.local.is_empty() {
            return;
        }
        let promoted = ErrorReply::new(ErrorCode::NotPrimary, "this standby was promoted; reconnect for a session");
        let kept = self.conns.get(&keep).map(|c| c.session);
        let local: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| **id != keep && self.replica.is_local(c.session))
            .map(|(id, _)| *id)
            .collect();
        self.outputs.extend(local.into_iter().map(|conn| Output::Close(conn, promoted.clone())));
        self.replica.local.retain(|session| Some(*session) == kept);
    }
}
