//! Wire messages.
//!
//! A connection starts with the client's [`Hello`] and the server's [`HelloReply`]; then the
//! client sends [`Request`]s and the server sends [`ServerMessage`]s: replies (echoing the
//! request id, in request order per connection), watch events pushed unsolicited, and a final
//! `Closing` when the server ends the connection. All enums are append-only.

use crate::acl::{AclEntry, Principal};
use crate::error::{ErrorCode, ErrorReply};
use crate::ids::{SessionId, Zxid};
use crate::stat::Stat;
use serde::{Deserialize, Serialize};

/// The first four bytes of every hello: "BATN".
pub const MAGIC: u32 = 0x4241_544e;
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// The client's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: u32,
    pub protocol_version: u16,
    /// Free text for logs: program name and version.
    pub client_name: String,
    pub session: SessionRequest,
    /// The newest zxid this client has seen; a server behind it refuses (monotonic reads).
    pub last_zxid_seen: Zxid,
    /// Authenticate with a token: the server answers [`HelloReply::Challenge`], the client
    /// sends a [`crate::token::TokenProof`], then the server accepts or refuses.
    pub token: Option<crate::token::TokenHello>,
}

/// Start a new session or resume one after a dropped connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRequest {
    New {
        /// Requested timeout; the server bounds it and answers with the negotiated value.
        timeout_ms: u32,
        /// End the session the moment this connection closes (Unix socket clients only).
        connection_bound: bool,
    },
    Resume {
        session_id: SessionId,
        secret: u64,
    },
}

/// The server's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Accepted(ServerHello),
    Refused(ErrorReply),
    /// Prove the token the hello named (see [`crate::token`]).
    Challenge(crate::token::TokenChallenge),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    pub protocol_version: u16,
    /// Server software and version, for logs.
    pub server_name: String,
    pub role: Role,
    pub epoch: u32,
    /// The newest committed zxid.
    pub last_zxid: Zxid,
    pub session_id: SessionId,
    pub secret: u64,
    /// The negotiated session timeout.
    pub timeout_ms: u32,
    /// Whether an existing session was resumed.
    pub resumed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Primary,
    Standby,
}

/// One request. Encoded as the id followed by the op, so a server that cannot decode the op
/// (an unknown variant from a newer client) still knows which id to answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub op: Op,
}

/// Why a request frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestDecodeError {
    /// The request id, when at least that much could be read.
    pub id: Option<u64>,
    /// The op is a variant this build does not know (a newer client): answer
    /// `Unimplemented` rather than `BadRequest`.
    pub unknown_op: bool,
    pub reason: String,
}

impl Request {
    /// Decodes a request frame's payload, keeping the id when only the op is unreadable.
    pub fn decode(payload: &[u8]) -> Result<Request, RequestDecodeError> {
        let (id, rest) = postcard::take_from_bytes::<u64>(payload).map_err(|e| RequestDecodeError {
            id: None,
            unknown_op: false,
            reason: e.to_string(),
        })?;
        let unknown_op = postcard::take_from_bytes::<u32>(rest).is_ok_and(|(index, _)| index >= Op::VARIANTS);
        let (op, trailing) = postcard::take_from_bytes::<Op>(rest).map_err(|e| RequestDecodeError {
            id: Some(id),
            unknown_op,
            reason: e.to_string(),
        })?;
        if !trailing.is_empty() {
            return Err(RequestDecodeError {
                id: Some(id),
                unknown_op: false,
                reason: format!("{} trailing bytes after the request", trailing.len()),
            });
        }
        Ok(Request { id, op })
    }
}

/// What a node is, for `create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateKind {
    Persistent,
    /// Deleted when its session ends; may not have children.
    Ephemeral,
    /// Deleted automatically once its last child is gone.
    Container,
    /// A persistent node deleted once it is childless and unmodified for `ttl_ms`.
    Ttl {
        ttl_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub path: String,
    /// `None` is ZooKeeper's null data: distinct from empty for its clients, and read as
    /// empty through this crate's client.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    pub kind: CreateKind,
    /// Append the parent's `cversion` as a 10-digit suffix to the name.
    pub sequential: bool,
    /// The new node's ACL; empty: the server's default ACL.
    pub acl: Vec<AclEntry>,
}

/// Kinds of watch that stay registered after they fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PersistentWatchMode {
    /// Every change to the node itself and its list of children.
    Persistent,
    /// Every create, delete and data change of the node and all its descendants.
    Recursive,
}

/// The watches a resumed session re-establishes, with the zxid the client had reached, so the
/// server can replay what happened meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSet {
    pub data: Vec<String>,
    pub exists: Vec<String>,
    pub children: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

impl WatchSet {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exists.is_empty()
            && self.children.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len() + self.exists.len() + self.children.len() + self.persistent.len() + self.recursive.len()
    }
}

/// One operation inside a `multi`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiOp {
    /// The node exists at `version` (-1: at any version, as in ZooKeeper).
    Check {
        path: String,
        version: i32,
    },
    Create(CreateRequest),
    Set {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    /// Fencing: the multi goes through only while fencing `token` still holds the lock whose
    /// directory is `lock` — that is, while the lock's first waiter (the child with the lowest
    /// 10-digit sequential suffix) was created at zxid `token`. Fails with `LockLost`.
    HoldsLock {
        lock: String,
        token: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Keeps the session alive.
    Ping,
    Create(CreateRequest),
    /// `version: None` deletes unconditionally.
    Delete {
        path: String,
        version: Option<i32>,
    },
    /// `version: None` sets unconditionally.
    Set {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        version: Option<i32>,
    },
    /// With `watch`, leaves a one-shot data watch (the node must exist).
    Get {
        path: String,
        watch: bool,
    },
    /// With `watch`, leaves a one-shot watch that fires on create, delete or data change.
    Exists {
        path: String,
        watch: bool,
    },
    /// With `watch`, leaves a one-shot watch on the list of children.
    Children {
        path: String,
        watch: bool,
        with_stats: bool,
    },
    /// All or nothing; one result per op.
    Multi(Vec<MultiOp>),
    /// Answers once every write committed before it is visible to this session.
    Sync {
        path: String,
    },
    /// The ephemeral nodes of a session (`None`: the caller's own).
    Ephemerals {
        session_id: Option<SessionId>,
    },
    AddWatch {
        path: String,
        mode: PersistentWatchMode,
    },
    /// Removes every watch of this session on `path`.
    RemoveWatches {
        path: String,
    },
    /// After a resume: re-register `watches` and replay the changes after `last_zxid`.
    RestoreWatches {
        last_zxid: Zxid,
        watches: WatchSet,
    },
    /// Ends the session now, deleting its ephemerals.
    CloseSession,
    /// The server's role, position and health ([`Response::Status`]).
    Status,
    /// Makes a standby a writable primary with a new epoch ([`Response::Promoted`]).
    Promote,
    /// Writes a consistent copy of the store to `path` on the server's host, a file that
    /// must not exist yet; writes go on meanwhile ([`Response::BackedUp`]).
    Backup {
        path: String,
    },
    /// A node's ACL and stat ([`Response::Acl`]); needs read or admin permission.
    GetAcl {
        path: String,
    },
    /// Replaces a node's ACL (`version: None` unconditionally, else the expected `aversion`);
    /// needs admin permission. `creator` entries become the caller's identity.
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
        version: Option<i32>,
    },
    /// Who the server takes this connection to be ([`Response::Identity`]).
    WhoAmI,
    /// This session's watches of the given kinds on `path` (ZooKeeper's checkWatches), and
    /// with `remove` drops them (removeWatches): [`Response::WatchesRemoved`], or `NoWatcher`
    /// if there is none.
    MatchWatches {
        path: String,
        kinds: Vec<WatchType>,
        remove: bool,
    },
    /// How many nodes lie under `path`, at any depth ([`Response::Descendants`]); needs read
    /// permission on `path`.
    CountDescendants {
        path: String,
    },
    /// Reads answered together, at one point in the history ([`Response::MultiRead`], one
    /// result per op): only `Get` and `Children`, without watches.
    MultiRead(Vec<Op>),
    /// Whether the node at `path` is first in line among its siblings: the child with the
    /// lowest 10-digit sequential suffix, the order `HoldsLock` uses ([`Response::Turn`]).
    /// If it exists and is not first, leaves a one-shot *turn* watch on it that fires `Turn`
    /// once it is first (only the new first waiter is told, whoever left the line), or
    /// `Deleted` if the node goes first. Needs read permission on the parent, as a listing;
    /// a node without a sequential suffix is in no line (`InvalidArgument`).
    Turn {
        path: String,
    },
    /// A `create` of a sequential node and, in the same request, a [`Op::Turn`] on the node
    /// it made ([`Response::CreatedInLine`]): joining a line costs one round trip. If the new
    /// node is not first, a turn watch is left on it. `sequential` must be set, and the
    /// session needs read permission on the parent (as for `Turn`) and room for one more
    /// watch; without them nothing is created.
    CreateInLine(CreateRequest),
}

/// A kind of watch, for [`Op::MatchWatches`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WatchType {
    /// One-shot, left by `get`.
    Data,
    /// One-shot, left by `exists`.
    Exists,
    /// One-shot, left by `children`.
    Children,
    Persistent,
    Recursive,
    /// One-shot, left by `turn`.
    Turn,
}

impl Op {
    /// How many variants this build knows; postcard writes the variant index first.
    pub const VARIANTS: u32 = 25;

    /// Whether the op changes the tree or the session table (and so needs a commit).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Create(_)
                | Op::Delete { .. }
                | Op::Set { .. }
                | Op::Multi(_)
                | Op::CloseSession
                | Op::SetAcl { .. }
                | Op::CreateInLine(_)
        )
    }
}

/// The result of one op of a `multi`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Checked,
    Created {
        path: String,
        stat: Stat,
    },
    Set(Stat),
    Deleted,
    /// In a failed multi: the failing op's code, `RolledBack` before it, `Skipped` after it.
    Error(ErrorCode),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong,
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    Set(Stat),
    Data {
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    Exists(Option<Stat>),
    /// Child names, sorted, and the parent's stat.
    Children {
        children: Vec<String>,
        stat: Stat,
    },
    ChildrenWithStats {
        children: Vec<(String, Stat)>,
        stat: Stat,
    },
    /// The results of a multi, successful or not (see [`OpResult::Error`]).
    Multi(Vec<OpResult>),
    Synced {
        zxid: Zxid,
    },
    Ephemerals(Vec<String>),
    WatchAdded,
    WatchesRemoved,
    /// `reset`: the history needed for replay was gone, and `WatchReset` events were sent.
    WatchesRestored {
        reset: bool,
    },
    SessionClosed,
    Status(StatusReport),
    /// The standby is now the primary of `epoch`; it had applied up to `last_zxid`, and had
    /// last heard the old primary at `primary_zxid` (unknown if it never connected).
    Promoted {
        epoch: u32,
        last_zxid: Zxid,
        primary_zxid: Option<Zxid>,
        behind_txns: Option<u64>,
    },
    /// A backup holding the state as of `last_zxid`: `nodes` nodes in `bytes` bytes.
    BackedUp {
        last_zxid: Zxid,
        nodes: u64,
        bytes: u64,
    },
    Acl {
        acl: Vec<AclEntry>,
        stat: Stat,
    },
    AclSet(Stat),
    /// The caller's principals (besides `anyone`), and whether they make it a superuser.
    Identity {
        principals: Vec<Principal>,
        superuser: bool,
    },
    /// The number of nodes under a node ([`Op::CountDescendants`]).
    Descendants(u64),
    /// One result per read of an [`Op::MultiRead`].
    MultiRead(Vec<Result<Response, ErrorReply>>),
    /// The node's stat (`None`: no such node) and whether it is first in line
    /// ([`Op::Turn`]); a turn watch was left only if it exists and is not first.
    Turn {
        stat: Option<Stat>,
        first: bool,
    },
    /// The node [`Op::CreateInLine`] made, its stat, and whether it is first in line; a turn
    /// watch was left on it if it is not.
    CreatedInLine {
        path: String,
        stat: Stat,
        first: bool,
    },
}

/// A server's view of itself, for `baton admin status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub role: Role,
    pub epoch: u32,
    pub last_zxid: Zxid,
    /// Replication mode of a primary (`None` when replication is off).
    pub mode: Option<crate::replication::ReplicationMode>,
    /// The replication peer: the standby of a primary, the primary of a standby.
    pub peer: Option<PeerStatus>,
    pub sessions: u64,
    pub nodes: u64,
    pub watches: u64,
    pub connections: u64,
    pub uptime_ms: u64,
    pub store_bytes: u64,
    /// The digest of the replicated state (equal on a primary and a caught-up standby).
    pub digest: u64,
    /// Writes are refused: a newer epoch exists elsewhere.
    pub fenced: bool,
    /// Synchronous replication is configured but the standby is gone, and the primary
    /// degraded to asynchronous acknowledgement (an alarm: failover may lose writes).
    pub sync_degraded: bool,
    /// The retained transaction log: every txn after `log_floor`, `log_txns` of them in
    /// `log_bytes` of records (what watch replay and a standby's catch-up can draw on).
    pub log_floor: Zxid,
    pub log_txns: u64,
    pub log_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub addr: String,
    pub connected: bool,
    /// The newest zxid the peer is known to have (a standby's acknowledged one, or the
    /// primary's last announced one).
    pub peer_zxid: Zxid,
    /// Transactions the standby is behind.
    pub lag_txns: u64,
    /// How long the standby has been behind, in ms (0 when caught up).
    pub lag_ms: u64,
}

/// What changed, for a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
    /// The watches on `path` could not be resumed because the history after the client's zxid
    /// was compacted: re-read the state. One-shot watches on the path are consumed.
    WatchReset,
    /// The node is now first in line among its siblings (a turn watch, [`Op::Turn`]).
    Turn,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The zxid of the transaction that made the change.
    pub zxid: Zxid,
    pub path: String,
    pub kind: EventKind,
}

/// Every frame the server sends after the hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The answer to request `id`. `zxid` is the newest committed zxid when the reply was
    /// made: every event for the session's watches up to it came before this reply, and the
    /// reply reflects all writes up to it (ZooKeeper's reply header carries the same).
    Reply {
        id: u64,
        zxid: Zxid,
        result: Result<Response, ErrorReply>,
    },
    Event(WatchEvent),
    /// The server is about to close the connection, and says why.
    Closing(ErrorReply),
}
