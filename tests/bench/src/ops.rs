//! The request workloads: `latency` (one client, create/set/get/delete), `write` and `read`
//! throughput with N clients each on its own session, and `watch` (set -> event on another
//! connection).

use crate::report::{Latencies, Sample};
use crate::target::{Change, Conn, Endpoint};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// The size of every value written.
pub const VALUE_LEN: usize = 100;

/// One client: `count` rounds of create, set, get, delete of a 100-byte value on a fresh
/// path, stopping early at `limit`. Reports p50/p99/p999 per operation.
///
/// The client runs in a task of the runtime, as the echo baseline's client and the throughput
/// clients do: run on the `block_on` thread instead, every reply would also pay for waking
/// that thread, which the echo it is compared with does not.
pub async fn latency(ep: &Endpoint, count: usize, limit: Duration) -> Result<Vec<Sample>> {
    let ep = ep.clone();
    tokio::spawn(async move { latency_rounds(&ep, count, limit).await }).await?
}

async fn latency_rounds(ep: &Endpoint, count: usize, limit: Duration) -> Result<Vec<Sample>> {
    let mut conn = Conn::connect(ep).await?;
    conn.ensure("/bench").await?;
    conn.ensure("/bench/lat").await?;
    let (a, b) = ([1u8; VALUE_LEN], [2u8; VALUE_LEN]);
    let mut lat: [Latencies; 4] = std::array::from_fn(|_| Latencies::with_capacity(count));
    let started = Instant::now();
    for i in 0..count {
        if started.elapsed() > limit {
            break;
        }
        let path = format!("/bench/lat/k{i}");
        let t = Instant::now();
        conn.create(&path, &a).await?;
        lat[0].record(t.elapsed());
        let t = Instant::now();
        conn.set(&path, &b).await?;
        lat[1].record(t.elapsed());
        let t = Instant::now();
        let got = conn.get(&path).await?;
        lat[2].record(t.elapsed());
        let t = Instant::now();
        conn.delete(&path).await?;
        lat[3].record(t.elapsed());
        if got.as_slice() != b.as_slice() {
            bail!("{path}: read back other data than written");
        }
    }
    conn.close().await;
    let mut out = Vec::new();
    for (name, l) in ["create", "set", "get", "delete"].into_iter().zip(lat.iter_mut()) {
        out.extend(l.percentiles(name));
    }
    out.push(Sample::new("rounds", lat[0].len() as f64, "n"));
    Ok(out)
}

/// Durable writes (`set`, 100 bytes) or reads (`get`) per second with `clients` concurrent
/// clients, each on its own session and its own node, for `duration`; with one client also
/// the p50 of its requests (µs), a back-to-back loop like the echo's it is compared with.
pub async fn throughput(ep: &Endpoint, write: bool, clients: usize, duration: Duration) -> Result<(f64, Option<f64>)> {
    let mut setup = Conn::connect(ep).await?;
    setup.ensure("/bench").await?;
    setup.ensure("/bench/tp").await?;
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut conn = Conn::connect(ep).await.with_context(|| format!("connecting client {i}"))?;
        let path = format!("/bench/tp/c{i}");
        if !conn.exists(&path).await? {
            conn.create(&path, &[0; VALUE_LEN]).await?;
        }
        conns.push((conn, path));
    }
    setup.close().await;
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for (mut conn, path) in conns {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut done = 0u64;
            let value = [3u8; VALUE_LEN];
            let mut latencies = (clients == 1).then(|| Latencies::with_capacity(100_000));
            let mut now = Instant::now();
            while now < deadline {
                if write {
                    conn.set(&path, &value).await?;
                } else {
                    conn.get(&path).await?;
                }
                done += 1;
                let then = now;
                now = Instant::now();
                if let Some(l) = latencies.as_mut() {
                    l.record(now - then);
                }
            }
            conn.close().await;
            anyhow::Ok((done, now, latencies))
        }));
    }
    let (mut total, mut last, mut p50) = (0u64, deadline, None);
    for task in tasks {
        let (done, ended, latencies) = task.await??;
        total += done;
        last = last.max(ended);
        p50 = latencies.map(|mut l| l.quantile_us(0.5));
    }
    Ok((total as f64 / (last - start).as_secs_f64(), p50))
}

/// Samples `c{N}` (ops/s) for each client count.
pub async fn throughput_all(ep: &Endpoint, write: bool, counts: &[usize], duration: Duration) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for &n in counts {
        let (rate, p50) = throughput(ep, write, n, duration).await?;
        out.push(Sample::new(format!("c{n}"), rate, "ops/s"));
        if let Some(p50) = p50 {
            out.push(Sample::new(format!("c{n}.p50"), p50, "us"));
        }
    }
    Ok(out)
}

/// `rounds` times: one client sets a node, another (with a persistent watch on it) waits for
/// the event. Reports the time from the set being sent to the event arriving.
pub async fn watch(ep: &Endpoint, rounds: usize, limit: Duration) -> Result<Vec<Sample>> {
    let path = "/bench/watched";
    let mut writer = Conn::connect(ep).await?;
    writer.ensure("/bench").await?;
    if !writer.exists(path).await? {
        writer.create(path, &[0; VALUE_LEN]).await?;
    }
    let mut watcher = Conn::connect(ep).await?;
    let mut watch = watcher.watch(path).await?;
    let mut lat = Latencies::with_capacity(rounds);
    let started = Instant::now();
    for i in 0..rounds {
        if started.elapsed() > limit {
            break;
        }
        let value = [(i % 251) as u8; VALUE_LEN];
        let t = Instant::now();
        let (set, event) = tokio::join!(writer.set(path, &value), async {
            let change = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
            (change, t.elapsed())
        });
        set?;
        let (change, took) = event;
        if change.context("no event within 10 s")?? != Change::Written {
            bail!("unexpected event");
        }
        lat.record(took);
    }
    drop(watch);
    watcher.close().await;
    writer.close().await;
    let mut out = lat.percentiles("set_to_event");
    out.push(Sample::new("rounds", lat.len() as f64, "n"));
    Ok(out)
}
