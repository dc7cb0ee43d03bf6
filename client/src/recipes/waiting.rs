//! The waiting machinery of the queueing recipes ([`super::lock`], [`super::rwlock`],
//! [`super::semaphore`], [`super::election`]): waiter nodes named so that they can be found
//! again after a lost connection ([`Ticket`]), waiting in line for a turn the server announces
//! or by watching one blocking waiter ([`Rule`], [`queue_and_wait`], [`acquire_within`],
//! [`try_take`]), retries with [`backoff`], the clean-up of abandoned waiters, and the
//! holder's loss signal ([`Holding`], [`HoldState`]).
//! The algorithm is described in [`super::lock`]'s docs.
//!
//! Like every recipe, it uses only the client's public API.

use crate::proto::path;
use crate::{Client, CreateOptions, Error, ErrorCode, EventKind, MultiOp, Result, SessionId, SessionState, Stat, Turn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How many times a call that failed with a retryable error (a lost connection) is retried
/// before the error is passed on. Each retry first waits for the reconnection, so this bounds
/// a flapping link rather than time.
pub(crate) const RETRIES_MAX: u32 = 32;
/// The pause before the first retry; it doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(20);
/// The longest pause between retries.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Numbers the waiter nodes this process creates, so that each name is unique to one call.
static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

/// Whether a lock (or permit, or leadership) is still held, as its holder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldState {
    /// Held: the session is connected and the waiter node is in place.
    Held,
    /// The connection is lost and the client is reconnecting. The session, and with it the
    /// lock, may survive; but the server may expire it as soon as `expires_at`, after which
    /// another process may hold the lock. Stop touching the protected resource before then.
    Jeopardy {
        /// The earliest moment the server may expire the session.
        expires_at: Instant,
    },
    /// No longer held: the session expired or was closed, the waiter node was deleted by
    /// someone else, the jeopardy deadline passed, or the guard was released. Final.
    Lost,
}

/// One child of a queue directory that carries a sequential suffix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Waiter {
    /// The 10-digit suffix: the order of the queue (and of the server's fencing check).
    pub sequence: i32,
    pub name: String,
}

/// The children that carry a sequential suffix, in queue order (by suffix, then name, the
/// order the server's `HoldsLock` check uses too).
pub(crate) fn sorted_waiters(children: Vec<String>) -> Vec<Waiter> {
    let mut waiters: Vec<Waiter> =
        children.into_iter().filter_map(|name| Some(Waiter { sequence: path::sequence_of(&name)?, name })).collect();
    waiters.sort();
    waiters
}

/// The name base of a new waiter node of `kind`, unique to this call; the server appends the
/// suffix.
pub(crate) fn waiter_prefix(session: SessionId, kind: &str) -> String {
    let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}-{attempt:08x}-{kind}-", session.0)
}

/// The kind (`lock`, `read`, `write`, ...) of a waiter named by [`waiter_prefix`], if it is one.
pub(crate) fn kind_of(name: &str) -> Option<&str> {
    let base = name.get(..name.len().checked_sub(10)?)?.strip_suffix('-')?;
    let mut parts = base.splitn(3, '-');
    let (_session, _attempt) = (parts.next()?, parts.next()?);
    parts.next().filter(|kind| !kind.is_empty())
}

/// Which earlier waiter the waiter at index `own` of `waiters` must outlast: `None` once it
/// holds.
pub(crate) type Blocker = fn(&[Waiter], usize) -> Option<usize>;

/// The exclusive rule: the immediate predecessor, so only the first waiter holds.
pub(crate) fn immediate_predecessor(_waiters: &[Waiter], own: usize) -> Option<usize> {
    own.checked_sub(1)
}

/// How a waiter learns that it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule {
    /// Only the first waiter holds (a lock, a write lock, leadership). The waiter asks the
    /// server for its turn and sleeps on a turn watch, which fires for it alone once every
    /// waiter ahead has gone: one request to start waiting and none after the wake-up. From
    /// a server without turn watches: as `Outlast(immediate_predecessor)`.
    FirstHolds,
    /// Holds once the blocker finds nothing left to outlast: it watches the waiter it must
    /// outlast and lists the line again when that one changes.
    Outlast(Blocker),
}

/// Waits before retrying after `error` (bumping `failures`), or passes `error` on if it is not
/// retryable or the retries ran out.
pub(crate) async fn backoff(error: Error, failures: &mut u32) -> Result<()> {
    if !error.is_retryable() || *failures >= RETRIES_MAX {
        return Err(error);
    }
    *failures += 1;
    let pause = RETRY_PAUSE_MIN.saturating_mul(1 << (*failures - 1).min(6)).min(RETRY_PAUSE_MAX);
    tokio::time::sleep(pause).await;
    Ok(())
}

/// The error for a waiter whose node disappeared while it waited.
pub(crate) fn waiter_gone(node: &str) -> Error {
    Error::Server { code: ErrorCode::NoNode, message: format!("waiter {node} was deleted while waiting") }
}

/// Whether deleting a node failed only because it is gone already (or goes with the session).
fn already_gone(error: &Error) -> bool {
    error.is_no_node() || matches!(error, Error::SessionExpired | Error::Closed)
}

/// A waiter node that is in the queue (or on its way in).
#[derive(Clone, Debug)]
pub(crate) struct Entered {
    pub name: String,
    pub path: String,
    /// The node's `czxid`: the fencing token.
    pub token: u64,
    pub sequence: i32,
}

impl Entered {
    fn new(path: String, stat: &Stat) -> Result<Entered> {
        let name = path::name(&path).to_owned();
        let sequence = path::sequence_of(&name)
            .ok_or_else(|| Error::Protocol(format!("sequential node {path} has no 10-digit suffix")))?;
        Ok(Entered { name, path, token: stat.czxid.0, sequence })
    }
}

/// A place in a queue directory, from before its node is created until it becomes a
/// [`Holding`]: if dropped meanwhile, a spawned task deletes the node (found by its unique
/// prefix if the create's reply never came).
#[derive(Debug)]
pub(crate) struct Ticket {
    client: Client,
    dir: String,
    prefix: String,
    data: Vec<u8>,
    dir_data: Vec<u8>,
    entered: Option<Entered>,
    armed: bool,
}

impl Ticket {
    /// A ticket for a waiter of `kind` holding `data` in `dir`; `dir_data` is what `dir` gets
    /// if this ticket has to create it.
    pub(crate) fn new(client: &Client, dir: &str, kind: &str, data: &[u8], dir_data: &[u8]) -> Ticket {
        Ticket {
            client: client.clone(),
            dir: dir.to_owned(),
            prefix: waiter_prefix(client.session_id(), kind),
            data: data.to_vec(),
            dir_data: dir_data.to_vec(),
            entered: None,
            armed: false,
        }
    }

    pub(crate) fn dir(&self) -> &str {
        &self.dir
    }

    /// Creates the waiter node (and the directory if missing). After a lost connection it
    /// looks for the node by its prefix before creating it again, so it never queues twice.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the ticket is armed before the create is sent.
    pub(crate) async fn enter(&mut self) -> Result<Entered> {
        Ok(self.enter_with(false).await?.0)
    }

    /// As [`Ticket::enter`], and asks for the waiter's turn in the same request when the
    /// server can (`CreateInLine`): the turn, if it was asked for.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the ticket is armed before the create is sent.
    async fn enter_in_line(&mut self) -> Result<(Entered, Option<Turn>)> {
        self.enter_with(true).await
    }

    async fn enter_with(&mut self, mut in_line: bool) -> Result<(Entered, Option<Turn>)> {
        self.armed = true;
        let base = path::join(&self.dir, &self.prefix);
        let (mut failures, mut uncertain) = (0, false);
        loop {
            if uncertain {
                match self.find().await {
                    Ok(Some(found)) => return Ok((self.entered.insert(found).clone(), None)),
                    Ok(None) => uncertain = false,
                    Err(e) => {
                        backoff(e, &mut failures).await?;
                        continue;
                    }
                }
            }
            let error = match self.create(&base, in_line).await {
                Ok((node, stat, turn)) => return Ok((self.entered.insert(Entered::new(node, &stat)?).clone(), turn)),
                Err(e) if in_line && e.code() == Some(ErrorCode::Unimplemented) => {
                    in_line = false;
                    continue;
                }
                Err(e) if e.is_no_node() && failures < RETRIES_MAX => {
                    failures += 1;
                    match self.client.create_path(&self.dir, &self.dir_data).await.map(|_| ()) {
                        Ok(()) => continue,
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            uncertain = matches!(error, Error::ConnectionLoss);
            backoff(error, &mut failures).await?;
        }
    }

    /// One create of the waiter node under `base`: its path, its stat and, `in_line`, its turn.
    async fn create(&self, base: &str, in_line: bool) -> Result<(String, Stat, Option<Turn>)> {
        let options = CreateOptions::ephemeral().sequential();
        if !in_line {
            let (node, stat) = self.client.create(base, &self.data, options).await?;
            return Ok((node, stat, None));
        }
        let (node, turn) = self.client.create_in_line(base, &self.data, options).await?;
        let stat = match &turn {
            Turn::First(stat) | Turn::Waiting(stat, _) => *stat,
            Turn::Gone => return Err(Error::Protocol(format!("{node} was created in line and reported gone"))),
        };
        Ok((node, stat, Some(turn)))
    }

    /// This ticket's node, if a create of it took effect. There is at most one: a create is
    /// repeated only after a look found none.
    async fn find(&self) -> Result<Option<Entered>> {
        let children = match self.client.children_with_stats(&self.dir).await {
            Ok(children) => children,
            Err(e) if e.is_no_node() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mine = children.into_iter().find(|(name, _)| name.starts_with(&self.prefix));
        mine.map(|(name, stat)| Entered::new(path::join(&self.dir, &name), &stat)).transpose()
    }

    /// Leaves the queue: deletes the node (or whatever a create in flight made).
    ///
    /// # Cancellation safety
    /// Cancel-safe: the ticket stays armed until the deletion is confirmed.
    pub(crate) async fn withdraw(&mut self) -> Result<()> {
        if self.armed {
            self.cleanup().run().await?;
            self.armed = false;
        }
        Ok(())
    }

    /// Hands the node over to a [`Holding`], which follows and releases it from now on.
    pub(crate) fn into_holding(mut self, entered: Entered) -> Holding {
        self.armed = false;
        Holding::start(self.client.clone(), self.dir.clone(), entered)
    }

    fn cleanup(&self) -> Cleanup {
        Cleanup {
            client: self.client.clone(),
            dir: self.dir.clone(),
            prefix: self.prefix.clone(),
            node: self.entered.as_ref().map(|e| e.path.clone()),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.armed {
            self.cleanup().spawn();
        }
    }
}

/// The deletion of a waiter node: by path, or by its unique prefix when the path is unknown.
struct Cleanup {
    client: Client,
    dir: String,
    prefix: String,
    node: Option<String>,
}

impl Cleanup {
    async fn run(self) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.attempt().await {
                Ok(()) => return Ok(()),
                Err(e) => backoff(e, &mut failures).await?,
            }
        }
    }

    async fn attempt(&self) -> Result<()> {
        let nodes = match &self.node {
            Some(node) => vec![node.clone()],
            None => match self.client.children(&self.dir).await {
                Ok(children) => children
                    .into_iter()
                    .filter(|n| n.starts_with(&self.prefix))
                    .map(|n| path::join(&self.dir, &n))
                    .collect(),
                Err(e) if already_gone(&e) => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        for node in nodes {
            match self.client.delete(&node, None).await {
                Ok(()) => {}
                Err(e) if already_gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Runs in a task of its own (if there is a runtime to spawn on; if not, the node goes
    /// when the session ends).
    fn spawn(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let dir = self.dir.clone();
                if let Err(e) = self.run().await {
                    tracing::warn!(%dir, error = %e, "abandoned waiter not deleted; it goes with the session");
                }
            });
        }
    }
}

/// Enters the queue and waits until `rule` says it holds.
///
/// # Cancellation safety
/// Cancel-safe: the ticket is armed.
pub(crate) async fn queue_and_wait(ticket: &mut Ticket, rule: Rule, wakeups: &AtomicU64) -> Result<Entered> {
    let (entered, mut turn) = match rule {
        Rule::FirstHolds => ticket.enter_in_line().await?,
        Rule::Outlast(_) => (ticket.enter().await?, None),
    };
    let (mut rule, mut failures) = (rule, 0);
    loop {
        let step = match rule {
            Rule::FirstHolds => match wait_for_turn(&ticket.client, &entered.path, turn.take(), wakeups).await {
                Err(e) if e.code() == Some(ErrorCode::Unimplemented) => {
                    rule = Rule::Outlast(immediate_predecessor);
                    continue;
                }
                step => step,
            },
            Rule::Outlast(blocker) => wait_step(&ticket.client, &ticket.dir, &entered.name, blocker, wakeups).await,
        };
        match step {
            Ok(true) => return Ok(entered),
            Ok(false) => failures = 0,
            Err(e) => backoff(e, &mut failures).await?,
        }
    }
}

/// One wait for the turn of the waiter node `node`, starting from `known` if its turn was
/// just told: `true` once it is first; `false` to ask again (the watch was reset by a
/// reconnect).
async fn wait_for_turn(client: &Client, node: &str, known: Option<Turn>, wakeups: &AtomicU64) -> Result<bool> {
    let turn = match known {
        Some(turn) => turn,
        None => client.turn_and_watch(node).await?,
    };
    let watcher = match turn {
        Turn::First(_) => return Ok(true),
        Turn::Gone => return Err(waiter_gone(node)),
        Turn::Waiting(_, watcher) => watcher,
    };
    let event = watcher.changed().await?;
    wakeups.fetch_add(1, Ordering::Relaxed);
    match event.kind {
        EventKind::Turn => Ok(true),
        EventKind::Deleted => Err(waiter_gone(node)),
        _ => Ok(false),
    }
}

/// One look at the queue: `true` if the waiter `own` holds; otherwise sleeps until the waiter
/// it must outlast changes, and returns `false` (look again) or `true` (see
/// [`holds_once_first_is_gone`]).
async fn wait_step(client: &Client, dir: &str, own: &str, blocker: Blocker, wakeups: &AtomicU64) -> Result<bool> {
    let waiters = sorted_waiters(client.children(dir).await?);
    let index = waiters.iter().position(|w| w.name == own).ok_or_else(|| waiter_gone(own))?;
    let Some(blocking) = blocker(&waiters, index) else { return Ok(true) };
    let (stat, watcher) = client.exists_and_watch(&path::join(dir, &waiters[blocking].name)).await?;
    if stat.is_some() {
        // Data changed or watch reset: look again. Deleted: look again, unless the listing
        // already tells.
        let event = watcher.changed().await?;
        wakeups.fetch_add(1, Ordering::Relaxed);
        if event.kind == EventKind::Deleted && holds_once_first_is_gone(&waiters, index, blocking, blocker) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the waiter at `own` holds as soon as `blocking`, the *first* waiter of the listing,
/// is deleted — so the hand-off needs no second listing. Sound because nobody can queue ahead
/// of `own` later (suffixes only grow), so the queue ahead of it is now a subset of the
/// listing's `1..own`; and with the recipes' rules (the immediate predecessor; the last writer
/// before a reader) a subset of waiters that did not block does not block either.
fn holds_once_first_is_gone(waiters: &[Waiter], own: usize, blocking: usize, blocker: Blocker) -> bool {
    blocking == 0 && own > 0 && blocker(&waiters[1..], own - 1).is_none()
}

/// [`queue_and_wait`] within `timeout`: `None` (and the node withdrawn) if it ran out.
///
/// # Cancellation safety
/// Cancel-safe: the ticket is armed.
pub(crate) async fn acquire_within(
    ticket: &mut Ticket,
    rule: Rule,
    wakeups: &AtomicU64,
    timeout: Duration,
) -> Result<Option<Entered>> {
    match tokio::time::timeout(timeout, queue_and_wait(ticket, rule, wakeups)).await {
        Ok(entered) => entered.map(Some),
        Err(_elapsed) => {
            ticket.withdraw().await?;
            Ok(None)
        }
    }
}

/// Joins the queue only if `holds(waiters, index)` says a waiter appended now would hold at
/// once, and keeps its place only if it does: `None` (nothing left behind) otherwise.
///
/// # Cancellation safety
/// Cancel-safe: the ticket is armed.
pub(crate) async fn try_take(ticket: &mut Ticket, holds: impl Fn(&[Waiter], usize) -> bool) -> Result<Option<Entered>> {
    let before = match ticket.client.children(&ticket.dir).await {
        Ok(children) => sorted_waiters(children),
        Err(e) if e.is_no_node() => Vec::new(),
        Err(e) => return Err(e),
    };
    if !holds(&before, before.len()) {
        return Ok(None);
    }
    let entered = ticket.enter().await?;
    let waiters = sorted_waiters(ticket.client.children(&ticket.dir).await?);
    let index = waiters.iter().position(|w| w.name == entered.name).ok_or_else(|| waiter_gone(&entered.path))?;
    if holds(&waiters, index) {
        return Ok(Some(entered));
    }
    ticket.withdraw().await?;
    Ok(None)
}

/// The accessors every kind of hold shares — a lock, a read lock, a permit, a leadership —
/// for a type with a `hold: Holding` field. `$what` names the hold in the docs.
macro_rules! hold_accessors {
    ($what:literal) => {
        #[doc = concat!("The fencing token of this ", $what, ": the `czxid` of its waiter node. ")]
        #[doc = "Every later waiter's is larger, also across daemon restarts."]
        pub fn token(&self) -> u64 {
            self.hold.entered.token
        }

        #[doc = concat!("The path of this ", $what, "'s waiter node.")]
        pub fn path(&self) -> &str {
            &self.hold.entered.path
        }

        /// The waiter node's sequential suffix: its place in the queue.
        pub fn sequence(&self) -> i32 {
            self.hold.entered.sequence
        }

        #[doc = concat!("Whether the ", $what, " is still held, as far as this client knows now.")]
        pub fn state(&self) -> $crate::recipes::lock::HoldState {
            self.hold.state()
        }

        /// A receiver of the hold state: `changed().await` on it to follow `Held` →
        /// `Jeopardy` → `Held` or `Lost`.
        pub fn watch(&self) -> tokio::sync::watch::Receiver<$crate::recipes::lock::HoldState> {
            self.hold.watch()
        }

        #[doc = concat!("Completes once the ", $what, " is `Lost`.")]
        ///
        /// # Cancellation safety
        /// Cancel-safe.
        pub async fn lost(&self) {
            self.hold.lost().await;
        }
    };
}
pub(crate) use hold_accessors;

/// A held place in a queue directory: the node, its token, and the task that follows the
/// session and the node to publish the [`HoldState`]. Shared by every guard type.
#[derive(Debug)]
pub(crate) struct Holding {
    client: Client,
    dir: String,
    pub entered: Entered,
    state: Arc<watch::Sender<HoldState>>,
    monitor: JoinHandle<()>,
    released: bool,
}

impl Holding {
    fn start(client: Client, dir: String, entered: Entered) -> Holding {
        let initial = match *client.session_state().borrow() {
            SessionState::Connected => HoldState::Held,
            SessionState::Suspended { expires_at } => HoldState::Jeopardy { expires_at },
            SessionState::Expired | SessionState::Closed => HoldState::Lost,
        };
        let state = Arc::new(watch::Sender::new(initial));
        let monitor = tokio::spawn(monitor(client.clone(), entered.path.clone(), entered.token, state.clone()));
        Holding { client, dir, entered, state, monitor, released: false }
    }

    pub(crate) fn guard_op(&self) -> MultiOp {
        MultiOp::HoldsLock { lock: self.dir.clone(), token: self.entered.token }
    }

    pub(crate) fn state(&self) -> HoldState {
        *self.state.borrow()
    }

    pub(crate) fn watch(&self) -> watch::Receiver<HoldState> {
        self.state.subscribe()
    }

    pub(crate) async fn lost(&self) {
        let mut state = self.state.subscribe();
        // The sender lives as long as `self`, so this ends only with `Lost`.
        let _ = state.wait_for(|s| *s == HoldState::Lost).await;
    }

    pub(crate) async fn release(mut self) -> Result<()> {
        self.monitor.abort();
        self.state.send_replace(HoldState::Lost);
        self.cleanup().run().await?;
        self.released = true;
        Ok(())
    }

    fn cleanup(&self) -> Cleanup {
        Cleanup {
            client: self.client.clone(),
            dir: self.dir.clone(),
            prefix: String::new(),
            node: Some(self.entered.path.clone()),
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.monitor.abort();
        self.state.send_replace(HoldState::Lost);
        if !self.released {
            self.cleanup().spawn();
        }
    }
}

/// Publishes `next` unless the state is already `Lost`, which is final.
fn publish(state: &watch::Sender<HoldState>, next: HoldState) {
    state.send_if_modified(|current| {
        let changed = *current != next && *current != HoldState::Lost;
        if changed {
            *current = next;
        }
        changed
    });
}

/// Follows the session, publishing `Held` or `Jeopardy`; returns once the hold must be
/// considered lost: the session ended, or the jeopardy deadline passed.
///
/// # Cancellation safety
/// Cancel-safe: it re-reads the current state whenever it starts.
async fn follow_session(session: &mut watch::Receiver<SessionState>, state: &watch::Sender<HoldState>) {
    loop {
        let deadline = match *session.borrow_and_update() {
            SessionState::Connected => {
                publish(state, HoldState::Held);
                None
            }
            SessionState::Suspended { expires_at } => {
                publish(state, HoldState::Jeopardy { expires_at });
                Some(expires_at)
            }
            SessionState::Expired | SessionState::Closed => return,
        };
        let expiry = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = session.changed() => if changed.is_err() { return },
            () = expiry => return,
        }
    }
}

/// The holder's watchdog: keeps an `exists` watch on its own node while following the session,
/// and publishes `Lost` when either says the hold is gone.
async fn monitor(client: Client, node: String, token: u64, state: Arc<watch::Sender<HoldState>>) {
    let mut session = client.session_state();
    let mut failures = 0;
    loop {
        let armed = tokio::select! {
            armed = client.exists_and_watch(&node) => armed,
            () = follow_session(&mut session, &state) => break,
        };
        let watcher = match armed {
            Ok((Some(stat), watcher)) if stat.czxid.0 == token => watcher,
            Ok(_) => break,
            Err(e) => {
                tokio::select! {
                    retry = backoff(e, &mut failures) => if retry.is_err() { break },
                    () = follow_session(&mut session, &state) => break,
                }
                continue;
            }
        };
        failures = 0;
        tokio::select! {
            event = watcher.changed() => match event {
                Ok(event) if event.kind == EventKind::Deleted => break,
                Ok(_) => {} // data changed or watch reset: look again
                Err(_) => break,
            },
            () = follow_session(&mut session, &state) => break,
        }
    }
    state.send_replace(HoldState::Lost);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiters(names: &[&str]) -> Vec<Waiter> {
        sorted_waiters(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn waiter_names_carry_session_attempt_and_kind() {
        let a = waiter_prefix(SessionId(0xab), "lock");
        let b = waiter_prefix(SessionId(0xab), "lock");
        assert_ne!(a, b, "each call gets its own name");
        assert!(a.starts_with("00000000000000ab-") && a.ends_with("-lock-"), "{a}");
        assert_eq!(kind_of(&format!("{a}0000000007")), Some("lock"));
        assert_eq!(kind_of(&format!("{}0000000007", waiter_prefix(SessionId(1), "write"))), Some("write"));
        assert_eq!(kind_of("lock-0000000007"), None);
        assert_eq!(kind_of("0000000007"), None);
        assert_eq!(kind_of("x"), None);
    }

    #[test]
    fn waiters_are_ordered_by_suffix_not_by_name() {
        let sorted = waiters(&["ff-0-lock-0000000003", "00-0-lock-0000000010", "aa-1-lock-0000000001", "junk"]);
        let sequences: Vec<i32> = sorted.iter().map(|w| w.sequence).collect();
        assert_eq!(sequences, [1, 3, 10], "children without a suffix are not waiters");
        assert_eq!(sorted[0].name, "aa-1-lock-0000000001");
    }

    #[test]
    fn an_exclusive_waiter_watches_only_its_immediate_predecessor() {
        let queue = waiters(&["a-0-lock-0000000001", "b-0-lock-0000000002", "c-0-lock-0000000003"]);
        assert_eq!(immediate_predecessor(&queue, 0), None, "the first waiter holds");
        assert_eq!(immediate_predecessor(&queue, 1), Some(0));
        assert_eq!(immediate_predecessor(&queue, 2), Some(1));
    }

    #[test]
    fn only_the_second_in_line_holds_without_looking_again() {
        let queue = waiters(&["a-0-lock-0000000001", "b-0-lock-0000000002", "c-0-lock-0000000003"]);
        assert!(holds_once_first_is_gone(&queue, 1, 0, immediate_predecessor), "the first is gone: b is first");
        assert!(!holds_once_first_is_gone(&queue, 2, 1, immediate_predecessor), "b may have withdrawn, a not");
    }

    #[test]
    fn lost_is_final() {
        let state = watch::Sender::new(HoldState::Held);
        let expires_at = Instant::now();
        publish(&state, HoldState::Jeopardy { expires_at });
        assert_eq!(*state.borrow(), HoldState::Jeopardy { expires_at });
        publish(&state, HoldState::Lost);
        publish(&state, HoldState::Held);
        assert_eq!(*state.borrow(), HoldState::Lost);
    }

    #[tokio::test(start_paused = true)]
    async fn jeopardy_turns_into_lost_when_its_deadline_passes() {
        let expires_at = Instant::now() + Duration::from_secs(2);
        let (session_tx, mut session) = watch::channel(SessionState::Suspended { expires_at });
        let state = watch::Sender::new(HoldState::Held);
        let started = Instant::now();
        follow_session(&mut session, &state).await;
        assert_eq!(*state.borrow(), HoldState::Jeopardy { expires_at });
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(session_tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_session_is_held_again_and_an_expired_one_ends_the_hold() {
        let expires_at = Instant::now() + Duration::from_secs(10);
        let (session_tx, mut session) = watch::channel(SessionState::Suspended { expires_at });
        let state = watch::Sender::new(HoldState::Held);
        let mut seen = state.subscribe();
        let follower = async { follow_session(&mut session, &state).await };
        let driver = async {
            seen.wait_for(|s| matches!(s, HoldState::Jeopardy { .. })).await.unwrap();
            session_tx.send_replace(SessionState::Connected);
            seen.wait_for(|s| *s == HoldState::Held).await.unwrap();
            session_tx.send_replace(SessionState::Expired);
        };
        tokio::join!(follower, driver);
        assert!(Instant::now() < expires_at, "ended by the expiry, not the deadline");
    }
}
