//! The torture checkers judged on synthetic histories: each must catch what it exists to
//! catch (negative controls), and the linearizability checker must agree with an independent
//! implementation (`stateright`'s `LinearizabilityTester`) on small random histories, valid
//! and corrupted alike.

use baton::{EventKind, Zxid};
use baton_tests::torture::Rng;
use baton_tests::torture::durability::{self, Attempts};
use baton_tests::torture::history::{Op, Record, Ret, SeenEvent, WatchLog};
use baton_tests::torture::linearizability::{self, State, Verdict, apply, check_path};
use baton_tests::torture::watches;
use proptest::prelude::*;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::BTreeMap;

const BUDGET: u64 = 10_000_000;

fn rec(client: usize, op: Op, invoke: u64, complete: Option<u64>, ret: Option<Ret>) -> Record {
    Record { client, path: "/x".into(), op, invoke_ns: invoke, complete_ns: complete, ret, zxid: None }
}

fn verdict(records: &[Record]) -> Verdict {
    let refs: Vec<&Record> = records.iter().collect();
    check_path(&refs, None, BUDGET)
}

#[test]
fn a_sequential_history_that_follows_the_model_is_linearizable() {
    let h = [
        rec(0, Op::Create(1), 0, Some(1), Some(Ret::Created)),
        rec(1, Op::Set { value: 2, version: Some(0) }, 2, Some(3), Some(Ret::Set(1))),
        rec(0, Op::Get, 4, Some(5), Some(Ret::Got(Some((2, 1))))),
        rec(1, Op::Delete { version: Some(0) }, 6, Some(7), Some(Ret::BadVersion)),
        rec(0, Op::Delete { version: None }, 8, Some(9), Some(Ret::Deleted)),
        rec(1, Op::Get, 10, Some(11), Some(Ret::Got(None))),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn negative_control_a_stale_read_is_caught() {
    // The set completed before the read began, yet the read returns the old value.
    let h = [
        rec(0, Op::Create(1), 0, Some(1), Some(Ret::Created)),
        rec(0, Op::Set { value: 2, version: None }, 2, Some(3), Some(Ret::Set(1))),
        rec(1, Op::Get, 4, Some(5), Some(Ret::Got(Some((1, 0))))),
    ];
    assert!(matches!(verdict(&h), Verdict::Violation { .. }));
    // Overlapping the set, the same read is fine.
    let mut concurrent = h.clone();
    concurrent[2].invoke_ns = 2;
    assert_eq!(verdict(&concurrent), Verdict::Linearizable);
}

#[test]
fn negative_control_a_lost_write_is_caught() {
    // An acknowledged set that later reads never see, and a later version that skips it.
    let h = [
        rec(0, Op::Create(1), 0, Some(1), Some(Ret::Created)),
        rec(0, Op::Set { value: 2, version: None }, 2, Some(3), Some(Ret::Set(1))),
        rec(1, Op::Set { value: 3, version: None }, 4, Some(5), Some(Ret::Set(1))),
    ];
    assert!(matches!(verdict(&h), Verdict::Violation { .. }));
}

#[test]
fn an_indeterminate_write_may_or_may_not_take_effect() {
    let base = [
        rec(0, Op::Create(1), 0, Some(1), Some(Ret::Created)),
        rec(0, Op::Set { value: 2, version: None }, 2, None, None),
    ];
    for seen in [(1, 0), (2, 1)] {
        let mut h = base.to_vec();
        h.push(rec(1, Op::Get, 10, Some(11), Some(Ret::Got(Some(seen)))));
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen:?}");
    }
    // But once seen, it cannot be unseen.
    let mut h = base.to_vec();
    h.push(rec(1, Op::Get, 10, Some(11), Some(Ret::Got(Some((2, 1))))));
    h.push(rec(1, Op::Get, 12, Some(13), Some(Ret::Got(Some((1, 0))))));
    assert!(matches!(verdict(&h), Verdict::Violation { .. }));
}

#[test]
fn negative_control_the_durability_checker_catches_loss_and_phantoms() {
    let mut attempts = Attempts::default();
    attempts.push("/a", Some(1), true);
    attempts.push("/a", Some(2), true);
    attempts.push("/a", Some(3), false);
    attempts.push("/b", Some(1), false);
    let recovered = |pairs: &[(&str, Option<u64>)]| -> BTreeMap<String, Option<u64>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    // The last acknowledged or the unacknowledged one after it; /b either way.
    for ok in [recovered(&[("/a", Some(2))]), recovered(&[("/a", Some(3)), ("/b", Some(1))])] {
        let report = durability::check(&attempts, &ok);
        assert!(report.lost.is_empty() && report.phantoms.is_empty(), "{report:?}");
    }
    let stale = durability::check(&attempts, &recovered(&[("/a", Some(1))]));
    assert_eq!(stale.lost.len(), 1, "an older acknowledged value is a loss");
    let gone = durability::check(&attempts, &recovered(&[]));
    assert_eq!(gone.lost.len(), 1, "an acknowledged key missing is a loss");
    let phantom = durability::check(&attempts, &recovered(&[("/a", Some(2)), ("/b", Some(7)), ("/c", Some(1))]));
    assert_eq!(phantom.phantoms.len(), 2, "{phantom:?}");
}

fn event(zxid: u64, path: &str, kind: EventKind) -> SeenEvent {
    SeenEvent { zxid: Zxid(zxid), path: path.into(), kind }
}

#[test]
fn negative_control_the_watch_validator_catches_gaps_reorders_duplicates_and_late_events() {
    let mut records = vec![
        Record { path: "/r/a".into(), zxid: Some(Zxid(5)), ..rec(0, Op::Create(1), 0, Some(1), Some(Ret::Created)) },
        Record {
            path: "/r/a".into(),
            zxid: Some(Zxid(6)),
            ..rec(0, Op::Set { value: 2, version: None }, 2, Some(3), Some(Ret::Set(1)))
        },
    ];
    records.push(Record {
        path: "/r/a".into(),
        zxid: Some(Zxid(7)),
        ..rec(0, Op::Set { value: 3, version: None }, 4, Some(5), Some(Ret::Set(2)))
    });
    let good = WatchLog {
        client: 0,
        from: Zxid(4),
        events: vec![
            event(5, "/r/a", EventKind::Created),
            event(6, "/r/a", EventKind::DataChanged),
            event(7, "/r/a", EventKind::DataChanged),
        ],
        reveals: vec![("/r/a".into(), Zxid(6), true)],
    };
    let report = watches::check(std::slice::from_ref(&good), &records, "/r");
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(report.deliveries_checked, 3);

    // Events for changes just before the window opened may still arrive first: not a reorder.
    let early = WatchLog { from: Zxid(6), ..good.clone() };
    assert_eq!(watches::check(&[early], &records, "/r").failures(), 0);

    let mut gap = good.clone();
    gap.events.remove(1);
    assert_eq!(watches::check(&[gap], &records, "/r").gaps.len(), 1);
    let mut reorder = good.clone();
    reorder.events.swap(1, 2);
    assert_eq!(watches::check(&[reorder], &records, "/r").reorders.len(), 1);
    let mut duplicate = good.clone();
    duplicate.events.push(event(7, "/r/a", EventKind::DataChanged));
    assert_eq!(watches::check(&[duplicate], &records, "/r").duplicates.len(), 1);
    let mut late = good.clone();
    late.reveals.push(("/r/a".into(), Zxid(7), false));
    assert_eq!(watches::check(&[late], &records, "/r").late.len(), 1);
    let mut phantom = good.clone();
    phantom.events.push(event(9, "/r/b", EventKind::Created));
    assert_eq!(watches::check(&[phantom], &records, "/r").phantoms.len(), 1);
    // A delete only another watcher saw is a gap too.
    let mut other = good.clone();
    other.events.push(event(8, "/r/a", EventKind::Deleted));
    records.push(rec(0, Op::Delete { version: None }, 6, None, None));
    let mut short = good.clone();
    short.events.push(event(9, "/r/a", EventKind::Created));
    records.push(Record { path: "/r/a".into(), ..rec(0, Op::Create(4), 7, None, None) });
    let report = watches::check(&[other, short], &records, "/r");
    assert_eq!(report.gaps.len(), 1, "{report:?}");
}

/// The reference: one path's model as a stateright sequential specification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Reference(State);

impl SequentialSpec for Reference {
    type Op = Op;
    type Ret = Ret;
    fn invoke(&mut self, op: &Op) -> Ret {
        let (ret, next) = apply(self.0, *op);
        self.0 = next;
        ret
    }
}

/// A random history that a real (linearizable) execution produced: each operation takes
/// effect atomically at a random moment between its call and its return; some end
/// indeterminate (before or after taking effect), which ends their client.
fn generate(seed: u64, clients: usize, ops_each: usize, stop_per_mille: u64) -> Vec<Record> {
    let mut rng = Rng::new(seed);
    let mut state: State = None;
    let mut records: Vec<Record> = Vec::new();
    // Per client: ops left, and the op in flight with its result once it took effect.
    let mut left = vec![ops_each; clients];
    let mut flight: Vec<Option<(usize, Option<Ret>)>> = vec![None; clients];
    let mut stopped = vec![false; clients];
    let mut time = 0;
    loop {
        let active: Vec<usize> =
            (0..clients).filter(|&c| !stopped[c] && (left[c] > 0 || flight[c].is_some())).collect();
        if active.is_empty() {
            return records;
        }
        let c = active[rng.below(active.len() as u64) as usize];
        time += 1;
        match flight[c] {
            None => {
                let value = 1 + rng.below(3);
                let version = if rng.chance(50) { Some(rng.below(3) as i32) } else { None };
                let op = match rng.below(4) {
                    0 => Op::Create(value),
                    1 => Op::Set { value, version },
                    2 => Op::Get,
                    _ => Op::Delete { version },
                };
                records.push(Record {
                    client: c,
                    path: "/x".into(),
                    op,
                    invoke_ns: time,
                    complete_ns: None,
                    ret: None,
                    zxid: None,
                });
                flight[c] = Some((records.len() - 1, None));
            }
            Some((i, None)) => match rng.below(1000) {
                0..700 => {
                    let (ret, next) = apply(state, records[i].op);
                    state = next;
                    flight[c] = Some((i, Some(ret)));
                }
                n if n >= 1000 - stop_per_mille => stopped[c] = true,
                _ => {}
            },
            Some((i, Some(ret))) => {
                if rng.below(1000) < stop_per_mille {
                    stopped[c] = true;
                } else {
                    records[i].ret = Some(ret);
                    records[i].complete_ns = Some(time);
                    flight[c] = None;
                    left[c] -= 1;
                }
            }
        }
    }
}

/// Changes one definite result into a different one.
fn corrupt(records: &mut [Record], rng: &mut Rng) {
    let done: Vec<usize> = (0..records.len()).filter(|&i| records[i].ret.is_some()).collect();
    if done.is_empty() {
        return;
    }
    let i = done[rng.below(done.len() as u64) as usize];
    let bump = 1 + rng.below(2);
    records[i].ret = Some(match records[i].ret.expect("definite") {
        Ret::Got(Some((v, ver))) => {
            if rng.chance(50) {
                Ret::Got(Some((v + bump, ver)))
            } else {
                Ret::Got(Some((v, ver + 1)))
            }
        }
        Ret::Got(None) => Ret::Got(Some((bump, 0))),
        Ret::Created => Ret::Exists,
        Ret::Exists => Ret::Created,
        Ret::Set(v) => Ret::Set(v + 1),
        Ret::Deleted | Ret::BadVersion => Ret::NoNode,
        Ret::NoNode => Ret::Deleted,
    });
}

/// Stateright's verdict on the same history: calls and returns fed in time order;
/// indeterminate operations stay in flight (they may or may not take effect).
fn reference_verdict(records: &[Record]) -> bool {
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        events.push((r.invoke_ns, false, i));
        if let (Some(t), Some(_)) = (r.complete_ns, r.ret) {
            events.push((t, true, i));
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::new(Reference(None));
    for (_, is_return, i) in events {
        let r = &records[i];
        if is_return {
            tester.on_return(r.client, r.ret.expect("definite")).expect("well-formed history");
        } else {
            tester.on_invoke(r.client, r.op).expect("well-formed history");
        }
    }
    tester.is_consistent()
}

fn ours(records: &[Record]) -> bool {
    match verdict(records) {
        Verdict::Linearizable => true,
        Verdict::Violation { .. } => false,
        Verdict::Undecided => panic!("undecided on a small history"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_stateright_on_valid_and_corrupted_histories(
        seed in any::<u64>(), clients in 1usize..4, ops in 1usize..4, corrupted in any::<bool>()
    ) {
        let mut records = generate(seed, clients, ops, 100);
        prop_assert!(ours(&records), "a generated history is linearizable by construction");
        if corrupted {
            corrupt(&mut records, &mut Rng::new(seed.rotate_left(17)));
        }
        prop_assert_eq!(ours(&records), reference_verdict(&records), "history: {:#?}", records);
    }
}

#[test]
fn corrupted_histories_are_mostly_caught_so_the_agreement_is_not_vacuous() {
    let (mut caught, trials) = (0, 400);
    for seed in 0..trials {
        let mut records = generate(seed, 3, 3, 100);
        corrupt(&mut records, &mut Rng::new(seed + 1));
        if !ours(&records) {
            caught += 1;
            assert!(!reference_verdict(&records), "seed {seed}: stateright accepts what we reject");
        }
    }
    baton_tests::torture::figure(&format!(
        "checkers: corrupted random histories rejected {caught} of {trials}, each also rejected by stateright"
    ));
    assert!(caught * 2 > trials, "only {caught} of {trials} corrupted histories rejected");
}

#[test]
fn the_checker_handles_a_long_concurrent_history_within_budget() {
    let records = generate(7, 6, 400, 1);
    let report = linearizability::check(&records, &BTreeMap::new(), BUDGET);
    assert!(report.violations.is_empty() && report.undecided.is_empty(), "{report:?}");
    assert!(report.ops >= 1_000, "{} ops", report.ops);
}
