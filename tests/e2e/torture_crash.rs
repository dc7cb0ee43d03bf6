//! Crashes and corruption (RELIABILITY.md T1, T10, T18), against the real daemon:
//! - T1: kill -9 under a mixed write load: acknowledged ⊆ recovered ⊆ attempted, and zxids
//!   go on increasing after the restart;
//! - T10: a SIGSTOPped daemon: on SIGCONT every session either survived (connected, its
//!   ephemeral there) or expired (its ephemeral gone) — never half of each — and no
//!   acknowledged write is lost; a session that kept pinging is not charged for the pause;
//! - T18: bytes flipped in, or cut from the end of, a stopped daemon's redb file: batond
//!   refuses to start with a clear error, or starts and never serves wrong data silently;
//!   and in its journal (the log of the writes since the last checkpoint): refused with the
//!   damage's offset, served whole (a record whose magic or generation bytes alone were
//!   damaged is read as written, its CRC intact, with a warning), or served as the writes
//!   before the damage — with a warning naming the offset unless the damage left nothing to
//!   see (the magic or generation bytes of the record it reached first, and more of it, which
//!   then looks like the log's end).

use baton::proto::message::{CreateKind, CreateRequest, Op, Request, Response, ServerMessage};
use baton::{Client, CreateOptions, Error, SessionState};
use baton_tests::raw::Raw;
use baton_tests::torture::durability::{self, Attempts};
use baton_tests::torture::history::{value_bytes, value_of};
use baton_tests::torture::{self, Rng};
use baton_tests::{Daemon, Spawned, binary, eventually};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One client's mixed writes on keys it owns (`/t1/c{id}-{n}`): creates, unconditional sets
/// and deletes, until the first error. Returns its attempts.
async fn mixed_writer(client: Client, id: usize, seed: u64, acked: Arc<AtomicUsize>, zxid: Arc<AtomicU64>) -> Attempts {
    let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut attempts = Attempts::default();
    let (mut live, mut next_key, mut value) = (Vec::<String>::new(), 0, (id as u64 + 1) << 32);
    loop {
        value += 1;
        let choice = rng.below(100);
        let (key, after, result) = if live.is_empty() || choice < 40 {
            let key = format!("/t1/c{id}-{next_key}");
            next_key += 1;
            let r = client.create(&key, &value_bytes(value), CreateOptions::persistent()).await.map(|(_, s)| s.czxid.0);
            (key, Some(value), r)
        } else if choice < 85 {
            let key = live[rng.below(live.len() as u64) as usize].clone();
            let r = client.set(&key, &value_bytes(value), None).await.map(|s| s.mzxid.0);
            (key, Some(value), r)
        } else {
            let key = live.swap_remove(rng.below(live.len() as u64) as usize);
            let r = client.delete(&key, None).await.map(|()| 0);
            (key, None, r)
        };
        match result {
            Ok(z) => {
                attempts.push(&key, after, true);
                if after.is_some() && !live.contains(&key) {
                    live.push(key);
                }
                zxid.fetch_max(z, Ordering::SeqCst);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                assert!(
                    e.code().is_none_or(|c| !matches!(c, baton::ErrorCode::NoNode | baton::ErrorCode::NodeExists)),
                    "{key}: {e}"
                );
                attempts.push(&key, after, false);
                return attempts;
            }
        }
    }
}

/// Every node under `root` with its value.
async fn recovered(client: &Client, root: &str) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    for name in client.children(root).await.unwrap() {
        let path = format!("{root}/{name}");
        let (data, _) = client.get(&path).await.unwrap();
        out.insert(path, Some(value_of(&data).unwrap_or(u64::MAX)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_kill_9_under_mixed_load_loses_no_acknowledged_write() {
    let (seed, scale) = (torture::seed(1), torture::scale());
    let clients = (16 * scale as usize).min(64);
    let mut daemon = Daemon::start();
    let _keep = torture::KeepOnPanic::new("T1", daemon.dir());
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/t1", b"", CreateOptions::persistent()).await.unwrap();
    drop(setup);
    let (acked, zxid) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
    let mut writers = Vec::new();
    for id in 0..clients {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        writers.push(tokio::spawn(mixed_writer(client, id, seed, acked.clone(), zxid.clone())));
    }
    let target = 4_000 * scale as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill9();
    let mut attempts = Attempts::default();
    for writer in writers {
        attempts.merge(tokio::time::timeout(Duration::from_secs(60), writer).await.expect("writer stops").unwrap());
    }
    daemon.restart();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    let report = durability::check(&attempts, &recovered(&client, "/t1").await);
    let before = zxid.load(Ordering::SeqCst);
    let (_, after) = client.create("/t1-after", b"", CreateOptions::persistent()).await.unwrap();
    torture::figure(&format!(
        "T1 acked lost: {} of {} acknowledged writes ({} keys, {clients} clients); phantoms {}; zxid after restart {:#x} > {before:#x}: {}",
        report.lost.len(),
        report.acked,
        report.acked_keys,
        report.phantoms.len(),
        after.czxid.0,
        after.czxid.0 > before
    ));
    assert!(report.acked >= target / 2, "too few writes acknowledged to prove anything: {}", report.acked);
    assert!(report.lost.is_empty(), "acknowledged writes lost after kill -9: {:?}", report.lost);
    assert!(report.phantoms.is_empty(), "recovered writes nobody attempted: {:?}", report.phantoms);
    assert!(after.czxid.0 > before, "zxids go back after a restart: {:#x} after {before:#x}", after.czxid.0);
}

/// Where a session stands once the daemon is back: alive with its ephemeral, or expired.
async fn session_outcome(client: &Client, ephemeral: &str) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.exists(ephemeral)).await {
            Ok(Ok(Some(stat))) if stat.ephemeral_owner == client.session_id() => return Ok(true),
            Ok(Ok(other)) => return Err(format!("{ephemeral}: live session but ephemeral is {other:?}")),
            Ok(Err(Error::SessionExpired)) => return Ok(false),
            Ok(Err(e)) if e.is_retryable() => {}
            Ok(Err(e)) => return Err(format!("{ephemeral}: {e}")),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "{ephemeral}: the session never settled");
    }
}

/// What a daemon pause did.
struct Pause {
    sessions: usize,
    survived: usize,
    expired: usize,
    inconsistent: Vec<String>,
    durability: durability::DurabilityReport,
    /// Acknowledgements during the pause (after its first second): must be 0.
    acked_while_stopped: usize,
}

/// Live sessions with an ephemeral each and a writer; the daemon is SIGSTOPped for 5 s
/// (2.5 × the 2 s session timeout), then SIGCONTed.
async fn sigstop_the_daemon() -> Pause {
    const SESSIONS: usize = 8;
    let daemon = Daemon::start();
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/t10", b"", CreateOptions::persistent()).await.unwrap();
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let client = Client::builder().session_timeout(Duration::from_secs(2)).connect(&daemon.addr()).await.unwrap();
        let path = format!("/t10/e{i}");
        client.create(&path, b"", CreateOptions::ephemeral()).await.unwrap();
        sessions.push((client, path));
    }
    // A writer whose every acknowledged set must survive.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, stop, acked) = (setup.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut attempts = Attempts::default();
            client.create("/t10/w", &value_bytes(1), CreateOptions::persistent()).await.unwrap();
            attempts.push("/t10/w", Some(1), true);
            let mut value = 1;
            while !stop.load(Ordering::SeqCst) {
                value += 1;
                let ok = client.set("/t10/w", &value_bytes(value), None).await.is_ok();
                attempts.push("/t10/w", Some(value), ok);
                if ok {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
            attempts
        })
    };
    while acked.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Frozen for well over the session timeout: the fault itself, not a wait for a result.
    daemon.signal(Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = acked.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let acked_while_stopped = acked.load(Ordering::SeqCst) - stopped;
    daemon.signal(Signal::SIGCONT);
    let (mut survived, mut expired, mut inconsistent) = (0, 0, Vec::new());
    for (client, path) in &sessions {
        match session_outcome(client, path).await {
            Ok(true) => survived += 1,
            Ok(false) => {
                expired += 1;
                // Expired: its ephemeral must go for everyone. The client gives up on its own
                // once it has not heard from the server for its timeout, while the server may
                // still count the session live (it does not charge it for the pause) until
                // that timeout runs out on its side: allow that, and no more.
                let gone = eventually(Duration::from_secs(15), || {
                    let rt = tokio::runtime::Handle::current();
                    tokio::task::block_in_place(|| rt.block_on(setup.exists(path))).is_ok_and(|s| s.is_none())
                })
                .await;
                if !gone {
                    inconsistent.push(format!("{path}: session expired but its ephemeral remains"));
                }
                if *client.session_state().borrow() != SessionState::Expired {
                    inconsistent.push(format!("{path}: expired, but the client says otherwise"));
                }
            }
            Err(e) => inconsistent.push(e),
        }
    }
    let resumed = acked.load(Ordering::SeqCst);
    while acked.load(Ordering::SeqCst) < resumed + 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let attempts = writer.await.unwrap();
    let now = value_of(&setup.get("/t10/w").await.unwrap().0);
    let durability = durability::check(&attempts, &BTreeMap::from([("/t10/w".to_owned(), now)]));
    Pause { sessions: SESSIONS, survived, expired, inconsistent, durability, acked_while_stopped }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_a_sigstopped_daemon_keeps_sessions_consistent_and_loses_no_acknowledged_write() {
    let pause = sigstop_the_daemon().await;
    torture::figure(&format!(
        "T10 daemon SIGSTOP 5 s (session timeout 2 s): clients that gave up their session {} of {}, survived {}, inconsistent {}; acked lost {} of {}",
        pause.expired,
        pause.sessions,
        pause.survived,
        pause.inconsistent.len(),
        pause.durability.lost.len(),
        pause.durability.acked
    ));
    assert_eq!(pause.acked_while_stopped, 0, "the daemon answered while stopped: the fault did not fire");
    assert!(pause.durability.acked >= 100);
    assert!(pause.inconsistent.is_empty(), "{:?}", pause.inconsistent);
    assert!(pause.durability.lost.is_empty() && pause.durability.phantoms.is_empty(), "{:?}", pause.durability);
}

#[test]
fn t10_a_daemon_pause_is_not_charged_to_a_session_that_kept_pinging() {
    // A raw session has no client-side timer of its own: it keeps pinging into the socket
    // while the daemon is frozen, as a live client would. The pause is 2.5 × its timeout.
    let daemon = Daemon::start();
    let (mut raw, server) = Raw::session(&daemon.socket(), 2000);
    assert_eq!(server.timeout_ms, 2000);
    let create = Op::Create(CreateRequest {
        path: "/t10-raw".into(),
        data: Some(vec![]),
        kind: CreateKind::Ephemeral,
        sequential: false,
        acl: Vec::new(),
    });
    assert!(matches!(raw.call(1, create), Ok(Response::Created { .. })));
    daemon.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let mut id = 2;
    while stopped.elapsed() < Duration::from_secs(5) {
        raw.send(&Request { id, op: Op::Ping });
        id += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    daemon.signal(Signal::SIGCONT);
    // Every ping is answered, in order, and no goodbye comes: the session lived through it.
    let mut expired = None;
    for want in 2..id {
        match raw.receive::<ServerMessage>() {
            Some(ServerMessage::Reply { id: got, .. }) => assert_eq!(got, want),
            Some(ServerMessage::Closing(e)) => {
                expired = Some(e);
                break;
            }
            Some(ServerMessage::Event(_)) => {}
            None => panic!("connection closed without a goodbye"),
        }
    }
    let alive = expired.is_none()
        && matches!(raw.call(id, Op::Exists { path: "/t10-raw".into(), watch: false }), Ok(Response::Exists(Some(_))));
    torture::figure(&format!(
        "T10 daemon SIGSTOP 5 s, raw session of 2 s pinging throughout: session {}",
        expired.as_ref().map_or_else(|| "survived with its ephemeral".to_owned(), |e| format!("expired ({e})"))
    ));
    assert!(alive, "a session was charged for time the daemon did not run: {expired:?}");
}

/// How a start on a damaged store went.
enum Start {
    Serving(Spawned),
    /// Exited before listening, with its log.
    Refused(String),
}

/// Starts batond on `data` and waits until it listens or exits.
fn start_on(data: &Path, dir: &Path) -> Start {
    let socket = dir.join("t18.sock");
    let log = dir.join("t18.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = Spawned::spawn(
        Command::new(binary("batond"))
            .arg("--data-dir")
            .arg(data)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(stderr),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Start::Serving(child);
        }
        if child.0.try_wait().unwrap().is_some() {
            return Start::Refused(std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "batond neither listened nor exited on a damaged store");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn t18_data(i: usize) -> Vec<u8> {
    format!("t18-node-{i}-{}", "x".repeat(i % 97)).into_bytes()
}

/// Damages `bytes` by trial number: flipped bytes anywhere, flipped bytes near the end (the
/// newest pages), or a cut tail. Returns a description.
fn damage(bytes: &mut Vec<u8>, mode: u64, rng: &mut Rng) -> String {
    let len = bytes.len() as u64;
    match mode {
        0 => {
            let flips: Vec<u64> = (0..=rng.below(8)).map(|_| rng.below(len)).collect();
            for &at in &flips {
                bytes[at as usize] ^= 1 << rng.below(8);
            }
            format!("flipped bits at {flips:?}")
        }
        1 => {
            let tail = len.min(64 * 1024);
            let flips: Vec<u64> = (0..=rng.below(8)).map(|_| len - tail + rng.below(tail)).collect();
            for &at in &flips {
                bytes[at as usize] ^= 0xff;
            }
            format!("inverted bytes near the end at {flips:?}")
        }
        _ => {
            let cut = 1 + rng.below(len.min(64 * 1024));
            bytes.truncate((len - cut) as usize);
            format!("cut {cut} bytes off the end")
        }
    }
}

/// A scratch directory with a data directory in it, holding a copy of `data_dir`'s files.
fn copy_of(data_dir: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
        }
    }
    (scratch, data)
}

/// What the damaged-store trials found.
struct Damage {
    trials: u64,
    refused: usize,
    served_ok: usize,
    served_with_errors: usize,
    wrong: Vec<String>,
    unclear: Vec<String>,
}

const NODES: usize = 300;

/// A store with known nodes, cleanly stopped: the daemon (for its data dir) and the file.
async fn pristine_store() -> (Daemon, Vec<u8>) {
    let mut daemon = Daemon::start();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    client.create("/t18", b"", CreateOptions::persistent()).await.unwrap();
    for i in 0..NODES {
        client.create(&format!("/t18/n{i}"), &t18_data(i), CreateOptions::persistent()).await.unwrap();
    }
    drop(client);
    assert!(daemon.terminate().success());
    let pristine = std::fs::read(daemon.data_dir().join("baton.redb")).expect("the store file");
    (daemon, pristine)
}

/// Starts batond on `trials` seeded damaged copies of a pristine store, the damage cycling
/// through `modes` (see [`damage`]).
async fn damaged_store_trials(modes: &[u64], trials: u64) -> Damage {
    let seed = torture::seed(18);
    let (daemon, pristine) = pristine_store().await;
    let pristine_dir = daemon.data_dir();
    let mut rng = Rng::new(seed);
    let (mut refused, mut served_ok, mut served_with_errors) = (0, 0, 0);
    let (mut wrong, mut unclear) = (Vec::new(), Vec::new());
    for trial in 0..trials {
        let (scratch, data) = copy_of(&pristine_dir);
        let mut bytes = pristine.clone();
        let what = damage(&mut bytes, modes[(trial % modes.len() as u64) as usize], &mut rng);
        assert_ne!(bytes, pristine, "trial {trial}: the damage changed nothing");
        std::fs::write(data.join("baton.redb"), &bytes).unwrap();
        let log_path = scratch.path().join("t18.log");
        let refusal = |log: &str, unclear: &mut Vec<String>| {
            if let Some(why) = unclear_refusal(log) {
                unclear.push(format!("trial {trial} ({what}): {why}"));
            }
        };
        match start_on(&data, scratch.path()) {
            Start::Refused(log) => {
                refused += 1;
                refusal(&log, &mut unclear);
            }
            Start::Serving(mut child) => {
                let (errors, bad) = read_back(&scratch.path().join("t18.sock"), NODES).await;
                // Damage that only a write meets (redb's allocator state) stops the daemon
                // after it began listening: that is a refusal too, if it says why.
                if bad.iter().any(|b| b.starts_with("listening but no session"))
                    && let Some(log) = exited_within(&mut child, Duration::from_secs(10), &log_path)
                {
                    refused += 1;
                    refusal(&log, &mut unclear);
                } else if !bad.is_empty() {
                    wrong.push(format!("trial {trial} ({what}): {}", bad.join("; ")));
                } else if errors > 0 {
                    served_with_errors += 1;
                } else {
                    served_ok += 1;
                }
            }
        }
    }
    Damage { trials, refused, served_ok, served_with_errors, wrong, unclear }
}

/// Why a refusal's log is not a clear error — its last word a panic's, or nothing — if so.
fn unclear_refusal(log: &str) -> Option<String> {
    let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    if last.contains("panicked") || last.contains("RUST_BACKTRACE") {
        let at = log.find("panicked").unwrap_or(0);
        let panic: Vec<&str> = log[at..].lines().take(2).collect();
        Some(panic.join(" "))
    } else if last.is_empty() {
        Some("exited with an empty log".to_owned())
    } else {
        None
    }
}

fn t18_figure(what: &str, d: &Damage) {
    torture::figure(&format!(
        "T18 {what}: {} trials: refused {} ({} by a panic, not a clear error), served correctly {}, served with read errors {}, served wrong data {}; seed {}",
        d.trials,
        d.refused,
        d.unclear.len(),
        d.served_ok,
        d.served_with_errors,
        d.wrong.len(),
        torture::seed(18)
    ));
    for line in d.unclear.iter().chain(&d.wrong) {
        eprintln!("  {line}");
    }
    assert_eq!(d.refused + d.served_ok + d.served_with_errors + d.wrong.len(), d.trials as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_a_store_with_a_cut_tail_is_refused_with_a_clear_error_or_served_correctly() {
    let d = damaged_store_trials(&[2], 8 * torture::scale()).await;
    t18_figure("cut tails", &d);
    assert!(d.wrong.is_empty(), "wrong data served silently:\n{}", d.wrong.join("\n"));
    assert!(d.unclear.is_empty(), "refused without a clear error:\n{}", d.unclear.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_flipped_bytes_are_refused_with_a_clear_error_or_served_correctly() {
    let d = damaged_store_trials(&[0, 1], 24 * torture::scale()).await;
    t18_figure("flipped bytes", &d);
    assert!(d.refused > 0, "no trial damaged anything the daemon noticed");
    assert!(d.wrong.is_empty(), "wrong data served silently:\n{}", d.wrong.join("\n"));
    assert!(d.unclear.is_empty(), "refused without a clear error:\n{}", d.unclear.join("\n"));
}

/// The journal's record header: magic, payload length, generation, CRC (`store::journal`).
const JOURNAL_HEADER: usize = 20;
/// The daemon's warning of a record read as written past damage to its magic or generation.
const REPAIR_WARNING: &str = "check out against its CRC: it is read as written";
/// The daemon's warnings, at start, of a damaged last record and of a journal cut short.
const JOURNAL_WARNINGS: [&str; 2] = ["the journal's last record does not check out", "the journal file was cut short"];

/// A store whose writes since its last checkpoint are only in its journal: the daemon is
/// killed (-9) after them, so no closing checkpoint folds them into redb. Also where each
/// journal record begins, and where the last ends.
async fn journaled_store() -> (Daemon, Vec<usize>, usize) {
    let mut daemon = Daemon::start_with_config("journal_checkpoint_commits = 100000\n");
    let client = Client::connect(&daemon.addr()).await.unwrap();
    client.create("/t18", b"", CreateOptions::persistent()).await.unwrap();
    for i in 0..NODES {
        client.create(&format!("/t18/n{i}"), &t18_data(i), CreateOptions::persistent()).await.unwrap();
    }
    daemon.kill9();
    let journal = std::fs::read(daemon.data_dir().join("baton.journal")).expect("the journal");
    let mut starts = Vec::new();
    let mut at = 0;
    while journal.get(at..at + 4).is_some_and(|magic| magic != [0; 4]) {
        starts.push(at);
        let len = u32::from_le_bytes(journal[at + 4..at + 8].try_into().unwrap()) as usize;
        at += JOURNAL_HEADER + len;
    }
    assert!(starts.len() > NODES, "the writes are not in the journal: {} records", starts.len());
    (daemon, starts, at)
}

/// Whether the first journal record that bits flipped in `damaged` reached lost its magic or
/// generation bytes (and, since it was not read as written, more of it): then it looks like
/// the end of the log, and nothing shows the damage.
fn looks_like_the_end(pristine: &[u8], damaged: &[u8], starts: &[usize], end: usize) -> bool {
    let ends = starts.iter().skip(1).copied().chain([end]);
    let Some(first) = starts.iter().zip(ends).find(|&(&s, e)| damaged[s..e] != pristine[s..e]).map(|(&s, _)| s) else {
        return false;
    };
    damaged[first..first + 4] != pristine[first..first + 4]
        || damaged[first + 8..first + 16] != pristine[first + 8..first + 16]
}

/// What the damaged-journal trials found.
#[derive(Default)]
struct JournalDamage {
    trials: u64,
    refused: usize,
    served_whole: usize,
    served_before_damage_warned: usize,
    served_before_damage_unseeable: usize,
    wrong: Vec<String>,
    unclear: Vec<String>,
}

/// Starts batond on seeded damaged copies of a journaled store: bits flipped anywhere in
/// its records, bits flipped in its last records, or its records cut short.
async fn damaged_journal_trials(trials: u64) -> JournalDamage {
    let seed = torture::seed(18);
    let (daemon, starts, end) = journaled_store().await;
    let pristine_dir = daemon.data_dir();
    let pristine = std::fs::read(pristine_dir.join("baton.journal")).unwrap();
    let mut rng = Rng::new(seed);
    let mut found = JournalDamage { trials, ..JournalDamage::default() };
    for trial in 0..trials {
        let (scratch, data) = copy_of(&pristine_dir);
        let mut bytes = pristine.clone();
        let what = match trial % 3 {
            0 => {
                let flips: Vec<u64> = (0..=rng.below(3)).map(|_| rng.below(end as u64)).collect();
                for &at in &flips {
                    bytes[at as usize] ^= 1 << rng.below(8);
                }
                format!("flipped bits at {flips:?}")
            }
            1 => {
                let at = end - 1 - rng.below(300) as usize;
                bytes[at] ^= 1 << rng.below(8);
                format!("flipped a bit at {at} (the records end at {end})")
            }
            _ => {
                let cut = rng.below(end as u64) as usize;
                bytes.truncate(cut);
                format!("cut the file at {cut} (the records end at {end})")
            }
        };
        std::fs::write(data.join("baton.journal"), &bytes).unwrap();
        match start_on(&data, scratch.path()) {
            Start::Refused(log) => {
                found.refused += 1;
                if let Some(why) = unclear_refusal(&log) {
                    found.unclear.push(format!("trial {trial} ({what}): {why}"));
                }
            }
            Start::Serving(_child) => {
                let log = std::fs::read_to_string(scratch.path().join("t18.log")).unwrap_or_default();
                match prefix_served(&scratch.path().join("t18.sock")).await {
                    Err(bad) => found.wrong.push(format!("trial {trial} ({what}): {bad}")),
                    // Every byte of a record is checked: served whole means undamaged, or a
                    // record read as written past damage to its magic or generation, said so.
                    Ok(served) if served == NODES && (bytes == pristine || log.contains(REPAIR_WARNING)) => {
                        found.served_whole += 1;
                    }
                    Ok(served) if served == NODES => {
                        found.wrong.push(format!("trial {trial} ({what}): served whole with no word of the damage"));
                    }
                    Ok(_) if JOURNAL_WARNINGS.iter().any(|w| log.contains(w)) => found.served_before_damage_warned += 1,
                    Ok(_) if bytes.len() == pristine.len() && looks_like_the_end(&pristine, &bytes, &starts, end) => {
                        found.served_before_damage_unseeable += 1;
                    }
                    Ok(served) => {
                        found.wrong.push(format!("trial {trial} ({what}): {served} of {NODES} nodes, no warning"));
                    }
                }
            }
        }
    }
    found
}

/// How many of the nodes, in the order they were written, were served, each with its value;
/// an error if what was served is not the writes up to some point.
async fn prefix_served(socket: &Path) -> Result<usize, String> {
    let client = Client::connect(&socket.display().to_string()).await.map_err(|e| format!("no session: {e}"))?;
    let mut served = 0;
    for i in 0..NODES {
        let path = format!("/t18/n{i}");
        match client.get(&path).await {
            Ok((data, _)) if data == t18_data(i) && served == i => served += 1,
            Ok((data, _)) if data == t18_data(i) => return Err(format!("{path} served after a missing node")),
            Ok((data, _)) => return Err(format!("{path} = {:?}", String::from_utf8_lossy(&data))),
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_a_damaged_journal_is_refused_or_served_up_to_the_damage_with_a_warning() {
    let d = damaged_journal_trials(12 * torture::scale()).await;
    torture::figure(&format!(
        "T18 damaged journal: {} trials: refused {} ({} by a panic, not a clear error), served whole {}, served up to the damage with a warning {}, without one where nothing showed it {}, served wrong data {}; seed {}",
        d.trials,
        d.refused,
        d.unclear.len(),
        d.served_whole,
        d.served_before_damage_warned,
        d.served_before_damage_unseeable,
        d.wrong.len(),
        torture::seed(18)
    ));
    for line in d.unclear.iter().chain(&d.wrong) {
        eprintln!("  {line}");
    }
    assert!(d.refused > 0, "no damage in the middle of the journal was refused");
    assert!(d.served_before_damage_warned > 0, "no damaged last record was warned about");
    assert!(d.wrong.is_empty(), "wrong data or lost writes served silently:\n{}", d.wrong.join("\n"));
    assert!(d.unclear.is_empty(), "refused without a clear error:\n{}", d.unclear.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t18_a_bit_flipped_inside_a_stored_value_is_detected_not_served() {
    let (daemon, mut bytes) = pristine_store().await;
    let value = t18_data(200);
    let mut flipped = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(value.len()).position(|w| w == value.as_slice()) {
        let end = at + found + value.len();
        bytes[end - 1] ^= 1; // the last 'x' becomes 'y'
        flipped += 1;
        at = end;
    }
    assert!(flipped > 0, "the value is not stored verbatim: nothing to flip");
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    std::fs::write(data.join("baton.redb"), &bytes).unwrap();
    drop(daemon);
    match start_on(&data, scratch.path()) {
        Start::Refused(log) => assert!(!log.contains("panicked"), "refused by a panic:\n{log}"),
        Start::Serving(_child) => {
            let client = Client::connect(&scratch.path().join("t18.sock").display().to_string()).await.unwrap();
            if let Ok((data, _)) = client.get("/t18/n200").await {
                assert_eq!(data, value, "served altered data silently ({flipped} stored copies flipped)");
            }
        }
    }
}

/// The daemon's log once it has exited within `limit`, or `None` if it is still running.
fn exited_within(child: &mut Spawned, limit: Duration, log: &Path) -> Option<String> {
    let deadline = Instant::now() + limit;
    while child.0.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(std::fs::read_to_string(log).unwrap_or_default())
}

/// Reads every node back: (read errors, wrong answers).
async fn read_back(socket: &Path, nodes: usize) -> (usize, Vec<String>) {
    let client = match Client::connect(&socket.display().to_string()).await {
        Ok(client) => client,
        Err(e) => return (1, vec![format!("listening but no session: {e}")]),
    };
    let (mut errors, mut bad) = (0, Vec::new());
    for i in 0..nodes {
        let path = format!("/t18/n{i}");
        match client.get(&path).await {
            Ok((data, _)) if data == t18_data(i) => {}
            Ok((data, _)) => bad.push(format!("{path} = {:?}", String::from_utf8_lossy(&data))),
            Err(e) if e.is_no_node() => bad.push(format!("{path} missing")),
            Err(_) => errors += 1,
        }
    }
    match client.children("/t18").await {
        Ok(children) if children.len() != nodes => bad.push(format!("/t18 lists {} children", children.len())),
        Ok(_) => {}
        Err(_) => errors += 1,
    }
    (errors, bad)
}
