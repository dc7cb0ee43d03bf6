//! `scale`: how a server's costs grow with what it holds. Three curves, each a list of steps:
//! - `nodes`: the tree grows (by 100-byte nodes, filled with 64 clients) to each step; at each,
//!   resident memory, data directory, and the p50 of `get` and `set` on random filled nodes;
//! - `clients`: idle sessions (one connection each) grow to each step; at each, resident
//!   memory and `get`/`set` p50 from one more client, then every session puts a watch on one
//!   node and `set`s of it are timed until the last watcher has its event (fan-out);
//! - `sizes`: `set` and `get` p50 of one node holding values of each size.
//!
//! Start-up time against the tree's size is measured by `scaling.sh` with the `startup`
//! workload. Like every workload, nothing here asserts a time.

use crate::footprint::{self, rss_kib};
use crate::report::{Latencies, Sample};
use crate::target::{Conn, Endpoint};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Timed operations per latency figure.
const ROUNDS: usize = 300;
/// Sessions opened at once while growing the `clients` curve.
const CONNECT_BATCH: usize = 64;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A cheap deterministic spread over `0..n` (no RNG dependency): the i-th of a stride walk.
fn spread(i: usize, n: usize) -> usize {
    (i.wrapping_mul(7919) + 13) % n.max(1)
}

/// Grows the tree from `from` to `to` filled nodes, then samples memory, disk and latency.
pub async fn nodes(ep: &Endpoint, pid: u32, data_dir: &Path, from: usize, to: usize) -> Result<Vec<Sample>> {
    let rate = footprint::fill_range(ep, from, to).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(pid)?;
    let disk = footprint::dir_bytes(data_dir)?;
    let mut conn = Conn::connect(ep).await?;
    let (mut get, mut set) = (Latencies::with_capacity(ROUNDS), Latencies::with_capacity(ROUNDS));
    let value = [9u8; crate::ops::VALUE_LEN];
    for i in 0..ROUNDS {
        let path = footprint::fill_path(spread(i, to));
        let t = Instant::now();
        conn.get(&path).await.with_context(|| format!("get {path}"))?;
        get.record(t.elapsed());
        let t = Instant::now();
        conn.set(&path, &value).await?;
        set.record(t.elapsed());
    }
    conn.close().await;
    let step = format!("nodes.{to}");
    Ok(vec![
        Sample::new(format!("{step}.fill_rate"), rate, "nodes/s"),
        Sample::new(format!("{step}.rss"), mib(rss * 1024), "MiB"),
        Sample::new(format!("{step}.data_dir"), mib(disk), "MiB"),
        Sample::new(format!("{step}.get.p50"), get.quantile_us(0.5), "us"),
        Sample::new(format!("{step}.set.p50"), set.quantile_us(0.5), "us"),
    ])
}

/// For each step of `counts` (ascending): grows the idle sessions to that many, samples
/// memory and latency beside them, then watches one node from each and times fan-outs.
pub async fn clients(ep: &Endpoint, pid: u32, counts: &[usize], fanouts: usize) -> Result<Vec<Sample>> {
    let mut probe = Conn::connect(ep).await?;
    probe.ensure("/bench").await?;
    probe.ensure("/bench/fan").await?;
    let mut idle: Vec<Conn> = Vec::new();
    let mut out = Vec::new();
    let baseline = rss_kib(pid)?;
    for &count in counts {
        while idle.len() < count {
            let batch = (count - idle.len()).min(CONNECT_BATCH);
            let opened = open_sessions(ep, batch).await.with_context(|| format!("opening session {}", idle.len()))?;
            idle.extend(opened);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let step = format!("sessions.{count}");
        let rss = rss_kib(pid)?;
        out.push(Sample::new(format!("{step}.rss"), mib(rss * 1024), "MiB"));
        out.push(Sample::new(
            format!("{step}.rss_per_session"),
            (rss.saturating_sub(baseline) * 1024) as f64 / count as f64,
            "B",
        ));
        let (get, set) = probe_latency(&mut probe).await?;
        out.push(Sample::new(format!("{step}.get.p50"), get, "us"));
        out.push(Sample::new(format!("{step}.set.p50"), set, "us"));
        out.extend(fan_out(pid, &mut idle, &mut probe, fanouts).await?);
    }
    for conn in idle {
        conn.close().await;
    }
    probe.close().await;
    Ok(out)
}

/// Opens `n` sessions concurrently.
async fn open_sessions(ep: &Endpoint, n: usize) -> Result<Vec<Conn>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let ep = ep.clone();
            tokio::spawn(async move { Conn::connect(&ep).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for task in tasks {
        conns.push(task.await??);
    }
    Ok(conns)
}

/// `get` and `set` p50 (µs) of one node from the probe client.
async fn probe_latency(probe: &mut Conn) -> Result<(f64, f64)> {
    let path = "/bench/fan/probe";
    probe.ensure(path).await?;
    let (mut get, mut set) = (Latencies::with_capacity(ROUNDS), Latencies::with_capacity(ROUNDS));
    let value = [3u8; crate::ops::VALUE_LEN];
    for _ in 0..ROUNDS {
        let t = Instant::now();
        probe.get(path).await?;
        get.record(t.elapsed());
        let t = Instant::now();
        probe.set(path, &value).await?;
        set.record(t.elapsed());
    }
    Ok((get.quantile_us(0.5), set.quantile_us(0.5)))
}

/// Every idle session watches `/bench/fan/hot`; `rounds` sets of it are each timed from the
/// set's start until the last watcher has seen it. The watches end with this function.
async fn fan_out(pid: u32, idle: &mut Vec<Conn>, probe: &mut Conn, rounds: usize) -> Result<Vec<Sample>> {
    let hot = "/bench/fan/hot";
    probe.ensure(hot).await?;
    let watchers = idle.len();
    // Each watcher reports its events on one channel; a watcher is a task over its own
    // connection, handed back when done.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Instant>();
    let mut tasks = Vec::with_capacity(watchers);
    for mut conn in idle.drain(..) {
        let mut watch = conn.watch(hot).await?;
        let seen = seen_tx.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                watch.next().await?;
                if seen.send(Instant::now()).is_err() {
                    break;
                }
            }
            drop(watch);
            anyhow::Ok(conn)
        }));
    }
    drop(seen_tx);
    let rss = rss_kib(pid)?;
    let mut all = Latencies::with_capacity(rounds);
    let mut first = Latencies::with_capacity(rounds);
    for round in 0..rounds {
        let started = Instant::now();
        probe.set(hot, &round.to_le_bytes()).await?;
        let mut earliest = None;
        for _ in 0..watchers {
            let at = tokio::time::timeout(Duration::from_secs(60), seen_rx.recv())
                .await
                .context("a watcher's event did not arrive within 60 s")?
                .context("a watcher ended early")?;
            earliest.get_or_insert(at);
        }
        let last = Instant::now();
        all.record(last - started);
        if let Some(at) = earliest {
            first.record(at - started);
        }
    }
    for task in tasks {
        idle.push(task.await??);
    }
    if idle.len() != watchers {
        bail!("lost watchers");
    }
    let step = format!("watchers.{watchers}");
    Ok(vec![
        Sample::new(format!("{step}.rss"), mib(rss * 1024), "MiB"),
        Sample::new(format!("{step}.first_event.p50"), first.quantile_us(0.5), "us"),
        Sample::new(format!("{step}.last_event.p50"), all.quantile_us(0.5), "us"),
    ])
}

/// `set` and `get` p50 of one node holding values of each size (bytes).
pub async fn sizes(ep: &Endpoint, sizes: &[usize]) -> Result<Vec<Sample>> {
    let mut conn = Conn::connect(ep).await?;
    conn.ensure("/bench").await?;
    conn.ensure("/bench/size").await?;
    let mut out = Vec::new();
    for &size in sizes {
        let path = format!("/bench/size/v{size}");
        let value = vec![7u8; size];
        conn.create(&path, &value).await?;
        // Fewer rounds for big values: each moves the whole value twice.
        let rounds = (ROUNDS * 100 / size.max(100)).clamp(20, ROUNDS);
        let (mut get, mut set) = (Latencies::with_capacity(rounds), Latencies::with_capacity(rounds));
        for _ in 0..rounds {
            let t = Instant::now();
            conn.set(&path, &value).await?;
            set.record(t.elapsed());
            let t = Instant::now();
            let got = conn.get(&path).await?;
            get.record(t.elapsed());
            if got.len() != size {
                bail!("{path}: read {} bytes, wrote {size}", got.len());
            }
        }
        conn.delete(&path).await?;
        out.push(Sample::new(format!("size.{size}.set.p50"), set.quantile_us(0.5), "us"));
        out.push(Sample::new(format!("size.{size}.get.p50"), get.quantile_us(0.5), "us"));
    }
    conn.close().await;
    Ok(out)
}
