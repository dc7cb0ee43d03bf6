//! [`Lock`]: a fair (FIFO) distributed lock with fencing tokens. The waiter nodes, their
//! recovery after a lost connection, the clean-up of abandoned waiters and the holder's loss
//! signal ([`HoldState`]) described below live in the crate-private `waiting` module, shared
//! with [`super::rwlock`], [`super::semaphore`] and [`super::election`].
//!
//! # Algorithm
//!
//! The lock is a directory node (created as a persistent node, with its missing ancestors, the
//! first time it is needed). To wait, a process creates an *ephemeral sequential* child named
//! `{session:016x}-{attempt:08x}-lock-` followed by the server's 10-digit suffix. Waiters are
//! ordered by that suffix ([`super::sequence_of`]), which the server hands out in creation
//! order and never repeats; the first waiter holds the lock. The request that creates the node
//! also asks the server whether it is first ([`Client::create_in_line`]); if not, it leaves a
//! **turn watch** on the node, and the waiter sleeps until the server says it is first. The
//! server tells only the waiter that a departure makes first, whoever departed (a holder
//! releasing, a waiter ahead giving up, a session ending): each release wakes exactly one
//! waiter — the next in line — and a waiter leaving from the middle of the line wakes nobody.
//! There is no herd effect, and the new holder needs no request after its wake-up. The
//! question and the watch are one request, answered in one step of the server, so a release
//! cannot slip between the look and the sleep.
//!
//! A server older than `create_in_line` answers `Unimplemented` to it; then the waiter creates
//! its node and asks with [`Client::turn_and_watch`]. One older than turn watches answers
//! `Unimplemented` to that too; then the waiter follows
//! ZooKeeper's recipe: it reads the children, sets an `exists` watch on its **immediate
//! predecessor only**, and reads the children again when that node changes (the predecessor
//! may have been a waiter that gave up, not the holder).
//!
//! The session id and a per-process attempt counter in the name make it unique to one call:
//! after a `ConnectionLoss` on the create, the waiter lists the directory and recognises its own
//! node, if the create took effect, instead of queueing twice (ZooKeeper's "protected" mode).
//! Abandoned waiters — an `acquire` future dropped, a guard dropped without `release` — are
//! deleted by a small task spawned for the purpose (and by the server in any case when the
//! session ends).
//!
//! # Fencing
//!
//! A holder's **fencing token** is the `czxid` of its waiter node: zxids strictly increase and
//! are never reused, also across daemon restarts, so every later holder of the same lock has a
//! larger token. Put [`LockGuard::guard_op`] first in a [`Client::multi`]: the server applies
//! the multi only while that token's node is still the lock's first waiter, and otherwise fails
//! it with [`ErrorCode::LockLost`]. An external resource (a database, a storage service) can
//! use the token too: it remembers the largest token it has seen and refuses requests carrying
//! a smaller one.
//!
//! # Loss signal
//!
//! A holder's task follows [`Client::session_state`] and keeps an `exists` watch on its own
//! node, and publishes a [`HoldState`]: `Held`, `Jeopardy` while the session is suspended, and
//! `Lost` (final) once the session ended, the node was deleted, or the jeopardy deadline
//! passed without a reconnection — after which the server may have handed the lock on.
//!
//! [`ErrorCode::LockLost`]: crate::ErrorCode::LockLost

use super::waiting::hold_accessors;
use super::waiting::{Holding, Rule, Ticket, acquire_within, queue_and_wait, try_take};
use crate::{Client, MultiOp, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use super::waiting::HoldState;

/// A fair, herd-free distributed lock on a directory node; see the [module docs](self).
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::lock::Lock;
/// let lock = Lock::new(client.clone(), "/locks/db-migration");
/// let guard = lock.acquire().await?;
/// // Writes to Baton guarded by the token fail with LockLost once another process holds it.
/// client.multi(vec![guard.guard_op(), baton::MultiOp::Set {
///     path: "/db/schema".into(), data: Some(b"v2".to_vec()), version: None,
/// }]).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    client: Client,
    path: String,
    data: Vec<u8>,
    wakeups: Arc<AtomicU64>,
}

impl Lock {
    /// A lock whose waiters are children of `path` (created, with its ancestors, if missing).
    pub fn new(client: Client, path: impl Into<String>) -> Lock {
        Lock { client, path: path.into(), data: Vec::new(), wakeups: Arc::default() }
    }

    /// The same lock, storing `data` in this handle's waiter nodes (for example a host name
    /// and process id, so that an operator can see who holds it).
    #[must_use]
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Lock {
        self.data = data.into();
        self
    }

    /// The lock's directory node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many times a waiter of this handle (and its clones) was woken by its predecessor's
    /// watch: a measure of the herd effect, which should be at most one per release.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Waits in line and returns once the lock is held.
    ///
    /// # Errors
    /// The client's errors: `InvalidPath`, `NoChildrenForEphemerals` (an ephemeral ancestor),
    /// [`Error::SessionExpired`] or [`Error::Closed`] if the session ends while waiting, and
    /// `NoNode` if the waiter node was deleted by someone else. Lost connections are retried.
    ///
    /// # Cancellation safety
    /// Cancel-safe: dropping the future withdraws from the queue (a spawned task deletes the
    /// waiter node, even one whose create was in flight).
    ///
    /// [`Error::SessionExpired`]: crate::Error::SessionExpired
    /// [`Error::Closed`]: crate::Error::Closed
    pub async fn acquire(&self) -> Result<LockGuard> {
        let mut ticket = self.ticket();
        let entered = queue_and_wait(&mut ticket, Rule::FirstHolds, &self.wakeups).await?;
        Ok(LockGuard::from_holding(ticket.into_holding(entered)))
    }

    /// Like [`Lock::acquire`], giving up after `timeout`: `None` if the lock was not acquired
    /// in time, in which case the waiter node has already been deleted.
    ///
    /// # Errors
    /// As [`Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe, like [`Lock::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        let mut ticket = self.ticket();
        let entered = acquire_within(&mut ticket, Rule::FirstHolds, &self.wakeups, timeout).await?;
        Ok(entered.map(|entered| LockGuard::from_holding(ticket.into_holding(entered))))
    }

    /// Takes the lock if it is free now, without waiting: `None` if anyone holds it or waits
    /// for it.
    ///
    /// # Errors
    /// As [`Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe, like [`Lock::acquire`].
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let mut ticket = self.ticket();
        let entered = try_take(&mut ticket, |_, own| own == 0).await?;
        Ok(entered.map(|entered| LockGuard::from_holding(ticket.into_holding(entered))))
    }

    fn ticket(&self) -> Ticket {
        Ticket::new(&self.client, &self.path, "lock", &self.data, &[])
    }
}

/// The lock, held. Release it with [`LockGuard::release`]; dropping it releases it too (in a
/// spawned task). Also the guard of [`super::rwlock::RwLock::write`].
#[derive(Debug)]
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    hold: Holding,
}

impl LockGuard {
    hold_accessors!("lock");

    pub(crate) fn from_holding(hold: Holding) -> LockGuard {
        LockGuard { hold }
    }

    /// The op to put first in a [`Client::multi`] so that the server applies the multi only
    /// while this guard still holds the lock, and fails it with [`ErrorCode::LockLost`]
    /// otherwise.
    ///
    /// [`ErrorCode::LockLost`]: crate::ErrorCode::LockLost
    pub fn guard_op(&self) -> MultiOp {
        self.hold.guard_op()
    }

    /// Releases the lock: deletes the waiter node, which wakes the next waiter.
    ///
    /// # Errors
    /// A connection error that outlasted the retries; the node then goes when the session
    /// ends. A node already gone (the lock was lost) is not an error.
    ///
    /// # Cancellation safety
    /// Cancel-safe: if dropped, a spawned task finishes the release.
    pub async fn release(self) -> Result<()> {
        self.hold.release().await
    }
}
