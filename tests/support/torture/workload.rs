//! The recorder's drivers: concurrent `baton::Client`s, each on its own session, running
//! seeded random operations on a few paths and logging each one (invoke and completion times,
//! result or indeterminate), each with a persistent recursive watcher on the root whose events
//! are logged too.

use super::Rng;
use super::history::{Op, Record, Recorder, Ret, SeenEvent, Value, WatchLog, value_bytes, value_of};
use baton::{Client, ClientBuilder, CreateOptions, Error, PersistentWatcher, Zxid};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How to drive the load.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The address clients connect to (possibly a proxy).
    pub addr: String,
    /// The root the paths live under; it must exist.
    pub root: String,
    pub clients: usize,
    /// Paths `root/k0 .. root/k{paths-1}`.
    pub paths: usize,
    pub ops_per_client: usize,
    pub seed: u64,
    pub session_timeout: Duration,
    /// A call not answered within this is indeterminate.
    pub op_timeout: Duration,
    /// How long a client keeps trying to (re)connect before it gives up.
    pub connect_patience: Duration,
    /// What clients start from (a token to prove over TCP, say); the session timeout and
    /// the connect timeout are set on it.
    pub builder: ClientBuilder,
}

/// Everything the clients recorded.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub watch_logs: Vec<WatchLog>,
    /// Sessions that ended by expiry (a new one was started each time).
    pub sessions_expired: usize,
    /// Watchers that ended early (overflow or session end) before the run was over.
    pub watchers_ended: usize,
}

/// Progress shared with the test, so faults can be injected mid-run.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub done: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
}

/// Runs the workload to completion (or until `progress.stop`).
pub async fn run(workload: &Workload, recorder: &Recorder, progress: &Progress) -> Outcome {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let counters = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for client in 0..workload.clients {
        let (w, rec, prog, logs, counters) =
            (workload.clone(), recorder.clone(), progress.clone(), logs.clone(), counters.clone());
        tasks.push(tokio::spawn(async move { drive(client, &w, &rec, &prog, &logs, &counters).await }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let watch_logs = std::mem::take(&mut *logs.lock().expect("logs"));
    Outcome {
        records: recorder.records(),
        watch_logs,
        sessions_expired: counters.0.load(Ordering::SeqCst),
        watchers_ended: counters.1.load(Ordering::SeqCst),
    }
}

/// Connects and sets the watch, retrying while the daemon is away.
async fn open(w: &Workload) -> Option<(Client, PersistentWatcher, Zxid)> {
    let deadline = Instant::now() + w.connect_patience;
    while Instant::now() < deadline {
        let connected = w
            .builder
            .clone()
            .session_timeout(w.session_timeout)
            .connect_timeout(Duration::from_secs(2))
            .connect(&w.addr)
            .await;
        if let Ok(client) = connected {
            match tokio::time::timeout(w.op_timeout, client.watch(&w.root, true)).await {
                Ok(Ok(watcher)) => {
                    let from = client.last_zxid();
                    return Some((client, watcher, from));
                }
                Ok(Err(e)) if !e.is_retryable() && !matches!(e, Error::SessionExpired) => {
                    panic!("setting the watch: {e}")
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn drive(
    id: usize,
    w: &Workload,
    recorder: &Recorder,
    progress: &Progress,
    logs: &Mutex<Vec<WatchLog>>,
    counters: &(AtomicUsize, AtomicUsize),
) {
    let mut rng = Rng::new(w.seed ^ (id as u64 + 1).wrapping_mul(0x5851_f42d_4c95_7f2d));
    let mut counter = 0u64;
    let mut versions = vec![0i32; w.paths];
    let mut done = 0;
    while done < w.ops_per_client && !progress.stop.load(Ordering::SeqCst) {
        let Some((client, mut watcher, from)) = open(w).await else {
            panic!("client {id} could not connect to {} within {:?}", w.addr, w.connect_patience)
        };
        let mut log = WatchLog { client: id, from, ..WatchLog::default() };
        let mut watching = true;
        while done < w.ops_per_client && !progress.stop.load(Ordering::SeqCst) {
            let k = rng.below(w.paths as u64) as usize;
            let path = format!("{}/k{k}", w.root);
            counter += 1;
            let value = ((id as u64 + 1) << 32) | counter;
            let op = pick(&mut rng, value, versions[k]);
            let invoke_ns = recorder.now_ns();
            let result = tokio::time::timeout(w.op_timeout, call(&client, &path, op)).await;
            let complete_ns = recorder.now_ns();
            if watching && drain(&mut watcher, &mut log).is_err() {
                watching = false;
                counters.1.fetch_add(1, Ordering::SeqCst);
            }
            let (ret, zxid, expired) = match result {
                Ok(Ok((ret, zxid))) => (Some(ret), zxid, false),
                Ok(Err(e)) => (None, None, matches!(e, Error::SessionExpired)),
                Err(_) => (None, None, false),
            };
            if let (Some(Ret::Got(Some(_))), Some(z)) = (ret, zxid)
                && watching
                && z > log.from
            {
                let before = log.events.iter().any(|e| e.zxid == z && e.path == path);
                log.reveals.push((path.clone(), z, before));
            }
            match ret {
                Some(Ret::Set(v) | Ret::Got(Some((_, v)))) => versions[k] = v,
                Some(Ret::Created) => versions[k] = 0,
                _ => {}
            }
            recorder.push(Record { client: id, path, op, invoke_ns, complete_ns: ret.map(|_| complete_ns), ret, zxid });
            done += 1;
            progress.done.fetch_add(1, Ordering::SeqCst);
            if expired {
                counters.0.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
        if watching {
            let _ = drain(&mut watcher, &mut log);
        }
        logs.lock().expect("logs").push(log);
    }
}

/// A random operation: reads and writes on few paths, half the conditional writes at the
/// version last seen.
fn pick(rng: &mut Rng, value: Value, version: i32) -> Op {
    let expected = if rng.chance(50) { Some(version) } else { None };
    match rng.below(100) {
        0..15 => Op::Create(value),
        15..50 => Op::Set { value, version: expected },
        50..85 => Op::Get,
        _ => Op::Delete { version: expected },
    }
}

/// Runs one operation; domain outcomes are results, anything else is the error.
async fn call(client: &Client, path: &str, op: Op) -> Result<(Ret, Option<Zxid>), Error> {
    let domain = |e: Error, ret: Ret| if e.is_no_node() || e.is_bad_version() { Ok((ret, None)) } else { Err(e) };
    match op {
        Op::Create(value) => match client.create(path, &value_bytes(value), CreateOptions::persistent()).await {
            Ok((_, stat)) => Ok((Ret::Created, Some(stat.czxid))),
            Err(e) if e.is_node_exists() => Ok((Ret::Exists, None)),
            Err(e) => Err(e),
        },
        Op::Set { value, version } => match client.set(path, &value_bytes(value), version).await {
            Ok(stat) => Ok((Ret::Set(stat.version), Some(stat.mzxid))),
            Err(e) if e.is_bad_version() => domain(e, Ret::BadVersion),
            Err(e) => domain(e, Ret::NoNode),
        },
        Op::Get => match client.get(path).await {
            Ok((data, stat)) => {
                let value = value_of(&data).unwrap_or(u64::MAX);
                Ok((Ret::Got(Some((value, stat.version))), Some(stat.mzxid)))
            }
            Err(e) => domain(e, Ret::Got(None)),
        },
        Op::Delete { version } => match client.delete(path, version).await {
            Ok(()) => Ok((Ret::Deleted, None)),
            Err(e) if e.is_bad_version() => domain(e, Ret::BadVersion),
            Err(e) => domain(e, Ret::NoNode),
        },
    }
}

/// Moves every event the watcher already holds into the log, without waiting.
pub fn drain(watcher: &mut PersistentWatcher, log: &mut WatchLog) -> Result<(), Error> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let next = watcher.next();
        let mut next = std::pin::pin!(next);
        match next.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(e)) => log.events.push(SeenEvent { zxid: e.zxid, path: e.path, kind: e.kind }),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(()),
        }
    }
}
