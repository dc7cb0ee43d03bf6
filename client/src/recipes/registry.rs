//! [`ServiceRegistry`]: register service instances with metadata, discover them, and watch
//! the set change.
//!
//! Layout: `<root>/<service>/<instance_id>`, one **ephemeral** node per instance holding its
//! metadata (any bytes; JSON is customary). Registering creates the node (and the persistent
//! service and root nodes if missing); deregistering deletes it; and because it is ephemeral,
//! it also disappears by itself when the registering session ends — a crashed instance leaves
//! the registry within one session timeout, or at once with a connection-bound session.
//!
//! Discovery lists the service's children and reads each one's metadata (an instance that
//! vanishes between the two is skipped). Watching sets one persistent **recursive** watch on
//! the service node *before* the first read, so no change can fall between reading and
//! watching; then every create, delete or metadata change of an instance (or a `WatchReset`
//! after a reconnect) triggers a fresh read, and the new set is published whenever it differs
//! from the last one. Events that arrive while a read is running are folded into the next
//! read, so a burst of changes costs one read, and the watcher always ends on the current set.

use crate::recipes::cache::{retrying, try_next};
use crate::{Client, CreateOptions, Error, PersistentWatcher, Result, Stat};
use baton_proto::path;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The root used by [`ServiceRegistry::default_root`].
pub const DEFAULT_ROOT: &str = "/services";

/// Service registration and discovery under a root node.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::registry::ServiceRegistry;
/// let registry = ServiceRegistry::default_root(client);
/// let me = registry.register("api", "host-a:8080", br#"{"zone":"a"}"#).await?;
/// let mut set = registry.watch("api").await?;
/// assert!(set.current().iter().any(|i| i.id == "host-a:8080"));
/// let changed = set.changed().await?; // the whole set after the next change
/// # drop(changed);
/// me.deregister().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ServiceRegistry {
    client: Client,
    root: String,
}

/// One registered instance of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The instance id it registered with (its node's name).
    pub id: String,
    /// The metadata it registered with (or last updated to).
    pub metadata: Vec<u8>,
    /// Its node's stat: `ephemeral_owner` is the registering session.
    pub stat: Stat,
}

/// A live registration: the instance's ephemeral node. Dropping it does not deregister; the
/// node lives until [`Registration::deregister`] or the end of the session.
#[derive(Clone, Debug)]
pub struct Registration {
    client: Client,
    path: String,
}

impl ServiceRegistry {
    /// A registry under `root` (created when first needed).
    pub fn new(client: Client, root: impl Into<String>) -> ServiceRegistry {
        ServiceRegistry { client, root: root.into() }
    }

    /// A registry under [`DEFAULT_ROOT`].
    pub fn default_root(client: Client) -> ServiceRegistry {
        ServiceRegistry::new(client, DEFAULT_ROOT)
    }

    /// The registry's root node.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The node of `service`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `service` is not a single path segment.
    pub fn service_path(&self, service: &str) -> Result<String> {
        check_segment("service", service)?;
        Ok(path::join(&self.root, service))
    }

    /// Registers instance `instance_id` of `service` with `metadata`, as an ephemeral node
    /// owned by this client's session.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `service` or `instance_id` is not a single path segment;
    /// `NodeExists` if that instance is already registered (perhaps by a session that has
    /// not expired yet); `TooLarge`; plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a create already sent may take effect (and lasts until the
    /// session ends).
    pub async fn register(&self, service: &str, instance_id: &str, metadata: &[u8]) -> Result<Registration> {
        check_segment("instance id", instance_id)?;
        let service_path = self.service_path(service)?;
        let node = path::join(&service_path, instance_id);
        let created = match self.client.create(&node, metadata, CreateOptions::ephemeral()).await {
            Err(e) if e.is_no_node() => {
                self.client.create_path(&service_path, b"").await?;
                self.client.create(&node, metadata, CreateOptions::ephemeral()).await
            }
            other => other,
        };
        created?;
        Ok(Registration { client: self.client.clone(), path: node })
    }

    /// The instances of `service` registered now, sorted by id (none if the service is
    /// unknown).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad service name, plus the connection and session
    /// errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn discover(&self, service: &str) -> Result<Vec<Instance>> {
        read_instances(&self.client, &self.service_path(service)?).await
    }

    /// Watches `service`: the returned [`InstanceWatch`] holds the current set and yields the
    /// whole set again after every change.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad service name, plus the connection and session
    /// errors of setting the watch and the first read.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a watch set by a cancelled call is removed again.
    pub async fn watch(&self, service: &str) -> Result<InstanceWatch> {
        let service_path = self.service_path(service)?;
        // Watch first, then read: a change after the read is then always seen.
        let watcher = self.client.watch(&service_path, true).await?;
        let first = read_instances(&self.client, &service_path).await?;
        let (sender, receiver) = watch::channel(first);
        let end = Arc::new(Mutex::new(None));
        let follower = Follower { client: self.client.clone(), path: service_path, watcher, sender, end: end.clone() };
        let task = tokio::spawn(follower.run());
        Ok(InstanceWatch { receiver, end, task })
    }
}

impl Registration {
    /// The instance's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Replaces the instance's metadata; watchers see the change.
    ///
    /// # Errors
    /// `NoNode` if the registration is gone (deregistered, or its session ended), `TooLarge`,
    /// plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a write already sent may take effect.
    pub async fn update(&self, metadata: &[u8]) -> Result<()> {
        self.client.set(&self.path, metadata, None).await.map(drop)
    }

    /// Deregisters: deletes the instance's node. Succeeds if it is already gone.
    ///
    /// # Errors
    /// The connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe, though a delete already sent may take effect.
    pub async fn deregister(self) -> Result<()> {
        match self.client.delete(&self.path, None).await {
            Err(e) if !e.is_no_node() => Err(e),
            _ => Ok(()),
        }
    }
}

/// The instance set of one service, kept current by a background task that stops when this
/// is dropped.
#[derive(Debug)]
pub struct InstanceWatch {
    receiver: watch::Receiver<Vec<Instance>>,
    end: Arc<Mutex<Option<Error>>>,
    task: JoinHandle<()>,
}

impl InstanceWatch {
    /// The latest set seen.
    pub fn current(&self) -> Vec<Instance> {
        self.receiver.borrow().clone()
    }

    /// Waits until the set differs from the one last returned (by this or
    /// [`InstanceWatch::current`] at creation), and returns the new set. Sets that follow
    /// one another quickly may be folded into the latest.
    ///
    /// # Errors
    /// Why the watch ended: [`Error::SessionExpired`], [`Error::Closed`], or an error of
    /// re-reading the set.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a change is never lost to a cancelled call.
    pub async fn changed(&mut self) -> Result<Vec<Instance>> {
        match self.receiver.changed().await {
            Ok(()) => Ok(self.receiver.borrow_and_update().clone()),
            Err(_) => Err(self.end.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or(Error::Closed)),
        }
    }
}

impl Drop for InstanceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task behind an [`InstanceWatch`].
struct Follower {
    client: Client,
    path: String,
    watcher: PersistentWatcher,
    sender: watch::Sender<Vec<Instance>>,
    end: Arc<Mutex<Option<Error>>>,
}

impl Follower {
    async fn run(mut self) {
        let error = loop {
            if let Err(e) = self.follow().await {
                break e;
            }
        };
        tracing::debug!(path = %self.path, %error, "service watch ended");
        *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        // Dropping the sender wakes the receiver with the end.
    }

    /// Waits for a change, then re-reads and publishes the set if it differs.
    async fn follow(&mut self) -> Result<()> {
        if let Err(e) = self.watcher.next().await {
            self.recover(e).await?;
        }
        // Fold the events already queued into this one read.
        while let Some(event) = try_next(&mut self.watcher) {
            if let Err(e) = event {
                self.recover(e).await?;
            }
        }
        // A lost connection must not end the watch: the client reconnects, retry the read.
        let set = retrying(|| read_instances(&self.client, &self.path)).await?;
        self.sender.send_if_modified(|current| {
            let changed = *current != set;
            if changed {
                *current = set;
            }
            changed
        });
        Ok(())
    }

    /// Watches afresh after an overflow (the read that follows catches up with what was
    /// lost); any other end of the watcher ends the task.
    async fn recover(&mut self, error: Error) -> Result<()> {
        match error {
            Error::WatchOverflow => {
                self.watcher = retrying(|| self.client.watch(&self.path, true)).await?;
                Ok(())
            }
            other => Err(other),
        }
    }
}

/// The instances under `service_path`, sorted by id.
async fn read_instances(client: &Client, service_path: &str) -> Result<Vec<Instance>> {
    let ids = match client.children(service_path).await {
        Ok(ids) => ids,
        Err(e) if e.is_no_node() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut instances = Vec::with_capacity(ids.len());
    for id in ids {
        match client.get(&path::join(service_path, &id)).await {
            Ok((metadata, stat)) => instances.push(Instance { id, metadata, stat }),
            Err(e) if e.is_no_node() => {} // gone since the listing
            Err(e) => return Err(e),
        }
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(instances)
}

/// Checks that `name` can be one path segment.
fn check_segment(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty() && !name.contains('/') && path::validate(&format!("/{name}")).is_ok();
    if valid { Ok(()) } else { Err(Error::InvalidArgument(format!("{what} {name:?} is not a single path segment"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_single_segments() {
        for good in ["api", "host-a:8080", "x.y"] {
            assert!(check_segment("id", good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", ".", "..", "tab\there"] {
            assert!(check_segment("id", bad).is_err(), "{bad:?}");
        }
    }
}
