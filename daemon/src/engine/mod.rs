//! The engine: the single writer. One thread owns the state machine and the store.
//!
//! Each round it takes every input waiting (up to a batch limit), answers reads and prepares
//! and applies writes against the in-memory state, makes all of the round's txns durable in
//! one group commit (a journal record and one sync; see `store`), and only then releases the
//! round's outputs —
//! replies, events and hello answers — in the order they were produced. So nothing that
//! reflects a write leaves the daemon before the write is on disk, and a watch event always
//! precedes the replies that reveal its change. A client that cannot keep up is cut off,
//! never waited for.
//!
//! A failed commit (a full disk) acknowledges nothing: the in-memory state, which is ahead of
//! the disk, is rebuilt from what is durable, every client is disconnected to resume from
//! there, and writes are refused with `DiskFull` until the storage takes them again
//! (`storage.rs`). Only a store that cannot even be reopened stops the daemon.

mod backup;
mod line_wait;
mod plain_stream;
mod published;
mod release_order;
mod replica;
mod shared_socket;
mod spin;
mod storage;

use line_wait::LineWait;
pub use plain_stream::PlainStream;
pub use published::{ConnLink, StateView};
pub use replica::{Feed, PeerReport};
use shared_socket::EngineWrite;
pub use shared_socket::SharedSocket;

use crate::metrics::Metrics;
use crate::state::Identity;
use crate::state::{Applied, CONTAINERS_REAPED_PER_TXN, Rejection, StateMachine};
use crate::store::{Batch, Snapshot, Store, StoreError};
use baton_proto::message::{
    Hello, HelloReply, MAGIC, OpResult, PROTOCOL_VERSION, Request, Response, Role, ServerHello, ServerMessage,
    SessionRequest,
};
use baton_proto::replication::ReplicationMode;
use baton_proto::{AclEntry, ErrorCode, ErrorReply, Op, Principal, SessionId, Txn, Zxid};
use published::Published;
use replica::Replica;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// TTL nodes deleted per tick at most (one txn): 10,000 paths of up to 1 KiB make a txn of
/// about 10 MiB, far below a replication frame, and 200,000 a second (at the default 50 ms
/// tick) is more than enough to keep up.
const TTL_REAPED_PER_TICK: usize = 10_000;

/// A connection's number, unique for the daemon's lifetime.
pub type ConnId = u64;

/// Who is at the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Unix { uid: u32, gid: u32, pid: Option<i32> },
    Tcp(SocketAddr),
}

/// A connection's queue of the messages the engine does not write to its socket itself.
/// Boxed, because the channel allocates room for 32 messages when it is made: 5.4 KiB of
/// every idle connection for a 168-byte `ServerMessage`, about 300 bytes for a box.
pub type Outbox = mpsc::Sender<Box<ServerMessage>>;

/// What the engine is asked to do.
#[derive(Debug)]
pub enum EngineInput {
    /// A new connection's hello; the answer goes to `reply`, after any commit it needs.
    Hello {
        conn: ConnId,
        hello: Hello,
        peer: Peer,
        /// What the connection proved: SO_PEERCRED uid and gid, a token or certificate name.
        principals: Vec<Principal>,
        outbox: Outbox,
        kill: oneshot::Sender<ErrorReply>,
        reply: oneshot::Sender<HelloReply>,
        /// Bytes queued for the connection (see `wire::weight`); its writer subtracts.
        queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
        /// Given by a connection that answers plain reads itself (see `StateView`).
        link: Option<Arc<ConnLink>>,
        /// Given by a connection whose socket the engine may write to itself.
        socket: Option<Arc<SharedSocket>>,
    },
    Request {
        conn: ConnId,
        request: Request,
    },
    /// A request frame whose op could not be decoded; answered in order with the rest.
    Undecodable {
        conn: ConnId,
        id: u64,
        error: ErrorReply,
    },
    Disconnected {
        conn: ConnId,
    },
    /// The connection proved `principal` after its hello (a ZooKeeper `auth` packet): its
    /// session is that too from now on. Answered in order, as request `id`, with the
    /// connection's identity.
    Authenticate {
        conn: ConnId,
        id: u64,
        principal: Principal,
    },
    /// Time passed: expire sessions, reap TTL nodes.
    Tick,
    /// A standby's replication stream delivered these txns; `done` gets the durable zxid.
    Replicate {
        txns: Vec<Txn>,
        done: oneshot::Sender<Zxid>,
    },
    /// A standby received a full snapshot: replace the state with it.
    InstallSnapshot {
        snapshot: Snapshot,
        done: oneshot::Sender<Zxid>,
    },
    /// News of the replication peer.
    Peer(PeerReport),
    /// Someone has seen epoch `epoch`: if it is newer than ours, stop accepting writes.
    EpochSeen {
        epoch: u32,
        from: String,
    },
    /// Finish what is queued, say goodbye to every client and stop.
    Shutdown,
    /// A backup started for request `id` of `conn` finished.
    BackupDone {
        conn: ConnId,
        id: u64,
        result: Result<Response, ErrorReply>,
    },
    /// Are you alive? Answered at once: the systemd watchdog pings only while the engine
    /// answers, so a hung engine gets the daemon restarted.
    Health {
        reply: oneshot::Sender<()>,
    },
    /// The daemon's status, as `baton admin status` reports it, for a caller without a
    /// session (the ZooKeeper listener's `srvr`, `stat` and `mntr`). Answered at once.
    Status {
        reply: oneshot::Sender<baton_proto::message::StatusReport>,
    },
}

/// The engine's settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub session_timeout_min_ms: u32,
    pub session_timeout_max_ms: u32,
    /// Most txns in one group commit.
    pub batch_txns_max: usize,
    /// Txn record bytes past which a group commit takes no more.
    pub batch_bytes_max: usize,
    /// How long to poll for the next input before sleeping (see `spin`).
    pub spin: Duration,
    /// The longest a round of waiters joining a line waits for company (see `line_wait`;
    /// zero: never).
    pub line_join_wait_max: Duration,
    /// Bytes of replies and events queued for one connection before it is cut off.
    pub outbound_bytes_max: usize,
    /// Primary, or standby of `peer_addr`.
    pub role: Role,
    /// The replication peer's address, for messages (a standby's primary).
    pub peer_addr: Option<String>,
    /// A primary's replication mode, when replication is configured.
    pub mode: Option<ReplicationMode>,
    /// With synchronous replication: what to do when the standby is gone.
    pub sync: Option<SyncPolicy>,
    /// Principals that pass every ACL check.
    pub superusers: Vec<Principal>,
    /// The ACL a fresh store gives the root.
    pub root_acl: Vec<AclEntry>,
    /// How often `Tick` arrives: a gap much longer than this is time the daemon did not run.
    pub tick: std::time::Duration,
}

/// Synchronous replication's behaviour when the standby is gone or silent.
#[derive(Clone, Copy, Debug)]
pub struct SyncPolicy {
    /// Keep waiting for the standby (true), or degrade to asynchronous with an alarm.
    pub wait_when_gone: bool,
    /// A standby that has not acknowledged held writes for this long counts as gone.
    pub standby_timeout: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("durable commit failed: {0}")]
    Commit(#[from] StoreError),
    #[error("cannot load the installed snapshot: {0}")]
    Restore(#[from] crate::state::RestoreError),
}

enum Output {
    Message(ConnId, ServerMessage),
    /// A request's reply: operation number `op` (in `OP_NAMES`), taken in the round that
    /// began at `round`, for the metrics.
    Reply {
        conn: ConnId,
        message: ServerMessage,
        op: u8,
        round: Instant,
    },
    Hello(oneshot::Sender<HelloReply>, HelloReply),
    /// Send `Closing` and hang up on the connection, leaving its session to live or expire.
    Close(ConnId, ErrorReply),
}

struct Conn {
    outbox: Outbox,
    kill: Option<oneshot::Sender<ErrorReply>>,
    session: SessionId,
    queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests that arrived while a backup for this connection runs, answered after it.
    parked: Option<std::collections::VecDeque<Request>>,
    link: Option<Arc<ConnLink>>,
    socket: Option<Arc<SharedSocket>>,
}

impl Conn {
    /// Cuts the connection off with `reason` (once); it answers nothing more by itself.
    fn kill(&mut self, reason: ErrorReply) {
        if let Some(link) = &self.link {
            link.close();
        }
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(reason);
        }
    }
}

pub struct Engine {
    /// Locked while a round runs; connections read it between rounds.
    sm: Published,
    store: Store,
    config: EngineConfig,
    conns: HashMap<ConnId, Conn>,
    /// The connection each session is currently served on.
    attached: HashMap<SessionId, ConnId>,
    batch: Batch,
    outputs: Vec<Output>,
    clock: Instant,
    replica: Replica,
    /// The engine's own input, for work finished off its thread (backups).
    inputs: Option<mpsc::Sender<EngineInput>>,
    /// Set while the storage refuses writes (a disk full): why, and when it was last probed.
    storage: Option<storage::Failure>,
    metrics: Arc<Metrics>,
    /// When the current round took its first input.
    round: Instant,
    /// When the last tick was handled, to notice time the daemon did not run.
    last_tick: Option<Instant>,
    /// Deliberate breakage for the tests' negative controls (normally all off).
    negative: crate::negative::NegativeControls,
    /// With the `stale-reads` control: each node's value before its last change.
    stale: HashMap<String, Response>,
    /// Sessions of connections cut off while the state was not held: disconnected from the
    /// state machine when the engine takes it next.
    disconnect_later: Vec<SessionId>,
    /// A frame being written to a connection's socket by the engine itself (reused).
    frame: Vec<u8>,
    line_wait: LineWait,
}

impl Engine {
    pub fn new(sm: StateMachine, store: Store, config: EngineConfig) -> Self {
        let replica = Replica::new(config.role);
        let metrics = Arc::new(Metrics::new(&OP_NAMES));
        metrics.store_bytes(store.file_len());
        Engine {
            sm: Published::new(sm),
            store,
            line_wait: LineWait::new(config.line_join_wait_max),
            config,
            conns: HashMap::new(),
            attached: HashMap::new(),
            batch: Batch::default(),
            outputs: Vec::new(),
            clock: Instant::now(),
            replica,
            inputs: None,
            storage: None,
            metrics,
            round: Instant::now(),
            last_tick: None,
            negative: crate::negative::NegativeControls::from_env(),
            stale: HashMap::new(),
            disconnect_later: Vec::new(),
            frame: Vec::new(),
        }
    }

    /// The metrics the engine records, for the metrics endpoint.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The state as connections read it between rounds.
    pub fn state_view(&self) -> StateView {
        self.sm.view(self.metrics.clone())
    }

    /// Gives the engine a sender of its own input, for work it hands off its thread.
    pub fn set_inputs(&mut self, inputs: mpsc::Sender<EngineInput>) {
        self.inputs = Some(inputs);
    }

    /// The stream of committed log records, for replication to a standby.
    pub fn feed(&self) -> broadcast::Sender<Feed> {
        self.replica.feed.clone()
    }

    /// The role as it changes (a promotion), for the standby's replication task.
    pub fn role_watch(&self) -> watch::Receiver<Role> {
        self.replica.role.subscribe()
    }

    /// A reader of committed state, for replication.
    pub fn store_reader(&self) -> crate::store::StoreReader {
        self.store.reader()
    }

    /// Runs until `Shutdown` or until every sender is gone.
    ///
    /// # Errors
    /// A store that cannot be reopened after a failed commit.
    pub fn run(mut self, mut inputs: mpsc::Receiver<EngineInput>) -> Result<(), EngineError> {
        if self.is_primary() {
            if self.sm.last_zxid() == Zxid::ZERO {
                let txn = self.sm.prepare_root_acl(self.config.root_acl.clone(), wall_ms());
                self.commit(&txn);
            }
            self.close_connection_bound_sessions("the daemon restarted");
        }
        info!(last_zxid = %self.sm.last_zxid(), nodes = self.sm.tree().len(), sessions = self.sm.sessions().len(), "engine ready");
        self.flush()?;
        // Poll for more only after a round some client asked for: the clock's ticks alone do
        // not keep the thread awake.
        let mut spin = Duration::ZERO;
        while let Some(first) = spin::next_input(&mut inputs, spin) {
            spin = if matches!(first, EngineInput::Tick) { Duration::ZERO } else { self.config.spin };
            self.lock_state();
            let readable_before = self.reads_open();
            self.sm.begin_round(readable_before);
            self.line_wait.begin_round();
            self.round = Instant::now();
            let shutdown = self.take_input(first)?;
            let mut shutdown = self.take_queued(&mut inputs, shutdown)?;
            if !shutdown && let Some(window) = self.line_wait.window(!self.batch.is_empty()) {
                shutdown = self.wait_for_company(&mut inputs, window)?;
            }
            self.flush()?;
            if shutdown {
                break;
            }
        }
        self.lock_state();
        if self.is_primary() {
            self.close_connection_bound_sessions("the daemon is shutting down");
        }
        let goodbye = ErrorReply::new(ErrorCode::ShuttingDown, "the daemon is shutting down");
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        self.outputs.extend(conns.into_iter().map(|conn| Output::Close(conn, goodbye.clone())));
        let last_zxid = self.sm.last_zxid();
        self.flush()?;
        if let Err(e) = self.store.close() {
            warn!(error = %e, "the closing checkpoint failed: the next start reads the journal back");
        }
        info!(%last_zxid, "engine stopped");
        Ok(())
    }

    /// Adds what is already queued to the round, up to a full batch; true if an input asks
    /// to stop (or `shutdown` already did).
    fn take_queued(
        &mut self,
        inputs: &mut mpsc::Receiver<EngineInput>,
        mut shutdown: bool,
    ) -> Result<bool, EngineError> {
        while !shutdown && !self.batch_is_full() {
            match inputs.try_recv() {
                Ok(input) => shutdown = self.take_input(input)?,
                Err(_) => break,
            }
        }
        Ok(shutdown)
    }

    /// Gives a round of waiters joining a line up to `window` for another input to commit
    /// with (see `line_wait`), and takes it and whatever queued behind it. Readers answer
    /// meanwhile as the state was before the round, as during a commit.
    fn wait_for_company(
        &mut self,
        inputs: &mut mpsc::Receiver<EngineInput>,
        window: Duration,
    ) -> Result<bool, EngineError> {
        self.let_readers_in_before_round();
        let company = spin::poll_until(inputs, Instant::now() + window);
        self.sm.lock();
        match company {
            Some(input) => {
                let shutdown = self.take_input(input)?;
                self.take_queued(inputs, shutdown)
            }
            None => Ok(false),
        }
    }

    /// Takes one input into the round (noting whether it keeps the round a line's joins
    /// only); true if it asks to stop.
    fn take_input(&mut self, input: EngineInput) -> Result<bool, EngineError> {
        let outputs_before = self.outputs.len();
        let request = matches!(input, EngineInput::Request { .. });
        let shutdown = self.handle(input)?;
        self.line_wait.took(request && self.only_joined_behind(outputs_before));
        Ok(shutdown)
    }

    /// Whether the outputs after the first `outputs_before` are a single reply: to a waiter
    /// that joined a line behind others.
    fn only_joined_behind(&self, outputs_before: usize) -> bool {
        matches!(
            self.outputs.get(outputs_before..),
            Some([Output::Reply {
                message: ServerMessage::Reply { result: Ok(Response::CreatedInLine { first: false, .. }), .. },
                ..
            }])
        )
    }

    /// Handles one input; true if it asks to stop.
    fn handle(&mut self, input: EngineInput) -> Result<bool, EngineError> {
        match input {
            EngineInput::Hello { conn, hello, peer, principals, outbox, kill, reply, queued_bytes, link, socket } => {
                let session = SessionId::NONE;
                let link = Conn { outbox, kill: Some(kill), session, queued_bytes, parked: None, link, socket };
                let superuser = principals.iter().any(|p| self.config.superusers.contains(p));
                let identity = Identity { principals, superuser };
                let answer = self.hello(conn, &hello, peer, identity, link);
                self.outputs.push(Output::Hello(reply, answer));
            }
            EngineInput::Request { conn, request } => self.request(conn, request),
            EngineInput::Undecodable { conn, id, error } => {
                let zxid = self.sm.last_zxid();
                let message = ServerMessage::Reply { id, zxid, result: Err(error) };
                self.outputs.push(Output::Reply { conn, message, op: UNDECODABLE, round: self.round });
            }
            EngineInput::Disconnected { conn } => self.disconnected(conn),
            EngineInput::Authenticate { conn, id, principal } => self.authenticate(conn, id, principal),
            EngineInput::Tick => self.tick(),
            EngineInput::Replicate { txns, done } => self.replicate(txns, done),
            EngineInput::InstallSnapshot { snapshot, done } => self.install_snapshot(&snapshot, done)?,
            EngineInput::Peer(report) => self.peer_report(report),
            EngineInput::EpochSeen { epoch, from } => self.epoch_seen(epoch, &from),
            EngineInput::Shutdown => return Ok(true),
            EngineInput::Health { reply } => {
                let _ = reply.send(());
            }
            EngineInput::Status { reply } => {
                let _ = reply.send(self.status());
            }
            EngineInput::BackupDone { conn, id, result } => self.backup_done(conn, id, result),
        }
        Ok(false)
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn hello(&mut self, conn: ConnId, hello: &Hello, peer: Peer, identity: Identity, mut link: Conn) -> HelloReply {
        let refuse = |code, message: String| HelloReply::Refused(ErrorReply::new(code, message));
        if hello.magic != MAGIC || hello.protocol_version != PROTOCOL_VERSION {
            let message = format!("this server speaks Baton protocol {PROTOCOL_VERSION}");
            return refuse(ErrorCode::ProtocolMismatch, message);
        }
        self.epoch_seen(hello.last_zxid_seen.epoch(), "a client");
        if hello.last_zxid_seen > self.sm.last_zxid() {
            let message = format!("client has seen {}, this server has {}", hello.last_zxid_seen, self.sm.last_zxid());
            return refuse(ErrorCode::ServerBehind, message);
        }
        let (session, secret, timeout_ms, resumed) = match hello.session {
            _ if !self.is_primary() => match self.standby_session(&hello.session) {
                Ok(local) => local,
                Err(refusal) => return HelloReply::Refused(refusal),
            },
            SessionRequest::New { .. } if self.storage.is_some() => {
                // Opening a session is a write.
                return HelloReply::Refused(self.storage_refusal());
            }
            SessionRequest::New { timeout_ms, connection_bound } => {
                if connection_bound && !matches!(peer, Peer::Unix { .. }) {
                    let message = "connection-bound sessions need the Unix socket".to_owned();
                    return refuse(ErrorCode::InvalidArgument, message);
                }
                let Ok(secret) = getrandom::u64() else {
                    return refuse(ErrorCode::Internal, "no randomness for a session secret".to_owned());
                };
                let timeout_ms =
                    timeout_ms.clamp(self.config.session_timeout_min_ms, self.config.session_timeout_max_ms);
                let txn = self.sm.prepare_create_session(timeout_ms, connection_bound, secret, wall_ms());
                self.commit(&txn);
                (txn.session_id, secret, timeout_ms, false)
            }
            SessionRequest::Resume { session_id, secret } => {
                let live = self.sm.sessions().get(session_id).map(|s| s.record);
                match live {
                    Some(record) if record.secret == secret && !record.connection_bound => {
                        if let Some(old) = self.attached.remove(&session_id) {
                            let moved = ErrorReply::new(ErrorCode::SessionMoved, "session resumed elsewhere");
                            self.outputs.push(Output::Close(old, moved));
                            self.sm.disconnect(session_id);
                        }
                        (session_id, secret, record.timeout_ms, true)
                    }
                    _ => return refuse(ErrorCode::SessionExpired, format!("session {session_id}")),
                }
            }
        };
        if self.is_primary() {
            let now = self.now_ms();
            self.sm.touch_session(session, now);
        }
        link.session = session;
        self.conns.insert(conn, link);
        self.attached.insert(session, conn);
        let who: Vec<String> = identity.principals.iter().map(ToString::to_string).collect();
        info!(conn, session = %session, resumed, ?peer, ?who, client = %hello.client_name, "session attached");
        self.sm.attach_identity(session, identity);
        HelloReply::Accepted(ServerHello {
            protocol_version: PROTOCOL_VERSION,
            server_name: concat!("batond ", env!("CARGO_PKG_VERSION")).to_owned(),
            role: self.replica.role(),
            epoch: self.sm.epoch(),
            last_zxid: self.sm.last_zxid(),
            session_id: session,
            secret,
            timeout_ms,
            resumed,
        })
    }

    fn request(&mut self, conn: ConnId, request: Request) {
        let Some(link) = self.conns.get_mut(&conn) else { return };
        if let Some(parked) = &mut link.parked {
            // A backup for this connection is running: keep its replies in order.
            parked.push_back(request);
            return;
        }
        let session = link.session;
        if let Op::Backup { path } = &request.op
            && (self.sm.sessions().contains(session) || self.replica.is_local(session))
            && self.sm.check_admin(session).is_ok()
        {
            self.start_backup(conn, request.id, path.clone());
            return;
        }
        let Request { id, op } = request;
        let op_number = op_index(&op);
        let result = if !self.sm.sessions().contains(session) && !self.replica.is_local(session) {
            Err(ErrorReply::new(ErrorCode::SessionExpired, format!("session {session}")))
        } else if self.attached.get(&session) != Some(&conn) {
            // Resumed on another connection; this one is being closed.
            Err(ErrorReply::new(ErrorCode::SessionMoved, format!("session {session}")))
        } else {
            if self.is_primary() {
                let now = self.now_ms();
                self.sm.touch_session(session, now);
            }
            self.execute(conn, session, op)
        };
        let zxid = self.sm.last_zxid();
        let message = ServerMessage::Reply { id, zxid, result };
        self.outputs.push(Output::Reply { conn, message, op: op_number, round: self.round });
        self.close_local_sessions(conn);
    }

    fn execute(&mut self, conn: ConnId, session: SessionId, op: Op) -> Result<Response, ErrorReply> {
        debug!(conn, session = %session, op = op_name(&op), "request");
        if matches!(op, Op::Status | Op::Promote | Op::Backup { .. }) {
            self.sm.check_admin(session)?;
        }
        match op {
            Op::Status => Ok(Response::Status(self.status())),
            Op::Promote => self.promote(),
            op if op.is_write() && !self.is_primary() => {
                if op == Op::CloseSession && self.replica.is_local(session) {
                    return Ok(Response::SessionClosed);
                }
                Err(self.not_primary())
            }
            op if op.is_write() && self.replica.fenced => Err(self.fenced()),
            op if op.is_write() && self.storage.is_some() => Err(self.storage_refusal()),
            Op::CloseSession => {
                if let Some(txn) = self.sm.prepare_close_session(session, wall_ms()) {
                    self.commit(&txn);
                }
                Ok(Response::SessionClosed)
            }
            Op::RestoreWatches { last_zxid, watches } => {
                let (events, reset) = self.sm.restore_watches(session, last_zxid, &watches)?;
                for event in events {
                    self.outputs.push(Output::Message(conn, ServerMessage::Event(event)));
                }
                Ok(Response::WatchesRestored { reset })
            }
            Op::Get { path, watch: false } if self.negative.stale_reads && self.stale.contains_key(&path) => {
                Ok(self.stale[&path].clone())
            }
            op if op.is_write() => match self.sm.prepare_write(session, &op, wall_ms()) {
                Ok(txn) => {
                    if self.negative.stale_reads {
                        self.remember_stale(&txn);
                    }
                    let applied = self.commit(&txn);
                    match write_response(&op, applied.results) {
                        Response::Created { path, stat } if matches!(op, Op::CreateInLine(_)) => {
                            self.sm.join_line(session, path, stat)
                        }
                        response => Ok(response),
                    }
                }
                Err(rejection) => Rejection::into_reply(rejection),
            },
            op => self.sm.read(session, &op),
        }
    }

    /// The `stale-reads` negative control: keeps what the nodes a write changes held before.
    fn remember_stale(&mut self, txn: &Txn) {
        let baton_proto::TxnBody::Write(ops) = &txn.body else { return };
        for op in ops {
            let (baton_proto::TxnOp::Set { path, .. } | baton_proto::TxnOp::Delete { path }) = op else { continue };
            if let Some(node) = self.sm.tree().get(path) {
                self.stale
                    .insert(path.clone(), Response::Data { data: node.data().map(<[u8]>::to_vec), stat: node.stat() });
            }
        }
    }

    /// Applies a prepared txn, queues it for the round's commit and its events for delivery.
    fn commit(&mut self, txn: &Txn) -> Applied {
        let mut applied = self.sm.apply(txn);
        for (session, event) in std::mem::take(&mut applied.events) {
            if let Some(&conn) = self.attached.get(&session) {
                self.outputs.push(Output::Message(conn, ServerMessage::Event(event)));
            }
        }
        self.batch.push(txn, std::mem::take(&mut applied.delta), self.sm.epoch());
        applied
    }

    /// Adds a principal proved after the hello to the identity of the connection's session.
    fn authenticate(&mut self, conn: ConnId, id: u64, principal: Principal) {
        let Some(link) = self.conns.get(&conn) else { return };
        let session = link.session;
        let result = if self.attached.get(&session) == Some(&conn) {
            let mut identity = self.sm.identity(session).clone();
            if !identity.principals.contains(&principal) {
                info!(conn, session = %session, principal = %principal, "authenticated");
                identity.principals.push(principal);
            }
            identity.superuser |= identity.principals.iter().any(|p| self.config.superusers.contains(p));
            let (principals, superuser) = (identity.principals.clone(), identity.superuser);
            self.sm.attach_identity(session, identity);
            Ok(Response::Identity { principals, superuser })
        } else {
            Err(ErrorReply::new(ErrorCode::SessionMoved, format!("session {session}")))
        };
        let message = ServerMessage::Reply { id, zxid: self.sm.last_zxid(), result };
        self.outputs.push(Output::Reply { conn, message, op: AUTHENTICATE, round: self.round });
    }

    fn disconnected(&mut self, conn: ConnId) {
        let Some(gone) = self.conns.remove(&conn) else { return };
        self.replica.forget_local(gone.session);
        if self.attached.get(&gone.session) != Some(&conn) {
            return;
        }
        self.attached.remove(&gone.session);
        self.sm.disconnect(gone.session);
        let connection_bound = self.sm.sessions().get(gone.session).is_some_and(|s| s.record.connection_bound);
        if connection_bound && let Some(txn) = self.sm.prepare_close_session(gone.session, wall_ms()) {
            info!(session = %gone.session, "connection-bound session closed with its connection");
            self.commit(&txn);
        }
    }

    fn tick(&mut self) {
        self.forgive_pause();
        // Here rather than after each commit: the size is a file's metadata, a system call.
        self.metrics.store_bytes(self.store.file_len());
        self.check_sync_standby();
        if self.storage.is_some() {
            // Nothing that writes (expiry, reaping) until the storage takes writes again.
            self.probe_storage();
            return;
        }
        if !self.is_primary() {
            // Only the primary decides expiry and reaping; a standby applies its decisions.
            return;
        }
        let now = self.now_ms();
        // Reads answered on their connections since the last tick kept their sessions alive.
        for (conn, c) in &self.conns {
            if c.link.as_ref().is_some_and(|l| l.take_touched()) && self.attached.get(&c.session) == Some(conn) {
                self.sm.touch_session(c.session, now);
            }
        }
        for session in self.sm.expired_sessions(now) {
            let Some(txn) = self.sm.prepare_close_session(session, wall_ms()) else { continue };
            info!(session = %session, ephemerals = self.sm.sessions().get(session).map_or(0, |s| s.ephemerals.len()), "session expired");
            self.commit(&txn);
            if let Some(conn) = self.attached.remove(&session) {
                let expired = ErrorReply::new(ErrorCode::SessionExpired, format!("session {session} expired"));
                self.outputs.push(Output::Close(conn, expired));
            }
        }
        if let Some(txn) = self.sm.prepare_reap_ttl(wall_ms(), TTL_REAPED_PER_TICK) {
            self.commit(&txn);
        }
        if let Some(txn) = self.sm.prepare_reap_containers(wall_ms(), CONTAINERS_REAPED_PER_TXN) {
            self.commit(&txn);
        }
    }

    /// Ticks come every few tens of milliseconds; a much longer gap means the daemon was
    /// stopped (SIGSTOP, a suspended VM) or stalled, and its clients could not have reached
    /// it meanwhile: the gap is added to every session's deadline rather than expiring them.
    fn forgive_pause(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_tick.replace(now) {
            let gap = now.saturating_duration_since(last);
            if gap > (self.config.tick * 4).max(PAUSE_NOTICED) {
                let missed = gap.saturating_sub(self.config.tick);
                warn!(
                    gap_ms = gap.as_millis() as u64,
                    "the daemon did not run for a while; sessions are not charged for it"
                );
                self.sm.postpone_deadlines(missed.as_millis() as u64);
            }
        }
    }

    fn close_connection_bound_sessions(&mut self, why: &str) {
        let bound: Vec<SessionId> =
            self.sm.sessions().iter().filter(|(_, s)| s.record.connection_bound).map(|(id, _)| id).collect();
        for session in bound {
            if let Some(txn) = self.sm.prepare_close_session(session, wall_ms()) {
                info!(session = %session, why, "closing connection-bound session");
                self.commit(&txn);
            }
        }
    }

    /// Takes the state for a round (see `published`).
    fn lock_state(&mut self) {
        self.sm.lock();
        for session in std::mem::take(&mut self.disconnect_later) {
            self.sm.disconnect(session);
        }
    }

    /// Whether the round's group commit takes no more writes: by count, or by bytes (one
    /// large write passes the bytes alone).
    fn batch_is_full(&self) -> bool {
        self.batch.len() >= self.config.batch_txns_max || self.batch.bytes() >= self.config.batch_bytes_max
    }

    /// Commits the round's txns, then releases its outputs in order. Ends with the state
    /// given back to the readers, as soon as each connection's events and hang-ups are
    /// announced to it (see `published`): a reader does not wait for the engine to finish
    /// handing them out.
    fn flush(&mut self) -> Result<(), EngineError> {
        let committed = !self.batch.is_empty();
        let mut durable = None;
        if committed {
            let batch = std::mem::take(&mut self.batch);
            let started = Instant::now();
            self.let_readers_in_before_round();
            let committed = self.store.commit_durably(&batch);
            self.sm.lock();
            match committed {
                Ok(unapplied) => durable = Some((batch, unapplied)),
                Err(failure) => {
                    let recovered = self.storage_failed(&failure);
                    self.sm.unlock(self.reads_open());
                    return recovered;
                }
            }
            if let Some((batch, _)) = &durable {
                let took = started.elapsed();
                self.line_wait.committed(took);
                self.metrics.commit(batch.len(), took);
                debug!(txns = batch.len(), last_zxid = %batch.last_zxid, "committed");
            }
        }
        self.sm.end_round();
        for done in self.replica.applied.drain(..) {
            let _ = done.send(self.sm.last_zxid());
        }
        let round = std::mem::take(&mut self.outputs);
        let ready = release_order::events_first(self.hold_for_standby(round));
        for output in &ready {
            if let Output::Message(conn, _) | Output::Close(conn, _) = output
                && let Some(link) = self.conns.get(conn).and_then(|c| c.link.as_ref())
            {
                link.announce();
            }
        }
        let gauges = self.gauges();
        self.sm.unlock(self.reads_open());
        let released = Instant::now();
        for output in ready {
            match output {
                Output::Hello(reply, answer) => {
                    // A client that hung up before its answer is noticed by its connection.
                    let _ = reply.send(answer);
                }
                Output::Message(conn, message) => self.deliver(conn, message),
                Output::Reply { conn, message, op, round } => {
                    self.metrics.request(usize::from(op), released.saturating_duration_since(round));
                    self.deliver(conn, message);
                }
                Output::Close(conn, reason) => {
                    if let Some(mut gone) = self.conns.remove(&conn) {
                        gone.kill(reason);
                    }
                }
            }
        }
        // The round is durable and answered; now redb takes it (its readers: the standby's
        // catch-up, backups), and then the standby's stream.
        if let Some((batch, unapplied)) = durable {
            if let Err(failure) = self.store.apply_journaled(unapplied) {
                self.lock_state();
                let recovered = self.storage_failed(&failure);
                self.sm.unlock(self.reads_open());
                return recovered;
            }
            // No standby listening is fine: it catches up from the stored log.
            let _ = self.replica.feed.send(Arc::new(batch.txns));
        }
        self.metrics.publish(&gauges);
        Ok(())
    }

    /// Lets readers in while the round waits (for its sync, or for company), when they may
    /// read at all: they answer as the state was before the round, which is durable and
    /// holds every write acknowledged so far. `Published::lock` takes the state back.
    #[allow(
        clippy::inline_always,
        reason = "its callers' code is laid out with an idle daemon's (idle-code.ld); a function of its own was faulted in apart, about 0.2 MiB of idle RSS"
    )]
    #[inline(always)]
    fn let_readers_in_before_round(&mut self) {
        if self.reads_open() && self.sm.readable_before_round() {
            self.sm.unlock_while_committing();
        }
    }

    /// Whether connections may answer plain reads from the state after this round: only a
    /// primary's state, and only when every reply and event of it has been released (with
    /// a synchronous standby, outputs wait for its acknowledgement while the state is ahead).
    fn reads_open(&self) -> bool {
        self.is_primary() && self.replica.nothing_held() && !self.negative.stale_reads
    }

    /// Writes `message` to `conn`'s socket, or hands it to the connection's outbox when the
    /// engine may not (see `shared_socket`). Runs with the state given back to the readers.
    fn deliver(&mut self, conn: ConnId, message: ServerMessage) {
        let Some(target) = self.conns.get(&conn) else { return };
        let weight = crate::wire::weight(&message);
        // Encoded only when a write looks possible: otherwise the writer encodes it anyway.
        if let Some(socket) = target.socket.as_ref().filter(|s| weight <= s.write_max() && s.looks_free()) {
            self.frame.clear();
            // Unencodable (too large for a frame): the writer turns it into an error reply.
            if baton_proto::frame::encode(&message, u32::MAX, &mut self.frame).is_ok() {
                let reply = matches!(message, ServerMessage::Reply { .. });
                if socket.engine_write(&self.frame, reply) != EngineWrite::NotWritten {
                    if !reply && let Some(link) = &target.link {
                        link.taken(1);
                    }
                    return;
                }
            }
        }
        let queued = target.queued_bytes.fetch_add(weight, std::sync::atomic::Ordering::AcqRel);
        // A closed outbox is no reason to act: the connection is going, and says so with
        // `Disconnected`.
        let full = queued + weight > self.config.outbound_bytes_max
            || matches!(target.outbox.try_send(Box::new(message)), Err(mpsc::error::TrySendError::Full(_)));
        if !full {
            return;
        }
        warn!(conn, session = %target.session, "client too slow to read its replies and events; disconnecting");
        let session = target.session;
        if self.attached.get(&session) == Some(&conn) {
            self.attached.remove(&session);
            self.disconnect_later.push(session);
        }
        if let Some(mut gone) = self.conns.remove(&conn) {
            gone.kill(ErrorReply::new(ErrorCode::SlowConsumer, "outbound queue full"));
        }
    }
}

/// A successful write's reply, from its per-op results. The txn may hold more ops than the
/// request (deletes of containers it emptied); those are the server's, not the client's.
fn write_response(op: &Op, mut results: Vec<OpResult>) -> Response {
    if let Op::Multi(ops) = op {
        results.truncate(ops.len());
        return Response::Multi(results);
    }
    results.truncate(1);
    match results.pop() {
        Some(OpResult::Created { path, stat }) => Response::Created { path, stat },
        Some(OpResult::Set(stat)) if matches!(op, Op::SetAcl { .. }) => Response::AclSet(stat),
        Some(OpResult::Set(stat)) => Response::Set(stat),
        Some(OpResult::Deleted) => Response::Deleted,
        other => panic!("a single {} produced {other:?}", op_name(op)),
    }
}

/// A gap between ticks longer than this (or four ticks) is a pause of the daemon, not of
/// its clients.
const PAUSE_NOTICED: std::time::Duration = std::time::Duration::from_millis(500);

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Operation names, as logged and as the `op` label of the request metrics; `op_index`
/// numbers them.
pub const OP_NAMES: [&str; 27] = [
    "ping",
    "create",
    "delete",
    "set",
    "get",
    "exists",
    "children",
    "multi",
    "sync",
    "ephemerals",
    "add_watch",
    "remove_watches",
    "restore_watches",
    "close_session",
    "status",
    "promote",
    "backup",
    "get_acl",
    "set_acl",
    "who_am_i",
    "undecodable",
    "authenticate",
    "match_watches",
    "count_descendants",
    "multi_read",
    "turn",
    "create_in_line",
];

/// A request whose op could not be decoded, in `OP_NAMES`.
const UNDECODABLE: u8 = 20;
/// A principal proved after the hello, in `OP_NAMES`.
const AUTHENTICATE: u8 = 21;

pub(crate) fn op_index(op: &Op) -> u8 {
    match op {
        Op::Ping => 0,
        Op::Create(_) => 1,
        Op::Delete { .. } => 2,
        Op::Set { .. } => 3,
        Op::Get { .. } => 4,
        Op::Exists { .. } => 5,
        Op::Children { .. } => 6,
        Op::Multi(_) => 7,
        Op::Sync { .. } => 8,
        Op::Ephemerals { .. } => 9,
        Op::AddWatch { .. } => 10,
        Op::RemoveWatches { .. } => 11,
        Op::RestoreWatches { .. } => 12,
        Op::CloseSession => 13,
        Op::Status => 14,
        Op::Promote => 15,
        Op::Backup { .. } => 16,
        Op::GetAcl { .. } => 17,
        Op::SetAcl { .. } => 18,
        Op::WhoAmI => 19,
        Op::MatchWatches { .. } => 22,
        Op::CountDescendants { .. } => 23,
        Op::MultiRead(_) => 24,
        Op::Turn { .. } => 25,
        Op::CreateInLine(_) => 26,
    }
}

fn op_name(op: &Op) -> &'static str {
    OP_NAMES[usize::from(op_index(op))]
}
