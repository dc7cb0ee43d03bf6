//! Prepare: validate a write against the current state and turn it into a fully determined
//! [`Txn`], or reject it. Never mutates the machine.

use super::acl::Identity;
use super::overlay::Overlay;
use super::{CONTAINERS_REAPED_PER_TXN, StateMachine};
use baton_proto::message::{CreateKind, CreateRequest, MultiOp, Op, OpResult, Response};
use baton_proto::{ErrorCode, ErrorReply, NodeKind, Perms, SessionId, Txn, TxnBody, TxnOp, Zxid, path};

/// Why a write was not turned into a txn. Either way the request gets a reply and nothing is
/// logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A plain op failed.
    Error(ErrorReply),
    /// A multi failed: one result per op (the failing op's code, `RolledBack` before it,
    /// `Skipped` after it).
    MultiFailed(Vec<OpResult>),
}

impl Rejection {
    /// The reply the client gets.
    pub fn into_reply(self) -> Result<Response, ErrorReply> {
        match self {
            Rejection::Error(e) => Err(e),
            Rejection::MultiFailed(results) => Ok(Response::Multi(results)),
        }
    }
}

fn reject(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(code, message)
}

impl StateMachine {
    /// Prepares a client's write (`Create`, `CreateInLine`, `Delete`, `Set`, `Multi`, `SetAcl`)
    /// at wall time `time_ms`, checked against the ACLs for the session's identity.
    /// `CloseSession` goes through [`StateMachine::prepare_close_session`].
    pub fn prepare_write(&self, session: SessionId, op: &Op, time_ms: u64) -> Result<Txn, Rejection> {
        if let Op::SetAcl { path: p, acl, version } = op {
            let txn_op = self.prepare_set_acl(session, p, acl, *version).map_err(Rejection::Error)?;
            return Ok(Txn {
                zxid: self.next_zxid(),
                time_ms,
                session_id: session,
                body: TxnBody::Write(vec![txn_op]),
            });
        }
        let ops = match op {
            Op::Create(req) => vec![MultiOp::Create(req.clone())],
            Op::CreateInLine(req) => {
                self.check_may_join_line(session, req).map_err(Rejection::Error)?;
                vec![MultiOp::Create(req.clone())]
            }
            Op::Delete { path, version } => vec![MultiOp::Delete { path: path.clone(), version: *version }],
            Op::Set { path, data, version } => {
                vec![MultiOp::Set { path: path.clone(), data: data.clone(), version: *version }]
            }
            Op::Multi(ops) => ops.clone(),
            other => {
                let message = format!("{other:?} is not a write");
                return Err(Rejection::Error(reject(ErrorCode::BadRequest, message)));
            }
        };
        let is_multi = matches!(op, Op::Multi(_));
        let count = ops.len();
        let mut overlay = Overlay::new(&self.tree, self.next_zxid());
        let mut txn_ops = Vec::with_capacity(ops.len());
        for (index, multi_op) in ops.into_iter().enumerate() {
            match self.prepare_op(&mut overlay, session, multi_op) {
                Ok(txn_op) => txn_ops.push(txn_op),
                Err(e) if is_multi => {
                    let results = (0..count)
                        .map(|i| match i.cmp(&index) {
                            std::cmp::Ordering::Less => OpResult::Error(ErrorCode::RolledBack),
                            std::cmp::Ordering::Equal => OpResult::Error(e.code),
                            std::cmp::Ordering::Greater => OpResult::Error(ErrorCode::Skipped),
                        })
                        .collect();
                    return Err(Rejection::MultiFailed(results));
                }
                Err(e) => return Err(Rejection::Error(e)),
            }
        }
        let deleted: Vec<String> = txn_ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Delete { path } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let reaped = reap_emptied_containers(&mut overlay, &deleted, CONTAINERS_REAPED_PER_TXN);
        txn_ops.extend(reaped.into_iter().map(|path| TxnOp::Delete { path }));
        Ok(Txn { zxid: self.next_zxid(), time_ms, session_id: session, body: TxnBody::Write(txn_ops) })
    }

    /// What `CreateInLine` needs beyond a create, checked before anything is created so that
    /// [`StateMachine::join_line`] cannot fail after it: a sequential suffix (or the node
    /// would be in no line), read permission on the parent (as for `Turn`), and room for the
    /// turn watch.
    fn check_may_join_line(&self, session: SessionId, req: &CreateRequest) -> Result<(), ErrorReply> {
        if !req.sequential {
            let message = format!("{} would have no sequential suffix, so it would be in no line", req.path);
            return Err(reject(ErrorCode::InvalidArgument, message));
        }
        if let Some(dir) = path::parent(&req.path)
            && let Some(parent) = self.tree.get(dir)
        {
            self.identity(session).check(parent.acl(), Perms::READ, dir)?;
        }
        if self.watches.count(session) >= self.limits.watches_per_session_max {
            return Err(self.too_many_watches());
        }
        Ok(())
    }

    /// Prepares a promotion: the first txn of the next epoch.
    pub fn prepare_new_epoch(&self, time_ms: u64) -> Txn {
        let epoch = self.epoch + 1;
        Txn { zxid: Zxid::new(epoch, 1), time_ms, session_id: SessionId::NONE, body: TxnBody::NewEpoch { epoch } }
    }

    /// Prepares the opening of a new session; its id is the txn's zxid.
    pub fn prepare_create_session(&self, timeout_ms: u32, connection_bound: bool, secret: u64, time_ms: u64) -> Txn {
        let zxid = self.next_zxid();
        Txn {
            zxid,
            time_ms,
            session_id: SessionId(zxid.0),
            body: TxnBody::CreateSession { timeout_ms, secret, connection_bound },
        }
    }

    /// Prepares the end of a session: its ephemerals go, and any container they empty.
    /// `None` if the session does not exist (already closed).
    pub fn prepare_close_session(&self, session: SessionId, time_ms: u64) -> Option<Txn> {
        let owned = &self.sessions.get(session)?.ephemerals;
        let mut overlay = Overlay::new(&self.tree, self.next_zxid());
        let mut deletes: Vec<String> = owned.iter().cloned().collect();
        for p in &deletes {
            overlay.delete(p);
        }
        let reaped = reap_emptied_containers(&mut overlay, &deletes, CONTAINERS_REAPED_PER_TXN);
        deletes.extend(reaped);
        Some(Txn { zxid: self.next_zxid(), time_ms, session_id: session, body: TxnBody::CloseSession { deletes } })
    }

    /// Prepares the deletion of TTL nodes that are childless and unmodified for their TTL at
    /// wall time `time_ms` (and of containers this empties), at most `max` of them: the rest
    /// go with the next tick, so that no txn grows with the tree (a txn is one replication
    /// message). `None` if there are none.
    pub fn prepare_reap_ttl(&self, time_ms: u64, max: usize) -> Option<Txn> {
        let mut overlay = Overlay::new(&self.tree, self.next_zxid());
        let mut deletes = Vec::new();
        for (p, node) in self.tree.ttl_nodes() {
            if deletes.len() >= max {
                break;
            }
            let stat = node.stat();
            if let NodeKind::Ttl { ttl_ms } = node.kind()
                && stat.num_children == 0
                && stat.mtime_ms.saturating_add(ttl_ms) <= time_ms
            {
                overlay.delete(p);
                deletes.push(p.to_owned());
            }
        }
        if deletes.is_empty() {
            return None;
        }
        let reaped = reap_emptied_containers(&mut overlay, &deletes, CONTAINERS_REAPED_PER_TXN);
        deletes.extend(reaped);
        let ops = deletes.into_iter().map(|path| TxnOp::Delete { path }).collect();
        Some(Txn { zxid: self.next_zxid(), time_ms, session_id: SessionId::NONE, body: TxnBody::Write(ops) })
    }

    /// Prepares the deletion of the containers an earlier txn emptied but had no room to
    /// reap ([`CONTAINERS_REAPED_PER_TXN`]), and of the containers that empties, at most
    /// `max` in all. `None` if there are none.
    pub fn prepare_reap_containers(&self, time_ms: u64, max: usize) -> Option<Txn> {
        let mut overlay = Overlay::new(&self.tree, self.next_zxid());
        let mut deletes = Vec::new();
        for p in self.containers_to_reap.iter().take(max) {
            if overlay.get(p).is_some_and(|node| node.kind == NodeKind::Container && node.num_children == 0) {
                overlay.delete(p);
                deletes.push(p.clone());
            }
        }
        if deletes.is_empty() {
            return None;
        }
        let reaped = reap_emptied_containers(&mut overlay, &deletes, max - deletes.len());
        deletes.extend(reaped);
        let ops = deletes.into_iter().map(|path| TxnOp::Delete { path }).collect();
        Some(Txn { zxid: self.next_zxid(), time_ms, session_id: SessionId::NONE, body: TxnBody::Write(ops) })
    }

    /// Prepares the write that gives a fresh store's root its configured ACL (a server
    /// decision, like reaping, so it is logged and replicated like any write).
    pub fn prepare_root_acl(&self, acl: Vec<baton_proto::AclEntry>, time_ms: u64) -> Txn {
        let op = TxnOp::SetAcl { path: "/".to_owned(), acl };
        Txn { zxid: self.next_zxid(), time_ms, session_id: SessionId::NONE, body: TxnBody::Write(vec![op]) }
    }

    fn prepare_set_acl(
        &self,
        session: SessionId,
        p: &str,
        acl: &[baton_proto::AclEntry],
        version: Option<i32>,
    ) -> Result<TxnOp, ErrorReply> {
        valid_path(p)?;
        let node = self.tree.get(p).ok_or_else(|| reject(ErrorCode::NoNode, p))?;
        let who = self.identity(session);
        who.check(node.acl(), Perms::ADMIN, p)?;
        let aversion = node.stat().aversion;
        if let Some(v) = version
            && v != aversion
        {
            let message = format!("{p}: expected ACL version {v}, found {aversion}");
            return Err(reject(ErrorCode::BadVersion, message));
        }
        Ok(TxnOp::SetAcl { path: p.to_owned(), acl: who.resolve(acl)? })
    }

    fn prepare_op(&self, overlay: &mut Overlay<'_>, session: SessionId, op: MultiOp) -> Result<TxnOp, ErrorReply> {
        let who = self.identity(session);
        match op {
            MultiOp::Create(req) => self.prepare_create(overlay, session, req),
            MultiOp::Delete { path: p, version } => {
                valid_path(&p)?;
                if p == "/" {
                    return Err(reject(ErrorCode::InvalidArgument, "the root cannot be deleted"));
                }
                let node = overlay.get(&p).ok_or_else(|| reject(ErrorCode::NoNode, p.clone()))?;
                check_parent(overlay, who, &p, Perms::DELETE)?;
                check_version(&p, version, node.version)?;
                if node.num_children > 0 {
                    return Err(reject(ErrorCode::NotEmpty, p));
                }
                overlay.delete(&p);
                Ok(TxnOp::Delete { path: p })
            }
            MultiOp::Set { path: p, data, version } => {
                valid_path(&p)?;
                self.check_data_len(data.as_ref().map_or(0, Vec::len))?;
                let node = overlay.get(&p).ok_or_else(|| reject(ErrorCode::NoNode, p.clone()))?;
                check_node(overlay, who, &p, Perms::WRITE)?;
                check_version(&p, version, node.version)?;
                overlay.set(&p);
                Ok(TxnOp::Set { path: p, data })
            }
            MultiOp::Check { path: p, version } => {
                valid_path(&p)?;
                let node = overlay.get(&p).ok_or_else(|| reject(ErrorCode::NoNode, p.clone()))?;
                check_node(overlay, who, &p, Perms::READ)?;
                // -1 matches any version, as in ZooKeeper.
                check_version(&p, (version != -1).then_some(version), node.version)?;
                Ok(TxnOp::Check { path: p, version })
            }
            MultiOp::HoldsLock { .. } if self.limits.skip_fencing_check => {
                Ok(TxnOp::Check { path: "/".to_owned(), version: overlay.get("/").map_or(0, |root| root.version) })
            }
            MultiOp::HoldsLock { lock, token } => {
                valid_path(&lock)?;
                if overlay.get(&lock).is_some() {
                    check_node(overlay, who, &lock, Perms::READ)?;
                }
                let lost = |why: String| reject(ErrorCode::LockLost, format!("token {token:#x} on {lock}: {why}"));
                let Some(holder) = lock_holder(overlay, &lock) else {
                    return Err(lost("the lock has no holder".into()));
                };
                let node = overlay.get(&holder).ok_or_else(|| lost("the holder vanished".into()))?;
                if node.czxid.0 != token {
                    return Err(lost(format!("held by {holder}, token {:#x}", node.czxid.0)));
                }
                // Logged as the check it amounts to: the holder, at its current version.
                Ok(TxnOp::Check { path: holder, version: node.version })
            }
        }
    }

    fn prepare_create(
        &self,
        overlay: &mut Overlay<'_>,
        session: SessionId,
        req: CreateRequest,
    ) -> Result<TxnOp, ErrorReply> {
        self.check_data_len(req.data.as_ref().map_or(0, Vec::len))?;
        let kind = match req.kind {
            CreateKind::Persistent => NodeKind::Persistent,
            CreateKind::Ephemeral => NodeKind::Ephemeral,
            CreateKind::Container if req.sequential => {
                return Err(reject(ErrorCode::InvalidArgument, "a container cannot be sequential"));
            }
            CreateKind::Container => NodeKind::Container,
            CreateKind::Ttl { ttl_ms } if ttl_ms == 0 || ttl_ms > self.limits.ttl_max_ms => {
                let max = self.limits.ttl_max_ms;
                return Err(reject(ErrorCode::InvalidArgument, format!("TTL {ttl_ms} ms is outside 1..={max} ms")));
            }
            CreateKind::Ttl { ttl_ms } => NodeKind::Ttl { ttl_ms },
        };
        let owner = if kind == NodeKind::Ephemeral {
            self.check_ephemeral_quota(session, overlay.owned_delta(session))?;
            session
        } else {
            SessionId::NONE
        };
        // A bad name is InvalidPath whether or not its parent exists; a sequential name's
        // validity does not depend on the digits it will get.
        if req.sequential {
            valid_path(&path::sequential_name(&req.path, 0))?;
        } else {
            valid_path(&req.path)?;
        }
        let parent = creation_parent(&req.path)?.to_owned();
        let parent = parent.as_str();
        let parent_node = overlay.get(parent).ok_or_else(|| reject(ErrorCode::NoNode, format!("parent {parent}")))?;
        let who = self.identity(session);
        check_node(overlay, who, parent, Perms::CREATE)?;
        let final_path = if req.sequential { path::sequential_name(&req.path, parent_node.cversion) } else { req.path };
        if final_path == "/" {
            return Err(reject(ErrorCode::NodeExists, "/"));
        }
        if final_path.len() > self.limits.path_len_max || path::depth(&final_path) > self.limits.path_depth_max {
            let (len, depth) = (self.limits.path_len_max, self.limits.path_depth_max);
            return Err(reject(
                ErrorCode::InvalidPath,
                format!("{final_path:?} is longer than {len} bytes or deeper than {depth} segments"),
            ));
        }
        if !parent_node.owner.is_none() {
            return Err(reject(ErrorCode::NoChildrenForEphemerals, format!("parent {parent}")));
        }
        if overlay.get(&final_path).is_some() {
            return Err(reject(ErrorCode::NodeExists, final_path));
        }
        if parent_node.num_children >= self.limits.children_per_node_max {
            let max = self.limits.children_per_node_max;
            return Err(reject(ErrorCode::LimitExceeded, format!("{parent} has {max} children, the most allowed")));
        }
        let requested = if req.acl.is_empty() { &self.limits.default_acl } else { &req.acl };
        let acl = who.resolve(requested)?;
        overlay.create(&final_path, kind, owner, acl.clone());
        Ok(TxnOp::Create { path: final_path, data: req.data, kind, acl })
    }

    fn check_data_len(&self, len: usize) -> Result<(), ErrorReply> {
        if len > self.limits.node_data_max {
            let max = self.limits.node_data_max;
            return Err(reject(ErrorCode::TooLarge, format!("data of {len} bytes exceeds the limit of {max}")));
        }
        Ok(())
    }

    /// `pending` counts the ephemerals this session gains (or loses) earlier in the same txn.
    fn check_ephemeral_quota(&self, session: SessionId, pending: isize) -> Result<(), ErrorReply> {
        let Some(owner) = self.sessions.get(session) else {
            return Err(reject(ErrorCode::SessionExpired, format!("session {session}")));
        };
        if owner.ephemerals.len().saturating_add_signed(pending) >= self.limits.ephemerals_per_session_max {
            let max = self.limits.ephemerals_per_session_max;
            return Err(reject(ErrorCode::LimitExceeded, format!("session owns {max} ephemerals, the most allowed")));
        }
        Ok(())
    }
}

/// The ACL of the node at `p` (which exists) grants `wanted` to `who`.
fn check_node(overlay: &Overlay<'_>, who: &Identity, p: &str, wanted: Perms) -> Result<(), ErrorReply> {
    who.check(overlay.acl(p).unwrap_or_default(), wanted, p)
}

/// Creating and deleting are the parent's to allow, as in ZooKeeper.
fn check_parent(overlay: &Overlay<'_>, who: &Identity, p: &str, wanted: Perms) -> Result<(), ErrorReply> {
    let parent = path::parent(p).unwrap_or("/");
    check_node(overlay, who, parent, wanted)
}

fn valid_path(p: &str) -> Result<(), ErrorReply> {
    path::validate(p).map_err(|e| reject(ErrorCode::InvalidPath, format!("{p:?}: {e}")))
}

/// The parent a create goes under. For a sequential create the path is a prefix that may end
/// in `/` (ZooKeeper's `create -s /queue/`), so the parent is everything before the last `/`.
fn creation_parent(p: &str) -> Result<&str, ErrorReply> {
    let invalid = || reject(ErrorCode::InvalidPath, format!("{p:?}: not an absolute path"));
    let i = p.rfind('/').ok_or_else(invalid)?;
    let parent = if i == 0 { "/" } else { &p[..i] };
    valid_path(parent)?;
    if !p.starts_with('/') {
        return Err(invalid());
    }
    Ok(parent)
}

/// The holder of the lock whose directory is `lock`: its first waiter.
fn lock_holder(overlay: &Overlay<'_>, lock: &str) -> Option<String> {
    let children = overlay.children(lock);
    super::first_in_line(children.iter().map(String::as_str)).map(|name| path::join(lock, name))
}

fn check_version(p: &str, expected: Option<i32>, actual: i32) -> Result<(), ErrorReply> {
    match expected {
        Some(v) if v != actual => {
            Err(reject(ErrorCode::BadVersion, format!("{p}: expected version {v}, found {actual}")))
        }
        _ => Ok(()),
    }
}

/// Containers left childless by `deleted` (and, in turn, their container ancestors), in the
/// order they must be deleted, at most `max`: a txn must not grow with the tree (it is one
/// replication message). Marks them deleted in `overlay`. The containers left over stay
/// empty until the engine's tick reaps them ([`StateMachine::prepare_reap_containers`]).
fn reap_emptied_containers(overlay: &mut Overlay<'_>, deleted: &[String], max: usize) -> Vec<String> {
    let mut reaped = Vec::new();
    let mut candidates: Vec<String> = deleted.iter().filter_map(|p| path::parent(p)).map(str::to_owned).collect();
    while reaped.len() < max
        && let Some(candidate) = candidates.pop()
    {
        if candidate == "/" {
            continue;
        }
        let Some(node) = overlay.get(&candidate) else { continue };
        if node.kind == NodeKind::Container && node.num_children == 0 {
            overlay.delete(&candidate);
            if let Some(parent) = path::parent(&candidate) {
                candidates.push(parent.to_owned());
            }
            reaped.push(candidate);
        }
    }
    reaped
}
