use super::*;
use baton_proto::message::{
    CreateKind, CreateRequest, EventKind, MultiOp, Op, OpResult, PersistentWatchMode, Response, WatchSet,
};
use baton_proto::{ErrorCode, TxnBody};

const T: u64 = 1_700_000_000_000;

struct Harness {
    sm: StateMachine,
    log: Vec<Txn>,
}

impl Harness {
    fn new() -> Self {
        Harness { sm: StateMachine::new(Limits::default()), log: Vec::new() }
    }

    fn session(&mut self) -> SessionId {
        let txn = self.sm.prepare_create_session(10_000, false, 42, T);
        self.commit(&txn);
        txn.session_id
    }

    fn commit(&mut self, txn: &Txn) -> Applied {
        self.log.push(txn.clone());
        self.sm.apply(txn)
    }

    fn write(&mut self, session: SessionId, op: Op) -> Result<Applied, Rejection> {
        let txn = self.sm.prepare_write(session, &op, T)?;
        Ok(self.commit(&txn))
    }

    fn create(&mut self, session: SessionId, p: &str, kind: CreateKind, sequential: bool) -> Result<String, ErrorCode> {
        let req = CreateRequest { path: p.into(), data: Some(b"d".to_vec()), kind, sequential, acl: Vec::new() };
        match self.write(session, Op::Create(req)) {
            Ok(applied) => match &applied.results[0] {
                OpResult::Created { path, .. } => Ok(path.clone()),
                other => panic!("unexpected {other:?}"),
            },
            Err(Rejection::Error(e)) => Err(e.code),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

fn persistent() -> CreateKind {
    CreateKind::Persistent
}

#[test]
fn create_fails_when_parent_missing() {
    let mut h = Harness::new();
    let s = h.session();
    assert_eq!(h.create(s, "/a/b", persistent(), false), Err(ErrorCode::NoNode));
    assert_eq!(h.create(s, "/a", persistent(), false), Ok("/a".into()));
    assert_eq!(h.create(s, "/a", persistent(), false), Err(ErrorCode::NodeExists));
    assert_eq!(h.create(s, "/", persistent(), false), Err(ErrorCode::NodeExists));
    assert_eq!(h.create(s, "/a/", persistent(), false), Err(ErrorCode::InvalidPath));
}

#[test]
fn sequential_suffix_is_the_parents_cversion() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/q", persistent(), false).unwrap();
    assert_eq!(h.create(s, "/q/item-", persistent(), true), Ok("/q/item-0000000000".into()));
    h.write(s, Op::Delete { path: "/q/item-0000000000".into(), version: None }).unwrap();
    assert_eq!(h.create(s, "/q/", persistent(), true), Ok("/q/0000000002".into()), "deletes count too");
}

#[test]
fn ephemerals_cannot_have_children_and_die_with_their_session() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/e", CreateKind::Ephemeral, false).unwrap();
    assert_eq!(h.create(s, "/e/x", persistent(), false), Err(ErrorCode::NoChildrenForEphemerals));
    let close = h.sm.prepare_close_session(s, T).unwrap();
    assert_eq!(close.body, TxnBody::CloseSession { deletes: vec!["/e".into()] });
    h.commit(&close);
    assert!(!h.sm.tree().contains("/e"));
    assert!(!h.sm.sessions().contains(s));
}

#[test]
fn versions_guard_set_and_delete() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/a", persistent(), false).unwrap();
    let bad = h.write(s, Op::Set { path: "/a".into(), data: Some(vec![1]), version: Some(5) });
    assert!(matches!(bad, Err(Rejection::Error(ref e)) if e.code == ErrorCode::BadVersion));
    h.write(s, Op::Set { path: "/a".into(), data: Some(vec![1]), version: Some(0) }).unwrap();
    assert_eq!(h.sm.tree().get("/a").unwrap().stat().version, 1);
    let bad = h.write(s, Op::Delete { path: "/a".into(), version: Some(0) });
    assert!(matches!(bad, Err(Rejection::Error(ref e)) if e.code == ErrorCode::BadVersion));
    h.write(s, Op::Delete { path: "/a".into(), version: Some(1) }).unwrap();
}

#[test]
fn multi_is_all_or_nothing_with_a_result_per_op() {
    let mut h = Harness::new();
    let s = h.session();
    let create = |p: &str| {
        MultiOp::Create(CreateRequest {
            path: p.into(),
            data: Some(vec![]),
            kind: persistent(),
            sequential: false,
            acl: Vec::new(),
        })
    };
    let before = h.sm.digest();
    let failed = h.write(
        s,
        Op::Multi(vec![create("/a"), create("/a/b"), MultiOp::Check { path: "/zz".into(), version: 0 }, create("/c")]),
    );
    let Err(Rejection::MultiFailed(results)) = failed else { panic!("expected failure") };
    assert_eq!(
        results,
        [ErrorCode::RolledBack, ErrorCode::RolledBack, ErrorCode::NoNode, ErrorCode::Skipped].map(OpResult::Error)
    );
    assert_eq!(h.sm.digest(), before, "nothing applied");
    let ok = h
        .write(s, Op::Multi(vec![create("/a"), create("/a/b"), MultiOp::Check { path: "/a".into(), version: 0 }]))
        .unwrap();
    assert!(matches!(ok.results[..], [OpResult::Created { .. }, OpResult::Created { .. }, OpResult::Checked]));
    let zxid = h.sm.last_zxid();
    assert_eq!(h.sm.tree().get("/a/b").unwrap().stat().czxid, zxid, "one zxid for the whole multi");
}

#[test]
fn a_create_under_a_parent_deleted_earlier_in_the_multi_finds_no_node() {
    let mut h = Harness::new();
    let s = h.session();
    assert_eq!(h.create(s, "/a", persistent(), false), Ok("/a".into()));
    let create_child = MultiOp::Create(CreateRequest {
        path: "/a/b".into(),
        data: None,
        kind: persistent(),
        sequential: false,
        acl: Vec::new(),
    });
    let before = h.sm.digest();
    let failed = h.write(s, Op::Multi(vec![MultiOp::Delete { path: "/a".into(), version: None }, create_child]));
    let Err(Rejection::MultiFailed(results)) = failed else { panic!("expected failure, got {failed:?}") };
    assert_eq!(results[0], OpResult::Error(ErrorCode::RolledBack));
    assert_eq!(results[1], OpResult::Error(ErrorCode::NoNode), "the parent is gone: no node, not an allowed create");
    assert_eq!(h.sm.digest(), before, "nothing applied");
}

#[test]
fn the_overlay_gives_no_acl_for_a_node_its_changes_deleted() {
    let mut h = Harness::new();
    let s = h.session();
    assert_eq!(h.create(s, "/a", persistent(), false), Ok("/a".into()));
    let mut overlay = super::overlay::Overlay::new(h.sm.tree(), Zxid(u64::MAX));
    assert!(overlay.acl("/a").is_some_and(|acl| !acl.is_empty()), "the tree's node has its ACL");
    overlay.delete("/a");
    assert_eq!(overlay.acl("/a"), None, "deleted by the changes so far");
    overlay.create("/a", NodeKind::Persistent, SessionId::NONE, Vec::new());
    assert_eq!(overlay.acl("/a"), Some(&[][..]), "created again, with the ACL it was given");
}

#[test]
fn containers_go_with_their_last_child() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/c", CreateKind::Container, false).unwrap();
    h.create(s, "/c/x", CreateKind::Ephemeral, false).unwrap();
    h.create(s, "/c/y", persistent(), false).unwrap();
    h.write(s, Op::Delete { path: "/c/y".into(), version: None }).unwrap();
    assert!(h.sm.tree().contains("/c"));
    let close = h.sm.prepare_close_session(s, T).unwrap();
    h.commit(&close);
    assert!(!h.sm.tree().contains("/c"), "emptied container reaped with the session's ephemeral");
}

#[test]
fn ttl_nodes_are_reaped_once_idle_and_childless() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/t", CreateKind::Ttl { ttl_ms: 1000 }, false).unwrap();
    assert!(h.sm.prepare_reap_ttl(T + 999, 100).is_none());
    let reap = h.sm.prepare_reap_ttl(T + 1000, 100).unwrap();
    h.commit(&reap);
    assert!(!h.sm.tree().contains("/t"));
    assert_eq!(h.create(s, "/z", CreateKind::Ttl { ttl_ms: 0 }, false), Err(ErrorCode::InvalidArgument));
}

#[test]
fn ttl_nodes_are_reaped_a_bounded_number_per_txn() {
    let mut h = Harness::new();
    let s = h.session();
    for i in 0..5 {
        h.create(s, &format!("/t{i}"), CreateKind::Ttl { ttl_ms: 1000 }, false).unwrap();
    }
    let mut reaped_per_txn = Vec::new();
    while let Some(reap) = h.sm.prepare_reap_ttl(T + 1000, 2) {
        let TxnBody::Write(ops) = &reap.body else { panic!("a reap is a write: {reap:?}") };
        reaped_per_txn.push(ops.len());
        h.commit(&reap);
    }
    assert_eq!(reaped_per_txn, [2, 2, 1], "at most 2 per txn, until none is left");
    assert!((0..5).all(|i| !h.sm.tree().contains(&format!("/t{i}"))));
}

#[test]
fn null_data_stays_apart_from_empty_data() {
    let mut h = Harness::new();
    let s = h.session();
    let create = |path: &str, data| {
        Op::Create(CreateRequest { path: path.into(), data, kind: persistent(), sequential: false, acl: Vec::new() })
    };
    h.write(s, create("/null", None)).unwrap();
    h.write(s, create("/empty", Some(Vec::new()))).unwrap();
    let data = |h: &mut Harness, p: &str| match h.sm.read(s, &Op::Get { path: p.into(), watch: false }) {
        Ok(Response::Data { data, stat }) => (data, stat.data_length),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(data(&mut h, "/null"), (None, 0));
    assert_eq!(data(&mut h, "/empty"), (Some(Vec::new()), 0));
    h.write(s, Op::Set { path: "/empty".into(), data: None, version: None }).unwrap();
    assert_eq!(data(&mut h, "/empty"), (None, 0), "set to null");
    h.write(s, Op::Set { path: "/null".into(), data: Some(b"x".to_vec()), version: None }).unwrap();
    assert_eq!(data(&mut h, "/null"), (Some(b"x".to_vec()), 1));
    let record = h.sm.tree().record("/empty").unwrap();
    assert_eq!(record.data, None, "the stored record keeps null too");
}

#[test]
fn watches_fire_with_the_txn_zxid() {
    let mut h = Harness::new();
    let (s1, s2) = (h.session(), h.session());
    h.sm.read(s1, &Op::Exists { path: "/a".into(), watch: true }).unwrap();
    h.sm.read(s2, &Op::AddWatch { path: "/".into(), mode: PersistentWatchMode::Recursive }).unwrap();
    let applied = h
        .write(
            s1,
            Op::Create(CreateRequest {
                path: "/a".into(),
                data: Some(vec![]),
                kind: persistent(),
                sequential: false,
                acl: Vec::new(),
            }),
        )
        .unwrap();
    let got: Vec<_> = applied.events.iter().map(|(s, e)| (*s, e.path.as_str(), e.kind, e.zxid)).collect();
    let z = h.sm.last_zxid();
    assert_eq!(got, [(s1, "/a", EventKind::Created, z), (s2, "/a", EventKind::Created, z)]);
}

#[test]
fn restored_watches_replay_missed_changes_or_reset() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/a", persistent(), false).unwrap();
    let seen = h.sm.last_zxid();
    h.write(s, Op::Set { path: "/a".into(), data: Some(vec![2]), version: None }).unwrap();
    let set = WatchSet { data: vec!["/a".into()], ..WatchSet::default() };
    let (events, reset) = h.sm.restore_watches(s, seen, &set).unwrap();
    assert!(!reset);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::DataChanged);

    let mut small = StateMachine::new(Limits { history_txns: 1, ..Limits::default() });
    let session_txn = small.prepare_create_session(10_000, false, 1, T);
    small.apply(&session_txn);
    for i in 0..3u8 {
        let op = Op::Create(CreateRequest {
            path: format!("/n{i}"),
            data: Some(vec![]),
            kind: persistent(),
            sequential: false,
            acl: Vec::new(),
        });
        let txn = small.prepare_write(session_txn.session_id, &op, T).unwrap();
        small.apply(&txn);
    }
    let (events, reset) = small.restore_watches(session_txn.session_id, session_txn.zxid, &set).unwrap();
    assert!(reset);
    assert_eq!(events[0].kind, EventKind::WatchReset);
}

#[test]
fn reads_answer_from_current_state() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/a", persistent(), false).unwrap();
    h.create(s, "/a/b", persistent(), false).unwrap();
    match h.sm.read(s, &Op::Children { path: "/a".into(), watch: false, with_stats: false }).unwrap() {
        Response::Children { children, stat } => {
            assert_eq!(children, ["b"]);
            assert_eq!(stat.num_children, 1);
        }
        other => panic!("{other:?}"),
    }
    let err = h.sm.read(s, &Op::Get { path: "/nope".into(), watch: true }).unwrap_err();
    assert_eq!(err.code, ErrorCode::NoNode);
    let err = h.sm.read(s, &Op::Get { path: "bad".into(), watch: false }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPath);
}

#[test]
fn replaying_the_log_into_a_fresh_machine_gives_the_same_digest() {
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/a", persistent(), false).unwrap();
    h.create(s, "/a/", CreateKind::Ephemeral, true).unwrap();
    h.write(s, Op::Set { path: "/a".into(), data: Some(vec![9]), version: None }).unwrap();
    let mut replica = StateMachine::new(Limits::default());
    for txn in &h.log {
        replica.apply(txn);
    }
    assert_eq!(replica.digest(), h.sm.digest());
}

#[test]
fn a_write_guarded_by_a_fencing_token_goes_through_only_while_the_token_holds_the_lock() {
    let mut h = Harness::new();
    let (s1, s2) = (h.session(), h.session());
    h.create(s1, "/lock", persistent(), false).unwrap();
    h.create(s1, "/data", persistent(), false).unwrap();
    let first = h.create(s1, "/lock/lock-", CreateKind::Ephemeral, true).unwrap();
    let second = h.create(s2, "/lock/lock-", CreateKind::Ephemeral, true).unwrap();
    let token = |h: &Harness, p: &str| h.sm.tree().get(p).unwrap().stat().czxid.0;
    let (t1, t2) = (token(&h, &first), token(&h, &second));
    assert!(t2 > t1, "tokens increase with each waiter");
    let guarded = |token: u64| {
        Op::Multi(vec![
            MultiOp::HoldsLock { lock: "/lock".into(), token },
            MultiOp::Set { path: "/data".into(), data: Some(vec![1]), version: None },
        ])
    };
    assert!(h.write(s1, guarded(t1)).is_ok(), "the holder writes");
    let refused = h.write(s2, guarded(t2));
    assert!(matches!(refused, Err(Rejection::MultiFailed(ref r)) if r[0] == OpResult::Error(ErrorCode::LockLost)));
    h.write(s1, Op::Delete { path: first, version: None }).unwrap();
    assert!(h.write(s2, guarded(t2)).is_ok(), "the next waiter holds it now");
    let stale = h.write(s1, guarded(t1));
    assert!(matches!(stale, Err(Rejection::MultiFailed(ref r)) if r[0] == OpResult::Error(ErrorCode::LockLost)));
    let gone = h.write(s1, Op::Multi(vec![MultiOp::HoldsLock { lock: "/nolock".into(), token: t1 }]));
    assert!(matches!(gone, Err(Rejection::MultiFailed(ref r)) if r[0] == OpResult::Error(ErrorCode::LockLost)));
}

#[test]
fn a_turn_watch_tells_only_the_waiter_a_departure_made_first() {
    let mut h = Harness::new();
    let (s1, s2, s3, s4) = (h.session(), h.session(), h.session(), h.session());
    h.create(s1, "/lock", persistent(), false).unwrap();
    h.create(s1, "/lock/not-a-waiter", persistent(), false).unwrap();
    let waiters: Vec<String> =
        [s1, s2, s3, s4].iter().map(|s| h.create(*s, "/lock/w-", CreateKind::Ephemeral, true).unwrap()).collect();
    let turn = |h: &mut Harness, s, p: &str| match h.sm.read(s, &Op::Turn { path: p.into() }) {
        Ok(Response::Turn { stat, first }) => (stat.is_some(), first),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(turn(&mut h, s1, &waiters[0]), (true, true), "the first waiter: no watch left");
    for (s, w) in [(s2, &waiters[1]), (s3, &waiters[2]), (s4, &waiters[3])] {
        assert_eq!(turn(&mut h, s, w), (true, false));
    }
    assert_eq!(turn(&mut h, s2, "/lock/w-9999999999"), (false, false), "no such node: no watch");
    let not_in_line = h.sm.read(s1, &Op::Turn { path: "/lock/not-a-waiter".into() });
    assert_eq!(not_in_line.map_err(|e| e.code), Err(ErrorCode::InvalidArgument), "a node without a suffix");
    let told = |applied: &Applied| -> Vec<(SessionId, String, EventKind)> {
        applied.events.iter().map(|(s, e)| (*s, e.path.clone(), e.kind)).collect()
    };

    // A waiter in the middle leaves: nobody is first who was not before.
    let left = h.write(s3, Op::Delete { path: waiters[2].clone(), version: None }).unwrap();
    assert_eq!(told(&left), vec![(s3, waiters[2].clone(), EventKind::Deleted)], "only its own watch fires");
    // The holder leaves: the second is told, and only it.
    let released = h.write(s1, Op::Delete { path: waiters[0].clone(), version: None }).unwrap();
    assert_eq!(told(&released), vec![(s2, waiters[1].clone(), EventKind::Turn)]);
    // The fourth waited behind the third, which left: the next release makes it first.
    let expiry = h.sm.prepare_close_session(s2, T).unwrap();
    let expired = h.commit(&expiry);
    assert_eq!(told(&expired), vec![(s4, waiters[3].clone(), EventKind::Turn)], "a session's end counts too");
    assert_eq!(h.sm.watches.total(), 0, "turn watches are one-shot");
    assert!(!h.sm.watches.turn_watched_in("/lock"));
}

#[test]
fn a_turn_needs_read_permission_on_the_directory() {
    let (mut h, s1, s2) = two_users();
    h.create(s1, "/private", persistent(), false).unwrap();
    let w = h.create(s1, "/private/w-", CreateKind::Ephemeral, true).unwrap();
    let refused = h.sm.read(s2, &Op::Turn { path: w.clone() });
    assert_eq!(refused.map_err(|e| e.code), Err(ErrorCode::NoAuth));
    assert_eq!(
        h.sm.read(s1, &Op::Turn { path: w }),
        Ok(Response::Turn { stat: h.sm.tree().get("/private/w-0000000000").map(|n| n.stat()), first: true })
    );
    assert_eq!(h.sm.read(s1, &Op::Turn { path: "/".into() }).map_err(|e| e.code), Err(ErrorCode::InvalidArgument));
}

/// A session's end that empties more containers than one txn reaps: the rest stay empty until
/// the tick's txn reaps them, and a restore finds them again; a container created empty stays.
#[test]
fn containers_beyond_one_txns_share_are_reaped_by_the_next() {
    let mut h = Harness::new();
    let s = h.session();
    let count = CONTAINERS_REAPED_PER_TXN + 1;
    for i in 0..count {
        h.create(s, &format!("/c{i}"), CreateKind::Container, false).unwrap();
        h.create(s, &format!("/c{i}/e"), CreateKind::Ephemeral, false).unwrap();
    }
    h.create(s, "/never-used", CreateKind::Container, false).unwrap();
    let close = h.sm.prepare_close_session(s, T).unwrap();
    let TxnBody::CloseSession { deletes } = &close.body else { panic!("{close:?}") };
    assert_eq!(deletes.len(), count + CONTAINERS_REAPED_PER_TXN, "every ephemeral, and containers up to the bound");
    h.commit(&close);
    let roots = |h: &Harness| -> Vec<String> { h.sm.tree().children("/").map(|(n, _)| n.to_owned()).collect() };
    let left: Vec<String> = roots(&h).into_iter().filter(|n| n != "never-used").collect();
    assert_eq!(left.len(), 1, "one emptied container left, and the unused one: {left:?}");

    let restored = Restored {
        epoch: h.sm.epoch(),
        last_zxid: h.sm.last_zxid(),
        history_floor: h.sm.last_zxid(),
        tree: h.sm.tree().clone(),
        orphans: Vec::new(),
        sessions: Vec::new(),
        recent_txns: Vec::new(),
    };
    let restored = StateMachine::restore(Limits::default(), restored).unwrap();
    let reap = h.sm.prepare_reap_containers(T, CONTAINERS_REAPED_PER_TXN).expect("the one left over");
    assert_eq!(reap.body, TxnBody::Write(vec![baton_proto::TxnOp::Delete { path: format!("/{}", left[0]) }]));
    let found = restored.prepare_reap_containers(T, CONTAINERS_REAPED_PER_TXN);
    assert_eq!(found.map(|t| t.body), Some(reap.body.clone()), "a restore finds it again");
    h.commit(&reap);
    assert_eq!(roots(&h), ["never-used"]);
    assert!(h.sm.prepare_reap_containers(T, CONTAINERS_REAPED_PER_TXN).is_none(), "nothing left to reap");
}

/// `CreateInLine` as the engine runs it: the create's txn, then `join_line` on its node.
fn create_in_line(h: &mut Harness, session: SessionId, p: &str, sequential: bool) -> Result<Response, ErrorCode> {
    let req = CreateRequest { path: p.into(), data: None, kind: CreateKind::Ephemeral, sequential, acl: Vec::new() };
    let applied = match h.write(session, Op::CreateInLine(req)) {
        Ok(applied) => applied,
        Err(Rejection::Error(e)) => return Err(e.code),
        Err(other) => panic!("unexpected {other:?}"),
    };
    let OpResult::Created { path, stat } = applied.results[0].clone() else { panic!("{:?}", applied.results) };
    h.sm.join_line(session, path, stat).map_err(|e| e.code)
}

#[test]
fn a_node_created_in_line_is_told_its_turn_at_once_and_watched_if_it_waits() {
    let mut h = Harness::new();
    let (s1, s2) = (h.session(), h.session());
    h.create(s1, "/lock", persistent(), false).unwrap();
    let first = create_in_line(&mut h, s1, "/lock/w-", true).unwrap();
    let Response::CreatedInLine { path: holder, first: true, .. } = first else { panic!("{first:?}") };
    assert_eq!(h.sm.watches.count(s1), 0, "the holder has nothing to wait for");
    let second = create_in_line(&mut h, s2, "/lock/w-", true).unwrap();
    let Response::CreatedInLine { path: waiter, stat, first: false } = second else { panic!("{second:?}") };
    assert_eq!(h.sm.tree().get(&waiter).map(|n| n.stat()), Some(stat));
    let released = h.write(s1, Op::Delete { path: holder, version: None }).unwrap();
    let told: Vec<_> = released.events.iter().map(|(s, e)| (*s, e.path.clone(), e.kind)).collect();
    assert_eq!(told, vec![(s2, waiter, EventKind::Turn)], "the waiter's turn watch fires");
}

#[test]
fn a_create_in_line_that_could_not_wait_creates_nothing() {
    let names =
        |h: &Harness, dir: &str| -> Vec<String> { h.sm.tree().children(dir).map(|(n, _)| n.to_owned()).collect() };
    let mut h = Harness::new();
    let s = h.session();
    h.create(s, "/lock", persistent(), false).unwrap();
    assert_eq!(create_in_line(&mut h, s, "/lock/w", false), Err(ErrorCode::InvalidArgument), "no suffix, no line");
    assert_eq!(create_in_line(&mut h, s, "/none/w-", true), Err(ErrorCode::NoNode));
    assert_eq!(names(&h, "/lock"), Vec::<String>::new());

    let (mut h, alice, bob) = two_users();
    let create_only = baton_proto::acl::parse_list("uid:1001:all,anyone:c").unwrap();
    let req =
        CreateRequest { path: "/drop".into(), data: None, kind: persistent(), sequential: false, acl: create_only };
    h.write(alice, Op::Create(req)).unwrap();
    assert_eq!(create_in_line(&mut h, bob, "/drop/w-", true), Err(ErrorCode::NoAuth), "bob may create, not list");
    assert_eq!(names(&h, "/drop"), Vec::<String>::new());
    assert!(matches!(create_in_line(&mut h, alice, "/drop/w-", true), Ok(Response::CreatedInLine { first: true, .. })));

    let limits = Limits { watches_per_session_max: 1, ..Limits::default() };
    let mut h = Harness { sm: StateMachine::new(limits), log: Vec::new() };
    let (s1, s2) = (h.session(), h.session());
    h.create(s1, "/lock", persistent(), false).unwrap();
    create_in_line(&mut h, s1, "/lock/w-", true).unwrap();
    let waiting = create_in_line(&mut h, s2, "/lock/w-", true);
    assert!(matches!(waiting, Ok(Response::CreatedInLine { first: false, .. })), "its one watch");
    assert_eq!(create_in_line(&mut h, s2, "/lock/w-", true), Err(ErrorCode::LimitExceeded), "no room for another");
    assert_eq!(names(&h, "/lock").len(), 2, "the refused one was not created: {:?}", names(&h, "/lock"));
}

/// A machine with the daemon's defaults (creator-only nodes, `anyone:rwcd` root) and two Unix
/// users, 1001 and 1002, each on a session of its own.
fn two_users() -> (Harness, SessionId, SessionId) {
    let creator_only = baton_proto::acl::parse_list("creator:all").unwrap();
    let mut h =
        Harness { sm: StateMachine::new(Limits { default_acl: creator_only, ..Limits::default() }), log: vec![] };
    let root = h.sm.prepare_root_acl(baton_proto::acl::parse_list("anyone:rwcd").unwrap(), T);
    h.commit(&root);
    let (alice, bob) = (h.session(), h.session());
    for (session, uid) in [(alice, 1001), (bob, 1002)] {
        let principals = vec![baton_proto::Principal::Uid(uid), baton_proto::Principal::Gid(100)];
        h.sm.attach_identity(session, Identity { principals, superuser: false });
    }
    (h, alice, bob)
}

fn code(result: Result<Response, baton_proto::ErrorReply>) -> Option<ErrorCode> {
    result.err().map(|e| e.code)
}

fn write_code(h: &mut Harness, session: SessionId, op: Op) -> Option<ErrorCode> {
    match h.write(session, op) {
        Ok(_) => None,
        Err(Rejection::Error(e)) => Some(e.code),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn acls_are_checked_as_zookeeper_checks_them() {
    let (mut h, alice, bob) = two_users();
    h.create(alice, "/a", persistent(), false).unwrap();
    let acl: Vec<String> = h.sm.tree().get("/a").unwrap().acl().iter().map(ToString::to_string).collect();
    assert_eq!(acl, ["uid:1001:rwcda"], "creator-only by default");
    let get = |p: &str| Op::Get { path: p.into(), watch: false };
    assert_eq!(code(h.sm.read(bob, &get("/a"))), Some(ErrorCode::NoAuth));
    assert_eq!(
        code(h.sm.read(bob, &Op::Children { path: "/a".into(), watch: false, with_stats: false })),
        Some(ErrorCode::NoAuth)
    );
    assert!(
        matches!(h.sm.read(bob, &Op::Exists { path: "/a".into(), watch: true }), Ok(Response::Exists(Some(_)))),
        "exists needs nothing"
    );
    assert_eq!(code(h.sm.read(bob, &Op::GetAcl { path: "/a".into() })), Some(ErrorCode::NoAuth));
    assert_eq!(h.create(bob, "/a/x", persistent(), false), Err(ErrorCode::NoAuth), "create is the parent's to allow");
    assert_eq!(
        write_code(&mut h, bob, Op::Set { path: "/a".into(), data: Some(vec![1]), version: None }),
        Some(ErrorCode::NoAuth)
    );
    let grant = baton_proto::acl::parse_list("creator:all,uid:1002:rc").unwrap();
    let set_acl = |version| Op::SetAcl { path: "/a".into(), acl: grant.clone(), version };
    assert_eq!(write_code(&mut h, bob, set_acl(None)), Some(ErrorCode::NoAuth), "admin is needed");
    assert_eq!(write_code(&mut h, alice, set_acl(Some(3))), Some(ErrorCode::BadVersion));
    assert_eq!(write_code(&mut h, alice, set_acl(Some(0))), None);
    assert_eq!(h.sm.tree().get("/a").unwrap().stat().aversion, 1);
    assert!(h.sm.read(bob, &get("/a")).is_ok());
    assert_eq!(h.create(bob, "/a/x", persistent(), false), Ok("/a/x".into()));
    assert_eq!(
        write_code(&mut h, alice, Op::Delete { path: "/a/x".into(), version: None }),
        None,
        "alice may delete children of /a"
    );
    assert_eq!(write_code(&mut h, bob, Op::Delete { path: "/a".into(), version: None }), None, "and anyone those of /");
    assert_eq!(code(h.sm.read(bob, &Op::Ephemerals { session_id: Some(alice) })), Some(ErrorCode::NoAuth));
    assert_eq!(h.sm.check_admin(bob).map_err(|e| e.code), Err(ErrorCode::NoAuth));
    h.sm.attach_identity(bob, Identity { principals: vec![], superuser: true });
    assert!(h.sm.check_admin(bob).is_ok(), "a superuser passes every check");
}

#[test]
fn events_are_delivered_only_to_sessions_that_may_read_the_node() {
    let (mut h, alice, bob) = two_users();
    for session in [alice, bob] {
        h.sm.read(session, &Op::AddWatch { path: "/".into(), mode: PersistentWatchMode::Recursive }).unwrap();
    }
    h.sm.read(bob, &Op::Exists { path: "/secret".into(), watch: true }).unwrap();
    let created = h.create(alice, "/secret", persistent(), false);
    assert_eq!(created, Ok("/secret".into()));
    let txn =
        h.sm.prepare_write(alice, &Op::Set { path: "/secret".into(), data: Some(vec![1]), version: None }, T).unwrap();
    let applied = h.commit(&txn);
    let told: Vec<(SessionId, EventKind)> = applied.events.iter().map(|(s, e)| (*s, e.kind)).collect();
    assert_eq!(told, [(alice, EventKind::DataChanged)], "bob's recursive watch hears nothing of /secret");
    let last = h.sm.last_zxid();
    // The exists watch was told of the create (exists needs no permission); replay, too,
    // withholds what bob may not read.
    let set = WatchSet { recursive: vec!["/".into()], ..WatchSet::default() };
    let (replayed, _) = h.sm.restore_watches(bob, Zxid(last.0 - 2), &set).unwrap();
    assert!(replayed.iter().all(|e| e.path != "/secret"), "{replayed:?}");
    let (replayed, _) = h.sm.restore_watches(alice, Zxid(last.0 - 2), &set).unwrap();
    assert_eq!(replayed.iter().filter(|e| e.path == "/secret").count(), 2);
}

#[test]
fn reads_during_a_round_answer_as_the_state_was_before_it() {
    let (mut h, alice, _) = two_users();
    h.create(alice, "/a", persistent(), false).unwrap();
    let before = h.sm.last_zxid();
    h.sm.begin_round(true);
    let grant = baton_proto::acl::parse_list("creator:all,uid:1002:r").unwrap();
    write_code(&mut h, alice, Op::SetAcl { path: "/a".into(), acl: grant, version: None });
    write_code(&mut h, alice, Op::Set { path: "/a".into(), data: Some(b"new".to_vec()), version: None });
    h.create(alice, "/a/x", persistent(), false).unwrap();

    let get_acl = Op::GetAcl { path: "/a".into() };
    let Some((zxid, Ok(Response::Acl { acl, stat }))) = h.sm.lookup_before_round(alice, &get_acl) else {
        panic!("GetAcl is answered as before the round")
    };
    assert_eq!(zxid, before);
    assert_eq!((acl.len(), stat.aversion), (1, 0), "the ACL before the round's SetAcl");
    let Ok(Response::Acl { acl, stat }) = h.sm.lookup(alice, &get_acl) else { panic!("GetAcl now") };
    assert_eq!((acl.len(), stat.aversion), (2, 1));

    let multi = Op::MultiRead(vec![
        Op::Get { path: "/a".into(), watch: false },
        Op::Children { path: "/a".into(), watch: false, with_stats: false },
    ]);
    let Some((_, Ok(Response::MultiRead(results)))) = h.sm.lookup_before_round(alice, &multi) else {
        panic!("MultiRead is answered as before the round")
    };
    assert!(matches!(&results[0], Ok(Response::Data { data: Some(d), .. }) if d == b"d"), "{results:?}");
    assert!(matches!(&results[1], Ok(Response::Children { children, .. }) if children.is_empty()), "{results:?}");
    let Ok(Response::MultiRead(results)) = h.sm.lookup(alice, &multi) else { panic!("MultiRead now") };
    assert!(matches!(&results[0], Ok(Response::Data { data: Some(d), .. }) if d == b"new"), "{results:?}");
    assert!(matches!(&results[1], Ok(Response::Children { children, .. }) if children == &["x"]), "{results:?}");

    let count = Op::CountDescendants { path: "/a".into() };
    assert!(h.sm.lookup_before_round(alice, &count).is_none(), "counting waits for the round to be durable");
    h.sm.end_round();
}
