//! The state machine, shared with the connection tasks so they answer plain reads themselves
//! (no hop to the engine's thread and back).
//!
//! The engine holds the write lock for a whole round: from the first input it handles until
//! the round is committed and each of its events and hang-ups is announced to its
//! connection (`ConnLink::announce`); it hands them out after unlocking, so that a reader
//! need not wait while it does. A reader, which only ever *tries* the lock, sees the state
//! between rounds, where everything is durable — or, while the engine syncs a round, the
//! state as it was before that round (`unlock_while_committing`): durable too, and holding
//! every write acknowledged so far, since none of the round's has been. It answers only on a
//! connection whose writer has taken every announced event off the outbox: then every event
//! for a change in that state is ahead of the answer it queues. (Replies need no count: the
//! connection answers by itself only once every request it handed the engine has had its
//! reply written.) Otherwise — lock taken, events on their way — it asks the engine, whose next
//! round comes after that hand-over. It never waits, so a tokio worker never blocks on the
//! engine's commit.

use crate::metrics::Metrics;
use crate::state::StateMachine;
use baton_proto::message::{Op, Response};
use baton_proto::{ErrorReply, SessionId, Zxid};
use parking_lot::{ArcRwLockWriteGuard, RawRwLock, RwLock};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What readers see between rounds.
struct Shared {
    sm: StateMachine,
    /// Readers may answer from `sm`: false on a standby (its reads follow the engine's rules
    /// for local sessions), while replies wait for a synchronous standby (the state is ahead
    /// of what was released), and with the stale-reads negative control.
    open: bool,
    /// The engine is making a round durable: readers answer as the state was before it.
    before_round: bool,
}

/// The engine's side: the state machine, locked while a round runs.
pub(super) struct Published {
    lock: Arc<RwLock<Shared>>,
    guard: Option<ArcRwLockWriteGuard<RawRwLock, Shared>>,
}

impl Published {
    /// Starts locked: the engine's start-up is a round too.
    pub fn new(sm: StateMachine) -> Self {
        let lock = Arc::new(RwLock::new(Shared { sm, open: false, before_round: false }));
        let guard = Some(lock.write_arc());
        Published { lock, guard }
    }

    /// Takes the state for a round (waiting at most for a reader's lookup to finish).
    pub fn lock(&mut self) {
        if self.guard.is_none() {
            self.guard = Some(self.lock.write_arc());
        }
    }

    /// Ends a round: readers may look, and answer by themselves if `open`.
    pub fn unlock(&mut self, open: bool) {
        if let Some(mut guard) = self.guard.take() {
            guard.open = open;
            guard.before_round = false;
        }
    }

    /// Lets readers in while the round is made durable, to answer as the state was before
    /// it (see `StateMachine::lookup_before_round`); `lock` takes the state back. The
    /// engine must have kept the round's earlier state, and be free to answer reads.
    pub fn unlock_while_committing(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            debug_assert!(guard.sm.readable_before_round());
            guard.open = true;
            guard.before_round = true;
        }
    }

    pub fn view(&self, metrics: Arc<Metrics>) -> StateView {
        StateView { lock: self.lock.clone(), metrics }
    }

    fn held(&self) -> &Shared {
        self.guard.as_ref().expect("the engine holds the state machine during a round")
    }
}

impl Deref for Published {
    type Target = StateMachine;
    fn deref(&self) -> &StateMachine {
        &self.held().sm
    }
}

impl DerefMut for Published {
    fn deref_mut(&mut self) -> &mut StateMachine {
        &mut self.guard.as_mut().expect("the engine holds the state machine during a round").sm
    }
}

/// A connection's side of the state: reads answered without the engine.
#[derive(Clone)]
pub struct StateView {
    lock: Arc<RwLock<Shared>>,
    metrics: Arc<Metrics>,
}

impl StateView {
    /// Answers `op` for `session` on `link`'s connection from the state as of the last round
    /// and gives the result, with that state's zxid, to `queue`, which puts it on the
    /// connection's outbox (true if it did). False if the engine must answer it (see
    /// `is_plain_read`, the module's notes, and `queue`'s refusal). The caller must have
    /// nothing of its session's still with the engine, so that the answer comes in the
    /// session's order.
    ///
    /// `queue` runs before the state is let go, so the engine's next round, and any event it
    /// queues, comes after the answer: a client never gets an event and then a reply older
    /// than it.
    pub fn answer(
        &self,
        session: SessionId,
        link: &ConnLink,
        op: &Op,
        queue: impl FnOnce(Zxid, Result<Response, ErrorReply>) -> bool,
    ) -> bool {
        if !is_plain_read(op) {
            return false;
        }
        let Some(shared) = self.lock.try_read() else { return false };
        // A closed link or a gone session: the engine gives the right refusal.
        if !shared.open
            || link.announced.load(Ordering::Relaxed) != link.taken.load(Ordering::Relaxed)
            || link.closed.load(Ordering::Relaxed)
            || !shared.sm.sessions().contains(session)
        {
            return false;
        }
        let (zxid, result) = if shared.before_round {
            match shared.sm.lookup_before_round(session, op) {
                Some(answer) => answer,
                None => return false,
            }
        } else {
            (shared.sm.last_zxid(), shared.sm.lookup(session, op))
        };
        if !queue(zxid, result) {
            return false;
        }
        link.touched.store(true, Ordering::Relaxed);
        true
    }

    /// Counts a read answered by its connection, `latency` after it was taken.
    pub fn record(&self, op: &Op, latency: std::time::Duration) {
        self.metrics.request(usize::from(super::op_index(op)), latency);
    }
}

/// Reads that neither change the state (no watch to set) nor depend on the engine's own
/// bookkeeping. `Sync` stays with the engine: it is its ordering point.
fn is_plain_read(op: &Op) -> bool {
    matches!(
        op,
        Op::Get { watch: false, .. }
            | Op::Exists { watch: false, .. }
            | Op::Children { watch: false, .. }
            | Op::GetAcl { .. }
            | Op::CountDescendants { .. }
            | Op::MultiRead(_)
    )
}

/// What the engine and a connection that answers reads know of each other.
#[derive(Debug, Default)]
pub struct ConnLink {
    /// Set when the engine cuts the connection off or its session moves: nothing more is
    /// answered on it.
    closed: AtomicBool,
    /// Messages other than replies (events) and hang-ups the engine has decided to send, as
    /// it releases a round, under the lock.
    announced: AtomicU64,
    /// Messages other than replies the connection's writer has taken off its outbox. A
    /// hang-up is never taken: after one, `announced` stays ahead.
    taken: AtomicU64,
    /// A read was answered since the last tick: the session had traffic (the engine renews
    /// its deadline on the next tick).
    touched: AtomicBool,
}

impl ConnLink {
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// The engine will hand the connection an event or hang up on it (called under the lock,
    /// which orders it before any reader's look).
    pub(super) fn announce(&self) {
        self.announced.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection's writer took `count` messages other than replies off its outbox. It
    /// runs on the same task as the connection's reader, so the two are ordered.
    pub fn taken(&self, count: u64) {
        self.taken.fetch_add(count, Ordering::Relaxed);
    }

    /// Whether a read was answered since the last call.
    pub(super) fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Limits;

    /// A published state with one live session, locked as the engine leaves it after new().
    fn published() -> (Published, SessionId) {
        let mut sm = StateMachine::new(Limits::default());
        let txn = sm.prepare_create_session(10_000, false, 7, 0);
        sm.apply(&txn);
        (Published::new(sm), txn.session_id)
    }

    fn create(p: &str) -> Op {
        Op::Create(baton_proto::message::CreateRequest {
            path: p.into(),
            data: Some(Vec::new()),
            kind: baton_proto::message::CreateKind::Persistent,
            sequential: false,
            acl: Vec::new(),
        })
    }

    fn get() -> Op {
        Op::Get { path: "/".into(), watch: false }
    }

    /// Whether `view` answers `op`, and the zxid it answered with.
    fn answer(view: &StateView, session: SessionId, link: &ConnLink, op: &Op) -> Option<Zxid> {
        let mut answered = None;
        view.answer(session, link, op, |zxid, result| {
            assert!(result.is_ok(), "{result:?}");
            answered = Some(zxid);
            true
        })
        .then_some(answered)
        .flatten()
    }

    #[test]
    fn reads_are_answered_only_between_rounds_and_when_open() {
        let (mut published, session) = published();
        let view = published.view(Arc::new(Metrics::new(&super::super::OP_NAMES)));
        let link = ConnLink::default();
        assert_eq!(answer(&view, session, &link, &get()), None, "answered during a round");
        published.unlock(false);
        assert_eq!(answer(&view, session, &link, &get()), None, "answered while closed to readers");
        published.lock();
        let zxid = published.last_zxid();
        published.unlock(true);
        assert_eq!(answer(&view, session, &link, &get()), Some(zxid));
        assert!(link.take_touched(), "an answered read renews its session");
    }

    #[test]
    fn while_a_round_is_committed_reads_see_the_state_before_it() {
        let (mut published, session) = published();
        let view = published.view(Arc::new(Metrics::new(&super::super::OP_NAMES)));
        let link = ConnLink::default();
        let before = published.last_zxid();
        published.begin_round(true);
        let txn = published.prepare_write(session, &create("/new"), 0).expect("a valid create");
        published.apply(&txn);
        published.unlock_while_committing();
        let exists = Op::Exists { path: "/new".into(), watch: false };
        let mut seen = None;
        assert!(view.answer(session, &link, &exists, |zxid, result| {
            seen = Some((zxid, result));
            true
        }));
        assert!(matches!(seen, Some((zxid, Ok(Response::Exists(None)))) if zxid == before), "{seen:?}");
        let descendants = Op::CountDescendants { path: "/".into() };
        assert_eq!(answer(&view, session, &link, &descendants), None, "a read that needs more than the tree");

        published.lock();
        published.end_round();
        published.unlock(true);
        assert_eq!(answer(&view, session, &link, &exists), Some(txn.zxid), "the committed round is visible");
    }

    #[test]
    fn reads_go_to_the_engine_while_events_are_on_their_way_or_the_connection_is_cut() {
        let (mut published, session) = published();
        let view = published.view(Arc::new(Metrics::new(&super::super::OP_NAMES)));
        published.unlock(true);
        let link = ConnLink::default();
        link.announce();
        assert_eq!(answer(&view, session, &link, &get()), None, "answered before an announced event");
        link.taken(1);
        assert!(answer(&view, session, &link, &get()).is_some());
        link.close();
        assert_eq!(answer(&view, session, &link, &get()), None, "answered on a cut connection");
    }

    #[test]
    fn only_plain_reads_of_live_sessions_are_answered() {
        let (mut published, session) = published();
        let view = published.view(Arc::new(Metrics::new(&super::super::OP_NAMES)));
        published.unlock(true);
        let link = ConnLink::default();
        let watched = Op::Get { path: "/".into(), watch: true };
        assert_eq!(answer(&view, session, &link, &watched), None, "a watch was set without the engine");
        assert_eq!(answer(&view, session, &link, &Op::Sync { path: "/".into() }), None);
        assert_eq!(answer(&view, SessionId(0x99), &link, &get()), None, "answered for an unknown session");
        let refused = view.answer(session, &link, &get(), |_, _| false);
        assert!(!refused, "a reply the connection could not queue counts as answered");
        assert!(!link.take_touched());
    }
}
