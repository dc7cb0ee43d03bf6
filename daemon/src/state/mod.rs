//! The pure, deterministic state machine: the tree, the sessions, the watch table and the
//! retained change history.
//!
//! Every write goes through two steps, as in ZooKeeper's request/txn split:
//! - **prepare** (primary only, `&self`): validate the request against the current state and
//!   fix every non-deterministic choice (zxid, time, sequential suffix, session id and secret)
//!   into a [`Txn`]; or reject it with a reply.
//! - **apply** (primary, standby and recovery alike, `&mut self`): cannot fail for a prepared
//!   txn, and returns its effects: the per-op results, the watch events to deliver and the
//!   records to store.
//!
//! No clock, no I/O, no tokio, no redb; ordered collections only. Time arrives as arguments:
//! `time_ms` (wall clock, for stats) and `now_ms` (monotonic, for session deadlines).
//! Imports: `baton_proto` and std (plus serde for the stored record types).

mod acl;
mod acl_table;
mod apply;
mod digest;
mod history;
mod lines;
mod overlay;
mod packed;
mod prepare;
mod read;
mod sessions;
mod tree;
mod watches;

pub use acl::{Acl, Identity};
pub use apply::{Applied, StoreDelta};
pub use prepare::Rejection;
pub use sessions::{Session, SessionRecord, Sessions};
pub use tree::{Node, NodeRecord, Removed, Tree};
pub use watches::WatchKind;

use baton_proto::{AclEntry, NodeKind, SessionId, Txn, Zxid};
pub use history::{History, HistoryBound};
use std::collections::{BTreeMap, BTreeSet};
use watches::WatchTable;

/// Bounds the state machine enforces, all configurable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest node data, in bytes.
    pub node_data_max: usize,
    /// Most watches one session may hold.
    pub watches_per_session_max: usize,
    /// Most children one node may have.
    pub children_per_node_max: u32,
    /// Most ephemerals one session may own.
    pub ephemerals_per_session_max: usize,
    /// Longest TTL a node may ask for.
    pub ttl_max_ms: u64,
    /// How many recent transactions' changes are kept for replay to resuming watchers.
    pub history_txns: usize,
    /// At most this many bytes of them (see [`History::cost`]).
    pub history_bytes: usize,
    /// Longest path a create accepts, in bytes.
    pub path_len_max: usize,
    /// Most segments in a path a create accepts.
    pub path_depth_max: usize,
    /// The ACL of a node created without one (`creator` entries become the creator).
    pub default_acl: Vec<AclEntry>,
    /// A negative control (see `crate::negative`): fencing checks always pass. Never set
    /// outside the reliability tests.
    pub skip_fencing_check: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            node_data_max: 1024 * 1024,
            watches_per_session_max: 100_000,
            children_per_node_max: 1_000_000,
            ephemerals_per_session_max: 100_000,
            ttl_max_ms: 0xff_ffff_ffff,
            history_txns: 100_000,
            history_bytes: 1024 * 1024,
            path_len_max: baton_proto::path::PATH_LEN_MAX,
            path_depth_max: 128,
            default_acl: acl::open(),
            skip_fencing_check: false,
        }
    }
}

impl Limits {
    pub fn history_bound(&self) -> HistoryBound {
        HistoryBound { txns: self.history_txns, bytes: self.history_bytes }
    }
}

/// Everything the store hands back to rebuild a state machine.
pub struct Restored {
    pub epoch: u32,
    pub last_zxid: Zxid,
    /// Every txn after this zxid is in `recent_txns`.
    pub history_floor: Zxid,
    /// The tree, built while reading (a list of every record first would double the
    /// memory a restart needs), and the paths of nodes whose parent is missing.
    pub tree: Tree,
    pub orphans: Vec<String>,
    pub sessions: Vec<(SessionId, SessionRecord)>,
    /// The retained log's newest entries, oldest first.
    pub recent_txns: Vec<Txn>,
}

#[derive(Clone, Debug)]
pub struct StateMachine {
    tree: Tree,
    sessions: Sessions,
    watches: WatchTable,
    /// The lines turn watches wait in (not replicated: it follows the watches).
    lines: lines::Lines,
    history: History,
    epoch: u32,
    last_zxid: Zxid,
    limits: Limits,
    /// Who each attached session is (not replicated: it is the connection's).
    identities: BTreeMap<SessionId, Identity>,
    /// The last zxid before the current round (see [`StateMachine::begin_round`]).
    round_started_after: Zxid,
    /// Containers a txn left empty without reaping them, for lack of room in it (not
    /// replicated: it follows the tree, and a restore finds them again).
    containers_to_reap: BTreeSet<String>,
}

/// The most containers one txn reaps: 10,000 paths of up to 1 KiB keep a txn near 10 MiB,
/// far below a replication frame, whatever the tree holds. The engine's tick reaps the rest.
pub const CONTAINERS_REAPED_PER_TXN: usize = 10_000;

/// Why a stored state could not be restored.
#[derive(Debug, thiserror::Error)]
#[error("inconsistent stored state: {0}")]
pub struct RestoreError(pub String);

impl StateMachine {
    /// A fresh machine: only the root, epoch 1, no transactions yet.
    pub fn new(limits: Limits) -> Self {
        StateMachine {
            tree: Tree::new(),
            sessions: Sessions::default(),
            watches: WatchTable::default(),
            lines: lines::Lines::default(),
            history: History::new(limits.history_bound(), Zxid::ZERO),
            epoch: 1,
            last_zxid: Zxid::ZERO,
            limits,
            identities: BTreeMap::new(),
            round_started_after: Zxid::ZERO,
            containers_to_reap: BTreeSet::new(),
        }
    }

    /// Rebuilds the machine from stored state. Sessions start without deadlines: each gets a
    /// fresh timeout at the first tick.
    pub fn restore(limits: Limits, restored: Restored) -> Result<Self, RestoreError> {
        let (tree, orphans) = (restored.tree, restored.orphans);
        if !orphans.is_empty() {
            return Err(RestoreError(format!("{} nodes without a parent, e.g. {}", orphans.len(), orphans[0])));
        }
        let mut sessions = Sessions::default();
        for (id, record) in restored.sessions {
            sessions.insert(id, record);
        }
        let mut containers_to_reap = BTreeSet::new();
        for (p, node) in tree.iter() {
            let stat = node.stat();
            // Only a container emptied by a delete is reaped (one created empty stays), and
            // every delete reaps what it empties unless it has no room left.
            if node.kind() == NodeKind::Container && stat.num_children == 0 && stat.cversion > 0 {
                containers_to_reap.insert(p.to_owned());
            }
            let owner = stat.ephemeral_owner;
            if owner.is_none() {
                continue;
            }
            let session = sessions
                .get_mut(owner)
                .ok_or_else(|| RestoreError(format!("ephemeral {p} owned by unknown session {owner}")))?;
            session.ephemerals.insert(p.to_owned());
        }
        let mut history = History::new(limits.history_bound(), restored.history_floor);
        for txn in &restored.recent_txns {
            history.record(txn);
        }
        Ok(StateMachine {
            tree,
            sessions,
            watches: WatchTable::default(),
            lines: lines::Lines::default(),
            history,
            epoch: restored.epoch,
            last_zxid: restored.last_zxid,
            limits,
            identities: BTreeMap::new(),
            round_started_after: restored.last_zxid,
            containers_to_reap,
        })
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// A round of the engine starts: with `readable_before`, what it changes is kept so that
    /// reads can be answered as the state was before it ([`StateMachine::lookup_before_round`])
    /// while the round is made durable.
    pub fn begin_round(&mut self, readable_before: bool) {
        self.tree.keep_before(readable_before);
        self.round_started_after = self.last_zxid;
    }

    /// The round is durable: what it changed need not be kept any longer.
    pub fn end_round(&mut self) {
        self.tree.keep_before(false);
    }

    /// Whether reads can be answered as the state was before the current round.
    pub fn readable_before_round(&self) -> bool {
        self.tree.keeps_before()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn watch_count(&self) -> usize {
        self.watches.total()
    }

    /// The zxid the next prepared txn gets.
    pub fn next_zxid(&self) -> Zxid {
        if self.last_zxid.epoch() < self.epoch {
            return Zxid::new(self.epoch, 1);
        }
        let counter = self.last_zxid.counter();
        assert!(counter < u32::MAX, "zxid counter exhausted in epoch {}", self.epoch);
        Zxid::new(self.epoch, counter + 1)
    }

    /// A session attached to a connection that proved `identity`: its ACL checks from now on.
    pub fn attach_identity(&mut self, session: SessionId, identity: Identity) {
        self.identities.insert(session, identity);
    }

    /// Who `session` is; a session attached to no connection is anonymous.
    pub fn identity(&self, session: SessionId) -> &Identity {
        static ANONYMOUS: Identity = Identity { principals: Vec::new(), superuser: false };
        self.identities.get(&session).unwrap_or(&ANONYMOUS)
    }

    /// Traffic from a session's client keeps it alive for a full timeout from `now_ms`.
    pub fn touch_session(&mut self, session: SessionId, now_ms: u64) {
        self.sessions.touch(session, now_ms);
    }

    /// The server did not run for `gap_ms` (SIGSTOP, a stall): no session is charged for it.
    pub fn postpone_deadlines(&mut self, gap_ms: u64) {
        self.sessions.postpone(gap_ms);
    }

    /// The sessions whose deadline has passed at monotonic `now_ms`; the caller closes each
    /// with a logged transaction.
    pub fn expired_sessions(&mut self, now_ms: u64) -> Vec<SessionId> {
        self.sessions.expired(now_ms)
    }

    /// Moves the watches of `previous` (a state being replaced wholesale by a snapshot) into
    /// this one. Every watched path gets a `WatchReset` (the changes in between cannot be
    /// told apart); persistent and recursive watches stay, one-shot ones are consumed.
    pub fn adopt_watches(&mut self, previous: &StateMachine) -> Vec<(SessionId, baton_proto::WatchEvent)> {
        let mut events = Vec::new();
        let mut told = std::collections::BTreeSet::new();
        self.identities.clone_from(&previous.identities);
        for (session, kind, p) in previous.watches.entries() {
            if matches!(kind, WatchKind::Persistent | WatchKind::Recursive) {
                self.watches.add(session, kind, &p, usize::MAX);
            }
            if told.insert((session, p.clone())) {
                let kind = baton_proto::EventKind::WatchReset;
                events.push((session, baton_proto::WatchEvent { zxid: self.last_zxid, path: p, kind }));
            }
        }
        events
    }

    /// The first waiter of `dir`: from its followed line, or else from a scan of its children
    /// (debug builds check that the two agree).
    fn first_waiter(&self, dir: &str) -> Option<&str> {
        let scan = || first_in_line(self.tree.children(dir).map(|(name, _)| name));
        if !self.lines.follows(dir) {
            return scan();
        }
        let first = self.lines.first(dir);
        debug_assert_eq!(first, scan(), "the followed line of {dir} is out of step with the tree");
        first
    }

    /// A client's connection went away: its watches go with it (a resuming client
    /// re-registers them), the session lives on until it resumes or expires.
    pub fn disconnect(&mut self, session: SessionId) {
        self.watches.remove_session(session);
        self.identities.remove(&session);
    }
}

/// The first waiter among a directory's children `names`: the lowest 10-digit sequential
/// suffix, then the lowest name (children without a suffix are not waiters). The order of the
/// fencing check (`HoldsLock`), of turn watches, and of the client's queueing recipes.
pub fn first_in_line<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter_map(|name| baton_proto::path::sequence_of(name).map(|seq| (seq, name)))
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests;
