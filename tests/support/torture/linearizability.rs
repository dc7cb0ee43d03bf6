//! A Wing–Gong–Lowe linearizability checker for the histories of node paths.
//!
//! The model of one path is a register with a version: absent, or `(value, version)`. Paths
//! are independent objects, and linearizability is compositional (Herlihy & Wing), so each
//! path's sub-history is checked alone.
//!
//! The search follows Lowe ("Testing for linearizability", 2017): the history is a list of
//! call and return entries in time order; the checker tries to linearize the first pending
//! call whose model step matches its recorded result, backtracks when it meets a return whose
//! call has not been linearized, and memoises each (set of linearized operations, model
//! state) it has reached, so no configuration is explored twice. An indeterminate operation
//! returns at infinity and accepts any result: it may be linearized anywhere after its
//! invocation, or effectively never (last, where nothing observes it).

use super::history::{Op, Record, Ret, Value};
use std::collections::{BTreeMap, HashSet};

/// The state of one path: absent, or its data and version.
pub type State = Option<(Value, i32)>;

/// The model: what `op` returns on `state`, and the state after it.
pub fn apply(state: State, op: Op) -> (Ret, State) {
    match (op, state) {
        (Op::Create(value), None) => (Ret::Created, Some((value, 0))),
        (Op::Create(_), Some(_)) => (Ret::Exists, state),
        (Op::Set { .. } | Op::Delete { .. }, None) => (Ret::NoNode, None),
        (Op::Set { version: Some(want), .. } | Op::Delete { version: Some(want) }, Some((_, have))) if want != have => {
            (Ret::BadVersion, state)
        }
        (Op::Set { value, .. }, Some((_, have))) => (Ret::Set(have + 1), Some((value, have + 1))),
        (Op::Get, _) => (Ret::Got(state), state),
        (Op::Delete { .. }, Some(_)) => (Ret::Deleted, None),
    }
}

/// One step of the model against a recorded result (`None`: indeterminate, anything goes).
fn step(state: State, op: Op, ret: Option<Ret>) -> Option<State> {
    let (expected, next) = apply(state, op);
    match ret {
        Some(ret) if ret != expected => None,
        _ => Some(next),
    }
}

/// Why a history is not (known to be) linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists. `deepest` is the longest linearizable prefix found, and
    /// `stuck` the operations (indices into the checked slice) pending at that point.
    Violation {
        deepest: usize,
        stuck: Vec<usize>,
    },
    /// The search exceeded its step budget.
    Undecided,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    call: bool,
    /// For a call, the index of its return entry.
    ret: usize,
    prev: usize,
    next: usize,
}

/// The doubly linked list of entries that Lowe's algorithm lifts calls out of.
struct Entries(Vec<Entry>);

impl Entries {
    fn build(ops: &[&Record]) -> Entries {
        // (time, is_return, op): at equal times calls come first, making the ops concurrent.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, r) in ops.iter().enumerate() {
            events.push((r.invoke_ns, false, i));
            events.push((if r.ret.is_some() { r.complete_ns.unwrap_or(u64::MAX) } else { u64::MAX }, true, i));
        }
        events.sort_unstable();
        let mut list = vec![Entry { op: NIL, call: false, ret: NIL, prev: NIL, next: NIL }];
        let mut call_of = vec![NIL; ops.len()];
        for (k, &(_, is_return, op)) in events.iter().enumerate() {
            let index = k + 1;
            let next = if k + 1 < events.len() { index + 1 } else { NIL };
            list.push(Entry { op, call: !is_return, ret: NIL, prev: index - 1, next });
            if is_return {
                list[call_of[op]].ret = index;
            } else {
                call_of[op] = index;
            }
        }
        list[HEAD].next = if events.is_empty() { NIL } else { 1 };
        Entries(list)
    }

    fn unlink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.0[i];
        self.0[prev].next = next;
        if next != NIL {
            self.0[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.0[i];
        self.0[prev].next = i;
        if next != NIL {
            self.0[next].prev = i;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.0[call].ret);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.0[call].ret);
        self.relink(call);
    }
}

/// Checks one path's operations, starting from `initial`, with a budget of search steps.
pub fn check_path(ops: &[&Record], initial: State, budget: u64) -> Verdict {
    let mut entries = Entries::build(ops);
    let words = ops.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut state = initial;
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let (mut deepest, mut stuck) = (0, Vec::new());
    let mut entry = entries.0[HEAD].next;
    let mut steps = 0u64;
    while entries.0[HEAD].next != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Undecided;
        }
        let e = entries.0[entry];
        if e.call {
            let record = ops[e.op];
            if let Some(next) = step(state, record.op, record.ret) {
                let mut after = linearized.clone();
                after[e.op / 64] |= 1 << (e.op % 64);
                if seen.insert((after.clone(), next)) {
                    stack.push((entry, state));
                    state = next;
                    linearized = after;
                    entries.lift(entry);
                    entry = entries.0[HEAD].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            if stack.len() >= deepest {
                deepest = stack.len();
                stuck = pending(&entries);
            }
            let Some((call, previous)) = stack.pop() else {
                return Verdict::Violation { deepest, stuck };
            };
            state = previous;
            let op = entries.0[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            entries.unlift(call);
            entry = entries.0[call].next;
        }
    }
    Verdict::Linearizable
}

/// The operations whose calls are still in the list, up to the first return.
fn pending(entries: &Entries) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = entries.0[HEAD].next;
    while i != NIL && entries.0[i].call {
        out.push(entries.0[i].op);
        i = entries.0[i].next;
    }
    if i != NIL {
        out.push(entries.0[i].op);
    }
    out
}

/// The outcome of checking a whole history.
#[derive(Debug, Default)]
pub struct Report {
    /// Operations checked (all of them, indeterminate included).
    pub ops: usize,
    pub indeterminate: usize,
    pub paths: usize,
    /// Paths with no linearization, with a description of where the search got stuck.
    pub violations: Vec<String>,
    pub undecided: Vec<String>,
}

impl Report {
    pub fn indeterminate_percent(&self) -> f64 {
        if self.ops == 0 { 0.0 } else { 100.0 * self.indeterminate as f64 / self.ops as f64 }
    }
}

/// Checks every path of `records`; each path starts absent unless `initial` says otherwise.
pub fn check(records: &[Record], initial: &BTreeMap<String, State>, budget_per_path: u64) -> Report {
    let mut by_path: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_path.entry(&r.path).or_default().push(r);
    }
    let mut report = Report {
        ops: records.len(),
        indeterminate: records.iter().filter(|r| r.ret.is_none()).count(),
        paths: by_path.len(),
        ..Report::default()
    };
    for (path, ops) in by_path {
        let start = initial.get(path).copied().flatten();
        match check_path(&ops, start, budget_per_path) {
            Verdict::Linearizable => {}
            Verdict::Violation { deepest, stuck } => {
                let around: Vec<String> = stuck.iter().map(|&i| format!("{:?}", ops[i])).collect();
                report.violations.push(format!(
                    "{path}: no linearization of {} ops; deepest prefix {deepest}; pending there:\n  {}",
                    ops.len(),
                    around.join("\n  ")
                ));
            }
            Verdict::Undecided => report.undecided.push(format!("{path}: {} ops, budget exhausted", ops.len())),
        }
    }
    report
}
