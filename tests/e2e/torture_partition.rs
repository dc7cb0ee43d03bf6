//! T9 (RELIABILITY.md): session expiry under a real network partition. A `baton lock` holder
//! on a second host (network namespace, TCP) is cut off by iptables; the server must expire
//! its session and remove its lock node, the holder must kill its command and report the lost
//! lock, and a live session elsewhere must not expire. Needs root; skips elsewhere.

use baton::{Client, CreateOptions};
use baton_tests::access::TcpAccess;
use baton_tests::netns::Hosts;
use baton_tests::torture;
use baton_tests::{Daemon, Spawned, binary, eventually, wait_with_deadline};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 7301;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_a_partitioned_holder_loses_its_session_and_lock_and_no_live_session_expires() {
    let Some(mut hosts) = Hosts::create() else { return };
    let listen = format!("{}:{PORT}", hosts.ip_a);
    // TCP needs a token; the nodes are open to all, as the test mixes Unix and TCP clients.
    let access = TcpAccess::new("t9");
    let config = tempfile::NamedTempFile::new().unwrap();
    let text = format!(
        "listen = \"{listen}\"\ntokens_file = \"{}\"\ndefault_acl = [\"anyone:all\"]\n",
        access.tokens_file().display()
    );
    std::fs::write(config.path(), text).unwrap();
    let daemon = Daemon::start_in(&hosts.a, &["--config", &config.path().display().to_string()]);
    let observer = Client::connect(&daemon.addr()).await.unwrap();
    observer.create("/t9", b"", CreateOptions::persistent()).await.unwrap();
    // A live session with the shortest timeout: it must outlive everything below.
    let live = Client::builder().session_timeout(Duration::from_secs(2)).connect(&daemon.addr()).await.unwrap();
    live.create("/t9/live", b"", CreateOptions::ephemeral()).await.unwrap();

    let mut holder = Spawned::spawn(
        Command::new("ip")
            .args(["netns", "exec", &hosts.b])
            .arg(binary("baton"))
            .arg("--token-file")
            .arg(access.token_file())
            .args(["--addr", &listen, "lock", "/t9/lock", "--session-timeout", "3s", "--grace", "1s", "--"])
            .args(["sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let held = eventually(Duration::from_secs(20), || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| rt.block_on(observer.children("/t9/lock"))).is_ok_and(|c| c.len() == 1)
    })
    .await;
    assert!(held, "the holder on the other host never took the lock");

    hosts.partition();
    let cut = Instant::now();
    let removed = eventually(Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| rt.block_on(observer.children("/t9/lock"))).is_ok_and(|c| c.is_empty())
    })
    .await;
    let removal_ms = cut.elapsed().as_millis();
    // The holder, cut off, must give up: kill its command and say the lock was lost.
    let status = wait_with_deadline(&mut holder.0, Duration::from_secs(30));
    hosts.heal();
    let live_ok =
        live.exists("/t9/live").await.is_ok_and(|s| s.is_some_and(|s| s.ephemeral_owner == live.session_id()));
    torture::figure(&format!(
        "T9 partition: holder's lock node removed {removal_ms} ms after the cut (session timeout 3000 ms, tick 50 ms); holder exit {:?}; false expiries {}",
        status.code(),
        u8::from(!live_ok)
    ));
    assert!(removed, "the partitioned holder's session never expired");
    assert_eq!(status.code(), Some(6), "the holder must report the lost lock (exit 6)");
    assert!(live_ok, "a live session expired");
}
