//! Sessions against the real daemon: expiry deletes ephemerals and tells watchers; a dropped
//! connection is resumed within the timeout with ephemerals and watches intact and missed
//! changes replayed (or an explicit reset); a connection-bound session ends with its
//! connection; a daemon restart gives sessions a fresh timeout.

use baton::proto::message::{CreateKind, CreateRequest, ServerMessage};
use baton::{Client, CreateOptions, ErrorCode, EventKind, SessionState};
use baton_proto::Op;
use baton_tests::Daemon;
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use baton_tests::raw::Raw;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_expires_and_its_ephemerals_go() {
    let daemon = Daemon::start();
    let watcher = Client::connect(&daemon.addr()).await.unwrap();

    // A client that creates an ephemeral and then stops talking.
    let (mut silent, server) = Raw::session(&daemon.socket(), 2000);
    assert_eq!(server.timeout_ms, 2000);
    let op = Op::Create(CreateRequest {
        path: "/eph".into(),
        data: Some(vec![]),
        kind: CreateKind::Ephemeral,
        sequential: false,
        acl: Vec::new(),
    });
    silent.call(1, op).unwrap();

    let (stat, gone) = watcher.exists_and_watch("/eph").await.unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, server.session_id);
    let started = Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(10), gone.changed()).await.expect("expiry in time").unwrap();
    let waited = started.elapsed();
    assert_eq!(event.kind, EventKind::Deleted);
    assert!(waited <= SHORT + Duration::from_secs(1), "removed {waited:?} after the owner went silent");
    assert!(watcher.exists("/eph").await.unwrap().is_none());

    // The silent client is told why before the connection closes.
    let goodbye = tokio::task::spawn_blocking(move || silent.receive::<ServerMessage>()).await.unwrap();
    assert!(
        matches!(goodbye, Some(ServerMessage::Closing(ref e)) if e.code == ErrorCode::SessionExpired),
        "{goodbye:?}; log:\n{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_client_keeps_its_session_well_past_the_timeout() {
    let daemon = Daemon::start();
    let owner = Client::builder().session_timeout(SHORT).connect(&daemon.addr()).await.unwrap();
    owner.create("/mine", b"", CreateOptions::ephemeral()).await.unwrap();
    tokio::time::sleep(SHORT * 3).await; // the client's pings keep it alive
    assert!(owner.exists("/mine").await.unwrap().is_some());
    assert_eq!(*owner.session_state().borrow(), SessionState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_watches_and_replays_missed_changes() {
    let access = TcpAccess::new("resumer");
    let daemon = Daemon::start_with_config(&access.config());
    let proxy = Proxy::start(access.tcp()).await;
    let client = access.builder().session_timeout(Duration::from_secs(10)).connect(&proxy.addr()).await.unwrap();
    let writer = Client::connect(&daemon.addr()).await.unwrap();
    writer.create("/cfg", b"v0", CreateOptions::persistent()).await.unwrap();
    client.create("/owned", b"", CreateOptions::ephemeral()).await.unwrap();
    let (_, _, data_watch) = client.get_and_watch("/cfg").await.unwrap();
    let mut recursive = client.watch("/", true).await.unwrap();
    let session = client.session_id();

    proxy.cut_off(&client).await;
    let mut states = client.session_state();
    // Changes while the client is away.
    writer.set("/cfg", b"v1", None).await.unwrap();
    writer.create("/new", b"", CreateOptions::persistent()).await.unwrap();
    proxy.unblock();
    tokio::time::timeout(Duration::from_secs(10), states.wait_for(|s| *s == SessionState::Connected))
        .await
        .expect("client resumes")
        .unwrap();

    assert_eq!(client.session_id(), session, "same session after the resume");
    assert!(writer.exists("/owned").await.unwrap().is_some(), "the ephemeral survived the disconnection");
    let changed = tokio::time::timeout(Duration::from_secs(5), data_watch.changed()).await.unwrap().unwrap();
    assert_eq!((changed.path.as_str(), changed.kind), ("/cfg", EventKind::DataChanged));
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), recursive.next()).await.unwrap().unwrap();
        replayed.push((event.path, event.kind, event.zxid));
    }
    assert_eq!((replayed[0].0.as_str(), replayed[0].1), ("/cfg", EventKind::DataChanged));
    assert_eq!((replayed[1].0.as_str(), replayed[1].1), ("/new", EventKind::Created));
    assert!(replayed[0].2 < replayed[1].2, "replayed in zxid order");
    // And the watch is live again.
    writer.set("/new", b"x", None).await.unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), recursive.next()).await.unwrap().unwrap();
    assert_eq!((live.path.as_str(), live.kind), ("/new", EventKind::DataChanged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_past_the_retained_history_gets_an_explicit_reset() {
    let access = TcpAccess::new("resumer");
    let daemon = Daemon::start_with_config(&format!("{}watch_history_txns = 2\n", access.config()));
    let proxy = Proxy::start(access.tcp()).await;
    let client = access.builder().session_timeout(Duration::from_secs(10)).connect(&proxy.addr()).await.unwrap();
    let writer = Client::connect(&daemon.addr()).await.unwrap();
    let mut watch = client.watch("/w", false).await.unwrap();
    proxy.cut_off(&client).await;
    writer.create("/w", b"", CreateOptions::persistent()).await.unwrap();
    for i in 0..5 {
        writer.create(&format!("/other{i}"), b"", CreateOptions::persistent()).await.unwrap();
    }
    proxy.unblock();
    let event =
        tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("an event, not silence").unwrap();
    assert_eq!((event.path.as_str(), event.kind), ("/w", EventKind::WatchReset));
    writer.set("/w", b"after", None).await.unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert_eq!(live.kind, EventKind::DataChanged, "the persistent watch stays after a reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_bound_session_ends_with_its_connection() {
    let daemon = Daemon::start();
    let observer = Client::connect(&daemon.addr()).await.unwrap();
    let bound = Client::builder().connection_bound(true).connect(&daemon.addr()).await.unwrap();
    bound.create("/holder", b"", CreateOptions::ephemeral()).await.unwrap();
    let (_, gone) = observer.exists_and_watch("/holder").await.unwrap();
    let started = Instant::now();
    drop(bound);
    let event = tokio::time::timeout(Duration::from_secs(5), gone.changed()).await.expect("released").unwrap();
    assert_eq!(event.kind, EventKind::Deleted);
    eprintln!("connection-bound ephemeral released {:?} after the client went", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_daemon_restart_and_resume() {
    let mut daemon = Daemon::start();
    let client = Client::builder().session_timeout(SHORT).connect(&daemon.addr()).await.unwrap();
    client.create("/lease", b"", CreateOptions::ephemeral()).await.unwrap();
    let session = client.session_id();
    daemon.kill9();
    daemon.restart();
    // Requests wait while the client reconnects; a connection loss may surface once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.exists("/lease").await.map_or(true, |stat| stat.is_none()) {
        assert!(Instant::now() < deadline, "client did not resume; log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.session_id(), session);
    // Well past the timeout, the resumed session (kept alive by its pings) still holds it.
    tokio::time::sleep(SHORT * 2).await;
    let other = Client::connect(&daemon.addr()).await.unwrap();
    let stat = other.exists("/lease").await.unwrap().expect("ephemeral kept by the resumed session");
    assert_eq!(stat.ephemeral_owner, session);
}

/// The client keeps reading while its requests wait to be sent: large sets and large gets on
/// one session do not stall each other (see `traffic`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_and_large_replies_on_one_session_do_not_stall() {
    let daemon = Daemon::start();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    baton_tests::traffic::large_requests_and_replies_at_once(&client, 8, 10).await;
}
