//! Apply: carry out a prepared txn. Identical on the primary, on a standby and in recovery;
//! cannot fail (a txn that does not fit the state is a bug, and stops the process).

use super::StateMachine;
use super::acl::Acl;
use super::sessions::SessionRecord;
use super::tree::NodeRecord;
use baton_proto::message::{EventKind, OpResult, WatchEvent};
use baton_proto::{Change, NodeKind, Perms, SessionId, Txn, TxnBody, TxnOp, Zxid, path};
use std::collections::{BTreeMap, BTreeSet};

/// The ACLs of the nodes a txn deleted, for checking who may hear of the deletes.
type Gone = BTreeMap<String, Acl>;

/// The records a txn changed, to be written in the same storage transaction as the txn.
/// `None` means deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreDelta {
    pub nodes: Vec<(String, Option<NodeRecord>)>,
    pub sessions: Vec<(SessionId, Option<SessionRecord>)>,
}

/// What applying a txn did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// One result per op of a `Write` (empty for session txns).
    pub results: Vec<OpResult>,
    /// Events to deliver, in order: each to the session named.
    pub events: Vec<(SessionId, WatchEvent)>,
    pub delta: StoreDelta,
}

impl StateMachine {
    /// Applies a prepared txn.
    ///
    /// # Panics
    /// If the txn does not follow the last one or does not fit the state: both mean a bug or
    /// corrupt input that must not be served.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        assert!(txn.zxid > self.last_zxid, "txn {} does not follow {}", txn.zxid, self.last_zxid);
        let mut applied = Applied::default();
        let mut touched = BTreeSet::new();
        let mut gone = Gone::new();
        match &txn.body {
            TxnBody::CreateSession { timeout_ms, secret, connection_bound } => {
                let record =
                    SessionRecord { timeout_ms: *timeout_ms, secret: *secret, connection_bound: *connection_bound };
                self.sessions.insert(txn.session_id, record);
                applied.delta.sessions.push((txn.session_id, Some(record)));
            }
            TxnBody::CloseSession { deletes } => {
                self.watches.remove_session(txn.session_id);
                for p in deletes {
                    self.delete_node(p, txn, &mut touched, &mut gone);
                }
                let closed = self.sessions.remove(txn.session_id);
                assert!(
                    closed.is_some_and(|s| s.ephemerals.is_empty()),
                    "session {} closed with ephemerals left",
                    txn.session_id
                );
                applied.delta.sessions.push((txn.session_id, None));
            }
            TxnBody::Write(ops) => {
                for op in ops {
                    applied.results.push(self.apply_op(op, txn, &mut touched, &mut gone));
                }
            }
            TxnBody::NewEpoch { epoch } => {
                assert!(*epoch > self.epoch, "epoch {epoch} does not follow {}", self.epoch);
                // Nobody counted the sessions' time on the old primary's behalf.
                self.sessions.reset_deadlines();
            }
        }
        self.last_zxid = txn.zxid;
        self.epoch = self.epoch.max(txn.zxid.epoch());
        self.history.record(txn);
        let changes = txn.changes();
        for change in &changes {
            let acl = self.tree.acl(change.path).or_else(|| gone.get(change.path));
            for (session, needs_read) in self.watches.fire(change.path, change.kind) {
                // Checked now, not when the watch was set: the ACL or the watcher may have
                // changed, and a recursive watch covers nodes its session was never asked about.
                if needs_read && !acl.is_some_and(|acl| self.identity(session).may(acl, Perms::READ)) {
                    continue;
                }
                let event = WatchEvent { zxid: txn.zxid, path: change.path.to_owned(), kind: change.kind };
                applied.events.push((session, event));
            }
        }
        if changes.iter().any(|change| change.kind == EventKind::Deleted) {
            self.tell_turns(txn.zxid, &changes, &mut applied.events);
        }
        applied.delta.nodes = touched
            .into_iter()
            .map(|p| {
                let r = self.tree.record(&p);
                (p, r)
            })
            .collect();
        applied
    }

    fn apply_op(&mut self, op: &TxnOp, txn: &Txn, touched: &mut BTreeSet<String>, gone: &mut Gone) -> OpResult {
        match op {
            TxnOp::Create { path: p, data, kind, acl } => {
                let owner = if *kind == NodeKind::Ephemeral { txn.session_id } else { SessionId::NONE };
                self.tree.create(p, data.as_deref(), *kind, acl, owner, txn.zxid, txn.time_ms);
                self.lines.created(p);
                if !self.containers_to_reap.is_empty()
                    && let Some(parent) = path::parent(p)
                {
                    self.containers_to_reap.remove(parent);
                }
                if !owner.is_none() {
                    let session = self.sessions.get_mut(owner).expect("an ephemeral's owner exists in a prepared txn");
                    session.ephemerals.insert(p.clone());
                }
                touch_with_parent(touched, p);
                let stat = self.tree.get(p).expect("just created").stat();
                OpResult::Created { path: p.clone(), stat }
            }
            TxnOp::Delete { path: p } => {
                self.delete_node(p, txn, touched, gone);
                OpResult::Deleted
            }
            TxnOp::Set { path: p, data } => {
                touched.insert(p.clone());
                OpResult::Set(self.tree.set(p, data.as_deref(), txn.zxid, txn.time_ms))
            }
            TxnOp::Check { .. } => OpResult::Checked,
            TxnOp::SetAcl { path: p, acl } => {
                touched.insert(p.clone());
                OpResult::Set(self.tree.set_acl(p, acl))
            }
        }
    }

    /// Tells the waiters that the txn's deletes made first in line, if they wait for it with a
    /// turn watch. Only a departure can make a node first: a new waiter's suffix is higher
    /// than every other's.
    fn tell_turns(&mut self, zxid: Zxid, changes: &[Change<'_>], events: &mut Vec<(SessionId, WatchEvent)>) {
        let mut dirs: Vec<&str> = changes
            .iter()
            .filter(|change| change.kind == EventKind::Deleted)
            .filter_map(|change| path::parent(change.path))
            .filter(|dir| self.watches.turn_watched_in(dir))
            .collect();
        dirs.dedup();
        for dir in dirs {
            let first = self.first_waiter(dir);
            if let Some(first) = first.map(|name| path::join(dir, name)) {
                for session in self.watches.fire(&first, EventKind::Turn).into_keys() {
                    events.push((session, WatchEvent { zxid, path: first.clone(), kind: EventKind::Turn }));
                }
            }
            if !self.watches.turn_watched_in(dir) {
                self.lines.forget(dir);
            }
        }
    }

    fn delete_node(&mut self, p: &str, txn: &Txn, touched: &mut BTreeSet<String>, gone: &mut Gone) {
        let removed = self.tree.delete(p, txn.zxid);
        self.lines.deleted(p);
        self.containers_to_reap.remove(p);
        // Reaped later in the same txn, as a rule; if not, the engine's tick reaps it.
        if removed.emptied_container
            && let Some(parent) = path::parent(p)
        {
            self.containers_to_reap.insert(parent.to_owned());
        }
        let owner = removed.stat.ephemeral_owner;
        gone.insert(p.to_owned(), removed.acl);
        if !owner.is_none()
            && let Some(session) = self.sessions.get_mut(owner)
        {
            session.ephemerals.remove(p);
        }
        touch_with_parent(touched, p);
    }
}

fn touch_with_parent(touched: &mut BTreeSet<String>, p: &str) {
    touched.insert(p.to_owned());
    if let Some(parent) = baton_proto::path::parent(p) {
        touched.insert(parent.to_owned());
    }
}
