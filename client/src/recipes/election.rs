//! [`LeaderElection`]: campaign to lead, resign, and observe who leads.
//!
//! # Algorithm
//!
//! Candidates are ephemeral sequential children of the election's directory (named like the
//! [`super::lock`] waiters, kind `candidate`), each holding the candidate's id as its data. The
//! candidate with the lowest 10-digit suffix leads. This is exactly the [`super::lock::Lock`]:
//! a candidate that does not lead watches its **immediate predecessor only** and looks again
//! when it changes, so a resignation (or a dead leader's session expiring) wakes exactly one
//! candidate — the next in line — and never all of them: no herd. The leader gets the same
//! loss signal as a lock holder ([`HoldState`](super::lock::HoldState): `Held`, `Jeopardy`, `Lost`) and a fencing
//! token; since the leader is the directory's first waiter, [`Leadership::guard_op`] lets the
//! server refuse a deposed leader's writes.
//!
//! Observers ([`LeaderElection::observe`]) keep a persistent recursive watch on the directory
//! and a local copy of the candidate set: they read the children once (after setting the
//! watch, at the directory's `pzxid`) and then apply each child's `Created` and `Deleted`
//! event in zxid order, so they see every change of leader in order, not just the latest
//! state, without re-reading the directory on each change. Only a new leader's id is read (one
//! `get`). A leader that resigned before an observer could read its id is skipped; a
//! `WatchReset` or an overflowing watch makes the observer read the directory afresh.

use super::waiting::hold_accessors;
use super::waiting::{Holding, Rule, Ticket, acquire_within, queue_and_wait, sorted_waiters};
use crate::proto::path;
use crate::{Client, Error, ErrorCode, EventKind, MultiOp, PersistentWatcher, Result, WatchEvent, Zxid};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The kind of a candidate's node.
const CANDIDATE: &str = "candidate";
/// How many times [`LeaderElection::leader`] looks again when the leader it found resigned
/// before its id could be read.
const LEADER_READS_MAX: usize = 64;

/// A leader election on a directory node; see the [module docs](self).
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::election::LeaderElection;
/// let election = LeaderElection::new(client, "/services/scheduler/leader");
/// let leadership = election.campaign(b"host-a").await?;
/// let work = tokio::time::sleep(std::time::Duration::from_secs(60)); // the leader's work
/// tokio::select! {
///     () = leadership.lost() => eprintln!("deposed: stop acting as the leader at once"),
///     () = work => leadership.resign().await?,
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LeaderElection {
    client: Client,
    path: String,
    wakeups: Arc<AtomicU64>,
}

impl LeaderElection {
    /// An election whose candidates are children of `path` (created, with its ancestors, if
    /// missing).
    pub fn new(client: Client, path: impl Into<String>) -> LeaderElection {
        LeaderElection { client, path: path.into(), wakeups: Arc::default() }
    }

    /// The election's directory node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many times a candidate of this handle (and its clones) was woken by its
    /// predecessor's watch.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Stands as a candidate with `id` (what [`LeaderElection::leader`] and observers report)
    /// and returns once this candidate leads.
    ///
    /// # Errors
    /// As [`super::lock::Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: dropping the future withdraws the candidacy.
    pub async fn campaign(&self, id: &[u8]) -> Result<Leadership> {
        let mut ticket = Ticket::new(&self.client, &self.path, CANDIDATE, id, &[]);
        let entered = queue_and_wait(&mut ticket, Rule::FirstHolds, &self.wakeups).await?;
        Ok(Leadership { hold: ticket.into_holding(entered), id: id.to_vec() })
    }

    /// Like [`LeaderElection::campaign`], giving up after `timeout`: `None` (and the
    /// candidacy withdrawn) if this candidate did not come to lead in time.
    ///
    /// # Errors
    /// As [`LeaderElection::campaign`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn campaign_timeout(&self, id: &[u8], timeout: Duration) -> Result<Option<Leadership>> {
        let mut ticket = Ticket::new(&self.client, &self.path, CANDIDATE, id, &[]);
        let entered = acquire_within(&mut ticket, Rule::FirstHolds, &self.wakeups, timeout).await?;
        Ok(entered.map(|entered| Leadership { hold: ticket.into_holding(entered), id: id.to_vec() }))
    }

    /// The current leader's id, or `None` if there is no candidate.
    ///
    /// # Errors
    /// The connection and session errors; `NoNode` if leaders kept resigning faster than
    /// their ids could be read.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn leader(&self) -> Result<Option<Vec<u8>>> {
        for _ in 0..LEADER_READS_MAX {
            let children = match self.client.children(&self.path).await {
                Ok(children) => children,
                Err(e) if e.is_no_node() => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(first) = sorted_waiters(children).into_iter().next() else { return Ok(None) };
            match self.client.get(&path::join(&self.path, &first.name)).await {
                Ok((id, _)) => return Ok(Some(id)),
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
        let message = format!("{}: the leader changed {LEADER_READS_MAX} times while being read", self.path);
        Err(Error::Server { code: ErrorCode::NoNode, message })
    }

    /// A stream of the leader: first the current one (`None` if there is no candidate), then
    /// every change, in order.
    ///
    /// # Errors
    /// The connection and session errors (the directory is created if missing).
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn observe(&self) -> Result<LeaderObserver> {
        let mut observer = LeaderObserver {
            client: self.client.clone(),
            path: self.path.clone(),
            watcher: None,
            candidates: Candidates::default(),
            ids: HashMap::new(),
            reported: None,
            started: false,
        };
        observer.sync().await?;
        Ok(observer)
    }
}

/// Leading an election. Resign with [`Leadership::resign`]; dropping it resigns too (in a
/// spawned task).
#[derive(Debug)]
#[must_use = "dropping the leadership resigns it"]
pub struct Leadership {
    hold: Holding,
    id: Vec<u8>,
}

impl Leadership {
    hold_accessors!("leadership");

    /// The id this candidate campaigned with.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The op to put first in a [`Client::multi`] so that the server applies it only while
    /// this candidate still leads (and fails it with `LockLost` otherwise).
    pub fn guard_op(&self) -> MultiOp {
        self.hold.guard_op()
    }

    /// Steps down: deletes the candidate's node, which wakes the next candidate.
    ///
    /// # Errors
    /// As [`super::lock::LockGuard::release`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: if dropped, a spawned task finishes the resignation.
    pub async fn resign(self) -> Result<()> {
        self.hold.release().await
    }
}

/// The candidate set as an observer knows it: names by suffix, as of zxid `synced_at`.
#[derive(Debug, Default)]
struct Candidates {
    dir: String,
    names: BTreeSet<(i32, String)>,
    synced_at: Zxid,
}

impl Candidates {
    fn new(dir: &str, children: Vec<String>, synced_at: Zxid) -> Candidates {
        let names = sorted_waiters(children).into_iter().map(|w| (w.sequence, w.name)).collect();
        Candidates { dir: dir.to_owned(), names, synced_at }
    }

    /// The leader's node name.
    fn leader(&self) -> Option<&str> {
        self.names.first().map(|(_, name)| name.as_str())
    }

    /// Applies one event of the recursive watch; events the snapshot already reflects are
    /// skipped. Returns the name of a candidate that left, if one did.
    fn apply(&mut self, event: &WatchEvent) -> Option<String> {
        if event.zxid <= self.synced_at {
            return None;
        }
        if event.path == self.dir && event.kind == EventKind::Deleted {
            self.names.clear();
            return None;
        }
        if path::parent(&event.path) != Some(self.dir.as_str()) {
            return None;
        }
        let name = path::name(&event.path);
        let sequence = path::sequence_of(name)?;
        match event.kind {
            EventKind::Created => {
                self.names.insert((sequence, name.to_owned()));
                None
            }
            EventKind::Deleted => self.names.remove(&(sequence, name.to_owned())).then(|| name.to_owned()),
            _ => None,
        }
    }
}

/// The stream of an election's leaders made by [`LeaderElection::observe`].
#[derive(Debug)]
pub struct LeaderObserver {
    client: Client,
    path: String,
    /// `None` when the candidate set must be read afresh.
    watcher: Option<PersistentWatcher>,
    candidates: Candidates,
    /// Candidates' ids, read when they came to lead; `None`: gone before it could be read.
    ids: HashMap<String, Option<Vec<u8>>>,
    /// The leader last yielded (`None`: no leader).
    reported: Option<String>,
    /// Whether anything was yielded yet.
    started: bool,
}

impl LeaderObserver {
    /// The next leader: at first the current one, then each new one (`None` when the last
    /// candidate leaves). A new term of the same id counts as a change.
    ///
    /// # Errors
    /// [`Error::SessionExpired`] or [`Error::Closed`] when the session ends, and the
    /// connection errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: events are applied as they are taken from the watch, so none is lost.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if self.watcher.is_none() {
                self.sync().await?;
            }
            let leader = self.candidates.leader().map(str::to_owned);
            if !self.started || self.reported != leader {
                let Some(name) = leader else {
                    (self.started, self.reported) = (true, None);
                    return Ok(None);
                };
                if let Some(id) = self.id_of(&name).await? {
                    (self.started, self.reported) = (true, Some(name));
                    return Ok(Some(id));
                }
                // Gone before its id could be read: its Deleted event follows.
            }
            self.apply_next_event().await?;
        }
    }

    /// Sets the recursive watch, then reads the candidate set it starts from.
    async fn sync(&mut self) -> Result<()> {
        self.watcher = None;
        self.client.create_path(&self.path, b"").await?;
        let watcher = self.client.watch(&self.path, true).await?;
        let (children, stat) = self.client.children_and_stat(&self.path).await?;
        self.candidates = Candidates::new(&self.path, children, stat.pzxid);
        self.ids.retain(|name, _| self.candidates.names.iter().any(|(_, n)| n == name));
        self.watcher = Some(watcher);
        Ok(())
    }

    /// The id of candidate `name`, read once.
    async fn id_of(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        if let Some(id) = self.ids.get(name) {
            return Ok(id.clone());
        }
        let id = match self.client.get(&path::join(&self.path, name)).await {
            Ok((id, _)) => Some(id),
            Err(e) if e.is_no_node() => None,
            Err(e) => return Err(e),
        };
        self.ids.insert(name.to_owned(), id.clone());
        Ok(id)
    }

    /// Takes one event from the watch and applies it (or drops the watch for a fresh read).
    async fn apply_next_event(&mut self) -> Result<()> {
        let Some(watcher) = self.watcher.as_mut() else { return Ok(()) };
        match watcher.next().await {
            Ok(event) if event.kind == EventKind::WatchReset => self.watcher = None,
            Ok(event) => {
                if let Some(gone) = self.candidates.apply(&event) {
                    self.ids.remove(&gone);
                }
            }
            Err(Error::WatchOverflow) => self.watcher = None,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(zxid: u64, path: &str, kind: EventKind) -> WatchEvent {
        WatchEvent { zxid: Zxid(zxid), path: path.to_owned(), kind }
    }

    #[test]
    fn the_lowest_suffix_leads_and_events_move_the_lead_in_order() {
        let mut c =
            Candidates::new("/e", vec!["b-0-candidate-0000000002".into(), "a-0-candidate-0000000005".into()], Zxid(10));
        assert_eq!(c.leader(), Some("b-0-candidate-0000000002"));
        assert_eq!(c.apply(&event(11, "/e/c-0-candidate-0000000007", EventKind::Created)), None);
        let gone = c.apply(&event(12, "/e/b-0-candidate-0000000002", EventKind::Deleted));
        assert_eq!(gone.as_deref(), Some("b-0-candidate-0000000002"));
        assert_eq!(c.leader(), Some("a-0-candidate-0000000005"));
        c.apply(&event(13, "/e/a-0-candidate-0000000005", EventKind::Deleted));
        assert_eq!(c.leader(), Some("c-0-candidate-0000000007"));
    }

    #[test]
    fn events_the_snapshot_reflects_are_skipped() {
        let mut c = Candidates::new("/e", vec!["a-0-candidate-0000000001".into()], Zxid(10));
        c.apply(&event(9, "/e/a-0-candidate-0000000001", EventKind::Deleted));
        c.apply(&event(10, "/e/z-0-candidate-0000000000", EventKind::Created));
        assert_eq!(c.leader(), Some("a-0-candidate-0000000001"));
    }

    #[test]
    fn other_paths_and_the_directory_itself_are_handled() {
        let mut c = Candidates::new("/e", vec!["a-0-candidate-0000000001".into()], Zxid(1));
        c.apply(&event(2, "/elsewhere/x-0000000000", EventKind::Created));
        c.apply(&event(3, "/e/a-0-candidate-0000000001", EventKind::DataChanged));
        c.apply(&event(4, "/e/no-suffix", EventKind::Created));
        assert_eq!(c.names.len(), 1);
        c.apply(&event(5, "/e", EventKind::Deleted));
        assert_eq!(c.leader(), None);
    }
}
