//! The pure state machine against a deliberately naive reference model.
//!
//! Random runs of sessions (opened, closed, expired), creates of every kind (persistent,
//! ephemeral, container, TTL; sequential or not) over a tiny path alphabet so that collisions,
//! missing parents and ephemeral parents are frequent, sets and deletes with no, right and wrong
//! versions, multis mixing all of them with checks, and TTL reaping as time advances. The model
//! is a `BTreeMap<String, RefNode>` with ZooKeeper's rules written the obvious way (children
//! found by scanning, a multi run on a scratch copy). After every step the outcome (success and
//! results, or error code) and the whole tree and session table must agree, and the machine's
//! own invariants must hold.
//!
//! A second property replays each run's log, every txn round-tripped through the record codec,
//! into a fresh machine, and restores another from the store deltas the run produced: both must
//! reach the same digest. That is the replication and recovery guarantee.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256, well under a second in debug).
//!
//! The parts: [`reference`] (the model), [`steps`] (what a run does, and their strategies),
//! [`run`] (the machine driven through the steps, and the checks).

mod reference;
mod run;
mod steps;

use baton_proto::message::{CreateKind, CreateRequest, MultiOp, Op, OpResult};
use baton_proto::{ErrorCode, SessionId};
use batond::state::{Applied, Limits, Rejection, StateMachine};
use proptest::prelude::*;
use run::Run;
use std::sync::Once;
use steps::{limits, steps};

const T0: u64 = 1_700_000_000_000;
/// Paths ops name directly. `/a/` is valid only as a sequential prefix.
const FIXED: [&str; 8] = ["/a", "/a/b", "/a/b/c", "/b", "/b/c", "/c", "/a/", "/"];
/// Child names tried under existing nodes (including sequential ones and ephemerals).
const NAMES: [&str; 2] = ["x", "y"];
/// A session that was never opened.
const STRANGER: SessionId = SessionId(0xdead);

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    // No regression files: a failure prints its minimal steps; pin it as a named test below.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Shrinking re-runs a failing case hundreds of times, and proptest reports the last panic with
/// the minimal input anyway: keep the property tests' intermediate panics off stderr.
fn quiet_panics_in_property_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or_default();
            let verdict = info.payload().downcast_ref::<String>().is_some_and(|m| m.starts_with("Test failed"));
            if verdict || !PROPERTIES.iter().any(|p| name.ends_with(p)) {
                default(info);
            }
        }));
    });
}

const PROPERTIES: [&str; 2] =
    ["state_machine_agrees_with_the_model", "replaying_the_log_or_restoring_the_deltas_gives_the_same_state"];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn state_machine_agrees_with_the_model(limits in limits(), steps in steps()) {
        quiet_panics_in_property_tests();
        let mut run = Run::new(&limits, true);
        for step in &steps {
            run.step(step);
        }
    }

    #[test]
    fn replaying_the_log_or_restoring_the_deltas_gives_the_same_state(limits in limits(), steps in steps()) {
        quiet_panics_in_property_tests();
        let mut run = Run::new(&limits, false);
        for step in &steps {
            run.step(step);
        }
        run.check_replay();
    }
}

// ---------------------------------------------------------------------------------------------
// Bugs the model found, pinned as plain tests
// ---------------------------------------------------------------------------------------------

fn machine_with_session(limits: Limits) -> (StateMachine, SessionId) {
    let mut sm = StateMachine::new(limits);
    let open = sm.prepare_create_session(5000, false, 1, T0);
    sm.apply(&open);
    (sm, open.session_id)
}

fn create(p: &str, kind: CreateKind) -> MultiOp {
    MultiOp::Create(CreateRequest { path: p.into(), data: Some(Vec::new()), kind, sequential: false, acl: Vec::new() })
}

fn commit(sm: &mut StateMachine, session: SessionId, op: &Op) -> Result<Applied, Rejection> {
    let txn = sm.prepare_write(session, op, T0)?;
    Ok(sm.apply(&txn))
}

/// ZooKeeper validates a create's path before looking for its parent, and DESIGN.md says
/// invalid paths get `InvalidPath`: a missing parent must not turn one into `NoNode`.
#[test]
fn create_of_an_invalid_path_is_invalid_path_even_when_the_parent_is_missing() {
    let (sm, session) = machine_with_session(Limits::default());
    for p in ["/a/", "/a/.", "/a/..", "/a/x\u{7}"] {
        let MultiOp::Create(req) = create(p, CreateKind::Persistent) else { unreachable!() };
        let code = match sm.prepare_write(session, &Op::Create(req), T0) {
            Err(Rejection::Error(e)) => e.code,
            other => panic!("{p:?}: {other:?}"),
        };
        assert_eq!(code, ErrorCode::InvalidPath, "{p:?}");
    }
}

/// The ephemeral quota is checked against the committed session, not the multi so far, so one
/// multi takes a session past `ephemerals_per_session_max`.
#[test]
fn a_multi_cannot_take_a_session_past_its_ephemeral_limit() {
    let limits = Limits { ephemerals_per_session_max: 2, ..Limits::default() };
    let (mut sm, session) = machine_with_session(limits);
    let ops = ["/e1", "/e2", "/e3"].map(|p| create(p, CreateKind::Ephemeral)).to_vec();
    let failed = commit(&mut sm, session, &Op::Multi(ops)).map(|applied| applied.results);
    let codes = [ErrorCode::RolledBack, ErrorCode::RolledBack, ErrorCode::LimitExceeded].map(OpResult::Error);
    assert_eq!(failed, Err(Rejection::MultiFailed(codes.to_vec())));
    let owned = sm.sessions().get(session).unwrap().ephemerals.len();
    assert!(owned <= 2, "session owns {owned} ephemerals");
}

/// The other face of the same bug: deleting an ephemeral earlier in the multi frees its slot.
#[test]
fn a_multi_that_deletes_an_ephemeral_may_create_another_at_the_limit() {
    let limits = Limits { ephemerals_per_session_max: 1, ..Limits::default() };
    let (mut sm, session) = machine_with_session(limits);
    commit(&mut sm, session, &Op::Multi(vec![create("/e1", CreateKind::Ephemeral)])).unwrap();
    let ops = vec![MultiOp::Delete { path: "/e1".into(), version: None }, create("/e2", CreateKind::Ephemeral)];
    let applied = commit(&mut sm, session, &Op::Multi(ops));
    assert!(applied.is_ok(), "{applied:?}");
}
