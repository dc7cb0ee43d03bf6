//! The watch table: which session watches what, and who is told about each change.
//!
//! Rules (ZooKeeper's):
//! - data (one-shot): `DataChanged`, `Deleted` of the path
//! - exists (one-shot): `Created`, `DataChanged`, `Deleted` of the path
//! - children (one-shot): `ChildrenChanged`, `Deleted` of the path
//! - persistent: every event of the path, and it stays
//! - recursive: `Created`, `DataChanged`, `Deleted` of the path and its descendants, and it
//!   stays (no `ChildrenChanged`: the creates and deletes already say it)
//! - turn (one-shot, Baton's own): `Turn` once the node is first in line among its siblings,
//!   `Deleted` of the path. Which node a departure makes first is the state machine's to
//!   find; the table only says in which directories anyone waits for a turn.
//!
//! A session gets one event per change however many of its watches match.
//!
//! Firing also says whether delivery needs the session to be allowed to read the node: an
//! exists watch does not (like `exists` itself, it reveals no more than the node's presence),
//! nor does a turn watch (its registration needed read permission on the directory, and it
//! tells nothing of the node's contents); every other kind does, and the ACL is checked again
//! at delivery (a recursive watch must not leak the names of nodes its session may not read).

use baton_proto::message::{EventKind, PersistentWatchMode, WatchSet};
use baton_proto::{SessionId, path};
use std::collections::{BTreeMap, BTreeSet};

/// Whether an event may only be delivered to a session allowed to read the node.
pub type NeedsRead = bool;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchKind {
    Data,
    Exists,
    Children,
    Persistent,
    Recursive,
    Turn,
}

impl From<baton_proto::message::WatchType> for WatchKind {
    fn from(kind: baton_proto::message::WatchType) -> Self {
        use baton_proto::message::WatchType;
        match kind {
            WatchType::Data => WatchKind::Data,
            WatchType::Exists => WatchKind::Exists,
            WatchType::Children => WatchKind::Children,
            WatchType::Persistent => WatchKind::Persistent,
            WatchType::Recursive => WatchKind::Recursive,
            WatchType::Turn => WatchKind::Turn,
        }
    }
}

impl From<PersistentWatchMode> for WatchKind {
    fn from(mode: PersistentWatchMode) -> Self {
        match mode {
            PersistentWatchMode::Persistent => WatchKind::Persistent,
            PersistentWatchMode::Recursive => WatchKind::Recursive,
        }
    }
}

impl WatchKind {
    const ALL: [WatchKind; 6] = [
        WatchKind::Data,
        WatchKind::Exists,
        WatchKind::Children,
        WatchKind::Persistent,
        WatchKind::Recursive,
        WatchKind::Turn,
    ];

    /// Whether an event from this kind of watch is delivered only to sessions that may read
    /// the node.
    fn needs_read(self) -> bool {
        !matches!(self, WatchKind::Exists | WatchKind::Turn)
    }

    fn is_one_shot(self) -> bool {
        matches!(self, WatchKind::Data | WatchKind::Exists | WatchKind::Children | WatchKind::Turn)
    }

    /// Whether a watch of this kind on the changed path itself fires for `event`.
    fn fires_on(self, event: EventKind) -> bool {
        use EventKind::{ChildrenChanged, Created, DataChanged, Deleted, Turn, WatchReset};
        match self {
            WatchKind::Data => matches!(event, DataChanged | Deleted | WatchReset),
            WatchKind::Exists => matches!(event, Created | DataChanged | Deleted | WatchReset),
            WatchKind::Children => matches!(event, ChildrenChanged | Deleted | WatchReset),
            WatchKind::Persistent => !matches!(event, Turn),
            WatchKind::Recursive => !matches!(event, ChildrenChanged | Turn),
            WatchKind::Turn => matches!(event, Turn | Deleted | WatchReset),
        }
    }
}

/// Watches of one session, by kind, for replay after a resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionWatches {
    by_kind: BTreeMap<WatchKind, BTreeSet<String>>,
}

impl SessionWatches {
    pub fn from_set(set: &WatchSet) -> Self {
        let mut watches = SessionWatches::default();
        let lists = [
            (WatchKind::Data, &set.data),
            (WatchKind::Exists, &set.exists),
            (WatchKind::Children, &set.children),
            (WatchKind::Persistent, &set.persistent),
            (WatchKind::Recursive, &set.recursive),
        ];
        for (kind, paths) in lists {
            watches.by_kind.entry(kind).or_default().extend(paths.iter().cloned());
        }
        watches
    }

    /// Whether any watch here fires for `event` on `changed` (`Some`), and if so whether
    /// delivery needs read permission (as [`WatchTable::fire`]); one-shot ones that fire are
    /// consumed.
    pub fn fire(&mut self, changed: &str, event: EventKind) -> Option<NeedsRead> {
        let mut fired: Option<NeedsRead> = None;
        for (kind, paths) in &mut self.by_kind {
            let hit = if *kind == WatchKind::Recursive {
                kind.fires_on(event) && path::self_and_ancestors(changed).any(|p| paths.contains(p))
            } else {
                kind.fires_on(event) && paths.contains(changed)
            };
            if hit {
                fired = Some(fired.unwrap_or(true) && kind.needs_read());
                if kind.is_one_shot() {
                    paths.remove(changed);
                }
            }
        }
        fired
    }

    /// Every watched path, once.
    pub fn paths(&self) -> BTreeSet<String> {
        self.by_kind.values().flatten().cloned().collect()
    }

    pub fn into_entries(self) -> impl Iterator<Item = (WatchKind, String)> {
        self.by_kind.into_iter().flat_map(|(kind, paths)| paths.into_iter().map(move |p| (kind, p)))
    }
}

#[derive(Clone, Debug, Default)]
pub struct WatchTable {
    /// kind -> path -> watching sessions
    by_kind: BTreeMap<WatchKind, BTreeMap<String, BTreeSet<SessionId>>>,
    /// session -> (kind, path) it watches, for removal and limits
    by_session: BTreeMap<SessionId, BTreeSet<(WatchKind, String)>>,
    /// directory -> how many turn watches its children carry
    turn_dirs: BTreeMap<String, usize>,
}

impl WatchTable {
    /// Registers a watch. Returns false if the session already has `limit` watches.
    pub fn add(&mut self, session: SessionId, kind: WatchKind, p: &str, limit: usize) -> bool {
        let mine = self.by_session.entry(session).or_default();
        if mine.contains(&(kind, p.to_owned())) {
            return true;
        }
        if mine.len() >= limit {
            return false;
        }
        mine.insert((kind, p.to_owned()));
        self.by_kind.entry(kind).or_default().entry(p.to_owned()).or_default().insert(session);
        if kind == WatchKind::Turn
            && let Some(dir) = path::parent(p)
        {
            *self.turn_dirs.entry(dir.to_owned()).or_default() += 1;
        }
        true
    }

    /// Whether any child of `dir` carries a turn watch: whether a departure from `dir` may
    /// have to tell someone it is first now.
    pub fn turn_watched_in(&self, dir: &str) -> bool {
        self.turn_dirs.contains_key(dir)
    }

    /// Takes `gone` turn watches on `p` off its directory's count.
    fn uncount_turns(&mut self, p: &str, gone: usize) {
        let Some(dir) = path::parent(p) else { return };
        if let Some(count) = self.turn_dirs.get_mut(dir) {
            *count = count.saturating_sub(gone);
            if *count == 0 {
                self.turn_dirs.remove(dir);
            }
        }
    }

    /// Every registration, for carrying watches over a replaced state.
    pub fn entries(&self) -> Vec<(SessionId, WatchKind, String)> {
        self.by_session.iter().flat_map(|(s, mine)| mine.iter().map(|(k, p)| (*s, *k, p.clone()))).collect()
    }

    pub fn count(&self, session: SessionId) -> usize {
        self.by_session.get(&session).map_or(0, BTreeSet::len)
    }

    pub fn total(&self) -> usize {
        self.by_session.values().map(BTreeSet::len).sum()
    }

    /// Drops every watch of `session` (closed, expired, or disconnected: a resuming client
    /// re-registers its watches).
    pub fn remove_session(&mut self, session: SessionId) {
        for (kind, p) in self.by_session.remove(&session).unwrap_or_default() {
            self.unindex(session, kind, &p);
        }
    }

    /// Drops every watch of `session` on `p`; returns how many there were.
    pub fn remove_path(&mut self, session: SessionId, p: &str) -> usize {
        self.remove_kinds(session, p, &WatchKind::ALL)
    }

    /// How many watches of `kinds` `session` has on `p`.
    pub fn count_kinds(&self, session: SessionId, p: &str, kinds: &[WatchKind]) -> usize {
        self.by_session
            .get(&session)
            .map_or(0, |mine| mine.iter().filter(|(k, wp)| wp == p && kinds.contains(k)).count())
    }

    /// Drops the watches of `kinds` `session` has on `p`; returns how many there were.
    pub fn remove_kinds(&mut self, session: SessionId, p: &str, kinds: &[WatchKind]) -> usize {
        let Some(mine) = self.by_session.get_mut(&session) else { return 0 };
        let doomed: Vec<_> = mine.iter().filter(|(k, wp)| wp == p && kinds.contains(k)).cloned().collect();
        for entry in &doomed {
            mine.remove(entry);
        }
        for (kind, wp) in &doomed {
            self.unindex(session, *kind, wp);
        }
        doomed.len()
    }

    /// The sessions told about `event` on `changed`, each once, with whether delivery needs
    /// read permission on the node (false if an exists watch matched); consumes one-shot
    /// watches.
    pub fn fire(&mut self, changed: &str, event: EventKind) -> BTreeMap<SessionId, NeedsRead> {
        let mut told = BTreeMap::new();
        let mut tell = |session: SessionId, kind: WatchKind| {
            let needs = told.entry(session).or_insert(true);
            *needs = *needs && kind.needs_read();
        };
        for kind in WatchKind::ALL {
            if !kind.fires_on(event) {
                continue;
            }
            if kind == WatchKind::Recursive {
                if let Some(index) = self.by_kind.get(&kind) {
                    for p in path::self_and_ancestors(changed) {
                        for &session in index.get(p).into_iter().flatten() {
                            tell(session, kind);
                        }
                    }
                }
                continue;
            }
            let sessions = if kind.is_one_shot() {
                self.by_kind.get_mut(&kind).and_then(|index| index.remove(changed))
            } else {
                self.by_kind.get(&kind).and_then(|index| index.get(changed)).cloned()
            };
            if kind == WatchKind::Turn
                && let Some(fired) = &sessions
            {
                self.uncount_turns(changed, fired.len());
            }
            for session in sessions.into_iter().flatten() {
                if kind.is_one_shot()
                    && let Some(mine) = self.by_session.get_mut(&session)
                {
                    mine.remove(&(kind, changed.to_owned()));
                }
                tell(session, kind);
            }
        }
        told
    }

    fn unindex(&mut self, session: SessionId, kind: WatchKind, p: &str) {
        if let Some(index) = self.by_kind.get_mut(&kind)
            && let Some(sessions) = index.get_mut(p)
            && sessions.remove(&session)
        {
            if sessions.is_empty() {
                index.remove(p);
            }
            if kind == WatchKind::Turn {
                self.uncount_turns(p, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: SessionId = SessionId(1);
    const S2: SessionId = SessionId(2);

    fn fired(table: &mut WatchTable, changed: &str, event: EventKind) -> BTreeSet<SessionId> {
        table.fire(changed, event).into_keys().collect()
    }

    #[test]
    fn only_an_exists_watch_spares_the_read_check() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Exists, "/a", 10);
        table.add(S1, WatchKind::Recursive, "/", 10);
        table.add(S2, WatchKind::Recursive, "/", 10);
        assert_eq!(table.fire("/a", EventKind::Created), BTreeMap::from([(S1, false), (S2, true)]));
        assert_eq!(table.fire("/a", EventKind::Deleted), BTreeMap::from([(S1, true), (S2, true)]));
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut table = WatchTable::default();
        assert!(table.add(S1, WatchKind::Data, "/a", 10));
        assert_eq!(fired(&mut table, "/a", EventKind::DataChanged), BTreeSet::from([S1]));
        assert!(fired(&mut table, "/a", EventKind::DataChanged).is_empty());
        assert_eq!(table.count(S1), 0);
    }

    #[test]
    fn each_kind_fires_on_its_events_only() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Children, "/a", 10);
        assert!(fired(&mut table, "/a", EventKind::DataChanged).is_empty());
        assert_eq!(fired(&mut table, "/a", EventKind::ChildrenChanged), BTreeSet::from([S1]));
        table.add(S1, WatchKind::Exists, "/b", 10);
        assert_eq!(fired(&mut table, "/b", EventKind::Created), BTreeSet::from([S1]));
    }

    #[test]
    fn persistent_and_recursive_watches_stay() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Persistent, "/a", 10);
        table.add(S2, WatchKind::Recursive, "/a", 10);
        for _ in 0..2 {
            assert_eq!(fired(&mut table, "/a", EventKind::DataChanged), BTreeSet::from([S1, S2]));
        }
        assert_eq!(fired(&mut table, "/a/b/c", EventKind::Created), BTreeSet::from([S2]));
        assert_eq!(fired(&mut table, "/a", EventKind::ChildrenChanged), BTreeSet::from([S1]));
        assert!(fired(&mut table, "/ab", EventKind::Created).is_empty(), "not beneath /a");
    }

    #[test]
    fn a_session_is_told_once_per_change() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Data, "/a", 10);
        table.add(S1, WatchKind::Persistent, "/a", 10);
        table.add(S1, WatchKind::Recursive, "/", 10);
        assert_eq!(fired(&mut table, "/a", EventKind::DataChanged), BTreeSet::from([S1]));
    }

    #[test]
    fn limit_counts_distinct_watches() {
        let mut table = WatchTable::default();
        assert!(table.add(S1, WatchKind::Data, "/a", 1));
        assert!(table.add(S1, WatchKind::Data, "/a", 1), "re-adding the same watch is free");
        assert!(!table.add(S1, WatchKind::Data, "/b", 1));
    }

    #[test]
    fn removal_by_session_and_by_path() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Data, "/a", 10);
        table.add(S1, WatchKind::Persistent, "/a", 10);
        table.add(S1, WatchKind::Data, "/b", 10);
        assert_eq!(table.remove_path(S1, "/a"), 2);
        assert!(fired(&mut table, "/a", EventKind::DataChanged).is_empty());
        table.remove_session(S1);
        assert!(fired(&mut table, "/b", EventKind::DataChanged).is_empty());
        assert_eq!(table.total(), 0);
    }

    #[test]
    fn turn_watches_are_counted_per_directory_until_fired_or_dropped() {
        let mut table = WatchTable::default();
        table.add(S1, WatchKind::Turn, "/lock/a", 10);
        table.add(S2, WatchKind::Turn, "/lock/b", 10);
        assert!(table.turn_watched_in("/lock") && !table.turn_watched_in("/"));
        assert!(fired(&mut table, "/lock/a", EventKind::DataChanged).is_empty(), "only turns and deletes");
        assert_eq!(fired(&mut table, "/lock/a", EventKind::Turn), BTreeSet::from([S1]));
        assert!(table.turn_watched_in("/lock"), "b still waits");
        table.remove_session(S2);
        assert!(!table.turn_watched_in("/lock"));
        table.add(S1, WatchKind::Persistent, "/lock/c", 10);
        assert!(fired(&mut table, "/lock/c", EventKind::Turn).is_empty(), "a turn is for turn watches only");
    }

    #[test]
    fn session_watches_replay_with_the_same_rules() {
        let set = WatchSet { data: vec!["/a".into()], recursive: vec!["/r".into()], ..WatchSet::default() };
        let mut watches = SessionWatches::from_set(&set);
        assert_eq!(watches.fire("/a", EventKind::ChildrenChanged), None);
        assert_eq!(watches.fire("/a", EventKind::DataChanged), Some(true));
        assert_eq!(watches.fire("/a", EventKind::DataChanged), None, "one-shot consumed");
        assert_eq!(watches.fire("/r/x", EventKind::Deleted), Some(true));
        assert_eq!(watches.fire("/r/x", EventKind::Deleted), Some(true), "recursive stays");
    }
}
