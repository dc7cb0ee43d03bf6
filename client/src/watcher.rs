//! The watchers handed to callers: [`OneshotWatcher`] (from `get_and_watch`,
//! `exists_and_watch`, `children_and_watch`) and [`PersistentWatcher`] (from `watch`).
//! Dropping a watcher tells the session task to forget it (and, when it was the last one on
//! its path, to remove the server's watch).

use crate::error::Error;
use crate::watch::{OneshotKind, WatchEnd};
use baton_proto::{PersistentWatchMode, WatchEvent};
use std::sync::{Arc, OnceLock};
use tokio::sync::{Notify, mpsc, oneshot};

/// A watch that fires at most once, with the first matching change of its node.
///
/// Which changes match depends on how it was set: `get_and_watch` (data changed, deleted),
/// `exists_and_watch` (created, deleted, data changed), `children_and_watch` (children
/// changed, deleted). A `WatchReset` event also fires it: the change history after a
/// reconnect was lost, so re-read the node.
#[derive(Debug)]
#[must_use = "a watcher does nothing unless awaited"]
pub struct OneshotWatcher {
    path: String,
    kind: OneshotKind,
    receiver: oneshot::Receiver<Result<WatchEvent, WatchEnd>>,
    gc: Arc<Notify>,
    done: bool,
}

impl OneshotWatcher {
    pub(crate) fn new(
        path: String,
        kind: OneshotKind,
        receiver: oneshot::Receiver<Result<WatchEvent, WatchEnd>>,
        gc: Arc<Notify>,
    ) -> Self {
        OneshotWatcher { path, kind, receiver, gc, done: false }
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Discards a watcher whose request failed (so nothing was registered), passing the
    /// request's error through.
    pub(crate) fn disarm(mut self, error: Error) -> Error {
        self.done = true;
        error
    }

    /// Discards a watcher that the session did not register because the reply left no watch
    /// (a turn that came at once): nothing to sweep.
    pub(crate) fn discard(mut self) {
        self.done = true;
    }

    /// Waits for the change.
    ///
    /// # Errors
    /// [`Error::SessionExpired`] or [`Error::Closed`] when the session ends first.
    ///
    /// # Cancellation safety
    /// Not cancel-safe: the watcher is consumed, so a cancelled call loses the event. In a
    /// `select!` loop, create the future once (`let changed = watcher.changed();
    /// tokio::pin!(changed);`) and poll `&mut changed`.
    pub async fn changed(mut self) -> Result<WatchEvent, Error> {
        let result = (&mut self.receiver).await;
        self.done = true;
        match result {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(end)) => Err(end.into()),
            Err(_) => Err(Error::Closed),
        }
    }
}

impl Drop for OneshotWatcher {
    fn drop(&mut self) {
        if !self.done {
            // The session task sweeps abandoned watchers when notified.
            self.receiver.close();
            tracing::trace!(path = %self.path, kind = ?self.kind, "one-shot watcher dropped");
            self.gc.notify_one();
        }
    }
}

/// A watch that stays registered and yields every matching change, in zxid order.
///
/// Made by [`crate::Client::watch`]: a persistent watch sees `Created`, `Deleted`,
/// `DataChanged` and `ChildrenChanged` of its path; a recursive one sees `Created`,
/// `Deleted` and `DataChanged` of its path and every descendant. Either may also yield
/// `WatchReset`: changes during a reconnect could not be replayed, so re-read the state.
///
/// Events are buffered up to the client's `watch_queue_len`; a watcher that falls further
/// behind ends with [`Error::WatchOverflow`] after its buffered events. Dropping the watcher
/// removes the watch (server-side too, once no other watcher of this client remains on the
/// path).
#[derive(Debug)]
pub struct PersistentWatcher {
    path: String,
    mode: PersistentWatchMode,
    events: mpsc::Receiver<WatchEvent>,
    end: Arc<OnceLock<WatchEnd>>,
    gc: Arc<Notify>,
}

impl PersistentWatcher {
    pub(crate) fn new(
        path: String,
        mode: PersistentWatchMode,
        events: mpsc::Receiver<WatchEvent>,
        end: Arc<OnceLock<WatchEnd>>,
        gc: Arc<Notify>,
    ) -> Self {
        PersistentWatcher { path, mode, events, end, gc }
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the watch covers the path's descendants.
    pub fn is_recursive(&self) -> bool {
        self.mode == PersistentWatchMode::Recursive
    }

    /// The next change.
    ///
    /// # Errors
    /// Once the watcher has ended, this and every later call fail with the reason:
    /// [`Error::SessionExpired`], [`Error::Closed`] or [`Error::WatchOverflow`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: an event is never lost to a cancelled call.
    pub async fn next(&mut self) -> Result<WatchEvent, Error> {
        match self.events.recv().await {
            Some(event) => Ok(event),
            None => Err(self.end.get().copied().map_or(Error::Closed, Error::from)),
        }
    }
}

impl Drop for PersistentWatcher {
    fn drop(&mut self) {
        self.events.close();
        self.gc.notify_one();
    }
}
