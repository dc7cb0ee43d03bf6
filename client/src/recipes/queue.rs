//! [`Queue`]: a FIFO queue whose items are each taken exactly once, however many consumers
//! compete.
//!
//! The algorithm is ZooKeeper's queue recipe. [`Queue::put`] creates a persistent sequential
//! child `item-NNNNNNNNNN` holding the item; the server's suffix (the parent's `cversion`,
//! which only grows) fixes the FIFO order. A consumer lists the children, sorts the items by
//! suffix and tries them oldest first: it reads the item's data, then deletes the node. Only
//! the consumer whose delete succeeds owns the item; one that gets `NoNode` (from the read or
//! the delete) lost that item to another consumer and tries the next. A consumer moves past
//! an item only once it has seen that item gone, so items leave the queue in suffix order.
//! When the list holds no item, [`Queue::take`] sleeps on the children watch left by the
//! same listing, so an item put meanwhile cannot be missed, and lists again when it fires.
//!
//! Every waiting consumer wakes on every change of the list (ZooKeeper's queue has the same
//! herd); each item still goes to exactly one of them.
//!
//! A take's delete is its commit point. [`Queue::take_timeout`] only ever gives up while
//! waiting for an item, never between a successful delete and returning its data; but a
//! caller that cancels a take (drops its future) mid-delete, or a delete that fails with
//! `ConnectionLoss`, may leave an item removed without anyone having received it.

use crate::{Client, CreateOptions, Result};
use baton_proto::path;
use std::time::Duration;
use tokio::time::Instant;

/// The name prefix of the queue's item nodes; other children of the queue node are ignored.
pub const ITEM_PREFIX: &str = "item-";

/// A distributed FIFO queue under a node.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::queue::Queue;
/// let jobs = Queue::new(client, "/jobs");
/// jobs.put(b"resize photo 17").await?;
/// let job = jobs.take().await?; // blocks while the queue is empty
/// assert_eq!(job, b"resize photo 17");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    path: String,
}

/// What one pass over the queue found.
enum Pass {
    Taken(Vec<u8>),
    /// Items were listed but all went to other consumers: list again at once.
    Lost,
    /// No item was listed; the watcher fires when the list changes.
    Empty(crate::OneshotWatcher),
}

impl Queue {
    /// A queue under the node at `path`, which is created (with its parents) when first
    /// needed.
    pub fn new(client: Client, path: impl Into<String>) -> Queue {
        Queue { client, path: path.into() }
    }

    /// The queue's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Appends an item and returns the path of its node.
    ///
    /// # Errors
    /// `TooLarge` if `data` exceeds the server's node size limit, plus the connection and
    /// session errors. After [`crate::Error::ConnectionLoss`] the item may or may not have
    /// been queued.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a create already sent may take effect.
    pub async fn put(&self, data: &[u8]) -> Result<String> {
        let item = path::join(&self.path, ITEM_PREFIX);
        let options = CreateOptions::persistent().sequential();
        match self.client.create(&item, data, options).await {
            Ok((created, _)) => Ok(created),
            Err(e) if e.is_no_node() => {
                self.client.create_path(&self.path, b"").await?;
                Ok(self.client.create(&item, data, options).await?.0)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes and returns the oldest item, waiting while the queue is empty.
    ///
    /// # Errors
    /// The connection and session errors. If the delete that takes an item fails with
    /// [`crate::Error::ConnectionLoss`], the item may have been removed without being
    /// returned.
    ///
    /// # Cancellation safety
    /// Not cancel-safe: cancelled while deleting an item, the item may be removed without
    /// being returned. Use [`Queue::take_timeout`] to bound the wait safely.
    pub async fn take(&self) -> Result<Vec<u8>> {
        // Without a deadline it only returns once it has an item.
        self.take_until(None).await.map(Option::unwrap_or_default)
    }

    /// Like [`Queue::take`], but gives up (returning `None`) once the queue has stayed empty
    /// until `timeout` has passed. The timeout never interrupts taking an item.
    ///
    /// # Errors
    /// As [`Queue::take`].
    ///
    /// # Cancellation safety
    /// Not cancel-safe, as [`Queue::take`].
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.take_until(Some(Instant::now() + timeout)).await
    }

    /// Removes and returns the oldest item, or `None` at once if the queue is empty.
    ///
    /// # Errors
    /// As [`Queue::take`].
    ///
    /// # Cancellation safety
    /// Not cancel-safe, as [`Queue::take`].
    pub async fn try_take(&self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.pass().await? {
                Pass::Taken(data) => return Ok(Some(data)),
                Pass::Lost => {}
                Pass::Empty(_) => return Ok(None),
            }
        }
    }

    /// The number of items queued now.
    ///
    /// # Errors
    /// The connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn len(&self) -> Result<usize> {
        match self.client.children(&self.path).await {
            Ok(children) => Ok(children.iter().filter(|name| is_item(name)).count()),
            Err(e) if e.is_no_node() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Whether the queue holds no item now.
    ///
    /// # Errors
    /// The connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Takes an item, waiting for one until `deadline` (`None`: for ever).
    async fn take_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>> {
        loop {
            let watcher = match self.pass().await? {
                Pass::Taken(data) => return Ok(Some(data)),
                Pass::Lost => continue,
                Pass::Empty(watcher) => watcher,
            };
            // Any event (a child added, the queue node deleted, a watch reset): list again.
            match deadline {
                None => {
                    watcher.changed().await?;
                }
                Some(deadline) => match tokio::time::timeout_at(deadline, watcher.changed()).await {
                    Ok(event) => {
                        event?;
                    }
                    Err(_elapsed) => return Ok(None),
                },
            }
        }
    }

    /// Lists the items (leaving a children watch) and tries to take them, oldest first.
    async fn pass(&self) -> Result<Pass> {
        let (children, watcher) = match self.client.children_and_watch(&self.path).await {
            Ok(found) => found,
            Err(e) if e.is_no_node() => {
                // Consumers may start before any producer: make the node to watch.
                self.client.create_path(&self.path, b"").await?;
                self.client.children_and_watch(&self.path).await?
            }
            Err(e) => return Err(e),
        };
        let items = oldest_first(children);
        if items.is_empty() {
            return Ok(Pass::Empty(watcher));
        }
        drop(watcher);
        for name in items {
            if let Some(data) = self.try_item(&path::join(&self.path, &name)).await? {
                return Ok(Pass::Taken(data));
            }
        }
        Ok(Pass::Lost)
    }

    /// Reads then deletes one item node. `None` if another consumer took it first.
    async fn try_item(&self, item: &str) -> Result<Option<Vec<u8>>> {
        let (data, stat) = match self.client.get(item).await {
            Ok(found) => found,
            Err(e) if e.is_no_node() => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.client.delete(item, Some(stat.version)).await {
            Ok(()) => Ok(Some(data)),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a child's name is an item's: the prefix and a sequential suffix.
fn is_item(name: &str) -> bool {
    name.strip_prefix(ITEM_PREFIX).is_some_and(|rest| rest.len() == 10) && super::sequence_of(name).is_some()
}

/// The item names among `children`, oldest (lowest suffix) first.
fn oldest_first(children: Vec<String>) -> Vec<String> {
    let mut items: Vec<(i32, String)> =
        children.into_iter().filter_map(|name| Some((super::sequence_of(&name)?, name))).collect();
    items.retain(|(_, name)| is_item(name));
    items.sort_unstable();
    items.into_iter().map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_items_by_suffix_and_ignores_other_children() {
        let children = ["item-0000000010", "lock", "item-0000000002", "item-12", "other-0000000001", "item-0000000100"]
            .map(String::from)
            .to_vec();
        assert_eq!(oldest_first(children), ["item-0000000002", "item-0000000010", "item-0000000100"]);
    }

    #[test]
    fn recognises_item_names() {
        assert!(is_item("item-0000000000"));
        assert!(!is_item("item-000000000x"));
        assert!(!is_item("item-"));
        assert!(!is_item("xitem-0000000001"));
    }
}
