//! The watch validator: what every persistent watcher received, judged against the recorded
//! writes and against the other watchers.
//!
//! For each watcher, over its window (from the newest zxid its client had seen when the watch
//! was in place to the last event it received):
//! - **ordered, unique**: zxids never go backwards and no event comes twice;
//! - **gap-free**: every acknowledged create or set under the root in the window was
//!   delivered, and so was every event any other watcher received in the window (which covers
//!   deletes, whose zxid no reply names);
//! - **no phantoms**: a create or data event matches an acknowledged write of its zxid, or an
//!   indeterminate write on its path;
//! - **event before data**: a read that revealed change Z came after the event for Z.
//!
//! A `WatchReset` (history compacted during a reconnect) exempts the span it covers from the
//! gap check, and is counted.

use super::history::{Op, Record, SeenEvent, WatchLog};
use baton::EventKind;
use std::collections::BTreeSet;

/// What the validator found; every list must be empty.
#[derive(Debug, Default)]
pub struct WatchReport {
    pub watchers: usize,
    pub events: usize,
    /// (watcher, write) pairs checked for delivery.
    pub deliveries_checked: usize,
    pub reveals_checked: usize,
    pub resets: usize,
    pub reorders: Vec<String>,
    pub duplicates: Vec<String>,
    pub gaps: Vec<String>,
    pub phantoms: Vec<String>,
    pub late: Vec<String>,
}

impl WatchReport {
    pub fn failures(&self) -> usize {
        self.reorders.len() + self.duplicates.len() + self.gaps.len() + self.phantoms.len() + self.late.len()
    }
}

/// (zxid, path, kind as a number: `EventKind` is not `Ord`).
type Key = (u64, String, u8);

fn key(e: &SeenEvent) -> Key {
    (e.zxid.0, e.path.clone(), e.kind as u8)
}

/// Validates `logs` against `records` (every operation of the run, on paths under `root`).
pub fn check(logs: &[WatchLog], records: &[Record], root: &str) -> WatchReport {
    let mut report = WatchReport { watchers: logs.len(), ..WatchReport::default() };
    let under = |p: &str| p == root || p.starts_with(&format!("{root}/"));
    // Acknowledged creates and sets: the event each must produce.
    let mut acked: BTreeSet<Key> = BTreeSet::new();
    let mut maybe: BTreeSet<(String, u8)> = BTreeSet::new();
    for r in records.iter().filter(|r| under(&r.path)) {
        let kind = match r.op {
            Op::Create(_) => EventKind::Created,
            Op::Set { .. } => EventKind::DataChanged,
            Op::Get => continue,
            Op::Delete { .. } => {
                maybe.insert((r.path.clone(), EventKind::Deleted as u8));
                continue;
            }
        };
        match (r.ret, r.zxid) {
            (Some(super::history::Ret::Created | super::history::Ret::Set(_)), Some(z)) => {
                acked.insert((z.0, r.path.clone(), kind as u8));
            }
            (None, _) => {
                maybe.insert((r.path.clone(), kind as u8));
            }
            _ => {}
        }
    }
    let union: BTreeSet<Key> =
        logs.iter().flat_map(|l| l.events.iter()).filter(|e| e.kind != EventKind::WatchReset).map(key).collect();
    for (w, log) in logs.iter().enumerate() {
        check_one(w, log, &acked, &union, &maybe, &mut report);
    }
    report
}

fn check_one(
    w: usize,
    log: &WatchLog,
    acked: &BTreeSet<Key>,
    union: &BTreeSet<Key>,
    maybe: &BTreeSet<(String, u8)>,
    report: &mut WatchReport,
) {
    report.events += log.events.len();
    let mut got: BTreeSet<Key> = BTreeSet::new();
    let mut exempt: Vec<(u64, u64)> = Vec::new();
    // Events may come for changes just before the window opened (the watch was in place
    // before the client read its newest zxid), so order is judged among events alone.
    let mut last = 0;
    for (i, e) in log.events.iter().enumerate() {
        if e.kind == EventKind::WatchReset {
            report.resets += 1;
            let next =
                log.events[i + 1..].iter().find(|n| n.kind != EventKind::WatchReset).map_or(u64::MAX, |n| n.zxid.0);
            exempt.push((last.max(log.from.0), next));
            continue;
        }
        if e.zxid.0 < last {
            report.reorders.push(format!("watcher {w} (client {}): {:?} after zxid {last:#x}", log.client, e));
        }
        if !got.insert(key(e)) {
            report.duplicates.push(format!("watcher {w} (client {}): {:?} twice", log.client, e));
        }
        let explained = match e.kind {
            EventKind::Created | EventKind::DataChanged => {
                acked.contains(&key(e)) || maybe.contains(&(e.path.clone(), e.kind as u8))
            }
            EventKind::Deleted => maybe.contains(&(e.path.clone(), e.kind as u8)),
            _ => true,
        };
        if !explained {
            report.phantoms.push(format!("watcher {w} (client {}): {:?} matches no write", log.client, e));
        }
        last = last.max(e.zxid.0);
    }
    let end = last;
    let in_window = |z: u64| z > log.from.0 && z <= end && !exempt.iter().any(|&(a, b)| z > a && z < b);
    for k in acked.union(union).filter(|k| in_window(k.0)) {
        report.deliveries_checked += 1;
        if !got.contains(k) {
            report.gaps.push(format!("watcher {w} (client {}): missed {k:?}", log.client));
        }
    }
    for (path, zxid, before) in &log.reveals {
        report.reveals_checked += 1;
        if !before && in_window(zxid.0) {
            report.late.push(format!("client {}: read of {path} revealed {zxid} before its event", log.client));
        }
    }
}
