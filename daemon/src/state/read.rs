//! Reads and watch registration: answered from the current state, logging nothing.

use super::StateMachine;
use super::tree::TreeView;
use super::watches::{SessionWatches, WatchKind};
use baton_proto::message::{EventKind, Op, Response, WatchEvent, WatchSet};
use baton_proto::{ErrorCode, ErrorReply, Perms, SessionId, Stat, Zxid, path};

fn valid_path(p: &str) -> Result<(), ErrorReply> {
    path::validate(p).map_err(|e| ErrorReply::new(ErrorCode::InvalidPath, format!("{p:?}: {e}")))
}

fn no_node(p: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::NoNode, p)
}

impl StateMachine {
    /// Answers a read (`Ping`, `Get`, `Exists`, `Children`, `Sync`, `Ephemerals`, `AddWatch`,
    /// `RemoveWatches`, `MatchWatches`, `CountDescendants`, `GetAcl`, `WhoAmI`, `Turn`) for
    /// `session`, registering any watch it asks for.
    /// Reading data or children needs read permission; `exists` needs none (as in ZooKeeper).
    pub fn read(&mut self, session: SessionId, op: &Op) -> Result<Response, ErrorReply> {
        let watch = match op {
            Op::Get { path: p, watch: true } => Some((WatchKind::Data, p)),
            Op::Exists { path: p, watch: true } => Some((WatchKind::Exists, p)),
            Op::Children { path: p, watch: true, .. } => Some((WatchKind::Children, p)),
            Op::AddWatch { path: p, mode } => {
                valid_path(p)?;
                if let Some(acl) = self.tree.acl(p) {
                    self.identity(session).check(acl, Perms::READ, p)?;
                }
                self.add_watch(session, WatchKind::from(*mode), p)?;
                return Ok(Response::WatchAdded);
            }
            Op::RemoveWatches { path: p } => {
                valid_path(p)?;
                self.watches.remove_path(session, p);
                return Ok(Response::WatchesRemoved);
            }
            Op::MatchWatches { path: p, kinds, remove } => return self.match_watches(session, p, kinds, *remove),
            Op::Turn { path: p } => return self.turn(session, p),
            _ => None,
        };
        // The watch is set only once the read itself succeeded (no watch on a refused read).
        let response = self.lookup(session, op)?;
        if let Some((kind, p)) = watch {
            self.add_watch(session, kind, p)?;
        }
        Ok(response)
    }

    /// Answers a read that changes nothing (a watch flag is ignored here; `read` sets it), so
    /// it can be answered from a shared reference: what connections serve by themselves.
    pub fn lookup(&self, session: SessionId, op: &Op) -> Result<Response, ErrorReply> {
        self.tree_read(session, op, self.tree.as_now()).unwrap_or_else(|| self.lookup_other(session, op))
    }

    /// As [`StateMachine::lookup`], as the state was before the current round (see
    /// `Tree::keep_before`), with that state's zxid: for the reads that need nothing but the
    /// tree (see `tree_read`); `None` for the others.
    pub fn lookup_before_round(&self, session: SessionId, op: &Op) -> Option<(Zxid, Result<Response, ErrorReply>)> {
        let result = self.tree_read(session, op, self.tree.as_before_round())?;
        Some((self.round_started_after, result))
    }

    /// The reads that need nothing but the tree — `Get`, `Exists`, `Children`, `GetAcl` and a
    /// `MultiRead` of them — answered in `tree`; `None` for the others.
    fn tree_read(&self, session: SessionId, op: &Op, tree: TreeView<'_>) -> Option<Result<Response, ErrorReply>> {
        Some(match op {
            Op::Get { .. } | Op::Exists { .. } | Op::Children { .. } | Op::GetAcl { .. } => {
                self.look_at(session, op, tree)
            }
            Op::MultiRead(ops) => self.multi_read(session, ops, tree),
            _ => return None,
        })
    }

    /// A `Get`, `Exists`, `Children` or `GetAcl` in `tree`.
    fn look_at(&self, session: SessionId, op: &Op, tree: TreeView<'_>) -> Result<Response, ErrorReply> {
        let who = self.identity(session);
        match op {
            Op::GetAcl { path: p } => {
                valid_path(p)?;
                let node = tree.get(p).ok_or_else(|| no_node(p))?;
                if !who.may(node.acl(), Perms::READ) {
                    who.check(node.acl(), Perms::ADMIN, p)?;
                }
                Ok(Response::Acl { acl: node.acl().to_vec(), stat: node.stat() })
            }
            Op::Get { path: p, .. } => {
                valid_path(p)?;
                let node = tree.get(p).ok_or_else(|| no_node(p))?;
                who.check(node.acl(), Perms::READ, p)?;
                Ok(Response::Data { data: node.data().map(<[u8]>::to_vec), stat: node.stat() })
            }
            Op::Exists { path: p, .. } => {
                valid_path(p)?;
                Ok(Response::Exists(tree.get(p).map(|n| n.stat())))
            }
            Op::Children { path: p, with_stats, .. } => {
                valid_path(p)?;
                let node = tree.get(p).ok_or_else(|| no_node(p))?;
                who.check(node.acl(), Perms::READ, p)?;
                let stat = node.stat();
                let children = tree.children(p);
                Ok(if *with_stats {
                    let children = children.map(|(name, c)| (name.to_owned(), c.stat())).collect();
                    Response::ChildrenWithStats { children, stat }
                } else {
                    Response::Children { children: children.map(|(name, _)| name.to_owned()).collect(), stat }
                })
            }
            other => Err(ErrorReply::new(ErrorCode::BadRequest, format!("{other:?} is not a tree read"))),
        }
    }

    /// The reads other than the tree's (see `tree_read`), in the state as it is now.
    fn lookup_other(&self, session: SessionId, op: &Op) -> Result<Response, ErrorReply> {
        let who = self.identity(session);
        match op {
            Op::Ping => Ok(Response::Pong),
            Op::Sync { path: p } => {
                valid_path(p)?;
                Ok(Response::Synced { zxid: self.last_zxid })
            }
            Op::Ephemerals { session_id } => {
                let owner = session_id.unwrap_or(session);
                if owner != session {
                    // Another session's nodes: an administrator's question.
                    self.check_admin(session)?;
                }
                let paths =
                    self.sessions.get(owner).map(|s| s.ephemerals.iter().cloned().collect()).unwrap_or_default();
                Ok(Response::Ephemerals(paths))
            }
            Op::CountDescendants { path: p } => {
                valid_path(p)?;
                let node = self.tree.get(p).ok_or_else(|| no_node(p))?;
                who.check(node.acl(), Perms::READ, p)?;
                Ok(Response::Descendants(self.tree.descendants(p) as u64))
            }
            Op::WhoAmI => Ok(Response::Identity { principals: who.principals.clone(), superuser: who.superuser }),
            other => Err(ErrorReply::new(ErrorCode::BadRequest, format!("{other:?} is not a read"))),
        }
    }

    /// Re-registers a resumed session's watches and returns the events they missed after
    /// `last_zxid`, replayed from the retained history in zxid order. If that history is gone,
    /// every watched path gets a `WatchReset` (consuming one-shot watches) and `reset` is true.
    pub fn restore_watches(
        &mut self,
        session: SessionId,
        last_zxid: Zxid,
        set: &WatchSet,
    ) -> Result<(Vec<WatchEvent>, bool), ErrorReply> {
        for p in set.data.iter().chain(&set.exists).chain(&set.children).chain(&set.persistent).chain(&set.recursive) {
            valid_path(p)?;
        }
        if set.len() > self.limits.watches_per_session_max.saturating_sub(self.watches.count(session)) {
            return Err(ErrorReply::new(ErrorCode::LimitExceeded, "too many watches for this session"));
        }
        let mut watches = SessionWatches::from_set(set);
        let mut events = Vec::new();
        let reset = if let Some(changes) = self.history.since(last_zxid) {
            let who = self.identity(session);
            for (zxid, p, kind) in changes {
                let Some(needs_read) = watches.fire(p, kind) else { continue };
                if needs_read && !who.may(self.nearest_acl(p), Perms::READ) {
                    continue;
                }
                events.push(WatchEvent { zxid, path: p.to_owned(), kind });
            }
            false
        } else {
            for p in watches.paths() {
                watches.fire(&p, EventKind::WatchReset);
                events.push(WatchEvent { zxid: self.last_zxid, path: p, kind: EventKind::WatchReset });
            }
            true
        };
        for (kind, p) in watches.into_entries() {
            self.watches.add(session, kind, &p, usize::MAX);
        }
        Ok((events, reset))
    }

    /// Admin operations (status, backup, promote) need the admin permission on the root.
    pub fn check_admin(&self, session: SessionId) -> Result<(), ErrorReply> {
        let root = self.tree.get("/").expect("the root always exists");
        self.identity(session).check(root.acl(), Perms::ADMIN, "/")
    }

    /// The ACL of the node at `p` or, if it is gone, of its nearest existing ancestor: what
    /// decides whether a replayed change may be told.
    fn nearest_acl(&self, p: &str) -> &[baton_proto::AclEntry] {
        path::self_and_ancestors(p).find_map(|q| self.tree.acl(q)).map_or(&[], |acl| acl)
    }

    /// Reads answered together, in `tree`: each `Get` or `Children` (without a watch) in turn.
    fn multi_read(&self, session: SessionId, ops: &[Op], tree: TreeView<'_>) -> Result<Response, ErrorReply> {
        let reads_only =
            ops.iter().all(|op| matches!(op, Op::Get { watch: false, .. } | Op::Children { watch: false, .. }));
        if !reads_only {
            let message = "a multi-read holds only get and children, without watches";
            return Err(ErrorReply::new(ErrorCode::InvalidArgument, message));
        }
        Ok(Response::MultiRead(ops.iter().map(|op| self.look_at(session, op, tree)).collect()))
    }

    /// Finds (and with `remove` drops) the session's watches of `kinds` on `p`; `NoWatcher`
    /// if there is none.
    fn match_watches(
        &mut self,
        session: SessionId,
        p: &str,
        kinds: &[baton_proto::message::WatchType],
        remove: bool,
    ) -> Result<Response, ErrorReply> {
        valid_path(p)?;
        let kinds: Vec<WatchKind> = kinds.iter().map(|k| WatchKind::from(*k)).collect();
        let found = if remove {
            self.watches.remove_kinds(session, p, &kinds)
        } else {
            self.watches.count_kinds(session, p, &kinds)
        };
        if found == 0 {
            return Err(ErrorReply::new(ErrorCode::NoWatcher, p));
        }
        Ok(Response::WatchesRemoved)
    }

    /// Whether the node at `p` is first in line among its siblings; if it exists and is not,
    /// leaves a turn watch on it (fired by `apply` when a departure makes it first).
    fn turn(&mut self, session: SessionId, p: &str) -> Result<Response, ErrorReply> {
        Ok(match self.place_in_line(session, p)? {
            Some((stat, first)) => Response::Turn { stat: Some(stat), first },
            None => Response::Turn { stat: None, first: false },
        })
    }

    /// The second half of `CreateInLine`, once its create is applied: where the new node
    /// `p` stands in its line, leaving a turn watch if it waits. Cannot fail for a request
    /// `prepare_write` accepted; if it did, the caller gets the error and the recipes delete
    /// the node they cannot find in line.
    pub fn join_line(&mut self, session: SessionId, p: String, stat: Stat) -> Result<Response, ErrorReply> {
        match self.place_in_line(session, &p)? {
            Some((_, first)) => Ok(Response::CreatedInLine { path: p, stat, first }),
            None => Err(no_node(&p)),
        }
    }

    /// The node's stat and whether it is first in line (`None`: no such node), leaving a turn
    /// watch on it if it waits.
    fn place_in_line(&mut self, session: SessionId, p: &str) -> Result<Option<(Stat, bool)>, ErrorReply> {
        valid_path(p)?;
        let Some(dir) = path::parent(p) else {
            return Err(ErrorReply::new(ErrorCode::InvalidArgument, "the root is in no line"));
        };
        if let Some(acl) = self.tree.acl(dir) {
            self.identity(session).check(acl, Perms::READ, dir)?;
        }
        let Some(stat) = self.tree.get(p).map(|n| n.stat()) else {
            return Ok(None);
        };
        if path::sequence_of(path::name(p)).is_none() {
            // Its turn would never come: it is in no line.
            let message = format!("{p} has no 10-digit sequential suffix, so it is in no line");
            return Err(ErrorReply::new(ErrorCode::InvalidArgument, message));
        }
        self.lines.follow(dir, self.tree.children(dir).map(|(name, _)| name));
        let first = self.first_waiter(dir) == Some(path::name(p));
        if !first {
            self.add_watch(session, WatchKind::Turn, p)?;
        }
        if !self.watches.turn_watched_in(dir) {
            self.lines.forget(dir);
        }
        Ok(Some((stat, first)))
    }

    fn add_watch(&mut self, session: SessionId, kind: WatchKind, p: &str) -> Result<(), ErrorReply> {
        if self.watches.add(session, kind, p, self.limits.watches_per_session_max) {
            Ok(())
        } else {
            Err(self.too_many_watches())
        }
    }

    /// The refusal of a watch to a session that holds `watches_per_session_max` already.
    pub(super) fn too_many_watches(&self) -> ErrorReply {
        let max = self.limits.watches_per_session_max;
        ErrorReply::new(ErrorCode::LimitExceeded, format!("session holds {max} watches, the most allowed"))
    }
}
