//! The `lock` workload: contenders, each on its own session, loop acquire -> release on one
//! lock. Baton uses its `Lock` recipe; ZooKeeper the standard recipe (an ephemeral-sequential
//! node, a watch on the immediate predecessor only); etcd its lock API with a lease.

use crate::report::{Latencies, Sample};
use crate::target::{Conn, Endpoint};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use zookeeper_client as zk;

const LOCK_PATH: &str = "/bench/lock";

/// One contender's lock handle.
enum Contender {
    Baton(baton::recipes::lock::Lock),
    Zk(zk::Client),
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::Client>, i64),
}

/// What a held lock needs for its release.
enum Held {
    Baton(baton::recipes::lock::LockGuard),
    Zk(String),
    #[cfg(feature = "etcd")]
    Etcd(Vec<u8>),
}

impl Contender {
    async fn new(ep: &Endpoint) -> Result<Contender> {
        Ok(match Conn::connect(ep).await? {
            Conn::Baton(c) => Contender::Baton(baton::recipes::lock::Lock::new(c, LOCK_PATH)),
            Conn::Zk(c) => Contender::Zk(c),
            #[cfg(feature = "etcd")]
            Conn::Etcd(mut c) => {
                // Longer than any run, so no keep-alive is needed; revoked at the end.
                let lease = c.lease_grant(120, None).await?.id();
                #[cfg(feature = "etcd")]
                Contender::Etcd(c, lease)
            }
        })
    }

    async fn acquire(&mut self) -> Result<Held> {
        Ok(match self {
            Contender::Baton(lock) => Held::Baton(lock.acquire().await?),
            Contender::Zk(c) => Held::Zk(zk_acquire(c).await?),
            #[cfg(feature = "etcd")]
            Contender::Etcd(c, lease) => {
                let options = etcd_client::LockOptions::new().with_lease(*lease);
                #[cfg(feature = "etcd")]
                Held::Etcd(c.lock(LOCK_PATH, Some(options)).await?.key().to_vec())
            }
        })
    }

    async fn release(&mut self, held: Held) -> Result<()> {
        match (self, held) {
            (Contender::Baton(_), Held::Baton(guard)) => guard.release().await?,
            (Contender::Zk(c), Held::Zk(path)) => c.delete(&path, None).await?,
            #[cfg(feature = "etcd")]
            (Contender::Etcd(c, _), Held::Etcd(key)) => {
                c.unlock(key).await?;
            }
            _ => anyhow::bail!("lock handle of another target"),
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "etcd"), allow(clippy::unused_async))]
    async fn close(self) {
        match self {
            Contender::Baton(_) | Contender::Zk(_) => {}
            #[cfg(feature = "etcd")]
            Contender::Etcd(mut c, lease) => {
                let _ = c.lease_revoke(lease).await;
            }
        }
    }
}

/// The standard ZooKeeper lock recipe: create an ephemeral-sequential node; if it is the
/// lowest, the lock is held; else watch the next lower node only and look again when it goes.
async fn zk_acquire(c: &zk::Client) -> Result<String> {
    let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = c.create(&format!("{LOCK_PATH}/n-"), b"", &options).await?;
    let me = format!("n-{seq}");
    loop {
        let mut children = c.list_children(LOCK_PATH).await?;
        children.sort_by_key(|name| sequence_of(name));
        let at = children.iter().position(|n| *n == me).context("own lock node is gone")?;
        if at == 0 {
            return Ok(format!("{LOCK_PATH}/{me}"));
        }
        let predecessor = format!("{LOCK_PATH}/{}", children[at - 1]);
        let (stat, watcher) = c.check_and_watch_stat(&predecessor).await?;
        if stat.is_some() {
            watcher.changed().await;
        }
    }
}

fn sequence_of(name: &str) -> u64 {
    name.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
}

/// `contenders` sessions loop acquire -> release for `duration`. Reports handoffs per second
/// and the wait (from asking to holding) p50/p99.
pub async fn lock(ep: &Endpoint, contenders: usize, duration: Duration) -> Result<Vec<Sample>> {
    let mut setup = Conn::connect(ep).await?;
    setup.ensure("/bench").await?;
    setup.ensure(LOCK_PATH).await?;
    setup.close().await;
    let mut handles = Vec::with_capacity(contenders);
    for _ in 0..contenders {
        handles.push(Contender::new(ep).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(contenders);
    for mut c in handles {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut waits = Latencies::with_capacity(4096);
            while Instant::now() < deadline {
                let t = Instant::now();
                let held = c.acquire().await?;
                waits.record(t.elapsed());
                c.release(held).await?;
            }
            let ended = Instant::now();
            let wakeups = match &c {
                Contender::Baton(lock) => Some(lock.wakeups()),
                Contender::Zk(_) => None,
                #[cfg(feature = "etcd")]
                Contender::Etcd(..) => None,
            };
            c.close().await;
            anyhow::Ok((waits, ended, wakeups))
        }));
    }
    let (mut all, mut last, mut wakeups) = (Latencies::default(), deadline, None);
    for task in tasks {
        let (waits, ended, woken) = task.await??;
        all.extend(waits);
        last = last.max(ended);
        wakeups = woken.map(|n| n + wakeups.unwrap_or(0));
    }
    let acquisitions = all.len();
    let handoffs = acquisitions as f64 / (last - start).as_secs_f64();
    let mut out = vec![Sample::new("handoffs", handoffs, "ops/s")];
    out.push(Sample::new("wait.p50", all.quantile_us(0.5), "us"));
    out.push(Sample::new("wait.p99", all.quantile_us(0.99), "us"));
    if let Some(woken) = wakeups {
        // Baton's recipe counts its waiters' wake-ups: 1 per acquisition is the herd-free ideal.
        out.push(Sample::new("wakeups_per_acquire", woken as f64 / acquisitions.max(1) as f64, "n"));
    }
    Ok(out)
}
