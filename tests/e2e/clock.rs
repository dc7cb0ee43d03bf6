//! T10's wall-clock jumps: the daemon's wall clock is stepped forward and back by days (as an
//! NTP step or an operator would) through libfaketime, its monotonic clock left alone. Session
//! deadlines run on the monotonic clock, so no live session expires and no ephemeral goes;
//! zxids keep increasing; only the ctime and mtime stamps follow the wall clock. Needs Debian's
//! `faketime` package (CI installs it); skips elsewhere with the reason.

use baton::{Client, CreateOptions, SessionState};
use baton_tests::Daemon;
use std::path::Path;
use std::time::Duration;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const DAY_MS: u64 = 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_jumps_expire_no_session_and_zxids_keep_increasing() {
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!("skipped: {LIBFAKETIME} is missing (apt-get install faketime)");
        return;
    }
    let stamp_dir = tempfile::tempdir().unwrap();
    let stamp = stamp_dir.path().join("faketime");
    std::fs::write(&stamp, "+0\n").unwrap();
    let stamp_path = stamp.display().to_string();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", stamp_path.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    let daemon = Daemon::start_with_env(&[], &env);
    let client = Client::builder().session_timeout(Duration::from_secs(2)).connect(&daemon.addr()).await.unwrap();
    client.create("/mine", b"", CreateOptions::ephemeral()).await.unwrap();
    let (_, before) = client.create("/stamped", b"0", CreateOptions::persistent()).await.unwrap();

    // Two days forward, for longer than the session timeout.
    std::fs::write(&stamp, "+2d\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ahead = client.set("/stamped", b"1", None).await.unwrap();
    assert!(
        ahead.mtime_ms >= before.mtime_ms + DAY_MS,
        "the jump took effect: {} -> {}",
        before.mtime_ms,
        ahead.mtime_ms
    );
    assert!(client.exists("/mine").await.unwrap().is_some(), "the ephemeral outlived a forward jump");
    assert_eq!(*client.session_state().borrow(), SessionState::Connected);

    // And back, two days behind the real time.
    std::fs::write(&stamp, "-2d\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let behind = client.set("/stamped", b"2", None).await.unwrap();
    assert!(behind.mtime_ms + 3 * DAY_MS <= ahead.mtime_ms + DAY_MS, "the step back took effect");
    assert!(behind.mzxid > ahead.mzxid && ahead.mzxid > before.mzxid, "zxids keep increasing");
    assert!(client.exists("/mine").await.unwrap().is_some(), "the ephemeral outlived a backward jump");
    assert_eq!(*client.session_state().borrow(), SessionState::Connected);
    println!(
        "FIGURE T10 wall-clock jumps (+2 d, then -2 d, 2.5 s each, 2 s session): 0 sessions expired; mtime went {} -> {} -> {} \
         (ms since the epoch); mzxid {} -> {} -> {}",
        before.mtime_ms, ahead.mtime_ms, behind.mtime_ms, before.mzxid, ahead.mzxid, behind.mzxid
    );
    assert!(!daemon.log().contains("session expired"), "no session expired:\n{}", daemon.log());
}
