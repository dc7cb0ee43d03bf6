//! The reference model: a `BTreeMap<String, RefNode>` with ZooKeeper's rules written the
//! obvious way (children found by scanning, a multi run on a scratch copy), which the state
//! machine must agree with after every step.

use baton_proto::message::{CreateKind, CreateRequest, MultiOp, OpResult};
use baton_proto::{ErrorCode, NodeKind, SessionId, Stat, Zxid, path};
use batond::state::{Limits, SessionRecord};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RefNode {
    pub(crate) data: Option<Vec<u8>>,
    pub(crate) kind: NodeKind,
    pub(crate) owner: SessionId,
    version: i32,
    cversion: i32,
    czxid: Zxid,
    mzxid: Zxid,
    pzxid: Zxid,
    ctime_ms: u64,
    mtime_ms: u64,
}

type Nodes = BTreeMap<String, RefNode>;

impl RefNode {
    fn new(data: Option<Vec<u8>>, kind: NodeKind, owner: SessionId, zxid: Zxid, time_ms: u64) -> RefNode {
        let (czxid, mzxid, pzxid, ctime_ms, mtime_ms) = (zxid, zxid, zxid, time_ms, time_ms);
        RefNode { data, kind, owner, version: 0, cversion: 0, czxid, mzxid, pzxid, ctime_ms, mtime_ms }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RefSession {
    pub(crate) record: SessionRecord,
    deadline_ms: Option<u64>,
}

/// What a write's ops see besides the tree: its zxid and time (every change carries them), its
/// session and whether that is live, and the limits.
#[derive(Clone, Copy)]
struct Cx<'a> {
    zxid: Zxid,
    time_ms: u64,
    session: SessionId,
    live: bool,
    limits: &'a Limits,
}

/// The result of a write in the model: per-op results and the containers reaped, or the index
/// and code of the first op that failed.
type ModelWrite = Result<(Vec<OpResult>, BTreeSet<String>), (usize, ErrorCode)>;

pub(crate) struct Model {
    limits: Limits,
    pub(crate) nodes: Nodes,
    pub(crate) sessions: BTreeMap<SessionId, RefSession>,
    pub(crate) last_zxid: Zxid,
}

fn children<'a>(nodes: &'a Nodes, p: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    nodes.keys().filter(move |q| path::parent(q) == Some(p))
}

pub(crate) fn ref_stat(nodes: &Nodes, p: &str) -> Stat {
    let n = &nodes[p];
    Stat {
        czxid: n.czxid,
        mzxid: n.mzxid,
        pzxid: n.pzxid,
        ctime_ms: n.ctime_ms,
        mtime_ms: n.mtime_ms,
        version: n.version,
        cversion: n.cversion,
        aversion: 0,
        ephemeral_owner: n.owner,
        data_length: n.data.as_ref().map_or(0, Vec::len) as u32,
        num_children: children(nodes, p).count() as u32,
    }
}

fn ref_valid(p: &str) -> Result<(), ErrorCode> {
    path::validate(p).map_err(|_| ErrorCode::InvalidPath)
}

fn ref_get<'a>(nodes: &'a Nodes, p: &str) -> Result<&'a RefNode, ErrorCode> {
    nodes.get(p).ok_or(ErrorCode::NoNode)
}

fn ref_version(expected: Option<i32>, node: &RefNode) -> Result<(), ErrorCode> {
    if expected.is_some_and(|v| v != node.version) { Err(ErrorCode::BadVersion) } else { Ok(()) }
}

/// Removes a childless node; its parent counts the change.
fn ref_remove(nodes: &mut Nodes, p: &str, zxid: Zxid) {
    assert!(nodes.remove(p).is_some(), "model: removing missing {p}");
    let parent = nodes.get_mut(path::parent(p).unwrap()).unwrap();
    parent.cversion += 1;
    parent.pzxid = zxid;
}

/// Containers left empty by the deletes of this txn, and in turn their container ancestors.
fn ref_reap_containers(nodes: &mut Nodes, deleted: &[String], zxid: Zxid) -> BTreeSet<String> {
    let mut reaped = BTreeSet::new();
    loop {
        let empty: BTreeSet<String> = deleted
            .iter()
            .chain(&reaped)
            .filter_map(|p| path::parent(p))
            .filter(|c| {
                *c != "/"
                    && nodes.get(*c).is_some_and(|n| n.kind == NodeKind::Container)
                    && children(nodes, c).next().is_none()
            })
            .map(str::to_owned)
            .collect();
        if empty.is_empty() {
            return reaped;
        }
        for c in empty {
            ref_remove(nodes, &c, zxid);
            reaped.insert(c);
        }
    }
}

fn ref_data(limits: &Limits, data: Option<&Vec<u8>>) -> Result<(), ErrorCode> {
    if data.map_or(0, Vec::len) > limits.node_data_max { Err(ErrorCode::TooLarge) } else { Ok(()) }
}

fn ref_create(nodes: &mut Nodes, cx: Cx<'_>, req: &CreateRequest) -> Result<OpResult, ErrorCode> {
    let limits = cx.limits;
    ref_data(limits, req.data.as_ref())?;
    let kind = match req.kind {
        CreateKind::Container if req.sequential => return Err(ErrorCode::InvalidArgument),
        CreateKind::Ttl { ttl_ms } if ttl_ms == 0 || ttl_ms > limits.ttl_max_ms => {
            return Err(ErrorCode::InvalidArgument);
        }
        CreateKind::Persistent => NodeKind::Persistent,
        CreateKind::Ephemeral => NodeKind::Ephemeral,
        CreateKind::Container => NodeKind::Container,
        CreateKind::Ttl { ttl_ms } => NodeKind::Ttl { ttl_ms },
    };
    if kind == NodeKind::Ephemeral {
        if !cx.live {
            return Err(ErrorCode::SessionExpired);
        }
        // Counted as the multi so far left them: a limit holds at every zxid.
        if nodes.values().filter(|n| n.owner == cx.session).count() >= limits.ephemerals_per_session_max {
            return Err(ErrorCode::LimitExceeded);
        }
    }
    // ZooKeeper validates the path as given (a sequential one with a suffix) before anything.
    ref_valid(&if req.sequential { format!("{}0", req.path) } else { req.path.clone() })?;
    let slash = req.path.rfind('/').unwrap();
    let parent = if slash == 0 { "/" } else { &req.path[..slash] };
    let parent_node = ref_get(nodes, parent)?;
    let final_path =
        if req.sequential { format!("{}{:010}", req.path, parent_node.cversion) } else { req.path.clone() };
    if nodes.contains_key(&final_path) {
        return Err(ErrorCode::NodeExists);
    }
    if !parent_node.owner.is_none() {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    if children(nodes, parent).count() >= limits.children_per_node_max as usize {
        return Err(ErrorCode::LimitExceeded);
    }
    let parent_node = nodes.get_mut(parent).unwrap();
    parent_node.cversion += 1;
    parent_node.pzxid = cx.zxid;
    let owner = if kind == NodeKind::Ephemeral { cx.session } else { SessionId::NONE };
    nodes.insert(final_path.clone(), RefNode::new(req.data.clone(), kind, owner, cx.zxid, cx.time_ms));
    let stat = ref_stat(nodes, &final_path);
    Ok(OpResult::Created { path: final_path, stat })
}

/// One op of a write against `nodes`; deletes are noted in `deleted`.
fn ref_op(nodes: &mut Nodes, cx: Cx<'_>, op: &MultiOp, deleted: &mut Vec<String>) -> Result<OpResult, ErrorCode> {
    match op {
        MultiOp::Create(req) => ref_create(nodes, cx, req),
        MultiOp::Delete { path: p, version } => {
            ref_valid(p)?;
            if p == "/" {
                return Err(ErrorCode::InvalidArgument);
            }
            ref_version(*version, ref_get(nodes, p)?)?;
            if children(nodes, p).next().is_some() {
                return Err(ErrorCode::NotEmpty);
            }
            ref_remove(nodes, p, cx.zxid);
            deleted.push(p.clone());
            Ok(OpResult::Deleted)
        }
        MultiOp::Set { path: p, data, version } => {
            ref_valid(p)?;
            ref_data(cx.limits, data.as_ref())?;
            ref_version(*version, ref_get(nodes, p)?)?;
            let node = nodes.get_mut(p).unwrap();
            node.data.clone_from(data);
            node.version += 1;
            node.mzxid = cx.zxid;
            node.mtime_ms = cx.time_ms;
            Ok(OpResult::Set(ref_stat(nodes, p)))
        }
        MultiOp::Check { path: p, version } => {
            ref_valid(p)?;
            // -1 matches any version (ZooKeeper's rule): the check is that the node exists.
            ref_version((*version != -1).then_some(*version), ref_get(nodes, p)?)?;
            Ok(OpResult::Checked)
        }
        MultiOp::HoldsLock { lock, token } => {
            ref_valid(lock)?;
            let holder = children(nodes, lock)
                .filter_map(|p| {
                    let name = &p[p.rfind('/').unwrap() + 1..];
                    let seq: i32 = name.get(name.len().checked_sub(10)?..)?.parse().ok()?;
                    Some((seq, p))
                })
                .min();
            match holder {
                Some((_, p)) if nodes[p].czxid.0 == *token => Ok(OpResult::Checked),
                _ => Err(ErrorCode::LockLost),
            }
        }
    }
}

impl Model {
    pub(crate) fn new(limits: Limits) -> Model {
        let root = RefNode::new(Some(Vec::new()), NodeKind::Persistent, SessionId::NONE, Zxid::ZERO, 0);
        let nodes = BTreeMap::from([("/".to_owned(), root)]);
        Model { limits, nodes, sessions: BTreeMap::new(), last_zxid: Zxid::ZERO }
    }

    fn next_zxid(&self) -> Zxid {
        Zxid::new(1, self.last_zxid.counter() + 1)
    }

    pub(crate) fn open_session(&mut self, record: SessionRecord) -> SessionId {
        self.last_zxid = self.next_zxid();
        let id = SessionId(self.last_zxid.0);
        self.sessions.insert(id, RefSession { record, deadline_ms: None });
        id
    }

    /// All or nothing: the ops run on a scratch copy, kept only if every one succeeds.
    pub(crate) fn write(&mut self, session: SessionId, ops: &[MultiOp], time_ms: u64) -> ModelWrite {
        let live = self.sessions.contains_key(&session);
        let cx = Cx { zxid: self.next_zxid(), time_ms, session, live, limits: &self.limits };
        let mut nodes = self.nodes.clone();
        let mut deleted = Vec::new();
        let mut results = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            results.push(ref_op(&mut nodes, cx, op, &mut deleted).map_err(|code| (i, code))?);
        }
        let reaped = ref_reap_containers(&mut nodes, &deleted, cx.zxid);
        self.nodes = nodes;
        self.last_zxid = cx.zxid;
        Ok((results, reaped))
    }

    /// Ends a live session: its ephemerals go, then the containers they emptied.
    pub(crate) fn close_session(&mut self, session: SessionId) -> Option<BTreeSet<String>> {
        self.sessions.remove(&session)?;
        let zxid = self.next_zxid();
        let owned: Vec<String> =
            self.nodes.iter().filter(|(_, n)| n.owner == session).map(|(p, _)| p.clone()).collect();
        for p in &owned {
            ref_remove(&mut self.nodes, p, zxid);
        }
        let mut deletes = ref_reap_containers(&mut self.nodes, &owned, zxid);
        deletes.extend(owned);
        self.last_zxid = zxid;
        Some(deletes)
    }

    /// Deletes childless TTL nodes unmodified for their TTL at `now_ms`, then emptied containers.
    pub(crate) fn reap_ttl(&mut self, now_ms: u64) -> Option<BTreeSet<String>> {
        let due: Vec<String> = self
            .nodes
            .iter()
            .filter(|(p, n)| match n.kind {
                NodeKind::Ttl { ttl_ms } => {
                    n.mtime_ms.saturating_add(ttl_ms) <= now_ms && children(&self.nodes, p).next().is_none()
                }
                _ => false,
            })
            .map(|(p, _)| p.clone())
            .collect();
        if due.is_empty() {
            return None;
        }
        let zxid = self.next_zxid();
        for p in &due {
            ref_remove(&mut self.nodes, p, zxid);
        }
        let mut deletes = ref_reap_containers(&mut self.nodes, &due, zxid);
        deletes.extend(due);
        self.last_zxid = zxid;
        Some(deletes)
    }

    pub(crate) fn touch(&mut self, session: SessionId, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.deadline_ms = Some(now_ms + u64::from(s.record.timeout_ms));
        }
    }

    /// A session's clock starts at the first tick that sees it; it expires a timeout later.
    pub(crate) fn expired(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut expired = Vec::new();
        for (id, s) in &mut self.sessions {
            match s.deadline_ms {
                None => s.deadline_ms = Some(now_ms + u64::from(s.record.timeout_ms)),
                Some(deadline) if deadline <= now_ms => expired.push(*id),
                Some(_) => {}
            }
        }
        expired
    }
}
