//! [`Semaphore`]: at most N holders at once, granted in arrival order.
//!
//! # Algorithm
//!
//! Waiters queue as ephemeral sequential children of the semaphore's directory (named like the
//! [`super::lock`] waiters, kind `permit`), ordered by the 10-digit suffix; the first N hold a
//! permit. N is stored in the directory's data when this recipe creates it, and a handle
//! configured with a different N is refused.
//!
//! The subtle part is waking a waiter without a herd. The waiter at index `i >= N` must learn
//! that it holds as soon as fewer than N waiters are ahead of it — and any of them may leave,
//! not just its predecessor, so watching one node is not enough. The scheme used here:
//!
//! - the waiter at index `N` exactly — the **next in line** — keeps a *children* watch on the
//!   directory, and looks again whenever it fires;
//! - every waiter further back keeps an `exists` watch on its **immediate predecessor** only,
//!   which fires when that predecessor leaves the queue or changes its data;
//! - a waiter that becomes a holder **touches** its own node (sets its data once, taking it
//!   from version 0 to 1) before it returns, which wakes the waiter directly behind it; that
//!   one looks again and finds itself next in line (or a holder too, and then touches in turn).
//!
//! A waiter behind its predecessor can only move up when that predecessor moves up or leaves,
//! and the predecessor announces both; a waiter that finds its predecessor already touched
//! looks again at once. So no waiter sleeps through the moment it may hold. The herd is bounded
//! by a constant: a release wakes the next-in-line waiter, which takes the permit and touches,
//! waking the one waiter behind it — two wake-ups, however long the queue. The next-in-line
//! waiter alone is also woken, needlessly, when a new waiter arrives behind it (its children
//! watch cannot tell creates from deletes): one waiter per arrival, never the queue.
//!
//! Holders get the [`super::lock`] loss signal and a token (their node's `czxid`), but no guard
//! op: the server's `HoldsLock` check admits only the first waiter.

use super::waiting::hold_accessors;
use super::waiting::{Holding, Ticket, Waiter, backoff, sorted_waiters, try_take, waiter_gone};
use crate::proto::path;
use crate::{Client, Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The kind of a permit's waiter node.
const PERMIT: &str = "permit";
/// What a holder writes into its node to wake the waiter behind it.
const TOUCHED: &[u8] = b"holds";

/// A counting semaphore with a fixed number of permits; see the [module docs](self).
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::semaphore::Semaphore;
/// let downloads = Semaphore::new(client, "/limits/downloads", 4);
/// let permit = downloads.acquire().await?;
/// // ... at most four processes are here at once ...
/// permit.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Semaphore {
    client: Client,
    path: String,
    permits: u32,
    wakeups: Arc<AtomicU64>,
    checked: Arc<AtomicBool>,
}

/// Where a waiter stands in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Among the first N: it holds a permit.
    Holder,
    /// At index N: it holds as soon as anyone ahead leaves, so it watches the whole queue.
    Next,
    /// Further back: it watches its immediate predecessor.
    Behind,
}

fn place(index: usize, permits: usize) -> Place {
    match index.cmp(&permits) {
        std::cmp::Ordering::Less => Place::Holder,
        std::cmp::Ordering::Equal => Place::Next,
        std::cmp::Ordering::Greater => Place::Behind,
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits whose waiters are children of `path` (created, with
    /// its ancestors, if missing). Every process must use the same number.
    pub fn new(client: Client, path: impl Into<String>, permits: u32) -> Semaphore {
        Semaphore { client, path: path.into(), permits, wakeups: Arc::default(), checked: Arc::default() }
    }

    /// The semaphore's directory node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The number of permits.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// How many times a waiter of this handle (and its clones) was woken by a watch.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Waits in line and returns once a permit is held.
    ///
    /// # Errors
    /// `InvalidArgument` for zero permits or if the directory records a different number;
    /// otherwise as [`super::lock::Lock::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: dropping the future withdraws from the queue.
    pub async fn acquire(&self) -> Result<Permit> {
        self.check().await?;
        let mut ticket = self.ticket();
        let entered = ticket.enter().await?;
        self.wait(&ticket, &entered.name).await?;
        touch(&self.client, &entered.path).await?;
        Ok(Permit { hold: ticket.into_holding(entered) })
    }

    /// Like [`Semaphore::acquire`], giving up after `timeout`: `None` (and nothing left in the
    /// queue) if no permit was acquired in time.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit>> {
        self.check().await?;
        let mut ticket = self.ticket();
        let waited = tokio::time::timeout(timeout, async {
            let entered = ticket.enter().await?;
            self.wait(&ticket, &entered.name).await?;
            touch(&self.client, &entered.path).await?;
            Ok::<_, Error>(entered)
        })
        .await;
        match waited {
            Ok(entered) => Ok(Some(Permit { hold: ticket.into_holding(entered?) })),
            Err(_elapsed) => {
                ticket.withdraw().await?;
                Ok(None)
            }
        }
    }

    /// Takes a permit if one is free now and nobody waits: `None` otherwise.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn try_acquire(&self) -> Result<Option<Permit>> {
        self.check().await?;
        let mut ticket = self.ticket();
        let permits = self.permits as usize;
        let Some(entered) = try_take(&mut ticket, |_, own| own < permits).await? else { return Ok(None) };
        touch(&self.client, &entered.path).await?;
        Ok(Some(Permit { hold: ticket.into_holding(entered) }))
    }

    fn ticket(&self) -> Ticket {
        Ticket::new(&self.client, &self.path, PERMIT, &[], self.permits.to_string().as_bytes())
    }

    /// Refuses zero permits, and a number that differs from the one the directory records
    /// (checked once per handle).
    async fn check(&self) -> Result<()> {
        if self.permits == 0 {
            return Err(Error::InvalidArgument("a semaphore needs at least one permit".to_owned()));
        }
        if self.checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.client.create_path(&self.path, self.permits.to_string().as_bytes()).await?;
        let (data, _) = self.client.get(&self.path).await?;
        let recorded = std::str::from_utf8(&data).ok().and_then(|s| s.parse::<u32>().ok());
        if let Some(recorded) = recorded.filter(|n| *n != self.permits) {
            let (path, permits) = (&self.path, self.permits);
            return Err(Error::InvalidArgument(format!("{path} has {recorded} permits, not {permits}")));
        }
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until the waiter `own` is among the first N.
    async fn wait(&self, ticket: &Ticket, own: &str) -> Result<()> {
        let (mut failures, mut seen_touched) = (0, None);
        loop {
            match self.wait_step(ticket.dir(), own, &mut seen_touched).await {
                Ok(true) => return Ok(()),
                Ok(false) => failures = 0,
                Err(e) => backoff(e, &mut failures).await?,
            }
        }
    }

    /// One look at the queue: `true` if `own` holds; otherwise sleeps on the one watch its place
    /// calls for and returns `false`. `seen_touched` remembers a predecessor found touched, so
    /// that a foreign write to it makes this waiter sleep rather than spin.
    async fn wait_step(&self, dir: &str, own: &str, seen_touched: &mut Option<String>) -> Result<bool> {
        let permits = self.permits as usize;
        let waiters = sorted_waiters(self.client.children(dir).await?);
        let index = position(&waiters, own)?;
        match place(index, permits) {
            Place::Holder => Ok(true),
            Place::Next => {
                let (children, watcher) = self.client.children_and_watch(dir).await?;
                if position(&sorted_waiters(children), own)? < permits {
                    return Ok(true);
                }
                watcher.changed().await?;
                self.wakeups.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Place::Behind => {
                let predecessor = path::join(dir, &waiters[index - 1].name);
                let (stat, watcher) = self.client.exists_and_watch(&predecessor).await?;
                match stat {
                    None => return Ok(false),
                    Some(stat) if stat.version != 0 && seen_touched.as_ref() != Some(&predecessor) => {
                        // It holds already, so this waiter is next in line now: look again.
                        *seen_touched = Some(predecessor);
                        return Ok(false);
                    }
                    Some(_) => {}
                }
                watcher.changed().await?;
                self.wakeups.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }
}

fn position(waiters: &[Waiter], own: &str) -> Result<usize> {
    waiters.iter().position(|w| w.name == own).ok_or_else(|| waiter_gone(own))
}

/// Marks a new holder's node (version 0 → 1), which wakes the waiter behind it.
async fn touch(client: &Client, node: &str) -> Result<()> {
    let mut failures = 0;
    loop {
        match client.set(node, TOUCHED, Some(0)).await {
            Ok(_) => return Ok(()),
            // Touched already (a retry after a lost reply): the waiter behind has been woken.
            Err(e) if e.is_bad_version() => return Ok(()),
            Err(e) => backoff(e, &mut failures).await?,
        }
    }
}

/// One of a [`Semaphore`]'s permits, held. Release it with [`Permit::release`]; dropping it
/// releases it too (in a spawned task).
#[derive(Debug)]
#[must_use = "dropping the permit releases it"]
pub struct Permit {
    hold: Holding,
}

impl Permit {
    hold_accessors!("permit");

    /// Gives the permit back: deletes the waiter node.
    ///
    /// # Errors
    /// As [`super::lock::LockGuard::release`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: if dropped, a spawned task finishes the release.
    pub async fn release(self) -> Result<()> {
        self.hold.release().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_hold_the_next_watches_the_queue_the_rest_their_predecessor() {
        use Place::{Behind, Holder, Next};
        let places: Vec<Place> = (0..6).map(|i| place(i, 3)).collect();
        assert_eq!(places, [Holder, Holder, Holder, Next, Behind, Behind]);
        assert_eq!(place(0, 1), Holder);
        assert_eq!(place(1, 1), Next);
    }

    #[test]
    fn a_waiter_missing_from_the_queue_is_an_error() {
        let waiters = sorted_waiters(vec!["a-0-permit-0000000001".into()]);
        assert_eq!(position(&waiters, "a-0-permit-0000000001").unwrap(), 0);
        assert!(position(&waiters, "b-0-permit-0000000002").unwrap_err().is_no_node());
    }
}
