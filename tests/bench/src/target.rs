//! One connection (one session) to the system under test, with the few operations the
//! workloads need, over the three clients: `baton`, `zookeeper-client` and `etcd-client`.
//! Paths are ZooKeeper-style (`/bench/k1`) for all three; etcd uses them as flat keys.

#[cfg(feature = "etcd")]
use anyhow::Context;
use anyhow::{Result, bail};
use std::time::Duration;
use zookeeper_client as zk;

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Baton,
    Zk,
    Etcd,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Baton => "baton",
            Target::Zk => "zk",
            Target::Etcd => "etcd",
        }
    }
}

/// Where and how to connect: the target, its address and the session timeout to ask for.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub target: Target,
    pub addr: String,
    pub session_timeout: Duration,
    /// Baton only: a connection-bound session (ends when its connection closes).
    pub connection_bound: bool,
}

/// One session on the target.
pub enum Conn {
    Baton(baton::Client),
    Zk(zk::Client),
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::Client>),
}

/// A persistent watch on one path; see [`Conn::watch`].
pub enum Watch {
    Baton(baton::PersistentWatcher),
    Zk(zk::PersistentWatcher),
    #[cfg(feature = "etcd")]
    Etcd(etcd_client::WatchStream),
}

/// What a watch saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Written,
    Deleted,
}

fn zk_options(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

impl Conn {
    /// Opens a new session; up to 3 attempts, as a busy server may drop a connection attempt.
    pub async fn connect(ep: &Endpoint) -> Result<Conn> {
        let mut attempt = 1;
        loop {
            match Conn::connect_within(ep, Duration::from_secs(5)).await {
                Ok(conn) => return Ok(conn),
                Err(e) if attempt >= 3 => return Err(e.context(format!("{attempt} attempts"))),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Opens a new session, giving one connection attempt at most `timeout`.
    pub async fn connect_within(ep: &Endpoint, timeout: Duration) -> Result<Conn> {
        let conn = match ep.target {
            Target::Baton => Conn::Baton(
                baton::Client::builder()
                    .session_timeout(ep.session_timeout)
                    .connect_timeout(timeout)
                    .connection_bound(ep.connection_bound)
                    .client_name("baton-bench")
                    .connect(&ep.addr)
                    .await?,
            ),
            Target::Zk => Conn::Zk(
                zk::Client::connector()
                    .with_session_timeout(ep.session_timeout)
                    .with_connection_timeout(timeout)
                    .with_fail_eagerly()
                    .connect(&ep.addr)
                    .await?,
            ),
            #[cfg(feature = "etcd")]
            Target::Etcd => {
                let options =
                    etcd_client::ConnectOptions::new().with_connect_timeout(timeout).with_timeout(timeout * 4);
                Conn::Etcd(Box::new(etcd_client::Client::connect([ep.addr.as_str()], Some(options)).await?))
            }
            #[cfg(not(feature = "etcd"))]
            Target::Etcd => bail!("this baton-bench was built without etcd support: build it with `--features etcd`"),
        };
        Ok(conn)
    }

    /// Creates `path` unless it exists (a persistent, empty node; a no-op on etcd).
    pub async fn ensure(&mut self, path: &str) -> Result<()> {
        match self {
            Conn::Baton(c) => {
                c.create_path(path, b"").await?;
            }
            Conn::Zk(c) => match c.create(path, b"", &zk_options(zk::CreateMode::Persistent)).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e.into()),
            },
            #[cfg(feature = "etcd")]
            Conn::Etcd(_) => {}
        }
        Ok(())
    }

    /// Creates `path`, failing if it exists (etcd: a transaction on `create_revision == 0`).
    pub async fn create(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            Conn::Baton(c) => {
                c.create(path, data, baton::CreateOptions::persistent()).await?;
            }
            Conn::Zk(c) => {
                c.create(path, data, &zk_options(zk::CreateMode::Persistent)).await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                let txn = Txn::new()
                    .when([Compare::create_revision(path, CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(path, data, None)]);
                if !c.txn(txn).await?.succeeded() {
                    bail!("{path} exists");
                }
            }
        }
        Ok(())
    }

    /// Replaces the data of `path` (unconditionally).
    pub async fn set(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            Conn::Baton(c) => {
                c.set(path, data, None).await?;
            }
            Conn::Zk(c) => {
                c.set_data(path, data, None).await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                c.put(path, data, None).await?;
            }
        }
        Ok(())
    }

    /// Reads the data of `path`.
    pub async fn get(&mut self, path: &str) -> Result<Vec<u8>> {
        Ok(match self {
            Conn::Baton(c) => c.get(path).await?.0,
            Conn::Zk(c) => c.get_data(path).await?.0,
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                let reply = c.get(path, None).await?;
                reply.kvs().first().map(|kv| kv.value().to_vec()).with_context(|| format!("{path}: no such key"))?
            }
        })
    }

    /// Whether `path` exists.
    pub async fn exists(&mut self, path: &str) -> Result<bool> {
        Ok(match self {
            Conn::Baton(c) => c.exists(path).await?.is_some(),
            Conn::Zk(c) => c.check_stat(path).await?.is_some(),
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => c.get(path, None).await?.count() > 0,
        })
    }

    /// Deletes `path`.
    pub async fn delete(&mut self, path: &str) -> Result<()> {
        match self {
            Conn::Baton(c) => c.delete(path, None).await?,
            Conn::Zk(c) => c.delete(path, None).await?,
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                c.delete(path, None).await?;
            }
        }
        Ok(())
    }

    /// A persistent watch on `path` (not its children), established when this returns.
    pub async fn watch(&mut self, path: &str) -> Result<Watch> {
        Ok(match self {
            Conn::Baton(c) => Watch::Baton(c.watch(path, false).await?),
            Conn::Zk(c) => Watch::Zk(c.watch(path, zk::AddWatchMode::Persistent).await?),
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                let mut stream = c.watch(path, None).await?;
                // The first message confirms the watch is in place.
                let created = stream.message().await?.context("etcd watch stream ended")?;
                if !created.created() {
                    bail!("etcd watch not created");
                }
                #[cfg(feature = "etcd")]
                Watch::Etcd(stream)
            }
        })
    }

    /// Ends the session (its ephemerals go at once).
    pub async fn close(self) {
        match self {
            Conn::Baton(c) => {
                let _ = c.close().await;
            }
            Conn::Zk(c) => drop(c),
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => drop(c),
        }
    }
}

impl Watch {
    /// Waits for the next change of the watched path.
    pub async fn next(&mut self) -> Result<Change> {
        match self {
            Watch::Baton(w) => loop {
                let event = w.next().await?;
                match event.kind {
                    baton::EventKind::Deleted => return Ok(Change::Deleted),
                    baton::EventKind::Created | baton::EventKind::DataChanged => return Ok(Change::Written),
                    // A persistent watch is never told of turns.
                    baton::EventKind::ChildrenChanged | baton::EventKind::Turn => {}
                    baton::EventKind::WatchReset => bail!("watch reset"),
                }
            },
            Watch::Zk(w) => loop {
                let event = w.changed().await;
                match event.event_type {
                    zk::EventType::NodeDeleted => return Ok(Change::Deleted),
                    zk::EventType::NodeCreated | zk::EventType::NodeDataChanged => return Ok(Change::Written),
                    zk::EventType::NodeChildrenChanged => {}
                    zk::EventType::Session => {
                        if event.session_state.is_terminated() {
                            bail!("zookeeper session ended: {:?}", event.session_state);
                        }
                    }
                }
            },
            #[cfg(feature = "etcd")]
            Watch::Etcd(stream) => loop {
                let reply = stream.message().await?.context("etcd watch stream ended")?;
                if let Some(event) = reply.events().first() {
                    return Ok(match event.event_type() {
                        etcd_client::EventType::Delete => Change::Deleted,
                        etcd_client::EventType::Put => Change::Written,
                    });
                }
            },
        }
    }
}
