//! The local watch registry: which watchers this client holds on which paths, and the rules
//! that decide which of them an incoming [`WatchEvent`] reaches.
//!
//! The server sends one event per change per session when any of the session's watches
//! match; this registry fans it out to every matching local watcher:
//!
//! | watcher    | fires on (of its exact path, unless noted)                                  |
//! |------------|-----------------------------------------------------------------------------|
//! | data       | `DataChanged`, `Deleted` (one-shot)                                         |
//! | exists     | `Created`, `Deleted`, `DataChanged` (one-shot)                              |
//! | children   | `ChildrenChanged`, `Deleted` (one-shot)                                     |
//! | persistent | `Created`, `Deleted`, `DataChanged`, `ChildrenChanged` (stays)              |
//! | recursive  | `Created`, `Deleted`, `DataChanged` of the path and every descendant (stays)|
//! | turn       | `Turn`, `Deleted` (one-shot; after a reconnect, a `WatchReset` from here)    |
//!
//! `WatchReset` reaches every watcher of exactly its path (and consumes one-shot ones).
//!
//! The registry is owned by the session task alone; no locks. It does no I/O: it reports the
//! paths for which the server should be told to drop its watches.

use crate::error::Error;
use baton_proto::{ErrorCode, EventKind, PersistentWatchMode, Response, WatchEvent, WatchSet, path};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// The kinds of one-shot watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OneshotKind {
    Data,
    Exists,
    Children,
    /// First in line ([`baton_proto::Op::Turn`]).
    Turn,
}

impl OneshotKind {
    const ALL: [OneshotKind; 4] = [OneshotKind::Data, OneshotKind::Exists, OneshotKind::Children, OneshotKind::Turn];
}

/// Why a watcher ended without an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchEnd {
    Expired,
    Closed,
    Overflow,
    /// The server refused to restore the session's watches after a reconnect.
    NotRestored(ErrorCode),
}

impl From<WatchEnd> for Error {
    fn from(end: WatchEnd) -> Error {
        match end {
            WatchEnd::Expired => Error::SessionExpired,
            WatchEnd::Closed => Error::Closed,
            WatchEnd::Overflow => Error::WatchOverflow,
            WatchEnd::NotRestored(code) => {
                Error::Server { code, message: "the watch could not be restored after reconnecting".to_owned() }
            }
        }
    }
}

/// The sending half of a one-shot watcher.
pub(crate) type OneshotSender = oneshot::Sender<Result<WatchEvent, WatchEnd>>;

/// The sending half of a persistent watcher: events, and a slot saying why it ended.
#[derive(Debug)]
pub(crate) struct PersistentSender {
    pub events: mpsc::Sender<WatchEvent>,
    pub end: Arc<OnceLock<WatchEnd>>,
}

impl PersistentSender {
    fn finish(self, end: WatchEnd) {
        // The first reason wins; dropping `events` then wakes the receiver.
        let _ = self.end.set(end);
    }
}

/// A watcher to add once the server has accepted the request that set it.
#[derive(Debug)]
pub(crate) enum WatchRequest {
    Oneshot {
        kind: OneshotKind,
        path: String,
        sender: OneshotSender,
    },
    Persistent {
        mode: PersistentWatchMode,
        path: String,
        sender: PersistentSender,
    },
    /// The turn watch that [`baton_proto::Op::CreateInLine`] leaves on the node it makes,
    /// whose path only the reply tells ([`WatchRequest::resolve`]).
    TurnOfCreated {
        sender: OneshotSender,
    },
}

impl WatchRequest {
    /// The watched path; `None` while only the reply can tell it.
    pub fn path(&self) -> Option<&str> {
        match self {
            WatchRequest::Oneshot { path, .. } | WatchRequest::Persistent { path, .. } => Some(path),
            WatchRequest::TurnOfCreated { .. } => None,
        }
    }

    /// The watch that the successful reply `response` left: `None` if it left none (a turn
    /// that came at once, a node gone), with the path of a created node filled in.
    pub fn resolve(self, response: &Response) -> Option<WatchRequest> {
        match (self, response) {
            (WatchRequest::TurnOfCreated { sender }, Response::CreatedInLine { path, first: false, .. }) => {
                Some(WatchRequest::Oneshot { kind: OneshotKind::Turn, path: path.clone(), sender })
            }
            // A node created first, or any other reply to it; a turn already come, or a node gone.
            (WatchRequest::TurnOfCreated { .. }, _)
            | (_, Response::Turn { stat: None, .. } | Response::Turn { first: true, .. }) => None,
            (request, _) => Some(request),
        }
    }

    /// Whether the caller has already dropped the watcher.
    pub fn is_abandoned(&self) -> bool {
        match self {
            WatchRequest::Oneshot { sender, .. } | WatchRequest::TurnOfCreated { sender } => sender.is_closed(),
            WatchRequest::Persistent { sender, .. } => sender.events.is_closed(),
        }
    }
}

/// The watchers on one path.
#[derive(Debug, Default)]
struct PathWatchers {
    data: Vec<OneshotSender>,
    exists: Vec<OneshotSender>,
    children: Vec<OneshotSender>,
    turn: Vec<OneshotSender>,
    persistent: Vec<PersistentSender>,
    recursive: Vec<PersistentSender>,
}

impl PathWatchers {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exists.is_empty()
            && self.children.is_empty()
            && self.turn.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    fn len(&self) -> usize {
        self.data.len()
            + self.exists.len()
            + self.children.len()
            + self.turn.len()
            + self.persistent.len()
            + self.recursive.len()
    }

    fn oneshots(&mut self, kind: OneshotKind) -> &mut Vec<OneshotSender> {
        match kind {
            OneshotKind::Data => &mut self.data,
            OneshotKind::Exists => &mut self.exists,
            OneshotKind::Children => &mut self.children,
            OneshotKind::Turn => &mut self.turn,
        }
    }

    /// Drops watchers whose receiver is gone; returns whether any was dropped.
    fn prune(&mut self) -> bool {
        let before = self.len();
        for kind in OneshotKind::ALL {
            self.oneshots(kind).retain(|s| !s.is_closed());
        }
        self.persistent.retain(|s| !s.events.is_closed());
        self.recursive.retain(|s| !s.events.is_closed());
        self.len() != before
    }

    fn end(self, end: WatchEnd) {
        for sender in self.data.into_iter().chain(self.exists).chain(self.children).chain(self.turn) {
            let _ = sender.send(Err(end));
        }
        for sender in self.persistent.into_iter().chain(self.recursive) {
            sender.finish(end);
        }
    }
}

/// Whether a one-shot watch of `kind` on a path fires for an event of `event` on that path.
pub(crate) fn oneshot_fires(kind: OneshotKind, event: EventKind) -> bool {
    use EventKind as E;
    match kind {
        OneshotKind::Data => matches!(event, E::DataChanged | E::Deleted | E::WatchReset),
        OneshotKind::Exists => matches!(event, E::Created | E::Deleted | E::DataChanged | E::WatchReset),
        OneshotKind::Children => {
            matches!(event, E::ChildrenChanged | E::Deleted | E::WatchReset)
        }
        OneshotKind::Turn => matches!(event, E::Turn | E::Deleted | E::WatchReset),
    }
}

/// Whether a persistent watch of `mode` fires for an event of `event`; `exact` says whether
/// the event is on the watched path itself (else on a descendant).
pub(crate) fn persistent_fires(mode: PersistentWatchMode, exact: bool, event: EventKind) -> bool {
    use EventKind as E;
    match (mode, exact) {
        (_, true) if event == E::WatchReset => true,
        (PersistentWatchMode::Persistent, true) => {
            matches!(event, E::Created | E::Deleted | E::DataChanged | E::ChildrenChanged)
        }
        (PersistentWatchMode::Persistent, false) => false,
        (PersistentWatchMode::Recursive, _) => {
            matches!(event, E::Created | E::Deleted | E::DataChanged)
        }
    }
}

/// Every watcher this client holds, by path.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    paths: BTreeMap<String, PathWatchers>,
}

impl WatchRegistry {
    /// Adds a watcher the server has accepted.
    pub fn register(&mut self, request: WatchRequest) {
        match request {
            WatchRequest::Oneshot { kind, path, sender } => {
                self.paths.entry(path).or_default().oneshots(kind).push(sender);
            }
            WatchRequest::Persistent { mode, path, sender } => {
                let watchers = self.paths.entry(path).or_default();
                match mode {
                    PersistentWatchMode::Persistent => watchers.persistent.push(sender),
                    PersistentWatchMode::Recursive => watchers.recursive.push(sender),
                }
            }
            // Without a path it names no watch: `resolve` gives it one from the reply.
            WatchRequest::TurnOfCreated { .. } => {}
        }
    }

    /// Whether any watcher (live or not yet swept) is registered on `path`.
    pub fn has_watchers(&self, path: &str) -> bool {
        self.paths.contains_key(path)
    }

    /// The number of registered watchers.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.paths.values().map(PathWatchers::len).sum()
    }

    /// Delivers `event` to every matching watcher. Returns the paths left with no watcher
    /// because their last ones were gone or overflowing: the server still watches them for
    /// this session and should be told to stop.
    pub fn dispatch(&mut self, event: &WatchEvent, orphans: &mut Vec<String>) {
        let mut touched = Vec::new();
        for (depth, watched) in path::self_and_ancestors(&event.path).enumerate() {
            let exact = depth == 0;
            let Some(watchers) = self.paths.get_mut(watched) else {
                continue;
            };
            let mut pruned = false;
            if exact {
                for kind in OneshotKind::ALL {
                    if oneshot_fires(kind, event.kind) {
                        for sender in watchers.oneshots(kind).drain(..) {
                            let _ = sender.send(Ok(event.clone()));
                        }
                    }
                }
            }
            for mode in [PersistentWatchMode::Persistent, PersistentWatchMode::Recursive] {
                if persistent_fires(mode, exact, event.kind) {
                    let list = match mode {
                        PersistentWatchMode::Persistent => &mut watchers.persistent,
                        PersistentWatchMode::Recursive => &mut watchers.recursive,
                    };
                    pruned |= deliver(list, event);
                }
            }
            touched.push((watched.to_owned(), pruned));
        }
        for (watched, pruned) in touched {
            if self.paths.get(&watched).is_some_and(PathWatchers::is_empty) {
                self.paths.remove(&watched);
                if pruned {
                    orphans.push(watched);
                }
            }
        }
    }

    /// Drops every watcher whose receiver is gone. Returns the paths left with no watcher,
    /// which the server should be told to stop watching.
    pub fn sweep(&mut self) -> Vec<String> {
        let mut orphans = Vec::new();
        self.paths.retain(|path, watchers| {
            let pruned = watchers.prune();
            if watchers.is_empty() {
                if pruned {
                    orphans.push(path.clone());
                }
                return false;
            }
            true
        });
        orphans
    }

    /// The live watches by kind, for restoring them after a reconnect.
    pub fn watch_set(&mut self) -> WatchSet {
        self.sweep();
        let mut set = WatchSet::default();
        for (path, w) in &self.paths {
            let lists: [(&Vec<_>, &mut Vec<String>); 3] =
                [(&w.data, &mut set.data), (&w.exists, &mut set.exists), (&w.children, &mut set.children)];
            for (senders, out) in lists {
                if !senders.is_empty() {
                    out.push(path.clone());
                }
            }
            if !w.persistent.is_empty() {
                set.persistent.push(path.clone());
            }
            if !w.recursive.is_empty() {
                set.recursive.push(path.clone());
            }
        }
        set
    }

    /// Fires `WatchReset` (at `zxid`) to every turn watcher and forgets them: after a
    /// reconnect, where the server keeps no turn watch and cannot replay turns.
    pub fn reset_turns(&mut self, zxid: baton_proto::Zxid) {
        self.paths.retain(|path, watchers| {
            for sender in watchers.turn.drain(..) {
                let event = WatchEvent { zxid, path: path.clone(), kind: EventKind::WatchReset };
                let _ = sender.send(Ok(event));
            }
            !watchers.is_empty()
        });
    }

    /// Ends every watcher with `end` and forgets them all.
    pub fn end_all(&mut self, end: WatchEnd) {
        for (_, watchers) in std::mem::take(&mut self.paths) {
            watchers.end(end);
        }
    }
}

/// Sends `event` to each persistent watcher in `list`, removing those that are gone or full
/// (a full one is ended with [`WatchEnd::Overflow`]). Returns whether any was removed.
fn deliver(list: &mut Vec<PersistentSender>, event: &WatchEvent) -> bool {
    let before = list.len();
    let mut kept = Vec::with_capacity(list.len());
    for sender in list.drain(..) {
        match sender.events.try_send(event.clone()) {
            Ok(()) => kept.push(sender),
            Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(path = %event.path, "a watcher fell behind; ending it");
                sender.finish(WatchEnd::Overflow);
            }
        }
    }
    *list = kept;
    list.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{Stat, Zxid};

    fn event(path: &str, kind: EventKind) -> WatchEvent {
        WatchEvent { zxid: Zxid(1), path: path.into(), kind }
    }

    fn oneshot(
        reg: &mut WatchRegistry,
        kind: OneshotKind,
        path: &str,
    ) -> oneshot::Receiver<Result<WatchEvent, WatchEnd>> {
        let (sender, rx) = oneshot::channel();
        reg.register(WatchRequest::Oneshot { kind, path: path.into(), sender });
        rx
    }

    fn oneshot_request(kind: OneshotKind, path: &str) -> WatchRequest {
        WatchRequest::Oneshot { kind, path: path.into(), sender: oneshot::channel().0 }
    }

    fn turn_of_created() -> WatchRequest {
        WatchRequest::TurnOfCreated { sender: oneshot::channel().0 }
    }

    #[test]
    fn only_a_turn_that_came_at_once_or_a_gone_node_leaves_no_watch() {
        let turn = |stat: Option<Stat>, first| Response::Turn { stat, first };
        let resolved = |response: &Response| oneshot_request(OneshotKind::Turn, "/q/w").resolve(response).is_some();
        assert!(resolved(&turn(Some(Stat::default()), false)), "a waiter is watched");
        assert!(!resolved(&turn(Some(Stat::default()), true)), "a node already first");
        assert!(!resolved(&turn(None, false)), "a gone node");
        let exists = oneshot_request(OneshotKind::Exists, "/a").resolve(&Response::Exists(None));
        assert!(exists.is_some(), "an exists watch on a missing node stays");
    }

    #[test]
    fn a_node_created_in_line_is_watched_by_the_path_its_reply_names() {
        let created = |first| Response::CreatedInLine { path: "/q/w-0000000003".into(), stat: Stat::default(), first };
        assert_eq!(turn_of_created().path(), None, "unknown until the reply");
        match turn_of_created().resolve(&created(false)) {
            Some(WatchRequest::Oneshot { kind: OneshotKind::Turn, path, .. }) => assert_eq!(path, "/q/w-0000000003"),
            other => panic!("a waiting node keeps a turn watch, not {other:?}"),
        }
        assert!(turn_of_created().resolve(&created(true)).is_none(), "a node first at once is not watched");
    }

    fn persistent(
        reg: &mut WatchRegistry,
        mode: PersistentWatchMode,
        path: &str,
        capacity: usize,
    ) -> (mpsc::Receiver<WatchEvent>, Arc<OnceLock<WatchEnd>>) {
        let (events, rx) = mpsc::channel(capacity);
        let end = Arc::new(OnceLock::new());
        reg.register(WatchRequest::Persistent {
            mode,
            path: path.into(),
            sender: PersistentSender { events, end: end.clone() },
        });
        (rx, end)
    }

    fn drain(rx: &mut mpsc::Receiver<WatchEvent>) -> Vec<(String, EventKind)> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|e| (e.path, e.kind)).collect()
    }

    #[test]
    fn oneshot_rules_match_zookeeper() {
        use EventKind as E;
        use OneshotKind as K;
        assert!(oneshot_fires(K::Data, E::DataChanged));
        assert!(oneshot_fires(K::Data, E::Deleted));
        assert!(!oneshot_fires(K::Data, E::ChildrenChanged));
        assert!(oneshot_fires(K::Exists, E::Created));
        assert!(!oneshot_fires(K::Exists, E::ChildrenChanged));
        assert!(oneshot_fires(K::Children, E::ChildrenChanged));
        assert!(oneshot_fires(K::Children, E::Deleted));
        assert!(!oneshot_fires(K::Children, E::DataChanged));
        for kind in [K::Data, K::Exists, K::Children] {
            assert!(oneshot_fires(kind, E::WatchReset));
        }
    }

    #[test]
    fn recursive_watch_ignores_children_changed() {
        use EventKind as E;
        use PersistentWatchMode as M;
        assert!(persistent_fires(M::Persistent, true, E::ChildrenChanged));
        assert!(!persistent_fires(M::Persistent, false, E::Created));
        assert!(persistent_fires(M::Recursive, false, E::Created));
        assert!(!persistent_fires(M::Recursive, false, E::ChildrenChanged));
        assert!(!persistent_fires(M::Recursive, true, E::ChildrenChanged));
        assert!(persistent_fires(M::Recursive, true, E::WatchReset));
        assert!(!persistent_fires(M::Recursive, false, E::WatchReset));
    }

    #[test]
    fn one_event_reaches_every_matching_watcher_once() {
        let mut reg = WatchRegistry::default();
        let mut data = oneshot(&mut reg, OneshotKind::Data, "/a");
        let mut exists = oneshot(&mut reg, OneshotKind::Exists, "/a");
        let mut children = oneshot(&mut reg, OneshotKind::Children, "/a");
        let (mut p, _) = persistent(&mut reg, PersistentWatchMode::Persistent, "/a", 8);
        let (mut r, _) = persistent(&mut reg, PersistentWatchMode::Recursive, "/", 8);
        let mut orphans = Vec::new();
        reg.dispatch(&event("/a", EventKind::DataChanged), &mut orphans);
        assert!(data.try_recv().unwrap().is_ok());
        assert!(exists.try_recv().unwrap().is_ok());
        assert!(children.try_recv().is_err(), "children watch must not fire");
        assert_eq!(drain(&mut p), [("/a".into(), EventKind::DataChanged)]);
        assert_eq!(drain(&mut r), [("/a".into(), EventKind::DataChanged)]);
        // One-shots are gone, the children watch and persistent ones remain.
        assert_eq!(reg.len(), 3);
        assert!(orphans.is_empty());
    }

    #[test]
    fn recursive_watch_sees_descendants_but_not_their_children_changes() {
        let mut reg = WatchRegistry::default();
        let (mut r, _) = persistent(&mut reg, PersistentWatchMode::Recursive, "/a", 8);
        let (mut p, _) = persistent(&mut reg, PersistentWatchMode::Persistent, "/a", 8);
        let mut orphans = Vec::new();
        for e in [
            event("/a/b/c", EventKind::Created),
            event("/a/b", EventKind::ChildrenChanged),
            event("/ab", EventKind::Created),
            event("/a", EventKind::ChildrenChanged),
        ] {
            reg.dispatch(&e, &mut orphans);
        }
        assert_eq!(drain(&mut r), [("/a/b/c".into(), EventKind::Created)]);
        assert_eq!(drain(&mut p), [("/a".into(), EventKind::ChildrenChanged)]);
    }

    #[test]
    fn watch_reset_reaches_only_its_exact_path_and_consumes_oneshots() {
        let mut reg = WatchRegistry::default();
        let mut data = oneshot(&mut reg, OneshotKind::Data, "/a/b");
        let (mut r, _) = persistent(&mut reg, PersistentWatchMode::Recursive, "/a", 8);
        let mut orphans = Vec::new();
        reg.dispatch(&event("/a/b", EventKind::WatchReset), &mut orphans);
        assert_eq!(data.try_recv().unwrap().unwrap().kind, EventKind::WatchReset);
        assert!(drain(&mut r).is_empty());
        reg.dispatch(&event("/a", EventKind::WatchReset), &mut orphans);
        assert_eq!(drain(&mut r), [("/a".into(), EventKind::WatchReset)]);
        assert!(!reg.has_watchers("/a/b"));
        assert!(reg.has_watchers("/a"));
    }

    #[test]
    fn a_full_watcher_is_ended_with_overflow_and_reported_as_orphan() {
        let mut reg = WatchRegistry::default();
        let (mut r, end) = persistent(&mut reg, PersistentWatchMode::Persistent, "/a", 1);
        let mut orphans = Vec::new();
        reg.dispatch(&event("/a", EventKind::DataChanged), &mut orphans);
        assert!(orphans.is_empty());
        reg.dispatch(&event("/a", EventKind::Deleted), &mut orphans);
        assert_eq!(orphans, ["/a"]);
        assert_eq!(end.get(), Some(&WatchEnd::Overflow));
        assert_eq!(drain(&mut r).len(), 1, "queued events are still delivered");
        assert!(r.try_recv().is_err());
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn sweep_drops_abandoned_watchers_and_reports_empty_paths() {
        let mut reg = WatchRegistry::default();
        let gone = oneshot(&mut reg, OneshotKind::Data, "/a");
        let (p, _) = persistent(&mut reg, PersistentWatchMode::Persistent, "/b", 1);
        let _kept = oneshot(&mut reg, OneshotKind::Children, "/b");
        drop(gone);
        drop(p);
        assert_eq!(reg.sweep(), ["/a"]);
        assert_eq!(reg.len(), 1);
        assert!(reg.sweep().is_empty());
    }

    #[test]
    fn watch_set_lists_live_watches_by_kind() {
        let mut reg = WatchRegistry::default();
        let _d = oneshot(&mut reg, OneshotKind::Data, "/d");
        let _e = oneshot(&mut reg, OneshotKind::Exists, "/e");
        let _c = oneshot(&mut reg, OneshotKind::Children, "/c");
        let _p = persistent(&mut reg, PersistentWatchMode::Persistent, "/p", 1);
        let _r = persistent(&mut reg, PersistentWatchMode::Recursive, "/r", 1);
        drop(oneshot(&mut reg, OneshotKind::Data, "/gone"));
        let set = reg.watch_set();
        assert_eq!(set.data, ["/d"]);
        assert_eq!(set.exists, ["/e"]);
        assert_eq!(set.children, ["/c"]);
        assert_eq!(set.persistent, ["/p"]);
        assert_eq!(set.recursive, ["/r"]);
    }

    #[test]
    fn end_all_tells_every_watcher_why() {
        let mut reg = WatchRegistry::default();
        let mut d = oneshot(&mut reg, OneshotKind::Data, "/d");
        let (mut p, end) = persistent(&mut reg, PersistentWatchMode::Persistent, "/p", 1);
        reg.end_all(WatchEnd::Expired);
        assert_eq!(d.try_recv().unwrap(), Err(WatchEnd::Expired));
        assert!(p.try_recv().is_err());
        assert_eq!(end.get(), Some(&WatchEnd::Expired));
        assert_eq!(reg.len(), 0);
    }
}
