//! Hostile and heavy load against the real daemon (RELIABILITY.md T7, T12, T13):
//! - T7: a watcher that stops reading under a flood of events is cut off at its output
//!   buffer limit while the other watchers get every event, in order; memory stays bounded;
//! - T12: many hostile connections (a hello never finished, a frame announced and never
//!   sent — slowloris) cost little memory each, are closed in time, and healthy clients
//!   succeed throughout (tests/e2e/protocol.rs and limits.rs cover malformed, oversized and
//!   garbage input one connection at a time);
//! - T13: file descriptors exhausted (`prlimit --nofile` on batond): new connections are
//!   refused or wait, the daemon neither crashes nor spins, existing sessions keep working,
//!   and new connections are accepted again once descriptors are freed.

use baton::proto::frame;
use baton::proto::message::{HelloReply, Op, PersistentWatchMode, Request, Response, ServerMessage};
use baton::{Client, CreateOptions, ErrorCode, EventKind};
use baton_tests::raw::{Raw, hello};
use baton_tests::torture::{self, cpu_ticks, fd_count, rss_kib};
use baton_tests::{Daemon, eventually};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Samples the daemon's resident memory until stopped; returns the peak in KiB.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::SeqCst) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// What a flood did to the slow watcher and the fast ones.
struct Flood {
    /// Why the slow watcher was hung up on, if it was.
    reason: Option<ErrorCode>,
    /// Events the slow watcher could still read.
    buffered: usize,
    acked: usize,
    delivered: usize,
    caught_up: bool,
    before_kib: u64,
    peak_kib: u64,
}

/// One slow watcher (never reads), three fast ones, four writers flooding one node with
/// `sets` sets; the daemon's output buffer limit is `outbound` bytes.
async fn flood(outbound: usize, sets: usize) -> Flood {
    let daemon = Daemon::start_with_config(&format!(
        "node_data_max = 1024\nframe_len_max = 16384\noutbound_bytes_max = {outbound}\n"
    ));
    let path = format!("/t7/{}", "n".repeat(200));
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/t7", b"", CreateOptions::persistent()).await.unwrap();
    setup.create(&path, b"", CreateOptions::persistent()).await.unwrap();

    // The slow one: watches everything and never reads again.
    let (mut slow, _) = Raw::session(&daemon.socket(), 30_000);
    let added = slow.call(1, Op::AddWatch { path: "/t7".into(), mode: PersistentWatchMode::Recursive });
    assert_eq!(added, Ok(Response::WatchAdded));
    // The others read as fast as events come.
    let mut fast = Vec::new();
    for _ in 0..3 {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        let mut watcher = client.watch("/t7", true).await.unwrap();
        let last = Arc::new(AtomicU64::new(0));
        let seen = last.clone();
        fast.push((
            client,
            last,
            tokio::spawn(async move {
                let mut zxids = Vec::new();
                while let Ok(event) = watcher.next().await {
                    assert_eq!(event.kind, EventKind::DataChanged);
                    seen.store(event.zxid.0, Ordering::SeqCst);
                    zxids.push(event.zxid.0);
                }
                zxids
            }),
        ));
    }
    let before_kib = rss_kib(daemon.pid()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(daemon.pid(), stop.clone());

    // The flood: concurrent writers, every acknowledged set's zxid kept.
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        let path = path.clone();
        writers.push(tokio::spawn(async move {
            let mut zxids = Vec::new();
            for n in 0..sets / 4 {
                zxids.push(client.set(&path, format!("{w}-{n}").as_bytes(), None).await.unwrap().mzxid.0);
            }
            zxids
        }));
    }
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    acked.sort_unstable();
    let newest = *acked.last().unwrap();
    let caught_up =
        eventually(Duration::from_secs(30), || fast.iter().all(|(_, last, _)| last.load(Ordering::SeqCst) >= newest))
            .await;
    stop.store(true, Ordering::SeqCst);
    let peak_kib = sampler.join().unwrap();

    // The slow one was told why, and hung up on.
    let (mut buffered, mut reason) = (0, None);
    // Read until the goodbye and the hang-up, or until every event came (not cut off).
    while buffered < acked.len() {
        match slow.receive::<ServerMessage>() {
            Some(ServerMessage::Event(_)) => buffered += 1,
            Some(ServerMessage::Closing(e)) => reason = Some(e),
            Some(ServerMessage::Reply { .. }) => {}
            None => break,
        }
    }
    let mut delivered = 0;
    drop(slow);
    for (client, _, reader) in fast {
        drop(client);
        let zxids = reader.await.unwrap();
        assert!(zxids.windows(2).all(|w| w[0] < w[1]), "a fast watcher's events are out of order or repeated");
        let missing = acked.iter().filter(|z| zxids.binary_search(z).is_err()).count();
        assert_eq!(missing, 0, "a fast watcher missed {missing} of {} events", acked.len());
        delivered += zxids.len();
    }
    Flood { reason: reason.map(|r| r.code), buffered, acked: acked.len(), delivered, caught_up, before_kib, peak_kib }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_a_slow_watcher_is_cut_off_under_a_flood_while_the_others_keep_up() {
    const OUTBOUND: usize = 65_536;
    let f = flood(OUTBOUND, 3_000 * torture::scale() as usize).await;
    let growth_kib = f.peak_kib.saturating_sub(f.before_kib);
    torture::figure(&format!(
        "T7 slow watcher cut off: {:?} after {} events read of {} sent; fast watchers got {} of {} events (missing 0); daemon RSS {} KiB -> peak {} KiB (+{growth_kib} KiB, output buffer limit {} KiB)",
        f.reason,
        f.buffered,
        f.acked,
        f.delivered,
        3 * f.acked,
        f.before_kib,
        f.peak_kib,
        OUTBOUND / 1024
    ));
    assert!(f.caught_up, "the fast watchers fell behind");
    assert_eq!(f.reason, Some(ErrorCode::SlowConsumer), "the slow watcher was not cut off");
    assert!(f.buffered < f.acked, "the slow watcher got everything: it was never slow");
    // Bounded: the flood is not queued for the slow client beyond its limit. The bound is
    // loose (the store's cache and the allocator grow too); TORTURE_SCALE makes an
    // unbounded queue cross it.
    assert!(growth_kib < 64 * 1024, "daemon memory grew by {growth_kib} KiB under the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_negative_control_with_a_large_output_buffer_the_same_watcher_is_not_cut() {
    // The default limit (64 MiB) holds the whole flood, which stays under the limit on queued
    // messages too (16 384): the cut above is the byte limit's doing. Not scaled.
    let f = flood(64 * 1024 * 1024, 3_000).await;
    assert!(f.caught_up);
    assert_eq!(f.reason, None, "cut off although its buffer had room");
    assert_eq!(f.buffered, f.acked, "the slow watcher, reading late, gets every event");
}

/// Whether the server closed `stream` before `deadline` (reads until EOF, discarding).
fn closed_before(stream: &mut UnixStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_hostile_connections_cost_little_are_closed_and_healthy_clients_always_succeed() {
    let hostile = (300 * torture::scale() as usize).min(900);
    let daemon = Daemon::start_with_config(
        "handshake_timeout_ms = 1000\nconnections_max = 100000\nconnections_per_peer_max = 100000\n",
    );
    let healthy = Client::connect(&daemon.addr()).await.unwrap();
    healthy.create("/t12", b"", CreateOptions::persistent()).await.unwrap();
    let before_kib = rss_kib(daemon.pid()).unwrap();
    let mut streams = Vec::new();
    for i in 0..hostile {
        let stream = match i % 3 {
            // A hello that never finishes: three bytes of its length prefix.
            0 => {
                let mut s = UnixStream::connect(daemon.socket()).unwrap();
                s.write_all(&[40, 0, 0]).unwrap();
                s
            }
            // A session whose next frame announces 1 MB and sends 10 bytes of it (slowloris).
            1 => {
                let (mut raw, _) = Raw::session(&daemon.socket(), 2000);
                raw.send_bytes(&1_000_000u32.to_le_bytes()).unwrap();
                raw.send_bytes(&[0; 10]).unwrap();
                raw.stream
            }
            // A session that sends half a small request and stops.
            _ => {
                let (mut raw, _) = Raw::session(&daemon.socket(), 2000);
                raw.send_bytes(&100u32.to_le_bytes()).unwrap();
                raw.send_bytes(&[1]).unwrap();
                raw.stream
            }
        };
        streams.push(stream);
    }
    // Healthy traffic while they hang on.
    let mut ok = 0;
    let ops = 300;
    for n in 0..ops / 2 {
        let path = format!("/t12/n{n}");
        ok += usize::from(healthy.create(&path, b"v", CreateOptions::persistent()).await.is_ok());
        ok += usize::from(healthy.get(&path).await.is_ok_and(|(d, _)| d == b"v"));
    }
    let with_hostile_kib = rss_kib(daemon.pid()).unwrap();
    let per_connection = with_hostile_kib.saturating_sub(before_kib) as f64 / hostile as f64;
    // Each is closed: the hello by the handshake timeout, the stalled sessions when they
    // expire (no traffic for their 2 s timeout).
    let deadline = Instant::now() + Duration::from_secs(20);
    let closed = streams.iter_mut().map(|s| closed_before(s, deadline)).filter(|&c| c).count();
    let still_ok = healthy.exists("/t12").await.is_ok();
    torture::figure(&format!(
        "T12 hostile connections: {hostile} (unfinished hellos, stalled 1 MB frames, half requests): daemon RSS +{} KiB ({per_connection:.1} KiB each); closed in time {closed} of {hostile}; healthy client ops succeeded {ok} of {ops}",
        with_hostile_kib.saturating_sub(before_kib)
    ));
    assert_eq!(ok, ops, "healthy clients must always succeed");
    assert!(still_ok);
    assert_eq!(closed, hostile, "hostile connections left open");
    assert!(per_connection < 256.0, "{per_connection:.1} KiB per hostile connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_fd_exhaustion_refuses_without_spinning_keeps_sessions_and_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let daemon = Daemon::start();
    let pid = daemon.pid();
    let healthy = Client::connect(&daemon.addr()).await.unwrap();
    healthy.create("/t13", b"", CreateOptions::persistent()).await.unwrap();
    let limit = fd_count(pid).unwrap() + 12;
    let status =
        Command::new("prlimit").arg("--pid").arg(pid.to_string()).arg(format!("--nofile={limit}:{limit}")).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: prlimit cannot change batond's limit here");
        return;
    }
    // Sessions that outlive the test (they do not ping): an expiry would free descriptors.
    let hello = frame::to_frame(&hello(60_000), frame::FRAME_LEN_MAX_DEFAULT).unwrap();
    let (mut accepted, mut refused, mut closed, mut waiting) = (0, Vec::new(), 0, 0);
    let (mut held, mut sessions) = (Vec::new(), Vec::new());
    for _ in 0..64 {
        let Ok(stream) = UnixStream::connect(daemon.socket()) else {
            closed += 1;
            break;
        };
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut raw = Raw { stream };
        let started = Instant::now();
        let _ = raw.send_bytes(&hello);
        match raw.receive::<HelloReply>() {
            Some(HelloReply::Accepted(_)) => {
                accepted += 1;
                sessions.push(raw);
                continue;
            }
            Some(HelloReply::Refused(e)) => refused.push(e.to_string()),
            Some(other) => panic!("a Unix hello answered with {other:?}"),
            None if started.elapsed() >= Duration::from_millis(1900) => waiting += 1,
            None => closed += 1,
        }
        held.push(raw);
        if refused.len() + closed + waiting >= 3 {
            break;
        }
    }
    // Exhausted, with connections waiting: the daemon must not spin on accept.
    let fds = fd_count(pid).unwrap_or(0);
    let ticks = cpu_ticks(pid).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_percent = (cpu_ticks(pid).unwrap() - ticks) as f64 / 2.0; // 100 ticks a second
    let during = healthy.create("/t13/during", b"v", CreateOptions::persistent()).await;
    // Which of the accepted sessions still answer.
    let answering = sessions
        .iter_mut()
        .enumerate()
        .filter_map(|(i, raw)| {
            (raw.send_bytes(
                &frame::to_frame(&Request { id: i as u64 + 1, op: Op::Ping }, frame::FRAME_LEN_MAX_DEFAULT).unwrap(),
            )
            .is_ok()
                && matches!(raw.receive::<ServerMessage>(), Some(ServerMessage::Reply { .. })))
            .then_some(())
        })
        .count();
    drop(held);
    drop(sessions);
    let mut recovered = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !recovered && Instant::now() < deadline {
        if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), Client::connect(&daemon.addr())).await {
            recovered = client.exists("/t13/during").await.is_ok_and(|s| s.is_some());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists() && !daemon.log().contains("panicked");
    torture::figure(&format!(
        "T13 fd limit {limit} ({fds} open at exhaustion): {accepted} accepted ({answering} still answering), then {} refused ({}), {closed} closed, {waiting} left waiting; daemon CPU while exhausted {cpu_percent:.0} %; existing session wrote: {}; recovered: {recovered}; alive: {alive}",
        refused.len(),
        refused.first().map_or("-", String::as_str),
        during.is_ok()
    ));
    for line in daemon.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5) {
        eprintln!("  batond: {line}");
    }
    assert!(accepted >= 1, "no connection accepted under the limit");
    assert_eq!(answering, accepted, "accepted sessions were dropped while descriptors ran out");
    assert!(refused.len() + closed + waiting >= 1, "the descriptors never ran out: the fault did not fire");
    assert!(alive, "batond died under fd exhaustion; log:\n{}", daemon.log());
    assert!(cpu_percent < 50.0, "batond spins at {cpu_percent:.0} % CPU while out of descriptors");
    during.expect("an existing session keeps working while descriptors are exhausted");
    assert!(recovered, "new connections were not accepted once descriptors were freed");
}
