//! The run: the state machine driven through the generated steps, optionally the reference model
//! beside it, and what a store (the deltas) and a standby (the log) would receive; the checks
//! made after every step, and the replay and restore of a whole run.

use super::reference::{Model, ref_stat};
use super::steps::{Step, Target, Version, WriteSel};
use super::{FIXED, NAMES, STRANGER, T0};
use baton_proto::message::{CreateRequest, MultiOp, Op, OpResult};
use baton_proto::txn::{decode_record, encode_record};
use baton_proto::{ErrorCode, NodeKind, SessionId, Txn, TxnBody, TxnOp, Zxid, path};
use batond::state::{Applied, Limits, NodeRecord, Rejection, Restored, SessionRecord, StateMachine, Tree};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) struct Run {
    sm: StateMachine,
    model: Option<Model>,
    log: Vec<Txn>,
    results: Vec<Vec<OpResult>>,
    stored_nodes: BTreeMap<String, NodeRecord>,
    stored_sessions: BTreeMap<SessionId, SessionRecord>,
    opened: Vec<SessionId>,
    now_ms: u64,
}

impl Run {
    pub(crate) fn new(limits: &Limits, with_model: bool) -> Run {
        let sm = StateMachine::new(limits.clone());
        let root = sm.tree().record("/").unwrap();
        Run {
            sm,
            model: with_model.then(|| Model::new(limits.clone())),
            log: Vec::new(),
            results: Vec::new(),
            stored_nodes: BTreeMap::from([("/".to_owned(), root)]),
            stored_sessions: BTreeMap::new(),
            opened: Vec::new(),
            now_ms: T0,
        }
    }

    fn who(&self, who: usize) -> SessionId {
        if who >= 7 || self.opened.is_empty() { STRANGER } else { self.opened[who % self.opened.len()] }
    }

    fn nth_node(&self, i: usize) -> String {
        let tree = self.sm.tree();
        tree.iter().nth(i % tree.len()).unwrap().0.to_owned()
    }

    fn resolve(&self, target: &Target) -> String {
        match *target {
            Target::Fixed(i) => FIXED[i].to_owned(),
            Target::Existing(i) => self.nth_node(i),
            Target::Under(i, n) => path::join(&self.nth_node(i), NAMES[n]),
        }
    }

    fn version(&self, p: &str, version: &Version) -> Option<i32> {
        let current = self.sm.tree().get(p).map_or(0, |n| n.stat().version);
        match version {
            Version::Any => None,
            Version::Current => Some(current),
            Version::Wrong(delta) => Some(current + delta),
        }
    }

    fn multi_op(&self, write: &WriteSel) -> MultiOp {
        match write {
            WriteSel::Create { target, kind, sequential, data } => MultiOp::Create(CreateRequest {
                path: self.resolve(target),
                data: Some(data.clone()),
                kind: *kind,
                sequential: *sequential,
                acl: Vec::new(),
            }),
            WriteSel::Set { target, data, version } => {
                let p = self.resolve(target);
                MultiOp::Set { version: self.version(&p, version), path: p, data: Some(data.clone()) }
            }
            WriteSel::Delete { target, version } => {
                let p = self.resolve(target);
                MultiOp::Delete { version: self.version(&p, version), path: p }
            }
            WriteSel::Check { target, version } => {
                let p = self.resolve(target);
                let version = self.version(&p, version).unwrap_or_else(|| self.version(&p, &Version::Current).unwrap());
                MultiOp::Check { path: p, version }
            }
        }
    }

    pub(crate) fn step(&mut self, step: &Step) {
        match step {
            Step::OpenSession { timeout_ms, secret } => self.open_session(*timeout_ms, *secret),
            Step::CloseSession { who } => self.close_session(self.who(*who)),
            Step::Write { who, write } => {
                let op = match self.multi_op(write) {
                    MultiOp::Create(req) => Op::Create(req),
                    MultiOp::Set { path, data, version } => Op::Set { path, data, version },
                    MultiOp::Delete { path, version } => Op::Delete { path, version },
                    MultiOp::Check { .. } | MultiOp::HoldsLock { .. } => {
                        unreachable!("checks are generated only inside a multi")
                    }
                };
                self.write(self.who(*who), &op);
            }
            Step::Multi { who, ops } => {
                let op = Op::Multi(ops.iter().map(|w| self.multi_op(w)).collect());
                self.write(self.who(*who), &op);
            }
            Step::Burst { who, target, kind, count } => {
                let req = CreateRequest {
                    path: self.resolve(target),
                    data: Some(Vec::new()),
                    kind: *kind,
                    sequential: true,
                    acl: Vec::new(),
                };
                self.write(self.who(*who), &Op::Multi(vec![MultiOp::Create(req); *count]));
            }
            Step::Advance { ms } => self.now_ms += ms,
            Step::ReapTtl => self.reap_ttl(),
            Step::Touch { who } => {
                let session = self.who(*who);
                self.sm.touch_session(session, self.now_ms);
                if let Some(model) = &mut self.model {
                    model.touch(session, self.now_ms);
                }
            }
            Step::Tick => {
                let expired = self.sm.expired_sessions(self.now_ms);
                if let Some(model) = &mut self.model {
                    assert_eq!(expired, model.expired(self.now_ms), "expired sessions at {}", self.now_ms);
                }
                for session in expired {
                    self.close_session(session);
                }
            }
        }
        self.check_invariants();
        if self.model.is_some() {
            self.check_against_model();
        }
    }

    /// Applies a txn as the engine would, mirroring the store's view from the deltas.
    fn commit(&mut self, txn: &Txn) -> Applied {
        let before = self.sm.last_zxid();
        assert!(txn.zxid > before, "txn {} does not follow {before}", txn.zxid);
        assert_eq!(txn.zxid.counter(), before.counter() + 1, "zxids are dense within an epoch");
        let applied = self.sm.apply(txn);
        assert_eq!(self.sm.last_zxid(), txn.zxid);
        for (p, record) in &applied.delta.nodes {
            match record {
                Some(r) => self.stored_nodes.insert(p.clone(), r.clone()),
                None => self.stored_nodes.remove(p),
            };
        }
        for (id, record) in &applied.delta.sessions {
            match record {
                Some(r) => self.stored_sessions.insert(*id, *r),
                None => self.stored_sessions.remove(id),
            };
        }
        self.log.push(txn.clone());
        self.results.push(applied.results.clone());
        applied
    }

    fn open_session(&mut self, timeout_ms: u32, secret: u64) {
        let txn = self.sm.prepare_create_session(timeout_ms, false, secret, self.now_ms);
        assert_eq!(txn.session_id.0, txn.zxid.0, "a session is named by its creating zxid");
        self.commit(&txn);
        self.opened.push(txn.session_id);
        if let Some(model) = &mut self.model {
            let id = model.open_session(SessionRecord { timeout_ms, secret, connection_bound: false });
            assert_eq!(id, txn.session_id);
        }
    }

    fn close_session(&mut self, session: SessionId) {
        let txn = self.sm.prepare_close_session(session, self.now_ms);
        let expected = self.model.as_mut().map(|m| m.close_session(session));
        if let Some(txn) = &txn {
            let TxnBody::CloseSession { deletes } = &txn.body else { panic!("close of {session} gave {txn:?}") };
            assert_children_first(deletes);
            if let Some(expected) = expected {
                let expected = expected.unwrap_or_else(|| panic!("model: {session} is not live, machine closed it"));
                assert_eq!(deletes.iter().cloned().collect::<BTreeSet<_>>(), expected, "close {session}");
            }
            self.commit(txn);
        } else if let Some(Some(deletes)) = expected {
            panic!("model closes live {session} deleting {deletes:?}, the machine says it is not live");
        }
    }

    fn reap_ttl(&mut self) {
        // Unbounded, as the model reaps: the per-txn bound has a unit test of its own.
        let txn = self.sm.prepare_reap_ttl(self.now_ms, usize::MAX);
        let expected = self.model.as_mut().map(|m| m.reap_ttl(self.now_ms));
        let deletes = txn.as_ref().map(|txn| match &txn.body {
            TxnBody::Write(ops) => ops
                .iter()
                .map(|op| match op {
                    TxnOp::Delete { path } => path.clone(),
                    other => panic!("TTL reaping does {other:?}"),
                })
                .collect::<Vec<_>>(),
            other => panic!("TTL reaping gave {other:?}"),
        });
        if let Some(deletes) = &deletes {
            assert_children_first(deletes);
        }
        if let Some(expected) = expected {
            let got = deletes.map(|d| d.into_iter().collect::<BTreeSet<_>>());
            assert_eq!(got, expected, "TTL reaping at {}", self.now_ms);
        }
        if let Some(txn) = txn {
            self.commit(&txn);
        }
    }

    fn write(&mut self, session: SessionId, op: &Op) {
        let ops: Vec<MultiOp> = match op {
            Op::Create(req) => vec![MultiOp::Create(req.clone())],
            Op::Set { path, data, version } => {
                vec![MultiOp::Set { path: path.clone(), data: data.clone(), version: *version }]
            }
            Op::Delete { path, version } => vec![MultiOp::Delete { path: path.clone(), version: *version }],
            Op::Multi(ops) => ops.clone(),
            other => unreachable!("{other:?} is not a write"),
        };
        let is_multi = matches!(op, Op::Multi(_));
        let prepared = self.sm.prepare_write(session, op, self.now_ms);
        let expected = self.model.as_mut().map(|m| m.write(session, &ops, self.now_ms));
        match prepared {
            Ok(txn) => {
                let applied = self.commit(&txn);
                let Some(expected) = expected else { return };
                let (results, reaped) = expected.unwrap_or_else(|(i, code)| {
                    panic!("{op:?} by {session}: model fails op {i} with {code:?}, machine applied {txn:?}")
                });
                check_write_results(op, &ops, &txn, &applied, &results, &reaped);
            }
            Err(rejection) => {
                let Some(expected) = expected else { return };
                let (index, code) = match expected {
                    Ok((results, _)) => panic!("{op:?} by {session}: model gives {results:?}, machine {rejection:?}"),
                    Err(failed) => failed,
                };
                let got = match rejection {
                    Rejection::Error(e) if !is_multi => vec![OpResult::Error(e.code)],
                    Rejection::MultiFailed(results) if is_multi => results,
                    other => panic!("{op:?}: {other:?}"),
                };
                // A multi: the failing op's code, `RolledBack` before it, `Skipped` after it.
                let want: Vec<OpResult> = (0..ops.len())
                    .map(|i| match i.cmp(&index) {
                        std::cmp::Ordering::Less => OpResult::Error(ErrorCode::RolledBack),
                        std::cmp::Ordering::Equal => OpResult::Error(code),
                        std::cmp::Ordering::Greater => OpResult::Error(ErrorCode::Skipped),
                    })
                    .collect();
                assert_eq!(got, want, "{op:?} by {session}");
            }
        }
    }

    /// What holds of the machine whatever it was asked to do.
    fn check_invariants(&self) {
        let tree = self.sm.tree();
        let sessions = self.sm.sessions();
        let last = self.sm.last_zxid();
        let limits = self.sm.limits();
        let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (p, _) in tree.iter() {
            if let Some(parent) = path::parent(p) {
                assert!(tree.contains(parent), "{p} has no parent");
                names.entry(parent).or_default().insert(path::name(p));
            }
        }
        for (p, node) in tree.iter() {
            let s = &node.stat();
            let expected = names.remove(p).unwrap_or_default();
            let children: Vec<&str> = tree.children(p).map(|(name, _)| name).collect();
            assert!(children.is_sorted(), "{p}: children out of order");
            assert_eq!(children.into_iter().collect::<BTreeSet<_>>(), expected, "{p}: children");
            assert_eq!(s.num_children as usize, expected.len(), "{p}: num_children");
            let data_len = node.data().map_or(0, <[u8]>::len);
            assert_eq!(s.data_length as usize, data_len, "{p}: data_length");
            assert!(s.czxid <= s.mzxid && s.czxid <= s.pzxid, "{p}: {s:?}");
            assert!(s.mzxid <= last && s.pzxid <= last, "{p}: {s:?} is newer than {last}");
            assert!(s.ctime_ms <= s.mtime_ms, "{p}: {s:?}");
            assert_eq!(
                node.kind() == NodeKind::Ephemeral,
                !s.ephemeral_owner.is_none(),
                "{p}: {:?} {s:?}",
                node.kind()
            );
            if !s.ephemeral_owner.is_none() {
                assert!(s.num_children == 0, "ephemeral {p} has children");
                let owner = sessions.get(s.ephemeral_owner);
                assert!(owner.is_some_and(|o| o.ephemerals.contains(p)), "{p}: owner {} lost", s.ephemeral_owner);
            }
            assert!(s.num_children <= limits.children_per_node_max, "{p} has too many children");
            assert!(data_len <= limits.node_data_max, "{p} has too much data");
        }
        for (id, session) in sessions.iter() {
            let owned = session.ephemerals.len();
            assert!(owned <= limits.ephemerals_per_session_max, "session {id} owns {owned} ephemerals");
            for p in &session.ephemerals {
                let owner = tree.get(p).map(|n| n.stat().ephemeral_owner);
                assert_eq!(owner, Some(id), "session {id} lists {p}");
            }
        }
        let ttl: BTreeSet<&str> = tree.ttl_nodes().map(|(p, _)| p).collect();
        let expected: BTreeSet<&str> =
            tree.iter().filter(|(_, n)| matches!(n.kind(), NodeKind::Ttl { .. })).map(|(p, _)| p).collect();
        assert_eq!(ttl, expected, "TTL index");
        self.check_store_mirror();
    }

    /// The store writes only what the deltas name: they must add up to the whole state.
    fn check_store_mirror(&self) {
        let (tree, sessions) = (self.sm.tree(), self.sm.sessions());
        let records: BTreeMap<String, NodeRecord> =
            tree.iter().map(|(p, _)| (p.to_owned(), tree.record(p).unwrap())).collect();
        assert_eq!(self.stored_nodes, records, "the store deltas must add up to the tree");
        let records: BTreeMap<SessionId, SessionRecord> = sessions.iter().map(|(id, s)| (id, s.record)).collect();
        assert_eq!(self.stored_sessions, records, "the store deltas must add up to the session table");
    }

    fn check_against_model(&self) {
        let model = self.model.as_ref().unwrap();
        let tree = self.sm.tree();
        assert_eq!(self.sm.last_zxid(), model.last_zxid, "last zxid");
        let paths: BTreeSet<&str> = tree.iter().map(|(p, _)| p).chain(model.nodes.keys().map(String::as_str)).collect();
        for p in paths {
            let got = tree.get(p).map(|n| (n.data(), n.kind(), n.stat()));
            let want = model.nodes.get(p).map(|n| (n.data.as_deref(), n.kind, ref_stat(&model.nodes, p)));
            assert_eq!(got, want, "node {p}");
        }
        let got: Vec<_> = self.sm.sessions().iter().map(|(id, s)| (id, s.record, s.ephemerals.clone())).collect();
        let want: Vec<_> = model
            .sessions
            .iter()
            .map(|(id, s)| {
                let owned = model.nodes.iter().filter(|(_, n)| n.owner == *id).map(|(p, _)| p.clone()).collect();
                (*id, s.record, owned)
            })
            .collect::<Vec<(SessionId, SessionRecord, BTreeSet<String>)>>();
        assert_eq!(got, want, "sessions");
    }

    /// A standby applying the log, and recovery loading the stored records, reach this state.
    pub(crate) fn check_replay(&self) {
        let mut replica = StateMachine::new(self.sm.limits().clone());
        for (txn, results) in self.log.iter().zip(&self.results) {
            let decoded = decode_record(&encode_record(txn)).expect("a txn record decodes");
            assert_eq!(&decoded, txn, "record round trip");
            assert_eq!(&replica.apply(&decoded).results, results, "replayed results of {txn:?}");
        }
        assert_eq!(replica.digest(), self.sm.digest(), "replica digest");
        assert!(replica.tree().iter().eq(self.sm.tree().iter()), "replica tree");

        let (tree, orphans) = Tree::from_records(self.stored_nodes.clone());
        let restored = Restored {
            epoch: self.sm.epoch(),
            last_zxid: self.sm.last_zxid(),
            history_floor: Zxid::ZERO,
            tree,
            orphans,
            sessions: self.stored_sessions.clone().into_iter().collect(),
            recent_txns: self.log.clone(),
        };
        let restored =
            StateMachine::restore(self.sm.limits().clone(), restored).expect("the stored state is consistent");
        assert_eq!(restored.digest(), self.sm.digest(), "restored digest");
        assert!(restored.tree().iter().eq(self.sm.tree().iter()), "restored tree");
    }
}

/// The machine's results for a successful write: the model's for the client's ops, then one
/// `Deleted` per container the write emptied (the txn's extra ops, which are not the client's:
/// a multi's reply must carry only the first `ops.len()` of them).
fn check_write_results(
    op: &Op,
    ops: &[MultiOp],
    txn: &Txn,
    applied: &Applied,
    results: &[OpResult],
    reaped: &BTreeSet<String>,
) {
    let TxnBody::Write(txn_ops) = &txn.body else { panic!("{op:?} gave {txn:?}") };
    assert!(txn_ops.len() >= ops.len() && applied.results.len() == txn_ops.len(), "{op:?}: {txn:?}");
    assert_eq!(&applied.results[..ops.len()], results, "{op:?}");
    let extra: BTreeSet<String> = txn_ops[ops.len()..]
        .iter()
        .map(|op| match op {
            TxnOp::Delete { path } => path.clone(),
            other => panic!("a write's extra op is {other:?}"),
        })
        .collect();
    assert_eq!(&extra, reaped, "{op:?}: containers reaped");
    assert!(applied.results[ops.len()..].iter().all(|r| *r == OpResult::Deleted));
}

/// A delete list must remove children before their parents.
fn assert_children_first(deletes: &[String]) {
    for (i, p) in deletes.iter().enumerate() {
        for later in &deletes[i + 1..] {
            assert!(!path::is_within(later, p), "{p} is deleted before its descendant {later}: {deletes:?}");
        }
    }
}
