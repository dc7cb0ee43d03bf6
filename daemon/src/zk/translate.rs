//! ZooKeeper requests to native [`Op`]s, and native replies and events back to ZooKeeper's
//! records and error codes. Pure: no I/O, no engine.
//!
//! Each request becomes an op for the engine and a [`Shape`]: how its reply is written
//! (a `create` and a `create2` are the same op, answered differently). A request that needs
//! no engine work, or that cannot be served, becomes a [`Shape::Local`] answer, still sent
//! through the engine so that it keeps its place among the connection's replies.

use super::jute::{self, Acl, Create, Request, Writer, op};
use super::system;
use baton_proto::message::{
    CreateKind, CreateRequest, EventKind, MultiOp, OpResult, PersistentWatchMode, WatchSet, WatchType,
};
use baton_proto::{AclEntry, ErrorCode, ErrorReply, Op, Perms, Principal, Response, Stat, WatchEvent, Zxid};

/// `KeeperException.Code` values.
pub mod code {
    pub const OK: i32 = 0;
    pub const SYSTEM_ERROR: i32 = -1;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const SESSION_MOVED: i32 = -118;
    pub const NOT_READ_ONLY: i32 = -119;
    pub const NO_WATCHER: i32 = -121;
    pub const RECONFIG_DISABLED: i32 = -123;
    pub const QUOTA_EXCEEDED: i32 = -125;
}

/// `Watcher.Event.KeeperState.SyncConnected`: the state every notification carries.
const SYNC_CONNECTED: i32 = 3;
/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER` is not reproduced: a container's owner reads 0.
/// The Create flags (`CreateMode`).
const PERSISTENT: i32 = 0;
const EPHEMERAL: i32 = 1;
const PERSISTENT_SEQUENTIAL: i32 = 2;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const CONTAINER: i32 = 4;
const PERSISTENT_WITH_TTL: i32 = 5;
const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;

/// How a request's reply is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A header alone (delete, ping, setWatches).
    Empty,
    /// `CreateResponse{path}`, or with `two` `Create2Response{path, Stat}`.
    Created { two: bool },
    /// A `Stat` alone (exists, setData, setACL).
    Stat,
    /// `GetDataResponse{data, Stat}`.
    Data,
    /// `GetChildrenResponse{children}`, or with `two` `GetChildren2Response{children, Stat}`.
    Children { two: bool },
    /// `GetACLResponse{acl, Stat}`.
    Acl,
    /// `SyncResponse{path}`.
    Sync { path: String },
    /// `MultiResponse`; the opcodes of the request's ops, for the result types.
    Multi(Vec<i32>),
    /// multiRead's `MultiResponse`: each read's response, or an error result.
    MultiRead,
    /// `GetEphemeralsResponse{paths}` of the caller's ephemerals under `prefix`.
    Ephemerals { prefix: String },
    /// `ErrorResponse{0}`: a 4-byte body (observed).
    AddWatch,
    /// `GetAllChildrenNumberResponse{int totalNumber}`.
    Count,
    /// `WhoAmIResponse`: the client's address and what it authenticated as.
    WhoAmI { ip: String },
    /// closeSession: a header, then the server hangs up.
    Close,
    /// An accepted `auth` packet: a header alone, zxid 0 (observed).
    Authenticated,
    /// A reply about the root: `inner`'s, with the `/zookeeper` system node added to it.
    Root(Box<Shape>),
    /// Answered here: `err` and `body`, the header's zxid if not the current one, and
    /// whether to hang up after it.
    Local { err: i32, body: Vec<u8>, zxid: Option<i64>, close: bool },
}

impl Shape {
    fn local(err: i32) -> Shape {
        Shape::Local { err, body: Vec::new(), zxid: None, close: false }
    }

    /// Whether the connection ends once this reply is written.
    pub fn closes(&self) -> bool {
        matches!(self, Shape::Close | Shape::Local { close: true, .. })
    }
}

/// What the engine is asked to do for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run this native op.
    Engine(Op),
    /// Add this principal to the session's identity (an `auth` packet).
    Authenticate(Principal),
    /// Nothing: the reply is a [`Shape::Local`] (the engine only keeps its place in order).
    Local,
}

/// What to ask of the engine for a request, and how to write its reply. `authenticated`:
/// the connection has proved an identity (so ACLs may name `auth`).
pub fn request(request: Request, peer_ip: &str, authenticated: bool) -> (Action, Shape) {
    if let Request::Auth { scheme, auth } = &request {
        return match digest(scheme, auth) {
            Some(principal) => (Action::Authenticate(principal), Shape::Authenticated),
            // No other scheme is served: what ZooKeeper does with an unknown one.
            None => {
                (Action::Local, Shape::Local { err: code::AUTH_FAILED, body: Vec::new(), zxid: Some(0), close: true })
            }
        };
    }
    if let Some(shape) = system::answer(&request) {
        return (Action::Local, shape);
    }
    let root = system::about_root(&request);
    match translate(request, peer_ip, authenticated) {
        Ok((op, shape)) if root => (Action::Engine(op), Shape::Root(Box::new(shape))),
        Ok((op, shape)) => (Action::Engine(op), shape),
        Err(shape) => (Action::Local, shape),
    }
}

/// The principal a `digest` auth packet proves: `user:password` makes the id
/// `user:base64(SHA-1("user:password"))`, as ZooKeeper computes it (any password is accepted;
/// the ACLs decide what it opens).
fn digest(scheme: &str, auth: &[u8]) -> Option<Principal> {
    use sha1::Digest as _;
    if scheme != "digest" {
        return None;
    }
    let text = std::str::from_utf8(auth).ok()?;
    let (user, _password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    let hash = sha1::Sha1::digest(auth);
    Some(Principal::Digest(format!("{user}:{}", baton_proto::base64::encode(&hash))))
}

fn translate(request: Request, peer_ip: &str, authenticated: bool) -> Result<(Op, Shape), Shape> {
    let version = |v: i32| (v != -1).then_some(v);
    Ok(match request {
        Request::Ping => (Op::Ping, Shape::Empty),
        Request::CloseSession => (Op::CloseSession, Shape::Close),
        Request::Create { op, create } => {
            let two = op != jute::op::CREATE;
            (Op::Create(create_request(op, create, authenticated)?), Shape::Created { two })
        }
        Request::Delete { path, version: v } => (Op::Delete { path, version: version(v) }, Shape::Empty),
        Request::Exists { path, watch } => (Op::Exists { path, watch }, Shape::Stat),
        Request::GetData { path, watch } => (Op::Get { path, watch }, Shape::Data),
        Request::SetData { path, data, version: v } => (Op::Set { path, data, version: version(v) }, Shape::Stat),
        Request::GetAcl { path } => (Op::GetAcl { path }, Shape::Acl),
        Request::SetAcl { path, acl, version: v } => {
            (Op::SetAcl { path, acl: acl_entries(&acl, authenticated)?, version: version(v) }, Shape::Stat)
        }
        Request::GetChildren { path, watch, two } => {
            (Op::Children { path, watch, with_stats: false }, Shape::Children { two })
        }
        Request::Sync { path } => (Op::Sync { path: path.clone() }, Shape::Sync { path }),
        Request::Multi(ops) => multi(ops, authenticated)?,
        Request::MultiRead(ops) => {
            let reads = ops
                .into_iter()
                .map(|op| match op {
                    Request::GetData { path, .. } => Ok(Op::Get { path, watch: false }),
                    Request::GetChildren { path, .. } => Ok(Op::Children { path, watch: false, with_stats: false }),
                    _ => Err(Shape::local(code::UNIMPLEMENTED)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (Op::MultiRead(reads), Shape::MultiRead)
        }
        // Outside a multi, a check is not a client operation.
        Request::Check { .. } => return Err(Shape::local(code::UNIMPLEMENTED)),
        Request::SetWatches { relative_zxid, data, exist, child, persistent, recursive } => {
            let watches = WatchSet { data, exists: exist, children: child, persistent, recursive };
            let last_zxid = Zxid(u64::try_from(relative_zxid).unwrap_or(0));
            (Op::RestoreWatches { last_zxid, watches }, Shape::Empty)
        }
        Request::AddWatch { path, mode } => {
            let mode = match mode {
                0 => PersistentWatchMode::Persistent,
                1 => PersistentWatchMode::Recursive,
                _ => return Err(Shape::local(code::BAD_ARGUMENTS)),
            };
            (Op::AddWatch { path, mode }, Shape::AddWatch)
        }
        Request::MatchWatches { path, kind, remove } => {
            // `WatcherType`: Children 1, Data 2, Any 3, Persistent 4, PersistentRecursive 5.
            let kinds = match kind {
                1 => vec![WatchType::Children],
                2 => vec![WatchType::Data, WatchType::Exists],
                3 => vec![
                    WatchType::Data,
                    WatchType::Exists,
                    WatchType::Children,
                    WatchType::Persistent,
                    WatchType::Recursive,
                ],
                4 => vec![WatchType::Persistent],
                5 => vec![WatchType::Recursive],
                _ => return Err(Shape::local(code::BAD_ARGUMENTS)),
            };
            (Op::MatchWatches { path, kinds, remove }, Shape::Empty)
        }
        Request::GetAllChildrenNumber { path } => (Op::CountDescendants { path }, Shape::Count),
        Request::GetEphemerals { prefix } => (Op::Ephemerals { session_id: None }, Shape::Ephemerals { prefix }),
        Request::WhoAmI => (Op::WhoAmI, Shape::WhoAmI { ip: peer_ip.to_owned() }),
        Request::Auth { .. } => return Err(Shape::local(code::AUTH_FAILED)),
        Request::Unknown(op::RECONFIG) => return Err(Shape::local(code::RECONFIG_DISABLED)),
        Request::Unknown(_) => {
            return Err(Shape::Local { err: code::UNIMPLEMENTED, body: Vec::new(), zxid: Some(-1), close: false });
        }
    })
}

/// The answer to a request whose record could not be read.
pub fn undecodable() -> Shape {
    Shape::local(code::MARSHALLING_ERROR)
}

fn multi(ops: Vec<Request>, authenticated: bool) -> Result<(Op, Shape), Shape> {
    if ops.is_empty() {
        // Nothing to commit: just the terminator.
        let mut w = Writer::new();
        w.int(op::ERROR).boolean(true).int(-1);
        return Err(Shape::Local { err: code::OK, body: w.into_bytes(), zxid: None, close: false });
    }
    let mut kinds = Vec::with_capacity(ops.len());
    let mut native = Vec::with_capacity(ops.len());
    for request in ops {
        let one = match request {
            Request::Create { op, create } => {
                kinds.push(op);
                MultiOp::Create(create_request(op, create, authenticated)?)
            }
            Request::Delete { path, version } => {
                kinds.push(op::DELETE);
                MultiOp::Delete { path, version: (version != -1).then_some(version) }
            }
            Request::SetData { path, data, version } => {
                kinds.push(op::SET_DATA);
                MultiOp::Set { path, data, version: (version != -1).then_some(version) }
            }
            Request::Check { path, version } => {
                kinds.push(op::CHECK);
                MultiOp::Check { path, version }
            }
            _ => return Err(Shape::local(code::UNIMPLEMENTED)),
        };
        native.push(one);
    }
    Ok((Op::Multi(native), Shape::Multi(kinds)))
}

fn create_request(op: i32, create: Create, authenticated: bool) -> Result<CreateRequest, Shape> {
    let bad = || Shape::local(code::BAD_ARGUMENTS);
    let flags = create.flags;
    let kind = match (op, flags) {
        (jute::op::CREATE_TTL, PERSISTENT_WITH_TTL | PERSISTENT_SEQUENTIAL_WITH_TTL) => {
            let ttl_ms = create.ttl.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0).ok_or_else(bad)?;
            CreateKind::Ttl { ttl_ms }
        }
        (jute::op::CREATE_TTL, _) | (_, PERSISTENT_WITH_TTL | PERSISTENT_SEQUENTIAL_WITH_TTL) => return Err(bad()),
        (_, CONTAINER) => CreateKind::Container,
        (jute::op::CREATE_CONTAINER, _) => return Err(bad()),
        (_, PERSISTENT | PERSISTENT_SEQUENTIAL) => CreateKind::Persistent,
        (_, EPHEMERAL | EPHEMERAL_SEQUENTIAL) => CreateKind::Ephemeral,
        _ => return Err(bad()),
    };
    let sequential = matches!(flags, PERSISTENT_SEQUENTIAL | EPHEMERAL_SEQUENTIAL | PERSISTENT_SEQUENTIAL_WITH_TTL);
    Ok(CreateRequest {
        path: create.path,
        data: create.data,
        kind,
        sequential,
        acl: acl_entries(&create.acl, authenticated)?,
    })
}

/// ZooKeeper ACL entries as native ones: `world:anyone` is `anyone`, `digest:user:HASH` is
/// that digest, `auth` is `creator` (every id the connection proved: its digests); the
/// native schemes (`uid`, `gid`, `token`, `cert`) are themselves. Anything else, an empty
/// list, or `auth` on a connection that proved nothing is `InvalidACL`, as ZooKeeper answers.
fn acl_entries(acl: &[Acl], authenticated: bool) -> Result<Vec<AclEntry>, Shape> {
    let invalid = || Shape::local(code::INVALID_ACL);
    if acl.is_empty() {
        return Err(invalid());
    }
    acl.iter()
        .map(|entry| {
            let principal = match (entry.scheme.as_str(), entry.id.as_str()) {
                ("world", "anyone") => Principal::Anyone,
                ("auth", _) if authenticated => Principal::Creator,
                ("digest", id)
                    if id.split_once(':').is_some_and(|(user, hash)| !user.is_empty() && !hash.is_empty()) =>
                {
                    Principal::Digest(id.to_owned())
                }
                ("uid" | "gid" | "token" | "cert", _) => {
                    format!("{}:{}", entry.scheme, entry.id).parse().map_err(|_| invalid())?
                }
                _ => return Err(invalid()),
            };
            let perms = u8::try_from(entry.perms & i32::from(Perms::ALL.0)).map_err(|_| invalid())?;
            Ok(AclEntry { principal, perms: Perms(perms) })
        })
        .collect()
}

/// A native principal as a ZooKeeper `scheme:id`.
fn zk_id(principal: &Principal) -> (String, String) {
    match principal {
        Principal::Anyone => ("world".into(), "anyone".into()),
        Principal::Creator => ("auth".into(), String::new()),
        other => {
            let text = other.to_string();
            match text.split_once(':') {
                Some((scheme, id)) => (scheme.to_owned(), id.to_owned()),
                None => (text, String::new()),
            }
        }
    }
}

/// A native Stat as ZooKeeper's: the same fields, zxids and session ids as signed longs.
pub fn stat(s: &Stat) -> jute::Stat {
    jute::Stat {
        czxid: s.czxid.0 as i64,
        mzxid: s.mzxid.0 as i64,
        ctime: s.ctime_ms as i64,
        mtime: s.mtime_ms as i64,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner.0 as i64,
        data_length: i32::try_from(s.data_length).unwrap_or(i32::MAX),
        num_children: i32::try_from(s.num_children).unwrap_or(i32::MAX),
        pzxid: s.pzxid.0 as i64,
    }
}

/// A native error code as ZooKeeper's.
pub fn error_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::NoNode => code::NO_NODE,
        ErrorCode::NodeExists => code::NODE_EXISTS,
        ErrorCode::BadVersion | ErrorCode::LockLost => code::BAD_VERSION,
        ErrorCode::NotEmpty => code::NOT_EMPTY,
        ErrorCode::NoChildrenForEphemerals => code::NO_CHILDREN_FOR_EPHEMERALS,
        ErrorCode::InvalidPath | ErrorCode::InvalidArgument | ErrorCode::TooLarge => code::BAD_ARGUMENTS,
        ErrorCode::SessionExpired => code::SESSION_EXPIRED,
        ErrorCode::ConnectionLoss | ErrorCode::ServerBehind | ErrorCode::ShuttingDown | ErrorCode::SlowConsumer => {
            code::CONNECTION_LOSS
        }
        ErrorCode::NotPrimary | ErrorCode::Fenced => code::NOT_READ_ONLY,
        ErrorCode::Unimplemented => code::UNIMPLEMENTED,
        ErrorCode::BadRequest | ErrorCode::ProtocolMismatch => code::MARSHALLING_ERROR,
        ErrorCode::LimitExceeded => code::QUOTA_EXCEEDED,
        ErrorCode::RolledBack => code::OK,
        ErrorCode::Skipped => code::RUNTIME_INCONSISTENCY,
        ErrorCode::NoAuth => code::NO_AUTH,
        ErrorCode::SessionMoved => code::SESSION_MOVED,
        ErrorCode::AuthFailed => code::AUTH_FAILED,
        ErrorCode::NoWatcher => code::NO_WATCHER,
        _ => code::SYSTEM_ERROR,
    }
}

/// A reply's `err` and body (empty when `err != 0`, except for a failed multi).
pub fn reply(shape: &Shape, result: Result<Response, ErrorReply>) -> (i32, Vec<u8>) {
    if let Shape::Local { err, body, .. } = shape {
        // The engine only kept its place in the order.
        return (*err, body.clone());
    }
    if let Shape::Root(inner) = shape {
        return reply(inner, result.map(system::with_system_nodes));
    }
    let response = match result {
        Ok(response) => response,
        Err(e) => return (error_code(e.code), Vec::new()),
    };
    let mut w = Writer::new();
    match (shape, response) {
        (Shape::Stat, Response::Exists(None)) => return (code::NO_NODE, Vec::new()),
        (Shape::Stat, Response::Exists(Some(s)) | Response::Set(s) | Response::AclSet(s)) => stat(&s).write(&mut w),
        (Shape::Created { two }, Response::Created { path, stat: s }) => {
            w.string(&path);
            if *two {
                stat(&s).write(&mut w);
            }
        }
        (Shape::Data, Response::Data { data, stat: s }) => {
            w.opt_bytes(data.as_deref());
            stat(&s).write(&mut w);
        }
        (Shape::Children { two }, Response::Children { children, stat: s }) => {
            w.strings(&children);
            if *two {
                stat(&s).write(&mut w);
            }
        }
        (Shape::Acl, Response::Acl { acl, stat: s }) => {
            let acl: Vec<Acl> = acl
                .iter()
                .map(|e| {
                    let (scheme, id) = zk_id(&e.principal);
                    Acl { perms: i32::from(e.perms.0), scheme, id }
                })
                .collect();
            w.acls(&acl);
            stat(&s).write(&mut w);
        }
        (Shape::Sync { path }, Response::Synced { .. }) => {
            w.string(path);
        }
        (Shape::Multi(kinds), Response::Multi(results)) => multi_results(kinds, &results, &mut w),
        (Shape::MultiRead, Response::MultiRead(results)) => {
            for result in results {
                match result {
                    Ok(Response::Data { data, stat: s }) => {
                        w.int(op::GET_DATA).boolean(false).int(code::OK).opt_bytes(data.as_deref());
                        stat(&s).write(&mut w);
                    }
                    Ok(Response::Children { children, .. }) => {
                        w.int(op::GET_CHILDREN).boolean(false).int(code::OK).strings(&children);
                    }
                    Ok(_) => {
                        w.int(op::ERROR).boolean(false).int(code::SYSTEM_ERROR).int(code::SYSTEM_ERROR);
                    }
                    Err(e) => {
                        let e = error_code(e.code);
                        w.int(op::ERROR).boolean(false).int(e).int(e);
                    }
                }
            }
            w.int(op::ERROR).boolean(true).int(-1);
        }
        (Shape::Ephemerals { prefix }, Response::Ephemerals(paths)) => {
            let mine: Vec<&String> = paths.iter().filter(|p| p.starts_with(prefix.as_str())).collect();
            w.strings(&mine);
        }
        (Shape::Count, Response::Descendants(n)) => {
            w.int(i32::try_from(n).unwrap_or(i32::MAX));
        }
        (Shape::AddWatch, Response::WatchAdded) => {
            w.int(code::OK);
        }
        (Shape::WhoAmI { ip }, Response::Identity { principals, .. }) => {
            let mut infos = vec![("ip".to_owned(), ip.clone())];
            // ZooKeeper names a digest user by its name alone.
            infos.extend(principals.iter().map(|p| match p {
                Principal::Digest(id) => {
                    ("digest".to_owned(), id.split_once(':').map_or(id.as_str(), |(u, _)| u).to_owned())
                }
                other => zk_id(other),
            }));
            w.int(i32::try_from(infos.len()).unwrap_or(i32::MAX));
            for (scheme, user) in infos {
                w.string(&scheme).string(&user);
            }
        }
        (Shape::Empty | Shape::Close | Shape::Local { .. }, _) | (Shape::Authenticated, Response::Identity { .. }) => {}
        (shape, response) => {
            tracing::warn!(?shape, ?response, "a reply of an unexpected kind");
            return (code::SYSTEM_ERROR, Vec::new());
        }
    }
    (code::OK, w.into_bytes())
}

/// A `MultiResponse`. A failed multi has err 0 in its header and every op as an error
/// result: 0 before the failing op, its code, -2 after it (ZK-PROTOCOL.md §2.5).
fn multi_results(kinds: &[i32], results: &[OpResult], w: &mut Writer) {
    let failed = results.iter().any(|r| matches!(r, OpResult::Error(_)));
    for (i, result) in results.iter().enumerate() {
        if failed {
            let e = match result {
                OpResult::Error(code) => error_code(*code),
                _ => code::OK,
            };
            w.int(op::ERROR).boolean(false).int(e).int(e);
            continue;
        }
        let kind = kinds.get(i).copied().unwrap_or(op::ERROR);
        match result {
            OpResult::Created { path, stat: s } if kind == op::CREATE => {
                w.int(op::CREATE).boolean(false).int(0).string(path);
            }
            OpResult::Created { path, stat: s } => {
                w.int(op::CREATE2).boolean(false).int(0).string(path);
                stat(s).write(w);
            }
            OpResult::Set(s) => {
                w.int(op::SET_DATA).boolean(false).int(0);
                stat(s).write(w);
            }
            OpResult::Deleted => {
                w.int(op::DELETE).boolean(false).int(0);
            }
            OpResult::Checked => {
                w.int(op::CHECK).boolean(false).int(0);
            }
            OpResult::Error(_) => {}
        }
    }
    w.int(op::ERROR).boolean(true).int(-1);
}

/// A watch event as a notification: its header's zxid (the triggering one, as ZooKeeper
/// 3.9 sends) and its `WatcherEvent`. `WatchReset` (history gone, re-read) has no
/// ZooKeeper counterpart and is sent as NodeDataChanged, which makes clients re-read. `Turn`
/// cannot reach a ZooKeeper session (it has no way to leave a turn watch); were it to, it is
/// a NodeDataChanged too.
pub fn event(event: &WatchEvent) -> (i64, jute::WatcherEvent) {
    let kind = match event.kind {
        EventKind::Created => 1,
        EventKind::Deleted => 2,
        EventKind::DataChanged | EventKind::WatchReset | EventKind::Turn => 3,
        EventKind::ChildrenChanged => 4,
    };
    (event.zxid.0 as i64, jute::WatcherEvent { kind, state: SYNC_CONNECTED, path: event.path.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::SessionId;

    fn create(op: i32, flags: i32, ttl: Option<i64>) -> Request {
        let acl = vec![Acl { perms: 31, scheme: "world".into(), id: "anyone".into() }];
        Request::Create { op, create: Create { path: "/n".into(), data: Some(b"d".to_vec()), acl, flags, ttl } }
    }

    fn native(request: Request) -> Op {
        request_ok(request).0
    }

    fn request_ok(request: Request) -> (Op, Shape) {
        match self::request(request, "127.0.0.1", false) {
            (Action::Engine(op), shape) => (op, shape),
            other => panic!("not an engine op: {other:?}"),
        }
    }

    fn local_err(request: Request) -> i32 {
        match self::request(request, "127.0.0.1", false) {
            (Action::Local, Shape::Local { err, .. }) => err,
            other => panic!("not answered locally: {other:?}"),
        }
    }

    #[test]
    fn create_flags_become_kinds_and_sequential() {
        let Op::Create(c) = native(create(op::CREATE, 3, None)) else { panic!() };
        assert_eq!((c.kind, c.sequential), (CreateKind::Ephemeral, true));
        assert_eq!(c.acl, vec![AclEntry::new(Principal::Anyone, Perms::ALL)]);
        let Op::Create(c) = native(create(op::CREATE_CONTAINER, 4, None)) else { panic!() };
        assert_eq!((c.kind, c.sequential), (CreateKind::Container, false));
        let Op::Create(c) = native(create(op::CREATE_TTL, 6, Some(5000))) else { panic!() };
        assert_eq!((c.kind, c.sequential), (CreateKind::Ttl { ttl_ms: 5000 }, true));
        assert_eq!(local_err(create(op::CREATE, 5, None)), code::BAD_ARGUMENTS, "TTL needs createTTL");
        assert_eq!(local_err(create(op::CREATE_TTL, 5, Some(0))), code::BAD_ARGUMENTS);
        assert_eq!(local_err(create(op::CREATE_CONTAINER, 0, None)), code::BAD_ARGUMENTS);
        assert_eq!(local_err(create(op::CREATE, 7, None)), code::BAD_ARGUMENTS);
    }

    #[test]
    fn acls_map_world_anyone_and_refuse_what_cannot_be_honoured() {
        let acl = |scheme: &str, id: &str| vec![Acl { perms: 1, scheme: scheme.into(), id: id.into() }];
        let set = |acl| Request::SetAcl { path: "/n".into(), acl, version: -1 };
        assert!(
            matches!(native(set(acl("uid", "1000"))), Op::SetAcl { ref acl, version: None, .. } if acl[0].principal == Principal::Uid(1000))
        );
        assert_eq!(local_err(set(vec![])), code::INVALID_ACL);
        assert_eq!(local_err(set(acl("ip", "127.0.0.1"))), code::INVALID_ACL);
        assert_eq!(local_err(set(acl("digest", "no-hash"))), code::INVALID_ACL);
        assert_eq!(local_err(set(acl("auth", ""))), code::INVALID_ACL, "auth with no ids");
        let Op::SetAcl { acl: digest, .. } = native(set(acl("digest", "u:x"))) else { panic!() };
        assert_eq!(digest[0].principal, Principal::Digest("u:x".into()));
        let (Action::Engine(Op::SetAcl { acl: auth, .. }), _) = request(set(acl("auth", "")), "", true) else {
            panic!()
        };
        assert_eq!(auth[0].principal, Principal::Creator);
        assert_eq!(local_err(set(acl("uid", "nobody"))), code::INVALID_ACL);
    }

    #[test]
    fn unknown_ops_are_unimplemented_with_zxid_minus_one_and_keep_the_connection() {
        let (action, shape) = request(Request::Unknown(999), "127.0.0.1", false);
        assert_eq!(action, Action::Local);
        assert_eq!(shape, Shape::Local { err: code::UNIMPLEMENTED, body: vec![], zxid: Some(-1), close: false });
        assert!(!shape.closes());
        assert_eq!(local_err(Request::Unknown(op::RECONFIG)), code::RECONFIG_DISABLED);
        assert!(request(Request::Auth { scheme: "sasl".into(), auth: vec![] }, "", false).1.closes());
        assert!(request(Request::Auth { scheme: "digest".into(), auth: b"no-colon".to_vec() }, "", false).1.closes());
    }

    #[test]
    fn exists_on_a_missing_node_is_no_node_with_no_body() {
        assert_eq!(reply(&Shape::Stat, Ok(Response::Exists(None))), (code::NO_NODE, vec![]));
        let (err, body) = reply(&Shape::Stat, Ok(Response::Exists(Some(Stat::default()))));
        assert_eq!((err, body.len()), (0, 68));
        let no_node = Err(ErrorReply::new(ErrorCode::NoNode, "/x"));
        assert_eq!(reply(&Shape::Data, no_node), (code::NO_NODE, vec![]));
    }

    #[test]
    fn create_and_create2_replies_differ_by_the_stat() {
        let created = || Ok(Response::Created { path: "/n0000000001".into(), stat: Stat::default() });
        let (_, one) = reply(&Shape::Created { two: false }, created());
        assert_eq!(one.len(), 4 + 12);
        let (_, two) = reply(&Shape::Created { two: true }, created());
        assert_eq!(two.len(), 4 + 12 + 68);
    }

    #[test]
    fn failed_multi_matches_the_observed_layout() {
        // ZK-PROTOCOL.md §2.5: [create OK, delete missing, setData] failed.
        let results = vec![
            OpResult::Error(ErrorCode::RolledBack),
            OpResult::Error(ErrorCode::NoNode),
            OpResult::Error(ErrorCode::Skipped),
        ];
        let shape = Shape::Multi(vec![op::CREATE, op::DELETE, op::SET_DATA]);
        let (err, body) = reply(&shape, Ok(Response::Multi(results)));
        assert_eq!(err, 0);
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().concat();
        let expected = [
            "ffffffff", "00", "00000000", "00000000", // rolled back
            "ffffffff", "00", "ffffff9b", "ffffff9b", // the failing delete: NoNode
            "ffffffff", "00", "fffffffe", "fffffffe", // skipped: RuntimeInconsistency
            "ffffffff", "01", "ffffffff", // the terminator
        ]
        .concat();
        assert_eq!(hex, expected);
    }

    #[test]
    fn successful_multi_answers_each_op_by_its_type() {
        let kinds = vec![op::CREATE, op::CREATE2, op::SET_DATA, op::DELETE, op::CHECK];
        let results = vec![
            OpResult::Created { path: "/a".into(), stat: Stat::default() },
            OpResult::Created { path: "/b".into(), stat: Stat::default() },
            OpResult::Set(Stat::default()),
            OpResult::Deleted,
            OpResult::Checked,
        ];
        let (err, body) = reply(&Shape::Multi(kinds), Ok(Response::Multi(results)));
        assert_eq!(err, 0);
        let header = 9;
        assert_eq!(body.len(), (header + 6) + (header + 6 + 68) + (header + 68) + header + header + header);
        assert_eq!(body[..4], 1i32.to_be_bytes());
        assert_eq!(body[15..19], 15i32.to_be_bytes());
    }

    #[test]
    fn empty_multi_is_just_the_terminator() {
        let (action, shape) = request(Request::Multi(vec![]), "", false);
        assert_eq!(action, Action::Local);
        let placeholder = Err(ErrorReply::new(ErrorCode::Unimplemented, "answered by the ZooKeeper listener"));
        assert_eq!(reply(&shape, placeholder).0, code::OK, "the engine's placeholder is not the answer");
        let Shape::Local { err, body, .. } = shape else { panic!() };
        assert_eq!((err, body), (0, vec![0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn stats_events_and_codes_carry_over() {
        let native = Stat {
            czxid: Zxid(0x1_0000_0002),
            ephemeral_owner: SessionId(0x1_0000_0001),
            data_length: 3,
            num_children: 2,
            ..Stat::default()
        };
        let zk = stat(&native);
        assert_eq!(
            (zk.czxid, zk.ephemeral_owner, zk.data_length, zk.num_children),
            (0x1_0000_0002, 0x1_0000_0001, 3, 2)
        );
        let (zxid, e) = event(&WatchEvent { zxid: Zxid(9), path: "/p".into(), kind: EventKind::ChildrenChanged });
        assert_eq!((zxid, e.kind, e.state, e.path.as_str()), (9, 4, 3, "/p"));
        assert_eq!(error_code(ErrorCode::NodeExists), -110);
        assert_eq!(error_code(ErrorCode::NotEmpty), -111);
        assert_eq!(error_code(ErrorCode::BadVersion), -103);
        assert_eq!(error_code(ErrorCode::InvalidPath), -8);
    }

    #[test]
    fn set_watches_become_restore_watches_and_get_ephemerals_filters_by_prefix() {
        let request = Request::SetWatches {
            relative_zxid: 5,
            data: vec!["/d".into()],
            exist: vec!["/e".into()],
            child: vec!["/c".into()],
            persistent: vec![],
            recursive: vec!["/r".into()],
        };
        let Op::RestoreWatches { last_zxid, watches } = native(request) else { panic!() };
        assert_eq!(
            (last_zxid, watches.exists, watches.recursive),
            (Zxid(5), vec!["/e".to_owned()], vec!["/r".to_owned()])
        );
        let shape = Shape::Ephemerals { prefix: "/a".into() };
        let (_, body) = reply(&shape, Ok(Response::Ephemerals(vec!["/a/1".into(), "/b/1".into()])));
        assert_eq!(body, [1i32.to_be_bytes().as_slice(), &4i32.to_be_bytes(), b"/a/1"].concat());
    }

    #[test]
    fn digest_auth_proves_user_and_base64_sha1_of_user_colon_password() {
        // base64(SHA-1("super:secret")), computed independently (Python hashlib).
        let (action, shape) =
            request(Request::Auth { scheme: "digest".into(), auth: b"super:secret".to_vec() }, "", false);
        assert_eq!(action, Action::Authenticate(Principal::Digest("super:lK75jTNcA+U9vtVEw5vB51mj/w4=".into())));
        assert_eq!(shape, Shape::Authenticated);
    }

    #[test]
    fn check_and_remove_watches_select_kinds_by_watcher_type() {
        let request = |kind, remove| Request::MatchWatches { path: "/w".into(), kind, remove };
        let Op::MatchWatches { kinds, remove, .. } = native(request(2, true)) else { panic!() };
        assert_eq!((kinds, remove), (vec![WatchType::Data, WatchType::Exists], true));
        let Op::MatchWatches { kinds, remove, .. } = native(request(3, false)) else { panic!() };
        assert_eq!((kinds.len(), remove), (5, false));
        assert_eq!(local_err(request(9, true)), code::BAD_ARGUMENTS);
        assert_eq!(reply(&Shape::Empty, Err(ErrorReply::new(ErrorCode::NoWatcher, "/w"))), (code::NO_WATCHER, vec![]));
    }

    #[test]
    fn multi_read_answers_each_read_or_its_error() {
        let request = Request::MultiRead(vec![
            Request::GetData { path: "/a".into(), watch: true },
            Request::GetChildren { path: "/b".into(), watch: false, two: false },
        ]);
        let (op, shape) = request_ok(request);
        let expected = Op::MultiRead(vec![
            Op::Get { path: "/a".into(), watch: false },
            Op::Children { path: "/b".into(), watch: false, with_stats: false },
        ]);
        assert_eq!((op, &shape), (expected, &Shape::MultiRead));
        let results = vec![
            Ok(Response::Data { data: Some(b"x".to_vec()), stat: Stat::default() }),
            Err(ErrorReply::new(ErrorCode::NoNode, "/b")),
        ];
        let (err, body) = reply(&shape, Ok(Response::MultiRead(results)));
        assert_eq!(err, 0);
        let mut expected = Writer::new();
        expected.int(op::GET_DATA).boolean(false).int(0).bytes(b"x");
        jute::Stat::default().write(&mut expected);
        expected.int(-1).boolean(false).int(-101).int(-101).int(-1).boolean(true).int(-1);
        assert_eq!(body, expected.into_bytes());
    }
}
