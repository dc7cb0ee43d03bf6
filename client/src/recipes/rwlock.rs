//! [`RwLock`]: a fair read-write lock — many readers or one writer, granted in arrival order.
//!
//! # Algorithm
//!
//! Readers and writers queue as ephemeral sequential children of one directory, named like the
//! [`super::lock`] waiters with the kind `read` or `write`, and ordered by the 10-digit suffix.
//! A **writer** holds once it is the first waiter, so it watches its immediate predecessor
//! only. A **reader** holds once no writer is ahead of it, so it watches only the *last writer
//! before it* (readers ahead of it do not block it). Either reads the children again whenever
//! its one watched node changes. The waiter nodes, their recovery after a lost connection, the
//! clean-up of abandoned ones and the holders' loss signal are those of [`super::lock`].
//!
//! Fairness: a waiting writer blocks every reader that arrives after it, so writers are not
//! starved by a stream of readers; readers that arrived before it keep their turn.
//!
//! No herd: every waiter watches exactly one node, and no reader watches a reader. A reader's
//! release wakes at most the writer directly behind it (which may find other readers still
//! ahead, and then watches the next one). A writer's release wakes either the run of readers
//! directly behind it — all of which then hold the lock at once, so none is woken in vain — or,
//! if a writer is directly behind it, that writer alone; never a waiter further back, since
//! readers behind a later writer watch that writer.
//!
//! # Fencing
//!
//! A write guard is a [`LockGuard`], whose [`LockGuard::guard_op`] works as for the plain lock
//! (a holding writer is the directory's first waiter, which is what the server checks). A read
//! guard has a token too, but no guard op: several readers hold at once and the server's
//! `HoldsLock` check admits only the first waiter.

use super::lock::LockGuard;
use super::waiting::hold_accessors;
use super::waiting::{Holding, Rule, Ticket, Waiter, acquire_within, kind_of, queue_and_wait};
use crate::{Client, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The kind of a reader's waiter node.
const READ: &str = "read";
/// The kind of a writer's waiter node.
const WRITE: &str = "write";

/// A fair read-write lock on a directory node; see the [module docs](self).
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::rwlock::RwLock;
/// let lock = RwLock::new(client, "/locks/catalog");
/// let reading = lock.read().await?;
/// // ... several processes may read at once ...
/// reading.release().await?;
/// let writing = lock.write().await?;
/// // ... alone now ...
/// writing.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RwLock {
    client: Client,
    path: String,
    wakeups: Arc<AtomicU64>,
}

impl RwLock {
    /// A read-write lock whose waiters are children of `path` (created, with its ancestors, if
    /// missing).
    pub fn new(client: Client, path: impl Into<String>) -> RwLock {
        RwLock { client, path: path.into(), wakeups: Arc::default() }
    }

    /// The lock's directory node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many times a waiter of this handle (and its clones) was woken by the watch on the
    /// node it waits for.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Waits until no writer is ahead of this reader, and returns the shared guard.
    ///
    /// # Errors
    /// As [`super::lock::Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: dropping the future withdraws from the queue.
    pub async fn read(&self) -> Result<ReadGuard> {
        let mut ticket = self.ticket(READ);
        let entered = queue_and_wait(&mut ticket, Rule::Outlast(last_writer_before), &self.wakeups).await?;
        Ok(ReadGuard { hold: ticket.into_holding(entered) })
    }

    /// Like [`RwLock::read`], giving up after `timeout`: `None` (and nothing left in the
    /// queue) if the lock was not acquired in time.
    ///
    /// # Errors
    /// As [`RwLock::read`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<ReadGuard>> {
        let mut ticket = self.ticket(READ);
        let entered = acquire_within(&mut ticket, Rule::Outlast(last_writer_before), &self.wakeups, timeout).await?;
        Ok(entered.map(|entered| ReadGuard { hold: ticket.into_holding(entered) }))
    }

    /// Waits until this writer is first in line, and returns the exclusive guard.
    ///
    /// # Errors
    /// As [`super::lock::Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: dropping the future withdraws from the queue.
    pub async fn write(&self) -> Result<LockGuard> {
        let mut ticket = self.ticket(WRITE);
        let entered = queue_and_wait(&mut ticket, WRITER, &self.wakeups).await?;
        Ok(LockGuard::from_holding(ticket.into_holding(entered)))
    }

    /// Like [`RwLock::write`], giving up after `timeout`: `None` (and nothing left in the
    /// queue) if the lock was not acquired in time.
    ///
    /// # Errors
    /// As [`RwLock::write`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn write_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        let mut ticket = self.ticket(WRITE);
        let entered = acquire_within(&mut ticket, WRITER, &self.wakeups, timeout).await?;
        Ok(entered.map(|entered| LockGuard::from_holding(ticket.into_holding(entered))))
    }

    fn ticket(&self, kind: &str) -> Ticket {
        Ticket::new(&self.client, &self.path, kind, &[], &[])
    }
}

/// A writer holds once it is first in line, like a plain lock's waiter.
const WRITER: Rule = Rule::FirstHolds;

/// Whether a waiter is a reader. Anything not named as a reader (a plain lock's waiter in the
/// same directory, say) is treated as a writer: the safe side.
fn is_reader(waiter: &Waiter) -> bool {
    kind_of(&waiter.name) == Some(READ)
}

/// A reader waits for the last writer ahead of it, if any.
fn last_writer_before(waiters: &[Waiter], own: usize) -> Option<usize> {
    waiters[..own].iter().rposition(|w| !is_reader(w))
}

/// A shared hold on an [`RwLock`]. Release it with [`ReadGuard::release`]; dropping it releases
/// it too (in a spawned task).
#[derive(Debug)]
#[must_use = "dropping the guard releases the lock"]
pub struct ReadGuard {
    hold: Holding,
}

impl ReadGuard {
    hold_accessors!("read lock");

    /// Releases the shared hold: deletes the waiter node.
    ///
    /// # Errors
    /// As [`LockGuard::release`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: if dropped, a spawned task finishes the release.
    pub async fn release(self) -> Result<()> {
        self.hold.release().await
    }
}

#[cfg(test)]
mod tests {
    use super::super::waiting::{sorted_waiters, waiter_prefix};
    use super::*;
    use crate::SessionId;

    /// A queue of the given kinds, in that order.
    fn queue(kinds: &[&str]) -> Vec<Waiter> {
        let names = kinds.iter().enumerate().map(|(i, kind)| format!("{}{i:010}", waiter_prefix(SessionId(7), kind)));
        sorted_waiters(names.collect())
    }

    #[test]
    fn readers_ahead_of_a_reader_do_not_block_it() {
        let q = queue(&[READ, READ, READ]);
        assert_eq!((0..3).map(|i| last_writer_before(&q, i)).collect::<Vec<_>>(), [None, None, None]);
    }

    #[test]
    fn a_reader_waits_for_the_last_writer_ahead_only() {
        let q = queue(&[WRITE, READ, WRITE, READ, READ]);
        assert_eq!(last_writer_before(&q, 1), Some(0));
        assert_eq!(last_writer_before(&q, 3), Some(2), "the later writer, not the first");
        assert_eq!(last_writer_before(&q, 4), Some(2));
    }

    #[test]
    fn a_waiting_writer_blocks_later_readers_and_waits_for_earlier_ones() {
        let q = queue(&[READ, READ, WRITE, READ]);
        assert_eq!(last_writer_before(&q, 1), None, "readers before the writer share");
        assert!(matches!(WRITER, Rule::FirstHolds), "a writer holds only when first in line");
        assert_eq!(last_writer_before(&q, 3), Some(2), "a reader behind a waiting writer waits");
    }

    #[test]
    fn unknown_waiters_count_as_writers() {
        let q =
            sorted_waiters(vec!["lock-0000000001".into(), format!("{}0000000002", waiter_prefix(SessionId(1), READ))]);
        assert_eq!(last_writer_before(&q, 1), Some(0));
    }
}
