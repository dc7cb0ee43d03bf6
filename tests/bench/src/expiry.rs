//! The `expiry` workload: a child process (this binary in its hidden `hold` mode) holds an
//! ephemeral node (etcd: a key bound to a lease), with a 2 s session (lease); the child is
//! SIGKILLed, and another client measures the time until it sees the node gone.

use crate::report::Sample;
use crate::target::{Change, Conn, Endpoint, Target};
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use zookeeper_client as zk;

/// How long a `hold` child lives at most if nobody kills it.
const HOLD_MAX: Duration = Duration::from_secs(60);

/// The child's side: hold an ephemeral `path`, print `ready`, then wait to be killed.
pub async fn hold(ep: &Endpoint, path: &str) -> Result<()> {
    let mut conn = Conn::connect(ep).await?;
    conn.ensure("/bench").await?;
    conn.ensure("/bench/exp").await?;
    let keeper: Option<LeaseKeeper> = match &mut conn {
        Conn::Baton(c) => {
            c.create(path, b"held", baton::CreateOptions::ephemeral()).await?;
            None
        }
        Conn::Zk(c) => {
            c.create(path, b"held", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())).await?;
            None
        }
        #[cfg(feature = "etcd")]
        Conn::Etcd(c) => {
            let ttl_s = ep.session_timeout.as_secs().max(1) as i64;
            let lease = c.lease_grant(ttl_s, None).await?.id();
            c.put(path, "held", Some(etcd_client::PutOptions::new().with_lease(lease))).await?;
            Some(c.lease_keep_alive(lease).await?)
        }
    };
    println!("ready");
    let until = Instant::now() + HOLD_MAX;
    if let Some(keeper) = keeper {
        return keep_lease(keeper, until, ep.session_timeout / 3).await;
    }
    tokio::time::sleep_until(until.into()).await;
    Ok(())
}

/// What keeps an etcd lease alive (nothing to keep without etcd support).
#[cfg(feature = "etcd")]
type LeaseKeeper = (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream);
#[cfg(not(feature = "etcd"))]
type LeaseKeeper = std::convert::Infallible;

/// etcd leases need the client to renew them; at a third of the TTL, like a ping.
#[cfg(feature = "etcd")]
async fn keep_lease((mut keeper, mut replies): LeaseKeeper, until: Instant, every: std::time::Duration) -> Result<()> {
    while Instant::now() < until {
        keeper.keep_alive().await?;
        replies.message().await?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

#[cfg(not(feature = "etcd"))]
#[allow(clippy::unused_async)]
async fn keep_lease(keeper: LeaseKeeper, _until: Instant, _every: std::time::Duration) -> Result<()> {
    match keeper {}
}

/// One repetition: start a holder, kill it, time until the node is seen gone (ms).
pub async fn kill_to_gone(ep: &Endpoint, bench_args: &[String], path: &str) -> Result<f64> {
    let mut observer = Conn::connect(&Endpoint { connection_bound: false, ..ep.clone() }).await?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(bench_args)
        .args(["hold", "--path", path])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(15), read).await.context("holder not ready in 15 s")??;
    if line.trim() != "ready" {
        bail!("holder failed: {line:?}");
    }
    if !observer.exists(path).await? {
        bail!("{path} missing after the holder created it");
    }
    let mut watch = observer.watch(path).await?;
    let pid = Pid::from_raw(i32::try_from(child.id().context("child pid")?)?);
    kill(pid, Signal::SIGKILL)?;
    let killed = Instant::now();
    let limit = ep.session_timeout * 5 + Duration::from_secs(5);
    loop {
        let change = tokio::time::timeout(limit.saturating_sub(killed.elapsed()), watch.next()).await;
        if change.context("node not gone in time")?? == Change::Deleted {
            break;
        }
    }
    let took = killed.elapsed();
    child.wait().await?;
    drop(watch);
    observer.close().await;
    Ok(took.as_secs_f64() * 1000.0)
}

/// Samples `kill_to_gone` (ms) with the endpoint's session timeout, and for Baton also
/// `kill_to_gone.connection_bound` (a session that ends with its connection).
pub async fn expiry(ep: &Endpoint, bench_args: &[String], rep: usize) -> Result<Vec<Sample>> {
    let tag = format!("{}-{rep}", std::process::id());
    let mut out = Vec::new();
    let args = with_session(bench_args, ep, false);
    let ms = kill_to_gone(ep, &args, &format!("/bench/exp/k{tag}")).await?;
    out.push(Sample::new("kill_to_gone", ms, "ms"));
    if ep.target == Target::Baton && !ep.addr.contains(':') {
        let bound = Endpoint { connection_bound: true, ..ep.clone() };
        let args = with_session(bench_args, ep, true);
        let ms = kill_to_gone(&bound, &args, &format!("/bench/exp/b{tag}")).await?;
        out.push(Sample::new("kill_to_gone.connection_bound", ms, "ms"));
    }
    Ok(out)
}

fn with_session(bench_args: &[String], ep: &Endpoint, bound: bool) -> Vec<String> {
    let mut args = bench_args.to_vec();
    args.push("--session-timeout-ms".into());
    args.push(ep.session_timeout.as_millis().to_string());
    if bound {
        args.push("--connection-bound".into());
    }
    args
}
