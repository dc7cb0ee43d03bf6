//! The durability checker: acknowledged ⊆ recovered ⊆ attempted.
//!
//! Each key is written by one client at a time, in order, with unconditional writes whose
//! outcome does not depend on what came before (create, set, delete): so the state after each
//! attempt is known. After a crash the recovered state of a key must be the state after one
//! of its attempts at or after the last acknowledged one (nothing acknowledged lost), and
//! never a state no attempt produced (no phantoms).

use super::history::Value;
use std::collections::BTreeMap;

/// One write attempt on a key: the key's state if it took effect, and whether it was
/// acknowledged. Attempts that definitely failed are not recorded.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub after: Option<Value>,
    pub acked: bool,
}

/// The attempts on every key, in the order they were made.
#[derive(Clone, Debug, Default)]
pub struct Attempts(pub BTreeMap<String, Vec<Attempt>>);

impl Attempts {
    pub fn push(&mut self, key: &str, after: Option<Value>, acked: bool) {
        self.0.entry(key.to_owned()).or_default().push(Attempt { after, acked });
    }

    pub fn merge(&mut self, other: Attempts) {
        for (key, attempts) in other.0 {
            self.0.entry(key).or_default().extend(attempts);
        }
    }

    pub fn acked(&self) -> usize {
        self.0.values().flatten().filter(|a| a.acked).count()
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct DurabilityReport {
    /// Acknowledged writes (all keys).
    pub acked: usize,
    /// Keys with at least one acknowledged write.
    pub acked_keys: usize,
    /// Keys whose recovered state is older than their last acknowledged write.
    pub lost: Vec<String>,
    /// Keys recovered in a state no attempt produced (or never attempted at all).
    pub phantoms: Vec<String>,
}

/// Compares the recovered states (`None`: absent) of the keys under test with the attempts.
/// `recovered` must hold every key that exists after recovery under the tested prefix; keys
/// absent from it are taken as absent.
pub fn check(attempts: &Attempts, recovered: &BTreeMap<String, Option<Value>>) -> DurabilityReport {
    let mut report = DurabilityReport { acked: attempts.acked(), ..DurabilityReport::default() };
    for (key, tries) in &attempts.0 {
        let now = recovered.get(key).copied().flatten();
        let last_acked = tries.iter().rposition(|a| a.acked);
        if last_acked.is_some() {
            report.acked_keys += 1;
        }
        let from = last_acked.unwrap_or(0);
        let allowed = |a: &Attempt| a.after == now;
        let ok = tries[from..].iter().any(allowed) || (last_acked.is_none() && now.is_none());
        if ok {
            continue;
        }
        if tries[..from].iter().any(allowed) || (now.is_none() && last_acked.is_some()) {
            report.lost.push(format!("{key}: recovered {now:?}, last acknowledged {:?}", tries[from].after));
        } else {
            report.phantoms.push(format!("{key}: recovered {now:?}, never written"));
        }
    }
    for (key, value) in recovered {
        if value.is_some() && !attempts.0.contains_key(key) {
            report.phantoms.push(format!("{key}: recovered {value:?}, never attempted"));
        }
    }
    report
}
