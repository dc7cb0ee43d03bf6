//! The write-ahead journal against the real daemon: writes acknowledged before a kill -9 come
//! back from the journal at the next start (written with direct I/O or through the page
//! cache), a clean stop leaves nothing to read back, and a damaged record with good ones after
//! it stops the daemon with a clear error instead of dropping what followed.

use baton::{Client, CreateOptions};
use baton_tests::{Daemon, binary, wait_with_deadline};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const JOURNAL: &str = "baton.journal";
const NODES: usize = 40;

/// A daemon killed right after `NODES` acknowledged creates (fewer than a checkpoint's worth,
/// so they live in the journal only).
async fn killed_after_writes() -> Daemon {
    killed_after_writes_with("").await
}

/// As [`killed_after_writes`], for a daemon started with `config`.
async fn killed_after_writes_with(config: &str) -> Daemon {
    let mut daemon = Daemon::start_with_config(config);
    let client = Client::connect(&daemon.addr()).await.unwrap();
    for i in 0..NODES {
        client.create(&format!("/j{i}"), format!("v{i}").as_bytes(), CreateOptions::persistent()).await.unwrap();
    }
    drop(client);
    daemon.kill9();
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_before_a_kill_come_back_from_the_journal() {
    let mut daemon = killed_after_writes().await;
    let journal = std::fs::metadata(daemon.data_dir().join(JOURNAL)).expect("the journal file").len();
    assert!(journal > 0, "the writes went through the journal");

    daemon.restart();
    assert!(daemon.log().contains("applying the journal's entries"), "log:\n{}", daemon.log());
    let client = Client::connect(&daemon.addr()).await.unwrap();
    for i in 0..NODES {
        let (data, _) = client.get(&format!("/j{i}")).await.unwrap();
        assert_eq!(data, format!("v{i}").as_bytes());
    }
    client.set("/j0", b"after", None).await.unwrap();
    drop(client);

    // A clean stop checkpoints: the next start has nothing to read back.
    assert!(daemon.terminate().success());
    daemon.restart();
    let log = daemon.log();
    let second_start = &log[log.rfind("store recovered").expect("two starts")..];
    assert!(!second_start.contains("applying the journal's entries"), "log:\n{log}");
    let client = Client::connect(&daemon.addr()).await.unwrap();
    assert_eq!(client.get("/j0").await.unwrap().0, b"after");
}

/// Both ways of writing the journal bring the writes back after a kill -9, and the daemon
/// says which one it uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_buffered_journal_writes_both_come_back_after_a_kill() {
    for (config, says) in [
        ("", ["written with direct I/O", "refuses direct I/O"]),
        ("journal_direct_io = false\n", ["through the page cache and fdatasync (journal_direct_io = false)"; 2]),
    ] {
        let mut daemon = killed_after_writes_with(config).await;
        let log = daemon.log();
        assert!(says.iter().any(|line| log.contains(line)), "config {config:?}: log:\n{log}");
        daemon.restart();
        let client = Client::connect(&daemon.addr()).await.unwrap();
        for i in 0..NODES {
            assert_eq!(client.get(&format!("/j{i}")).await.unwrap().0, format!("v{i}").as_bytes(), "config {config:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_before_good_ones_is_refused_not_dropped() {
    let daemon = killed_after_writes().await;
    let path = daemon.data_dir().join(JOURNAL);
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    // A byte inside the first record (its header is 20 bytes).
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 24).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], 24).unwrap();
    drop(file);

    let mut child = Command::new(binary("batond"))
        .arg("--data-dir")
        .arg(daemon.data_dir())
        .arg("--socket")
        .arg(daemon.dir().join("again.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a damaged journal must not be served from; stderr:\n{stderr}");
    assert!(stderr.contains("journal") && stderr.contains("good record"), "a clear error; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
