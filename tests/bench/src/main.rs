//! `baton-bench`: the benchmark users can run themselves, against Baton, ZooKeeper or etcd
//! (`--target`), and against the machine's own limits (`limits`). Every workload is bounded in
//! time and count and talks only to the address given (loopback in `side-by-side.sh`). It
//! prints one line per figure (the median of `--reps` repetitions, with min and max), or one
//! JSON object per line with `--json`. Benchmarks are programs: nothing here asserts a time.
//!
//! Modules: `target` (one session on any of the three), `ops` (latency, throughput, watch),
//! `lock`, `expiry` (with the hidden `hold` child mode), `footprint` (memory, disk, startup),
//! `limits` (fdatasync, echo), `scaling` (costs against nodes, sessions, watchers and value
//! sizes), `report` (figures and their output).

mod expiry;
mod footprint;
mod limits;
mod lock;
mod ops;
mod report;
mod scaling;
mod target;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use report::{Figure, Sample};
use std::path::PathBuf;
use std::time::Duration;
use target::{Endpoint, Target};

#[derive(Parser)]
#[command(
    version,
    about = "Baton side by side with ZooKeeper, etcd and the machine's limits",
    args_override_self = true
)]
struct Cli {
    /// The system under test.
    #[arg(long, value_enum, default_value = "baton", global = true)]
    target: Target,
    /// baton: a Unix socket path or HOST:PORT; zk: 127.0.0.1:PORT; etcd: http://127.0.0.1:PORT.
    #[arg(long, default_value = "", global = true)]
    addr: String,
    /// One JSON object per figure and line.
    #[arg(long, global = true)]
    json: bool,
    /// Repetitions of each workload; figures are their median.
    #[arg(long, default_value_t = 3, global = true)]
    reps: usize,
    /// Length of one throughput, lock or limits run, in ms.
    #[arg(long, default_value_t = 2000, global = true)]
    duration_ms: u64,
    /// The session timeout (etcd: lease TTL) asked for; `expiry` uses it for the holder.
    #[arg(long, default_value_t = 2000, global = true)]
    session_timeout_ms: u64,
    /// Baton: connection-bound sessions (ended when their connection closes).
    #[arg(long, global = true, hide = true)]
    connection_bound: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// One client: create, set, get, delete of 100-byte values; p50/p99/p999 per op.
    Latency {
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
    /// Durable write (set) throughput with 1, 16 and 64 clients.
    Write {
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
    },
    /// Read (get) throughput with 1, 16 and 64 clients.
    Read {
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
    },
    /// Set -> event latency seen on another connection.
    Watch {
        #[arg(long, default_value_t = 500)]
        rounds: usize,
    },
    /// Contenders looping acquire/release on one lock: handoffs/s and wait p99.
    Lock {
        #[arg(long, default_value_t = 8)]
        contenders: usize,
    },
    /// A SIGKILLed holder of an ephemeral node: time until another client sees it gone.
    Expiry,
    /// latency, write, read, watch, lock and expiry in turn.
    All,
    /// Server RSS (/proc/PID/status VmRSS) and data dir size, optionally after a fill.
    Footprint {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        data_dir: PathBuf,
        /// Create this many 100-byte nodes first.
        #[arg(long, default_value_t = 0)]
        fill: usize,
        /// Names the figures (`rss.LABEL`).
        #[arg(long, default_value = "idle")]
        label: String,
    },
    /// Time from the server's launch (`--launched-at`, seconds since the epoch) to the first
    /// answered request.
    Startup {
        #[arg(long)]
        launched_at: f64,
        #[arg(long, default_value = "empty")]
        label: String,
    },
    /// fdatasync on `--dir`'s filesystem and Unix/TCP echo round trips.
    Limits {
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        clients: Vec<usize>,
    },
    /// How costs grow: with the number of nodes, of idle sessions and watchers, and with the
    /// size of values (`scaling.sh` runs all three against a fresh batond).
    Scale {
        #[command(subcommand)]
        curve: Curve,
    },
    /// Internal: serve Unix-socket echo at `--socket` until killed (the `limits` child).
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        socket: PathBuf,
    },
    /// Internal: hold an ephemeral node until killed (the `expiry` child).
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        path: String,
    },
}

#[derive(Subcommand)]
enum Curve {
    /// Fill the filled nodes `--from`..`--to`, then sample memory, disk and get/set p50.
    Nodes {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: usize,
        #[arg(long)]
        to: usize,
    },
    /// Grow idle sessions to each count; memory, get/set p50, and watch fan-out at each.
    Clients {
        #[arg(long)]
        pid: u32,
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
        counts: Vec<usize>,
        /// Timed sets per fan-out figure.
        #[arg(long, default_value_t = 20)]
        fanouts: usize,
    },
    /// set/get p50 of values of each size in bytes.
    Sizes {
        #[arg(long, value_delimiter = ',', default_value = "100,1024,10240,102400,1048576")]
        sizes: Vec<usize>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let ep = Endpoint {
        target: cli.target,
        addr: cli.addr.clone(),
        session_timeout: Duration::from_millis(cli.session_timeout_ms),
        connection_bound: cli.connection_bound,
    };
    let duration = Duration::from_millis(cli.duration_ms);
    let t = cli.target.name();
    let reps = cli.reps.max(1);
    let figures = match &cli.workload {
        Workload::Hold { path } => return expiry::hold(&ep, path).await,
        Workload::EchoServer { socket } => return limits::echo_server(socket).await,
        Workload::All => {
            for w in ["latency", "write", "read", "watch", "lock", "expiry"] {
                let figures =
                    Box::pin(workload(&cli, &ep, w, reps, duration)).await.with_context(|| format!("{t} {w}"))?;
                report::print(&figures, cli.json);
            }
            return Ok(());
        }
        Workload::Footprint { pid, data_dir, fill, label } => {
            let samples = footprint::footprint(&ep, *pid, data_dir, *fill, label).await?;
            report::fold(t, "footprint", &[samples])
        }
        Workload::Scale { curve } => {
            let samples = match curve {
                Curve::Nodes { pid, data_dir, from, to } => scaling::nodes(&ep, *pid, data_dir, *from, *to).await?,
                Curve::Clients { pid, counts, fanouts } => scaling::clients(&ep, *pid, counts, *fanouts).await?,
                Curve::Sizes { sizes } => scaling::sizes(&ep, sizes).await?,
            };
            report::fold(t, "scale", &[samples])
        }
        Workload::Startup { launched_at, label } => {
            report::fold(t, "startup", &[footprint::startup(&ep, *launched_at, label).await?])
        }
        Workload::Limits { dir, clients } => {
            let mut runs = Vec::with_capacity(reps);
            for _ in 0..reps {
                let mut samples = limits::fdatasync(dir, duration)?;
                let tmp = tempfile::tempdir()?;
                samples.extend(limits::echo(tmp.path(), clients, duration).await?);
                runs.push(samples);
            }
            report::fold("host", "limits", &runs)
        }
        Workload::Latency { .. }
        | Workload::Write { .. }
        | Workload::Read { .. }
        | Workload::Watch { .. }
        | Workload::Lock { .. }
        | Workload::Expiry => {
            let w = name_of(&cli.workload);
            Box::pin(workload(&cli, &ep, w, reps, duration)).await.with_context(|| format!("{t} {w}"))?
        }
    };
    report::print(&figures, cli.json);
    Ok(())
}

fn name_of(w: &Workload) -> &'static str {
    match w {
        Workload::Latency { .. } => "latency",
        Workload::Write { .. } => "write",
        Workload::Read { .. } => "read",
        Workload::Watch { .. } => "watch",
        Workload::Lock { .. } => "lock",
        _ => "expiry",
    }
}

/// Runs one of the repeated workloads `reps` times and folds the samples into figures.
async fn workload(cli: &Cli, ep: &Endpoint, name: &str, reps: usize, duration: Duration) -> Result<Vec<Figure>> {
    let (count, rounds, contenders) = match &cli.workload {
        Workload::Latency { count } => (*count, 500, 8),
        Workload::Watch { rounds } => (1000, *rounds, 8),
        Workload::Lock { contenders } => (1000, 500, *contenders),
        _ => (1000, 500, 8),
    };
    let clients: &[usize] = match &cli.workload {
        Workload::Write { clients } | Workload::Read { clients } => clients,
        _ => &[1, 16, 64],
    };
    let limit = Duration::from_secs(30);
    let bench_args = vec!["--target".to_owned(), ep.target.name().to_owned(), "--addr".to_owned(), ep.addr.clone()];
    let normal = Endpoint { session_timeout: Duration::from_secs(10), connection_bound: false, ..ep.clone() };
    let mut runs: Vec<Vec<Sample>> = Vec::with_capacity(reps);
    for rep in 0..reps {
        runs.push(match name {
            "latency" => ops::latency(&normal, count, limit).await?,
            "write" => ops::throughput_all(&normal, true, clients, duration).await?,
            "read" => ops::throughput_all(&normal, false, clients, duration).await?,
            "watch" => ops::watch(&normal, rounds, limit).await?,
            "lock" => lock::lock(&normal, contenders, duration).await?,
            _ => expiry::expiry(ep, &bench_args, rep).await?,
        });
    }
    Ok(report::fold(ep.target.name(), name, &runs))
}
