//! [`Cache`]: a local mirror of a subtree, kept current by one persistent recursive watch,
//! consistent at a zxid, with a stream of changes.
//!
//! **Start.** The watch on the root is set *first*, then the subtree is loaded iteratively
//! (an explicit stack, no recursion): for each node its data and stat, and its children,
//! which are pushed on the stack. Every change made after the watch was set is then in the
//! watch's queue, so the load may be fuzzy — nodes read at different moments — but nothing is
//! missed: applying the queued events repairs it.
//!
//! **Events.** Each cached node keeps its data and stat. `Created` and `DataChanged` carry no
//! data, so the cache reads the node — unless its copy already has `mzxid >= event.zxid` (it
//! was read after that change; reading again could only repeat it). The read's answer
//! replaces the copy only if it is newer, so an old event never regresses a node. `Deleted`
//! removes the node and any descendant created before the deletion (`czxid < zxid`: a node
//! made again later is kept). A recursive watch reports no child-list changes, so the parent's
//! `cversion`, `num_children` and `pzxid` are advanced from each child `Created`/`Deleted`
//! exactly as the server does it, but only for events newer than the `pzxid` the parent's
//! stat was last read with (older ones are already counted in it). A `WatchReset` (changes
//! were missed across a reconnect) or an overflowing watch queue makes the cache load the
//! whole subtree again and report the difference.
//!
//! **The zxid.** After each burst of events the cache calls `sync` on the server: its reply
//! comes after every event up to the zxid it returns, so once the events queued by then are
//! applied, every change up to that zxid is in the cache. That zxid is published as the one
//! the cache is consistent at ([`Cache::zxid`]); [`Cache::sync`] asks for such a round now.
//! (Some nodes may already show changes made after it: those were read when an event asked.)
//!
//! **Changes** are published on a bounded broadcast channel ([`Cache::subscribe`]) as
//! [`CacheEvent`]s, sent while the cache is locked so that [`Cache::snapshot_and_subscribe`]
//! hands out a snapshot and exactly the changes after it. A subscriber that falls more than
//! [`CACHE_EVENTS_LEN`] events behind is told so by the channel (`Lagged`), never silently.
//!
//! The cache owns its background task: dropping the [`Cache`] stops it and removes the watch.

use crate::{Client, Error, EventKind, PersistentWatcher, Result, Stat, WatchEvent, Zxid};
use baton_proto::path;
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// How many changes the broadcast channel holds for a slow subscriber.
pub const CACHE_EVENTS_LEN: usize = 1024;

/// How long the cache pauses before retrying a request that failed with a retryable error
/// (a lost connection: the client is reconnecting meanwhile).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A change to the cache's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node appeared; `zxid` is its `mzxid`.
    Added { path: String, zxid: Zxid },
    /// A node's data changed; `zxid` is its new `mzxid`.
    Updated { path: String, zxid: Zxid },
    /// A node went away (with its descendants, each reported too).
    Removed { path: String, zxid: Zxid },
    /// The subtree was loaded again after changes were missed; the differences were reported
    /// just before this.
    Reloaded { zxid: Zxid },
}

impl CacheEvent {
    /// The node concerned, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            CacheEvent::Added { path, .. } | CacheEvent::Updated { path, .. } | CacheEvent::Removed { path, .. } => {
                Some(path)
            }
            CacheEvent::Reloaded { .. } => None,
        }
    }
}

/// The cache's whole contents, at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheSnapshot {
    /// Every change up to this zxid is reflected.
    pub zxid: Zxid,
    /// Every cached node's data and stat, by path.
    pub nodes: BTreeMap<String, (Vec<u8>, Stat)>,
}

/// A local mirror of the subtree under a root node.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::cache::Cache;
/// let cache = Cache::start(client, "/config").await?;
/// let mut changes = cache.subscribe();
/// if let Some((data, stat)) = cache.get("/config/feature") {
///     println!("feature = {data:?} (version {})", stat.version);
/// }
/// while let Ok(change) = changes.recv().await {
///     println!("{change:?}, consistent at {}", cache.zxid());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cache {
    root: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Cache {
    /// Watches `root` recursively, loads its subtree and starts following it. Returns once
    /// the cache is consistent at a zxid. The root need not exist (the cache is then empty
    /// until it is created).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid root; the errors of setting the watch and
    /// loading the subtree (`TooLarge` for a node with more children than the server lists,
    /// `LimitExceeded`, the session errors). Lost connections are retried.
    ///
    /// # Cancellation safety
    /// Cancel-safe: nothing is left behind.
    pub async fn start(client: Client, root: &str) -> Result<Cache> {
        path::validate(root).map_err(|e| Error::InvalidArgument(format!("cache root {root:?}: {e}")))?;
        let watcher = retrying(|| client.watch(root, true)).await?;
        let nodes = retrying(|| load(&client, root)).await?;
        let (events, _) = broadcast::channel(CACHE_EVENTS_LEN);
        let (progress, _) = watch::channel(Progress::default());
        let (requests_tx, requests) = watch::channel(0);
        let state = State { nodes, ..State::default() };
        let shared = Arc::new(Shared { state: Mutex::new(state), events, progress, requests: requests_tx });
        let mut follower = Follower { client, root: root.to_owned(), watcher, shared: shared.clone(), requests };
        follower.catch_up().await?;
        let task = tokio::spawn(follower.run());
        Ok(Cache { root: root.to_owned(), shared, task })
    }

    /// The root of the cached subtree.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// A node's data and stat, if the node is cached.
    pub fn get(&self, path: &str) -> Option<(Vec<u8>, Stat)> {
        self.shared.lock().nodes.get(path).map(|node| (node.data.clone(), node.stat))
    }

    /// The names of a node's children (sorted), if the node is cached.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let state = self.shared.lock();
        state.nodes.get(path)?;
        let names = state.nodes.range(subtree(path)).filter_map(|(p, _)| child_name(path, p)).map(str::to_owned);
        Some(names.collect())
    }

    /// The number of cached nodes.
    pub fn len(&self) -> usize {
        self.shared.lock().nodes.len()
    }

    /// Whether no node is cached (the root does not exist).
    pub fn is_empty(&self) -> bool {
        self.shared.lock().nodes.is_empty()
    }

    /// Every cached node, and the zxid the cache is consistent at, taken at one moment.
    pub fn snapshot(&self) -> CacheSnapshot {
        self.shared.lock().snapshot()
    }

    /// The zxid the cache is consistent at: every change up to it is reflected.
    pub fn zxid(&self) -> Zxid {
        self.shared.lock().zxid
    }

    /// How many times the subtree was loaded again because changes were missed.
    pub fn reloads(&self) -> u64 {
        self.shared.lock().reloads
    }

    /// Whether the cache is still following the server (it stops when the session ends or an
    /// unrecoverable error occurs; it then keeps its last contents).
    pub fn is_running(&self) -> bool {
        !self.shared.progress.borrow().ended
    }

    /// A receiver of the changes made from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.shared.events.subscribe()
    }

    /// A snapshot and a receiver of exactly the changes made after it.
    pub fn snapshot_and_subscribe(&self) -> (CacheSnapshot, broadcast::Receiver<CacheEvent>) {
        let state = self.shared.lock();
        (state.snapshot(), self.shared.events.subscribe())
    }

    /// Brings the cache up to date with every change committed before this call, and returns
    /// the zxid it is then consistent at.
    ///
    /// # Errors
    /// Why the cache stopped, if it has: [`Error::SessionExpired`], [`Error::Closed`], or the
    /// failure that stopped it.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn sync(&self) -> Result<Zxid> {
        let mut mine = 0;
        self.shared.requests.send_modify(|requested| {
            *requested += 1;
            mine = *requested;
        });
        let mut progress = self.shared.progress.subscribe();
        let reached = *progress.wait_for(|p| p.synced >= mine || p.ended).await.map_err(|_| Error::Closed)?;
        if reached.synced >= mine {
            return Ok(reached.zxid);
        }
        Err(self.shared.lock().end.as_ref().map_or(Error::Closed, copy_error))
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the background task has achieved, for [`Cache::sync`].
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    zxid: Zxid,
    /// The highest sync request number answered.
    synced: u64,
    ended: bool,
}

/// What the cache and its task share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<CacheEvent>,
    progress: watch::Sender<Progress>,
    /// The number of sync rounds asked for by [`Cache::sync`].
    requests: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it: a panic elsewhere
        // while it was locked leaves nothing half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `events` (with the state still locked by the caller).
    fn send(&self, events: Vec<CacheEvent>) {
        for event in events {
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }

    /// Records that every change up to `zxid` is reflected, answering sync requests up to
    /// `answered`.
    fn publish(&self, zxid: Zxid, answered: u64) {
        let zxid = {
            let mut state = self.lock();
            state.zxid = state.zxid.max(zxid);
            state.zxid
        };
        self.progress.send_modify(|p| {
            p.zxid = zxid;
            p.synced = p.synced.max(answered);
        });
    }
}

/// A cached node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    data: Vec<u8>,
    stat: Stat,
    /// The `pzxid` of the stat as last read from the server: child creates and deletes after
    /// it are not counted in the stat unless applied since.
    read_pzxid: Zxid,
}

impl Node {
    fn new(data: Vec<u8>, stat: Stat) -> Node {
        Node { data, stat, read_pzxid: stat.pzxid }
    }
}

/// The cache's contents and the rules that apply events to them. Synchronous: the task does
/// the I/O and holds the lock only while applying a result.
#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    zxid: Zxid,
    reloads: u64,
    /// Why the task stopped, once it has.
    end: Option<Error>,
}

impl State {
    fn snapshot(&self) -> CacheSnapshot {
        let nodes = self.nodes.iter().map(|(p, n)| (p.clone(), (n.data.clone(), n.stat))).collect();
        CacheSnapshot { zxid: self.zxid, nodes }
    }

    /// Whether the copy of `path` already reflects a change made at `zxid`.
    fn is_current(&self, path: &str, zxid: Zxid) -> bool {
        self.nodes.get(path).is_some_and(|node| node.stat.mzxid >= zxid)
    }

    /// Stores what a read of `path` returned, unless the copy is as new already.
    fn store(&mut self, path: &str, data: Vec<u8>, stat: Stat) -> Option<CacheEvent> {
        let zxid = stat.mzxid;
        match self.nodes.get_mut(path) {
            Some(node) if node.stat.mzxid >= zxid => None,
            Some(node) => {
                *node = Node::new(data, stat);
                Some(CacheEvent::Updated { path: path.to_owned(), zxid })
            }
            None => {
                self.nodes.insert(path.to_owned(), Node::new(data, stat));
                Some(CacheEvent::Added { path: path.to_owned(), zxid })
            }
        }
    }

    /// Applies the deletion of `path` at `zxid`: the node and its descendants go, unless they
    /// were created at or after it (a later incarnation already read).
    fn remove(&mut self, path: &str, zxid: Zxid) -> Vec<CacheEvent> {
        let mut doomed: Vec<String> =
            self.nodes.range(subtree(path)).filter(|(_, n)| n.stat.czxid < zxid).map(|(p, _)| p.clone()).collect();
        if self.nodes.get(path).is_some_and(|n| n.stat.czxid < zxid) {
            doomed.insert(0, path.to_owned());
        }
        let mut events = Vec::with_capacity(doomed.len());
        for path in doomed {
            self.nodes.remove(&path);
            events.push(CacheEvent::Removed { path, zxid });
        }
        events
    }

    /// Drops the copy of `path`, which a read found gone (its `Deleted` event is still to
    /// come, or was applied to an older incarnation).
    fn remove_stale(&mut self, path: &str, zxid: Zxid) -> Option<CacheEvent> {
        self.nodes.remove(path).map(|_| CacheEvent::Removed { path: path.to_owned(), zxid })
    }

    /// Counts the creation (`delta` 1) or deletion (-1) of `path` at `zxid` in its parent's
    /// stat, as the server does, unless the parent's stat was read after it.
    fn child_changed(&mut self, path: &str, zxid: Zxid, delta: i32) {
        let Some(parent) = path::parent(path).and_then(|p| self.nodes.get_mut(p)) else {
            return;
        };
        if zxid > parent.read_pzxid {
            let stat = &mut parent.stat;
            stat.cversion = stat.cversion.wrapping_add(1);
            stat.pzxid = zxid;
            stat.num_children = stat.num_children.saturating_add_signed(delta);
        }
    }

    /// Replaces the contents with a fresh load, returning the differences.
    fn replace(&mut self, fresh: BTreeMap<String, Node>, zxid: Zxid) -> Vec<CacheEvent> {
        let old = std::mem::replace(&mut self.nodes, fresh);
        let mut events = Vec::new();
        for (path, node) in &self.nodes {
            let zxid = node.stat.mzxid;
            match old.get(path) {
                None => events.push(CacheEvent::Added { path: path.clone(), zxid }),
                Some(before) if before.data != node.data || before.stat.mzxid != zxid => {
                    events.push(CacheEvent::Updated { path: path.clone(), zxid });
                }
                Some(_) => {}
            }
        }
        let removed = old.into_keys().filter(|path| !self.nodes.contains_key(path));
        events.extend(removed.map(|path| CacheEvent::Removed { path, zxid }));
        events.push(CacheEvent::Reloaded { zxid });
        self.reloads += 1;
        events
    }
}

/// The background task: applies the watch's events to the shared state.
struct Follower {
    client: Client,
    root: String,
    watcher: PersistentWatcher,
    shared: Arc<Shared>,
    requests: watch::Receiver<u64>,
}

impl Follower {
    async fn run(mut self) {
        let error = match self.follow().await {
            Err(e) => e,
            Ok(()) => Error::Closed,
        };
        match error {
            Error::Closed | Error::SessionExpired => tracing::debug!(root = %self.root, "cache stopped: {error}"),
            _ => tracing::warn!(root = %self.root, "cache stopped: {error}"),
        }
        self.shared.lock().end = Some(error);
        self.shared.progress.send_modify(|p| p.ended = true);
    }

    /// Applies events as they come, with a sync round after each burst, until an error.
    async fn follow(&mut self) -> Result<()> {
        loop {
            tokio::select! {
                event = self.watcher.next() => self.on_event(event).await?,
                asked = self.requests.changed() => asked.map_err(|_| Error::Closed)?,
            }
            self.catch_up().await?;
        }
    }

    /// Syncs with the server, then applies every event up to the zxid the sync returned
    /// (all queued by then) and publishes that zxid.
    async fn catch_up(&mut self) -> Result<()> {
        let asked = *self.requests.borrow_and_update();
        let zxid = retrying(|| self.client.sync(&self.root)).await?;
        while let Some(event) = try_next(&mut self.watcher) {
            let past = event.as_ref().is_ok_and(|e| e.zxid > zxid);
            self.on_event(event).await?;
            if past {
                break;
            }
        }
        self.shared.publish(zxid, asked);
        Ok(())
    }

    async fn on_event(&mut self, event: Result<WatchEvent>) -> Result<()> {
        let event = match event {
            Ok(event) => event,
            Err(Error::WatchOverflow) => {
                tracing::warn!(root = %self.root, "the cache fell behind its watch; loading it again");
                self.watcher = retrying(|| self.client.watch(&self.root, true)).await?;
                return self.reload(self.client.last_zxid()).await;
            }
            Err(e) => return Err(e),
        };
        match event.kind {
            EventKind::Created => {
                self.shared.lock().child_changed(&event.path, event.zxid, 1);
                self.refresh(&event.path, event.zxid).await
            }
            EventKind::DataChanged => self.refresh(&event.path, event.zxid).await,
            EventKind::Deleted => {
                let mut state = self.shared.lock();
                state.child_changed(&event.path, event.zxid, -1);
                let removed = state.remove(&event.path, event.zxid);
                self.shared.send(removed);
                Ok(())
            }
            EventKind::WatchReset => {
                tracing::info!(root = %self.root, "changes were missed across a reconnect; loading again");
                self.reload(event.zxid).await
            }
            // A recursive watch does not report these; the parents' stats are kept by the
            // Created and Deleted events. Turns are told only to turn watches.
            EventKind::ChildrenChanged | EventKind::Turn => Ok(()),
        }
    }

    /// Reads `path` after a change at `zxid`, unless the copy is already as new.
    async fn refresh(&mut self, path: &str, zxid: Zxid) -> Result<()> {
        if self.shared.lock().is_current(path, zxid) {
            return Ok(());
        }
        let read = retrying(|| self.client.get(path)).await;
        let mut state = self.shared.lock();
        let event = match read {
            Ok((data, stat)) => state.store(path, data, stat),
            Err(e) if e.is_no_node() => state.remove_stale(path, zxid),
            Err(e) => return Err(e),
        };
        self.shared.send(event.into_iter().collect());
        Ok(())
    }

    /// Loads the whole subtree again and reports the differences.
    async fn reload(&mut self, zxid: Zxid) -> Result<()> {
        let fresh = retrying(|| load(&self.client, &self.root)).await?;
        let mut state = self.shared.lock();
        let events = state.replace(fresh, zxid);
        self.shared.send(events);
        Ok(())
    }
}

/// Reads the subtree under `root`, iteratively: each node's data and stat, and its children.
/// Nodes deleted while it runs are skipped; nodes created meanwhile may or may not be read
/// (the watch set before reports them either way).
async fn load(client: &Client, root: &str) -> Result<BTreeMap<String, Node>> {
    let mut nodes = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        // Pipelined: both requests go out before either answer comes back.
        let (node, children) = tokio::join!(client.get(&path), client.children(&path));
        let (data, stat) = match node {
            Ok(found) => found,
            Err(e) if e.is_no_node() => continue,
            Err(e) => return Err(e),
        };
        match children {
            Ok(names) => pending.extend(names.iter().map(|name| path::join(&path, name))),
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(e),
        }
        nodes.insert(path, Node::new(data, stat));
    }
    Ok(nodes)
}

/// Runs `op` until it succeeds or fails with an error that is not retryable (a lost
/// connection is: the client reconnects meanwhile). Only for reads and idempotent requests.
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    loop {
        match op().await {
            Err(e) if e.is_retryable() => {
                tracing::debug!("retrying after {e}");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            done => return done,
        }
    }
}

/// The next event of `watcher` if one is queued already, without waiting.
pub(crate) fn try_next(watcher: &mut PersistentWatcher) -> Option<Result<WatchEvent>> {
    // Unconstrained: tokio's cooperative budget must not make a queued event look absent.
    let mut next = pin!(tokio::task::unconstrained(watcher.next()));
    match next.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(event) => Some(event),
        Poll::Pending => None,
    }
}

/// The range of keys strictly below `path` in a map of paths (`/` sorts just before `0`).
fn subtree(path: &str) -> (Bound<String>, Bound<String>) {
    if path == "/" {
        return (Bound::Excluded("/".to_owned()), Bound::Unbounded);
    }
    (Bound::Included(format!("{path}/")), Bound::Excluded(format!("{path}0")))
}

/// The name of `candidate` if it is a child of `parent`.
fn child_name<'a>(parent: &str, candidate: &'a str) -> Option<&'a str> {
    let name = path::name(candidate);
    (path::parent(candidate) == Some(parent)).then_some(name)
}

/// A copy of the error that stopped the task, for each caller of [`Cache::sync`].
fn copy_error(error: &Error) -> Error {
    match error {
        Error::SessionExpired => Error::SessionExpired,
        Error::Closed => Error::Closed,
        other => match other.code() {
            Some(code) => Error::Server { code, message: other.to_string() },
            None => Error::Protocol(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: u64, mzxid: u64, pzxid: u64) -> Stat {
        Stat { czxid: Zxid(czxid), mzxid: Zxid(mzxid), pzxid: Zxid(pzxid), ..Stat::default() }
    }

    fn state(nodes: &[(&str, &[u8], Stat)]) -> State {
        let nodes = nodes.iter().map(|(p, d, s)| ((*p).to_owned(), Node::new(d.to_vec(), *s))).collect();
        State { nodes, ..State::default() }
    }

    #[test]
    fn an_older_read_never_regresses_a_node() {
        let mut s = state(&[("/a", b"new", stat(1, 9, 1))]);
        assert!(s.is_current("/a", Zxid(5)));
        assert_eq!(s.store("/a", b"old".to_vec(), stat(1, 5, 1)), None);
        assert_eq!(s.nodes["/a"].data, b"new");
        let event = s.store("/a", b"newer".to_vec(), stat(1, 12, 1));
        assert_eq!(event, Some(CacheEvent::Updated { path: "/a".into(), zxid: Zxid(12) }));
        let event = s.store("/b", b"".to_vec(), stat(13, 13, 13));
        assert_eq!(event, Some(CacheEvent::Added { path: "/b".into(), zxid: Zxid(13) }));
    }

    #[test]
    fn a_deletion_removes_descendants_but_not_a_later_incarnation() {
        let mut s = state(&[
            ("/a", b"", stat(2, 2, 4)),
            ("/a/b", b"", stat(3, 3, 4)),
            ("/a/b/c", b"", stat(4, 4, 4)),
            ("/ab", b"", stat(5, 5, 5)),
            ("/x", b"", stat(20, 20, 20)),
        ]);
        let removed = s.remove("/a", Zxid(10));
        let paths: Vec<_> = removed.iter().filter_map(CacheEvent::path).collect();
        assert_eq!(paths, ["/a", "/a/b", "/a/b/c"]);
        assert!(s.nodes.contains_key("/ab"), "a sibling sharing the prefix stays");
        assert!(s.remove("/x", Zxid(15)).is_empty(), "made again after the deletion: kept");
        assert!(s.nodes.contains_key("/x"));
    }

    #[test]
    fn child_events_advance_the_parent_stat_once() {
        let mut s = state(&[("/p", b"", Stat { cversion: 3, num_children: 1, ..stat(1, 1, 7) })]);
        s.child_changed("/p/old", Zxid(7), 1); // already counted in the stat read
        s.child_changed("/p/a", Zxid(8), 1);
        s.child_changed("/p/b", Zxid(8), 1); // same multi
        s.child_changed("/p/a", Zxid(9), -1);
        let p = s.nodes["/p"].stat;
        assert_eq!((p.cversion, p.num_children, p.pzxid), (6, 2, Zxid(9)));
        s.child_changed("/q/a", Zxid(10), 1); // parent not cached: nothing to do
    }

    #[test]
    fn a_reload_reports_the_differences() {
        let mut s =
            state(&[("/r", b"", stat(1, 1, 3)), ("/r/gone", b"", stat(2, 2, 2)), ("/r/same", b"", stat(3, 3, 3))]);
        let fresh =
            state(&[("/r", b"", stat(1, 1, 9)), ("/r/same", b"", stat(3, 3, 3)), ("/r/new", b"x", stat(9, 9, 9))]);
        let events = s.replace(fresh.nodes, Zxid(10));
        assert_eq!(
            events,
            [
                CacheEvent::Added { path: "/r/new".into(), zxid: Zxid(9) },
                CacheEvent::Removed { path: "/r/gone".into(), zxid: Zxid(10) },
                CacheEvent::Reloaded { zxid: Zxid(10) },
            ]
        );
        assert_eq!(s.reloads, 1);
    }

    #[test]
    fn subtree_ranges_and_child_names() {
        let s = state(&[("/", b"", stat(0, 0, 0)), ("/a", b"", stat(1, 1, 1)), ("/a/b", b"", stat(2, 2, 2))]);
        let under_root: Vec<_> = s.nodes.range(subtree("/")).map(|(p, _)| p.as_str()).collect();
        assert_eq!(under_root, ["/a", "/a/b"]);
        let under_a: Vec<_> = s.nodes.range(subtree("/a")).map(|(p, _)| p.as_str()).collect();
        assert_eq!(under_a, ["/a/b"]);
        assert_eq!(child_name("/", "/a"), Some("a"));
        assert_eq!(child_name("/", "/a/b"), None);
        assert_eq!(child_name("/a", "/a/b"), Some("b"));
    }
}
