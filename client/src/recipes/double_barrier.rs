//! [`DoubleBarrier`]: `n` participants enter together and leave together.
//!
//! The algorithm is ZooKeeper's double barrier.
//!
//! **Enter.** A participant creates an ephemeral child named after its session (so a crash
//! releases its place), then loops: it asks `exists` on the `ready` child *with a watch*; if
//! `ready` is there, the barrier is open and it returns. Otherwise it counts the participant
//! children; if there are `n` or more, it is the one that completes the group: it creates
//! `ready` and returns. If fewer, it sleeps on the `ready` watch it set before counting, so the
//! creation of `ready` cannot be missed, and whatever the watch reports it looks again. No
//! polling: each participant sleeps on one watch and is woken once, when `ready` appears.
//!
//! **Leave.** The participants are ordered by name. A participant that is not the lowest
//! deletes its own node and then sleeps on an `exists` watch of the lowest one; the lowest
//! sleeps on the highest remaining one until it is alone, then deletes `ready` and its own
//! node, and that deletion releases everybody. So nobody returns from leave before every
//! participant has deleted its node, and each sleeper is woken only by the node it watches.
//!
//! The same node can serve round after round, provided a new round starts entering only after
//! every participant of the previous one has returned from [`DoubleBarrier::leave`].

use crate::{Client, CreateOptions, Result};
use baton_proto::path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name of the child whose existence opens the barrier.
pub const READY: &str = "ready";

/// Distinguishes several participants sharing one session (one process, one client).
static PARTICIPANTS: AtomicU64 = AtomicU64::new(0);

/// A double barrier under a node: [`DoubleBarrier::enter`] returns once `n` participants have
/// entered, [`DoubleBarrier::leave`] once all of them have left.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::double_barrier::DoubleBarrier;
/// let mut barrier = DoubleBarrier::new(client, "/rounds/7", 5);
/// barrier.enter().await?; // the 5 start together
/// // ... compute ...
/// barrier.leave().await?; // and finish together
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    n: usize,
    /// This participant's node name, fixed before it is created.
    name: String,
    /// Whether this participant's node may exist (set before the create is sent).
    entered: bool,
}

impl DoubleBarrier {
    /// A participant of the barrier at `path` for groups of `n` (at least 1).
    pub fn new(client: Client, path: impl Into<String>, n: usize) -> DoubleBarrier {
        let seq = PARTICIPANTS.fetch_add(1, Ordering::Relaxed);
        let name = format!("p-{:016x}-{seq:08}", client.session_id().0);
        DoubleBarrier { client, path: path.into(), n: n.max(1), name, entered: false }
    }

    /// The barrier's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This participant's node.
    pub fn node(&self) -> String {
        path::join(&self.path, &self.name)
    }

    /// Enters: creates this participant's ephemeral node and waits until `n` participants
    /// have entered.
    ///
    /// # Errors
    /// `NodeExists` if this participant has already entered, plus the connection and
    /// session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe in that [`DoubleBarrier::leave`] (or the end of the session) removes a node
    /// created by a cancelled enter; but until then it counts as entered.
    pub async fn enter(&mut self) -> Result<()> {
        self.client.create_path(&self.path, b"").await?;
        let node = self.node();
        self.entered = true;
        self.client.create(&node, b"", CreateOptions::ephemeral()).await?;
        let ready = path::join(&self.path, READY);
        loop {
            let (stat, watcher) = self.client.exists_and_watch(&ready).await?;
            if stat.is_some() {
                return Ok(());
            }
            if self.participants().await?.len() >= self.n {
                return match self.client.create(&ready, b"", CreateOptions::persistent()).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_node_exists() => Ok(()),
                    Err(e) => Err(e),
                };
            }
            watcher.changed().await?;
        }
    }

    /// Leaves: deletes this participant's node and waits until every participant has
    /// deleted theirs.
    ///
    /// # Errors
    /// The connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe: calling it again resumes the wait (this participant's node may already
    /// be gone, which is fine).
    pub async fn leave(&mut self) -> Result<()> {
        loop {
            let participants = self.participants().await?;
            let (Some(lowest), Some(highest)) = (participants.first(), participants.last()) else {
                self.entered = false;
                return Ok(());
            };
            let own = self.entered && participants.contains(&self.name);
            if own && participants.len() == 1 {
                // The last one out closes the barrier for the next round, then goes.
                self.delete(READY).await?;
                self.delete(&self.name).await?;
                self.entered = false;
                return Ok(());
            }
            let watched = if own && *lowest == self.name {
                highest.clone()
            } else {
                if own {
                    self.delete(&self.name).await?;
                }
                lowest.clone()
            };
            let (stat, watcher) = self.client.exists_and_watch(&path::join(&self.path, &watched)).await?;
            if stat.is_some() {
                watcher.changed().await?;
            }
        }
    }

    /// The participant children, sorted by name (`ready` excluded).
    async fn participants(&self) -> Result<Vec<String>> {
        match self.client.children(&self.path).await {
            Ok(mut children) => {
                children.retain(|name| name != READY);
                children.sort_unstable();
                Ok(children)
            }
            Err(e) if e.is_no_node() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the child `name`, if it is there.
    async fn delete(&self, name: &str) -> Result<()> {
        match self.client.delete(&path::join(&self.path, name), None).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_no_node() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
