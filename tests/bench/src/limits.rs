//! The machine's own limits, measured in the same run as the servers: the fdatasync rate and
//! latency on the data filesystem (4 KiB appends, each followed by `fdatasync`), and raw echo
//! round trips over a Unix socket and over loopback TCP, with an in-process echo server, and
//! over a Unix socket to an echo server in a process of its own (`echo-server`): a client and
//! a server in two processes pay the wake-ups of both, which one process's tasks can avoid.

use crate::report::{Latencies, Sample};
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The size of one echo message.
const ECHO_LEN: usize = 16;
/// At most this many appends per fdatasync run.
const SYNC_COUNT_MAX: usize = 20_000;

/// 4 KiB appends + `fdatasync` in a temporary file under `dir`, for `duration`. Samples
/// `fdatasync.p50`/`.p99` (µs) and `fdatasync.rate` (/s).
pub fn fdatasync(dir: &Path, duration: Duration) -> Result<Vec<Sample>> {
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    let block = [0x5au8; 4096];
    let mut lat = Latencies::with_capacity(SYNC_COUNT_MAX);
    let started = Instant::now();
    while started.elapsed() < duration && lat.len() < SYNC_COUNT_MAX {
        let t = Instant::now();
        file.write_all(&block)?;
        file.as_file().sync_data()?;
        lat.record(t.elapsed());
    }
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        Sample::new("fdatasync.p50", lat.quantile_us(0.5), "us"),
        Sample::new("fdatasync.p99", lat.quantile_us(0.99), "us"),
        Sample::new("fdatasync.rate", rate, "ops/s"),
    ])
}

/// A stream the echo client can use.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Stream for T {}

async fn echo_serve<S: Stream>(mut s: S) {
    let mut buf = [0u8; ECHO_LEN];
    while s.read_exact(&mut buf).await.is_ok() {
        if s.write_all(&buf).await.is_err() {
            break;
        }
    }
}

/// Round trips per second with `clients` connections from `connect`, and the 1-client p50.
async fn echo_run<S, F, Fut>(clients: usize, duration: Duration, connect: F) -> Result<(f64, Latencies)>
where
    S: Stream,
    F: Fn() -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut streams = Vec::with_capacity(clients);
    for _ in 0..clients {
        streams.push(connect().await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for mut s in streams {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut lat = Latencies::with_capacity(1 << 16);
            let mut buf = [7u8; ECHO_LEN];
            let mut done = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                s.write_all(&buf).await?;
                s.read_exact(&mut buf).await?;
                if lat.len() < 1 << 20 {
                    lat.record(t.elapsed());
                }
                done += 1;
            }
            anyhow::Ok((done, lat, Instant::now()))
        }));
    }
    let (mut total, mut all, mut last) = (0u64, Latencies::default(), deadline);
    for task in tasks {
        let (done, lat, ended) = task.await??;
        total += done;
        all.extend(lat);
        last = last.max(ended);
    }
    Ok((total as f64 / (last - start).as_secs_f64(), all))
}

/// Serves echo on a Unix socket at `path` until killed: the `echo-server` child of `echo`.
pub async fn echo_server(path: &Path) -> Result<()> {
    let unix = UnixListener::bind(path)?;
    loop {
        let (s, _) = unix.accept().await?;
        tokio::spawn(echo_serve(s));
    }
}

/// An `echo-server` child process, killed (by its own PID) when dropped.
struct EchoProcess(std::process::Child);

impl EchoProcess {
    fn start(path: &Path) -> Result<EchoProcess> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("echo-server")
            .arg("--socket")
            .arg(path)
            .stdin(std::process::Stdio::null())
            .spawn()?;
        let process = EchoProcess(child);
        let give_up = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            anyhow::ensure!(Instant::now() < give_up, "the echo server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(process)
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Echo over a Unix socket in `dir` and over loopback TCP, with each client count, and over a
/// Unix socket to a server process of its own. Samples `echo.{unix,tcp,unix_process}.c{N}`
/// (round trips/s) and `echo.{unix,tcp,unix_process}.c1.p50` (µs).
pub async fn echo(dir: &Path, counts: &[usize], duration: Duration) -> Result<Vec<Sample>> {
    let sock = dir.join("echo.sock");
    let unix = UnixListener::bind(&sock)?;
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let tcp_addr = tcp.local_addr()?;
    let servers = [
        tokio::spawn(async move {
            while let Ok((s, _)) = unix.accept().await {
                tokio::spawn(echo_serve(s));
            }
        }),
        tokio::spawn(async move {
            while let Ok((s, _)) = tcp.accept().await {
                let _ = s.set_nodelay(true);
                tokio::spawn(echo_serve(s));
            }
        }),
    ];
    let mut out = Vec::new();
    for &n in counts {
        let (rate, mut lat) = echo_run(n, duration, || UnixStream::connect(&sock)).await?;
        out.push(Sample::new(format!("echo.unix.c{n}"), rate, "ops/s"));
        if n == 1 {
            out.push(Sample::new("echo.unix.c1.p50", lat.quantile_us(0.5), "us"));
        }
        let connect = || async move {
            let s = TcpStream::connect(tcp_addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        };
        let (rate, mut lat) = echo_run(n, duration, connect).await?;
        out.push(Sample::new(format!("echo.tcp.c{n}"), rate, "ops/s"));
        if n == 1 {
            out.push(Sample::new("echo.tcp.c1.p50", lat.quantile_us(0.5), "us"));
        }
    }
    let process_sock = dir.join("echo-process.sock");
    let process = EchoProcess::start(&process_sock)?;
    for &n in counts {
        let (rate, mut lat) = echo_run(n, duration, || UnixStream::connect(&process_sock)).await?;
        out.push(Sample::new(format!("echo.unix_process.c{n}"), rate, "ops/s"));
        if n == 1 {
            out.push(Sample::new("echo.unix_process.c1.p50", lat.quantile_us(0.5), "us"));
        }
    }
    drop(process);
    let _ = std::fs::remove_file(&process_sock);
    for s in servers {
        s.abort();
    }
    let _ = std::fs::remove_file(&sock);
    Ok(out)
}
