//! [`Client`]: the public, cheaply cloned handle to a session. Each call becomes a command to
//! the session task ([`crate::session`]) and waits for its reply; nothing here touches the
//! connection.

use crate::addr::{Endpoint, parse_endpoints};
use crate::command::{Command, unexpected};
use crate::connection::{ConnError, Connection};
use crate::error::{Error, Result};
use crate::options::{ClientBuilder, CreateOptions, Options};
use crate::session::{SessionTask, TaskParts};
use crate::state::{SessionInfo, SessionState};
use crate::watch::{OneshotKind, PersistentSender, WatchRequest};
use crate::watcher::{OneshotWatcher, PersistentWatcher};
use baton_proto::message::StatusReport;
use baton_proto::{
    AclEntry, CreateRequest, Hello, MAGIC, MultiOp, Op, OpResult, PROTOCOL_VERSION, PersistentWatchMode, Principal,
    Response, ServerHello, SessionId, SessionRequest, Stat, Zxid,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// A handle to a Baton session.
///
/// Cloning is cheap; all clones share one session, one connection and one background task.
/// The session lives while at least one handle does: when the last one is dropped the task
/// closes the session (deleting its ephemerals) and ends every watcher with
/// [`Error::Closed`]. Call [`Client::close`] to close it explicitly and know the outcome.
///
/// Requests from one handle take effect in the order they are issued, and may be pipelined
/// by issuing them concurrently. A lost connection is repaired in the background; meanwhile
/// new requests wait, and those in flight fail with [`Error::ConnectionLoss`]. There is no
/// per-request timeout: wrap a call in `tokio::time::timeout` (every call is cancel-safe).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<SessionState>,
    info: Arc<SessionInfo>,
    gc: Arc<Notify>,
    watch_queue_len: usize,
}

impl Client {
    /// A builder for a client with non-default options.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Connects with the default options (see [`ClientBuilder`]) to `addrs`: a Unix socket
    /// path (anything containing `/` or no `:`), `HOST:PORT`, or a comma-separated list of
    /// them, tried in order.
    ///
    /// # Errors
    /// See [`ClientBuilder::connect`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn connect(addrs: &str) -> Result<Client> {
        ClientBuilder::new().connect(addrs).await
    }

    pub(crate) async fn connect_with(options: Options, addrs: &str) -> Result<Client> {
        let endpoints = parse_endpoints(addrs)?;
        if options.connection_bound && !endpoints.iter().all(Endpoint::is_unix) {
            return Err(Error::InvalidArgument("a connection-bound session needs a Unix socket address".to_owned()));
        }
        let hello = Hello {
            magic: MAGIC,
            protocol_version: PROTOCOL_VERSION,
            client_name: options.client_name.clone(),
            session: SessionRequest::New {
                timeout_ms: u32::try_from(options.session_timeout.as_millis()).unwrap_or(u32::MAX),
                connection_bound: options.connection_bound,
            },
            last_zxid_seen: Zxid::ZERO,
            token: None,
        };
        let mut last_error = None;
        for endpoint in &endpoints {
            let started = Instant::now();
            let opened = Connection::open(
                endpoint,
                &hello,
                options.credentials(),
                options.frame_len_max,
                options.connect_timeout,
            )
            .await;
            match opened {
                Ok((conn, server)) => {
                    return Ok(Client::start(options, endpoints, conn, &server, started));
                }
                Err(e) => {
                    tracing::debug!(peer = %endpoint, error = %e, "connect attempt failed");
                    last_error = Some(connect_error(endpoint, e));
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::InvalidAddress { addr: addrs.to_owned(), reason: "no address given".to_owned() }))
    }

    /// Spawns the session task for a fresh session.
    fn start(
        options: Options,
        endpoints: Vec<Endpoint>,
        conn: Connection,
        server: &ServerHello,
        started: Instant,
    ) -> Client {
        let timeout = Duration::from_millis(u64::from(server.timeout_ms));
        let info = Arc::new(SessionInfo::new(server.session_id, timeout, server.last_zxid));
        let (commands_tx, commands) = mpsc::channel(options.requests_in_flight_max);
        let (state_tx, state) = watch::channel(SessionState::Connected);
        let gc = Arc::new(Notify::new());
        let watch_queue_len = options.watch_queue_len;
        tracing::info!(
            session = %server.session_id,
            peer = conn.peer(),
            server = %server.server_name,
            role = ?server.role,
            timeout_ms = server.timeout_ms,
            "session started"
        );
        let span = tracing::info_span!("session", id = %server.session_id);
        let parts = TaskParts { options, endpoints, commands, state: state_tx, info: info.clone(), gc: gc.clone() };
        let task = SessionTask::new(parts, server, started);
        tokio::spawn(task.run(conn).instrument(span));
        Client { inner: Arc::new(Inner { commands: commands_tx, state, info, gc, watch_queue_len }) }
    }

    /// This session's id.
    pub fn session_id(&self) -> SessionId {
        self.inner.info.session_id()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.info.timeout()
    }

    /// A receiver of the session's state: `changed().await` on it to follow transitions.
    pub fn session_state(&self) -> watch::Receiver<SessionState> {
        self.inner.state.clone()
    }

    /// The newest zxid this client has seen (in replies, events and handshakes).
    pub fn last_zxid(&self) -> Zxid {
        self.inner.info.last_zxid()
    }

    /// Sends `op` and waits for its reply, registering `watch` if it succeeds.
    async fn call(&self, op: Op, watch: Option<WatchRequest>) -> Result<Response> {
        let (reply, replied) = oneshot::channel();
        let command = Command { op, watch, reply };
        if self.inner.commands.send(command).await.is_err() {
            return Err(self.ended());
        }
        replied.await.unwrap_or_else(|_| Err(self.ended()))
    }

    /// The error for a session whose task has stopped.
    fn ended(&self) -> Error {
        match *self.inner.state.borrow() {
            SessionState::Expired => Error::SessionExpired,
            _ => Error::Closed,
        }
    }

    /// Creates a node and returns its actual path (which differs for a sequential node) and
    /// stat.
    ///
    /// # Errors
    /// `NodeExists`, `NoNode` (no parent), `NoChildrenForEphemerals`, `InvalidPath`,
    /// `InvalidArgument`, `TooLarge`, plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the connection is unaffected, but a write already sent may take effect.
    pub async fn create(&self, path: &str, data: &[u8], options: CreateOptions) -> Result<(String, Stat)> {
        self.create_with_acl(path, data, options, &[]).await
    }

    /// As [`Client::create`], with the node's ACL (empty: the server's default ACL, by
    /// default only the creator's). [`Principal::Creator`](baton_proto::Principal::Creator)
    /// entries become this client's identity.
    ///
    /// # Errors
    /// As [`Client::create`]; `NoAuth` without create permission on the parent.
    ///
    /// # Cancellation safety
    /// As [`Client::create`].
    pub async fn create_with_acl(
        &self,
        path: &str,
        data: &[u8],
        options: CreateOptions,
        acl: &[AclEntry],
    ) -> Result<(String, Stat)> {
        let op = Op::Create(CreateRequest {
            path: path.to_owned(),
            data: Some(data.to_vec()),
            kind: options.kind,
            sequential: options.sequential,
            acl: acl.to_vec(),
        });
        match self.call(op, None).await? {
            Response::Created { path, stat } => Ok((path, stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates `path` holding `data`, and any missing ancestors (persistent and empty), unless
    /// it exists; returns whether this call created it. Nodes made concurrently by others are
    /// left alone.
    ///
    /// # Errors
    /// As [`Client::create`], except `NodeExists`; `NoNode` if an ancestor is deleted meanwhile.
    ///
    /// # Cancellation safety
    /// Cancel-safe; the nodes created before the cancellation stay.
    pub async fn create_path(&self, path: &str, data: &[u8]) -> Result<bool> {
        if path == "/" || self.exists(path).await?.is_some() {
            return Ok(false);
        }
        let mut chain: Vec<&str> = baton_proto::path::self_and_ancestors(path).filter(|p| *p != "/").collect();
        chain.reverse();
        let mut created = false;
        for (i, node) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            match self.create(node, if last { data } else { &[] }, CreateOptions::persistent()).await {
                Ok(_) => created = last,
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }

    /// A node's data and stat.
    ///
    /// # Errors
    /// `NoNode`, plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        let op = Op::Get { path: path.to_owned(), watch: false };
        match self.call(op, None).await? {
            Response::Data { data, stat } => Ok((data.unwrap_or_default(), stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// A node's data and stat, and a watcher that fires when its data changes or it is
    /// deleted.
    ///
    /// # Errors
    /// `NoNode` (and no watch is left), plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn get_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatcher)> {
        let (watch, watcher) = self.oneshot_watch(path, OneshotKind::Data);
        let op = Op::Get { path: path.to_owned(), watch: true };
        match self.call(op, Some(watch)).await {
            Ok(Response::Data { data, stat }) => Ok((data.unwrap_or_default(), stat, watcher)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(watcher.disarm(e)),
        }
    }

    /// A node's stat, or `None` if it does not exist.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        let op = Op::Exists { path: path.to_owned(), watch: false };
        match self.call(op, None).await? {
            Response::Exists(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// A node's stat (or `None`), and a watcher that fires when it is created, deleted or
    /// its data changes. The watch is left whether or not the node exists.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatcher)> {
        let (watch, watcher) = self.oneshot_watch(path, OneshotKind::Exists);
        let op = Op::Exists { path: path.to_owned(), watch: true };
        match self.call(op, Some(watch)).await {
            Ok(Response::Exists(stat)) => Ok((stat, watcher)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(watcher.disarm(e)),
        }
    }

    /// Whether the node at `path` is first in line among its siblings — the child with the
    /// lowest 10-digit sequential suffix, the order of the queueing recipes and of
    /// [`MultiOp::HoldsLock`] — and, if it waits, a watcher for its turn. The watcher fires
    /// with `Turn` once the node is first, `Deleted` if the node goes, or `WatchReset` after
    /// a reconnect (ask again). Only the waiter a departure makes first is told, whoever left
    /// the line, so a queue needs one watch per waiter and one wake-up per hand-off.
    ///
    /// # Errors
    /// `NoAuth` without read permission on the parent; `InvalidArgument` for the root or a
    /// node without a 10-digit sequential suffix (it is in no line);
    /// `Unimplemented` from a server older than turn watches; plus the connection and
    /// session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn turn_and_watch(&self, path: &str) -> Result<Turn> {
        let (watch, watcher) = self.oneshot_watch(path, OneshotKind::Turn);
        match self.call(Op::Turn { path: path.to_owned() }, Some(watch)).await {
            Ok(Response::Turn { stat: None, .. }) => {
                watcher.discard();
                Ok(Turn::Gone)
            }
            Ok(Response::Turn { stat: Some(stat), first: true }) => {
                watcher.discard();
                Ok(Turn::First(stat))
            }
            Ok(Response::Turn { stat: Some(stat), first: false }) => Ok(Turn::Waiting(stat, watcher)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(watcher.disarm(e)),
        }
    }

    /// Joins a line in one round trip: creates a sequential node as [`Client::create`] does
    /// (`options` must be sequential), and tells where it stands as
    /// [`Client::turn_and_watch`] does. Returns the node's path and [`Turn::First`] or
    /// [`Turn::Waiting`] with the watcher for its turn.
    ///
    /// # Errors
    /// As [`Client::create`]; `InvalidArgument` if `options` are not sequential; `NoAuth`
    /// without read permission on the parent; `LimitExceeded` if the session holds the most
    /// watches allowed; `Unimplemented` from a server older than this request. Nothing is
    /// created when it fails.
    ///
    /// # Cancellation safety
    /// As [`Client::create`]; a watch set by a cancelled call is removed again.
    pub async fn create_in_line(&self, path: &str, data: &[u8], options: CreateOptions) -> Result<(String, Turn)> {
        let (sender, receiver) = oneshot::channel();
        let op = Op::CreateInLine(CreateRequest {
            path: path.to_owned(),
            data: Some(data.to_vec()),
            kind: options.kind,
            sequential: options.sequential,
            acl: Vec::new(),
        });
        match self.call(op, Some(WatchRequest::TurnOfCreated { sender })).await? {
            Response::CreatedInLine { path, stat, first: true } => Ok((path, Turn::First(stat))),
            Response::CreatedInLine { path, stat, first: false } => {
                let watcher = OneshotWatcher::new(path.clone(), OneshotKind::Turn, receiver, self.inner.gc.clone());
                Ok((path, Turn::Waiting(stat, watcher)))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The names of a node's children, sorted.
    ///
    /// # Errors
    /// `NoNode`, `TooLarge` (more children than the server returns), plus the connection and
    /// session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn children(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.children_op(path, false, None).await?.0)
    }

    /// The names of a node's children (sorted) and the node's own stat.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn children_and_stat(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.children_op(path, false, None).await
    }

    /// A node's children with their stats, sorted by name.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn children_with_stats(&self, path: &str) -> Result<Vec<(String, Stat)>> {
        let op = Op::Children { path: path.to_owned(), watch: false, with_stats: true };
        match self.call(op, None).await? {
            Response::ChildrenWithStats { children, .. } => Ok(children),
            other => Err(unexpected(&other)),
        }
    }

    /// A node's children (sorted), and a watcher that fires when a child is created or
    /// deleted, or the node is deleted.
    ///
    /// # Errors
    /// `NoNode` (and no watch is left), plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, OneshotWatcher)> {
        let (watch, watcher) = self.oneshot_watch(path, OneshotKind::Children);
        match self.children_op(path, true, Some(watch)).await {
            Ok((children, _)) => Ok((children, watcher)),
            Err(e) => Err(watcher.disarm(e)),
        }
    }

    async fn children_op(&self, path: &str, watch: bool, request: Option<WatchRequest>) -> Result<(Vec<String>, Stat)> {
        let op = Op::Children { path: path.to_owned(), watch, with_stats: false };
        match self.call(op, request).await? {
            Response::Children { children, stat } => Ok((children, stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces a node's data if its version is `version` (`None`: whatever it is), and
    /// returns the new stat.
    ///
    /// # Errors
    /// `NoNode`, `BadVersion`, `TooLarge`, plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the connection is unaffected, but a write already sent may take effect.
    pub async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        let op = Op::Set { path: path.to_owned(), data: Some(data.to_vec()), version };
        match self.call(op, None).await? {
            Response::Set(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes a node if its version is `version` (`None`: whatever it is).
    ///
    /// # Errors
    /// `NoNode`, `BadVersion`, `NotEmpty`, plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the connection is unaffected, but a write already sent may take effect.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        let op = Op::Delete { path: path.to_owned(), version };
        match self.call(op, None).await? {
            Response::Deleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Applies `ops` all or nothing, returning one result per op.
    ///
    /// # Errors
    /// [`Error::MultiFailed`] names the failing op and carries every op's result; plus the
    /// connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the connection is unaffected, but a write already sent may take effect.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<OpResult>> {
        match self.call(Op::Multi(ops), None).await? {
            Response::Multi(results) => Error::from_multi(results),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits until every write committed before this call is visible to this session, and
    /// returns the zxid reached.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn sync(&self, path: &str) -> Result<Zxid> {
        let op = Op::Sync { path: path.to_owned() };
        match self.call(op, None).await? {
            Response::Synced { zxid } => Ok(zxid),
            other => Err(unexpected(&other)),
        }
    }

    /// The server's role, epoch, position, replication peer and counts.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn status(&self) -> Result<StatusReport> {
        match self.call(Op::Status, None).await? {
            Response::Status(report) => Ok(report),
            other => Err(unexpected(&other)),
        }
    }

    /// Promotes the standby this client is connected to: it becomes a writable primary with
    /// a new epoch. Returns `(epoch, last_zxid, primary_zxid, behind_txns)`: how far it had
    /// applied, and how far it knew the old primary to be.
    ///
    /// # Errors
    /// `InvalidArgument` if the server is already a primary.
    ///
    /// # Cancellation safety
    /// Not cancel-safe in effect: once sent, the promotion happens whether or not the reply
    /// is awaited.
    pub async fn promote(&self) -> Result<Promotion> {
        match self.call(Op::Promote, None).await? {
            Response::Promoted { epoch, last_zxid, primary_zxid, behind_txns } => {
                Ok(Promotion { epoch, last_zxid, primary_zxid, behind_txns })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Has the server write a consistent copy of its store to `path` on the server's host
    /// (a file that must not exist). Commits go on while it is written. Returns the zxid the
    /// copy holds, its node count and its size in bytes.
    ///
    /// # Cancellation safety
    /// Cancel-safe; the backup completes on the server either way.
    pub async fn backup(&self, path: &str) -> Result<(Zxid, u64, u64)> {
        match self.call(Op::Backup { path: path.to_owned() }, None).await? {
            Response::BackedUp { last_zxid, nodes, bytes } => Ok((last_zxid, nodes, bytes)),
            other => Err(unexpected(&other)),
        }
    }

    /// A node's ACL and stat (`stat.aversion` counts its changes).
    ///
    /// # Errors
    /// `NoNode`; `NoAuth` without read or admin permission on the node.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<AclEntry>, Stat)> {
        match self.call(Op::GetAcl { path: path.to_owned() }, None).await? {
            Response::Acl { acl, stat } => Ok((acl, stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces a node's ACL; with `version`, only if its `aversion` is that. Returns the
    /// new stat.
    ///
    /// # Errors
    /// `NoNode`, `BadVersion`, `InvalidArgument` (an empty ACL, or `creator` for a client
    /// with no identity); `NoAuth` without admin permission on the node.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the connection is unaffected, but a write already sent may take effect.
    pub async fn set_acl(&self, path: &str, acl: &[AclEntry], version: Option<i32>) -> Result<Stat> {
        match self.call(Op::SetAcl { path: path.to_owned(), acl: acl.to_vec(), version }, None).await? {
            Response::AclSet(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// Who the server takes this client to be: its principals besides `anyone` (uid and gid
    /// on the Unix socket; a token or certificate name), and whether they make it a superuser.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn who_am_i(&self) -> Result<(Vec<Principal>, bool)> {
        match self.call(Op::WhoAmI, None).await? {
            Response::Identity { principals, superuser } => Ok((principals, superuser)),
            other => Err(unexpected(&other)),
        }
    }

    /// The paths of the ephemeral nodes owned by `session` (`None`: this session).
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn ephemerals(&self, session: Option<SessionId>) -> Result<Vec<String>> {
        let op = Op::Ephemerals { session_id: session };
        match self.call(op, None).await? {
            Response::Ephemerals(paths) => Ok(paths),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches `path` until the watcher is dropped: every create, delete, data change and
    /// child-list change of the node itself, or, if `recursive`, every create, delete and
    /// data change of the node and all its descendants. The node need not exist.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn watch(&self, path: &str, recursive: bool) -> Result<PersistentWatcher> {
        let mode = if recursive { PersistentWatchMode::Recursive } else { PersistentWatchMode::Persistent };
        let (events, receiver) = mpsc::channel(self.inner.watch_queue_len);
        let end = Arc::new(OnceLock::new());
        let watcher = PersistentWatcher::new(path.to_owned(), mode, receiver, end.clone(), self.inner.gc.clone());
        let request =
            WatchRequest::Persistent { mode, path: path.to_owned(), sender: PersistentSender { events, end } };
        let op = Op::AddWatch { path: path.to_owned(), mode };
        match self.call(op, Some(request)).await? {
            Response::WatchAdded => Ok(watcher),
            other => Err(unexpected(&other)),
        }
    }

    /// Closes the session now: its ephemerals are deleted and every watcher of every handle
    /// ends with [`Error::Closed`]; later calls on any handle fail with [`Error::Closed`].
    /// Requests issued before it are answered first. Closing a session that is already
    /// closed or expired succeeds. While the session is suspended, this waits for the
    /// reconnection (at most until the session may have expired): bound it with
    /// `tokio::time::timeout` if that is too long.
    ///
    /// # Errors
    /// [`Error::ConnectionLoss`] if the connection dropped before the server confirmed: the
    /// client is closed, but the server keeps the session (and its ephemerals) until it
    /// times out.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though the close may still happen once sent.
    pub async fn close(&self) -> Result<()> {
        match self.call(Op::CloseSession, None).await {
            Ok(_) | Err(Error::Closed | Error::SessionExpired) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A one-shot watch request and the watcher that receives it.
    fn oneshot_watch(&self, path: &str, kind: OneshotKind) -> (WatchRequest, OneshotWatcher) {
        let (sender, receiver) = oneshot::channel();
        let watcher = OneshotWatcher::new(path.to_owned(), kind, receiver, self.inner.gc.clone());
        let request = WatchRequest::Oneshot { kind, path: path.to_owned(), sender };
        (request, watcher)
    }
}

/// Where a node stands in its line ([`Client::turn_and_watch`]).
#[derive(Debug)]
pub enum Turn {
    /// No such node.
    Gone,
    /// First in line: its stat.
    First(Stat),
    /// Waiting: its stat, and the watcher for its turn.
    Waiting(Stat, OneshotWatcher),
}

/// The error for a failed first connection to `endpoint`.
fn connect_error(endpoint: &Endpoint, e: ConnError) -> Error {
    let source = match e {
        ConnError::Refused(reply) => return Error::from_reply(reply),
        ConnError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    };
    Error::Connect { addr: endpoint.to_string(), source }
}

/// The outcome of [`Client::promote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The new epoch.
    pub epoch: u32,
    /// The last zxid the standby had applied when promoted.
    pub last_zxid: Zxid,
    /// The newest zxid it had heard the old primary announce, if it ever connected.
    pub primary_zxid: Option<Zxid>,
    /// How many transactions it knew itself to be behind (same epoch only).
    pub behind_txns: Option<u64>,
}
