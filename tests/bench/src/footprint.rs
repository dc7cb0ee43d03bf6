//! `footprint` (a server's resident memory from /proc/PID/status and its data directory's
//! size on disk, optionally after filling it with nodes) and `startup` (from the moment the
//! server process was launched to its first answered request).

use crate::ops::VALUE_LEN;
use crate::report::Sample;
use crate::target::{Conn, Endpoint};
use anyhow::{Context, Result, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Concurrent clients used to fill the tree.
const FILL_CLIENTS: usize = 64;
/// At most this many files are looked at when sizing a data directory.
const DIR_ENTRIES_MAX: usize = 1_000_000;

/// The VmRSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib = line.split_whitespace().nth(1).context("bad VmRSS line")?;
    Ok(kib.parse()?)
}

/// The disk space the files under `dir` occupy (allocated blocks), in bytes; no recursion.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let (mut total, mut seen) = (0u64, 0usize);
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            seen += 1;
            if seen > DIR_ENTRIES_MAX {
                bail!("more than {DIR_ENTRIES_MAX} entries under {}", dir.display());
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

/// The path of the `i`-th filled node.
pub fn fill_path(i: usize) -> String {
    format!("/bench/fill/n{i:07}")
}

/// Creates `count` nodes of 100 bytes under `/bench/fill`, with 64 clients. Returns nodes/s.
pub async fn fill(ep: &Endpoint, count: usize) -> Result<f64> {
    fill_range(ep, 0, count).await
}

/// Creates the filled nodes `from..to` (100 bytes each) with 64 clients. Returns nodes/s.
pub async fn fill_range(ep: &Endpoint, from: usize, to: usize) -> Result<f64> {
    let mut setup = Conn::connect(ep).await?;
    setup.ensure("/bench").await?;
    setup.ensure("/bench/fill").await?;
    setup.close().await;
    let mut conns = Vec::with_capacity(FILL_CLIENTS);
    for _ in 0..FILL_CLIENTS {
        conns.push(Conn::connect(ep).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let value = [5u8; VALUE_LEN];
            for i in (from + w..to).step_by(FILL_CLIENTS) {
                conn.create(&fill_path(i), &value).await?;
            }
            conn.close().await;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(to.saturating_sub(from) as f64 / started.elapsed().as_secs_f64())
}

/// Samples `rss.{label}` (MiB) and `data_dir.{label}` (MiB), after filling `fill` nodes
/// first when asked (then also `fill_rate`).
pub async fn footprint(
    ep: &Endpoint,
    pid: u32,
    data_dir: &Path,
    fill_count: usize,
    label: &str,
) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    if fill_count > 0 {
        out.push(Sample::new("fill_rate", fill(ep, fill_count).await?, "nodes/s"));
        // Let background work triggered by the burst (compaction, GC) settle a little.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    out.push(Sample::new(format!("rss.{label}"), rss_kib(pid)? as f64 / 1024.0, "MiB"));
    out.push(Sample::new(format!("data_dir.{label}"), dir_bytes(data_dir)? as f64 / (1024.0 * 1024.0), "MiB"));
    Ok(out)
}

/// Polls the server until a request is answered; `launched_at` is the launch time in seconds
/// since the epoch (bash's `$EPOCHREALTIME`). Samples `startup.{label}` (ms).
pub async fn startup(ep: &Endpoint, launched_at: f64, label: &str) -> Result<Vec<Sample>> {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        if Instant::now() > give_up {
            bail!("no answer within 120 s");
        }
        if let Some(now) = answered(ep).await {
            return Ok(vec![Sample::new(format!("startup.{label}"), (now - launched_at) * 1000.0, "ms")]);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One attempt: connect and get an answer to one read, each within a short timeout. Returns
/// the wall-clock time of the answer (seconds since the epoch).
async fn answered(ep: &Endpoint) -> Option<f64> {
    let connect = Conn::connect_within(ep, Duration::from_millis(200));
    let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_millis(500), connect).await else {
        return None;
    };
    let ok = matches!(tokio::time::timeout(Duration::from_millis(500), conn.exists("/")).await, Ok(Ok(_)));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    conn.close().await;
    ok.then_some(now)
}
