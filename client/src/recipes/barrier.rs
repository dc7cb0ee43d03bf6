//! [`Barrier`]: a node whose existence holds waiters back.
//!
//! The algorithm is ZooKeeper's simple barrier. Whoever controls the barrier creates its node
//! ([`Barrier::set`]) and later deletes it ([`Barrier::remove`]); waiters ([`Barrier::wait`])
//! ask `exists` with a watch: if the node is absent they pass at once, otherwise they sleep on
//! the watch and ask again when it fires (a data change or a `WatchReset` merely makes them
//! look again). Because the watch is left by the same request that reads the node's state,
//! no deletion can slip between the look and the sleep. Removing the node releases every
//! waiter at once, which is the point of a barrier, so there is no herd to avoid.
//!
//! The file also holds `ensure_path`, the `mkdir -p` the other recipes use to create their
//! parent nodes.

use crate::{Client, CreateOptions, Result};
use std::time::Duration;

/// A barrier: while its node exists, [`Barrier::wait`] blocks; deleting it releases every
/// waiter.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::barrier::Barrier;
/// let barrier = Barrier::new(client, "/jobs/42/start");
/// barrier.set().await?; // hold everyone back
/// // ... elsewhere, workers call `barrier.wait().await?` ...
/// barrier.remove().await?; // and release them all
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// A barrier on the node at `path` (which need not exist, nor its parents).
    pub fn new(client: Client, path: impl Into<String>) -> Barrier {
        Barrier { client, path: path.into() }
    }

    /// The barrier's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Raises the barrier: creates its node (and any missing parents) as persistent nodes.
    /// Returns `false` if it was already raised.
    ///
    /// # Errors
    /// The client's errors (`InvalidPath`, `NoChildrenForEphemerals` if a parent is
    /// ephemeral, connection and session errors).
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a create already sent may take effect.
    pub async fn set(&self) -> Result<bool> {
        if let Some(parent) = baton_proto::path::parent(&self.path) {
            self.client.create_path(parent, b"").await?;
        }
        match self.client.create(&self.path, b"", CreateOptions::persistent()).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_node_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lowers the barrier: deletes its node, releasing every waiter. Returns `false` if it
    /// was not raised.
    ///
    /// # Errors
    /// `NotEmpty` if someone created children under the node, plus the connection and
    /// session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a delete already sent may take effect.
    pub async fn remove(&self) -> Result<bool> {
        match self.client.delete(&self.path, None).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_no_node() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the barrier is raised now.
    ///
    /// # Errors
    /// The connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn is_set(&self) -> Result<bool> {
        Ok(self.client.exists(&self.path).await?.is_some())
    }

    /// Waits until the barrier's node is absent (returns at once if it is already).
    ///
    /// # Errors
    /// The connection and session errors; [`crate::Error::SessionExpired`] or
    /// [`crate::Error::Closed`] if the session ends while waiting.
    ///
    /// # Cancellation safety
    /// Cancel-safe: waiting changes nothing on the server.
    pub async fn wait(&self) -> Result<()> {
        loop {
            let (stat, watcher) = self.client.exists_and_watch(&self.path).await?;
            if stat.is_none() {
                return Ok(());
            }
            // Any event (deleted, data changed, watch reset) means: look again.
            watcher.changed().await?;
        }
    }

    /// Like [`Barrier::wait`], giving up after `timeout`: returns whether the barrier was
    /// passed.
    ///
    /// # Errors
    /// As [`Barrier::wait`].
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        match tokio::time::timeout(timeout, self.wait()).await {
            Ok(passed) => passed.map(|()| true),
            Err(_elapsed) => Ok(false),
        }
    }
}
