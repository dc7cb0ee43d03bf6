//! The client against a scripted fake server: pipelining, watch dispatch, keep-alive,
//! suspension, resume with watch restoration, expiry and close.

mod fake;

use baton::proto::{ErrorReply, Op, PersistentWatchMode, Response, SessionRequest, WatchEvent, WatchSet};
use baton::{Client, CreateOptions, Error, ErrorCode, EventKind, SessionState, Stat, Zxid};
use fake::{FakeConn, FakeServer, step};
use std::time::Duration;

const SESSION: u64 = 0x77;
/// Long enough that no ping interleaves with a scripted exchange.
const LONG_MS: u32 = 60_000;

async fn connected(server: &FakeServer, timeout_ms: u32) -> (Client, FakeConn) {
    let addr = server.addr();
    let (client, conn) = tokio::join!(Client::connect(&addr), server.accept_new(SESSION, timeout_ms));
    (client.unwrap(), conn)
}

fn stat(mzxid: u64) -> Stat {
    Stat { czxid: Zxid(mzxid), mzxid: Zxid(mzxid), pzxid: Zxid(mzxid), ..Stat::default() }
}

fn event(zxid: u64, path: &str, kind: EventKind) -> baton::proto::ServerMessage {
    baton::proto::ServerMessage::Event(WatchEvent { zxid: Zxid(zxid), path: path.into(), kind })
}

async fn wait_state(client: &Client, wanted: impl Fn(SessionState) -> bool) -> SessionState {
    let mut states = client.session_state();
    let state = step(states.wait_for(|s| wanted(*s))).await.unwrap();
    *state
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    assert_eq!(client.session_id().0, SESSION);
    let script = async {
        let get = conn.request().await;
        let exists = conn.request().await;
        assert!(matches!(get.op, Op::Get { watch: false, .. }));
        assert!(matches!(exists.op, Op::Exists { .. }));
        assert!(get.id < exists.id);
        let data = Response::Data { data: Some(b"x".to_vec()), stat: stat(0x1_0000_0009) };
        conn.reply(get.id, Ok(data)).await;
        conn.reply(exists.id, Ok(Response::Exists(None))).await;
    };
    let (got, exists, ()) = tokio::join!(client.get("/a"), client.exists("/b"), script);
    assert_eq!(got.unwrap().0, b"x");
    assert_eq!(exists.unwrap(), None);
    assert_eq!(client.last_zxid(), Zxid(0x1_0000_0009));
}

#[tokio::test]
async fn server_errors_keep_their_code() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        let r = conn.request().await;
        conn.reply(r.id, Err(ErrorReply::new(ErrorCode::NodeExists, "/a"))).await;
    };
    let (created, ()) = tokio::join!(client.create("/a", b"", CreateOptions::persistent()), script);
    let err = created.unwrap_err();
    assert!(err.is_node_exists(), "{err}");
}

#[tokio::test]
async fn one_event_reaches_every_matching_watcher() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        let get = conn.request().await;
        let data = Response::Data { data: Some(vec![]), stat: stat(2) };
        conn.reply(get.id, Ok(data)).await;
        let add = conn.request().await;
        assert_eq!(add.op, Op::AddWatch { path: "/".into(), mode: PersistentWatchMode::Recursive });
        conn.reply(add.id, Ok(Response::WatchAdded)).await;
    };
    let (get, watch, ()) = tokio::join!(client.get_and_watch("/a"), client.watch("/", true), script);
    let (_, _, oneshot) = get.unwrap();
    let mut recursive = watch.unwrap();
    conn.write(&event(0x1_0000_0005, "/a", EventKind::DataChanged)).await;
    let fired = step(oneshot.changed()).await.unwrap();
    assert_eq!((fired.path.as_str(), fired.kind), ("/a", EventKind::DataChanged));
    let seen = step(recursive.next()).await.unwrap();
    assert_eq!(seen, fired);
    assert_eq!(client.last_zxid(), Zxid(0x1_0000_0005));
}

#[tokio::test]
async fn an_idle_client_pings() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, 300).await;
    let ping: baton::proto::Request = conn.read().await;
    assert_eq!(ping.op, Op::Ping);
    conn.reply(ping.id, Ok(Response::Pong)).await;
    assert_eq!(*client.session_state().borrow(), SessionState::Connected);
}

#[tokio::test]
async fn a_silent_server_is_treated_as_a_lost_connection() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, 300).await;
    // Read the pings but never answer them.
    let _ping: baton::proto::Request = conn.read().await;
    let state = wait_state(&client, |s| matches!(s, SessionState::Suspended { .. })).await;
    assert!(state.time_left().is_some());
}

#[tokio::test]
async fn a_resumed_session_restores_its_watches_and_sends_queued_requests_after() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async move {
        let get = conn.request().await;
        let data = Response::Data { data: Some(vec![]), stat: stat(0x1_0000_0003) };
        conn.reply(get.id, Ok(data)).await;
        let add = conn.request().await;
        conn.reply(add.id, Ok(Response::WatchAdded)).await;
        // A request left unanswered when the connection drops.
        let _lost = conn.request().await;
    };
    let in_flight = async {
        let (_, _, oneshot) = client.get_and_watch("/a").await.unwrap();
        let watcher = client.watch("/b", true).await.unwrap();
        let lost = client.set("/a", b"1", None).await;
        (oneshot, watcher, lost)
    };
    let ((oneshot, mut watcher, lost), ()) = tokio::join!(in_flight, script);
    assert!(matches!(lost, Err(Error::ConnectionLoss)), "{lost:?}");
    wait_state(&client, |s| matches!(s, SessionState::Suspended { .. })).await;

    // A request issued while suspended waits for the resume.
    let queued = tokio::spawn({
        let client = client.clone();
        async move { client.exists("/c").await }
    });
    let (mut conn, hello) = server.accept().await;
    assert_eq!(hello.session, SessionRequest::Resume { session_id: baton::SessionId(SESSION), secret: 0xfeed });
    assert_eq!(hello.last_zxid_seen, Zxid(0x1_0000_0003));
    // The server has moved on meanwhile: the watches must replay from what the client saw
    // before, not from the server's newer zxid.
    let mut server_hello = fake::server_hello(SESSION, LONG_MS, true);
    server_hello.last_zxid = Zxid(0x1_0000_0040);
    conn.write(&baton::proto::HelloReply::Accepted(server_hello)).await;
    let restore = conn.request().await;
    let expected = WatchSet { data: vec!["/a".into()], recursive: vec!["/b".into()], ..WatchSet::default() };
    assert_eq!(restore.op, Op::RestoreWatches { last_zxid: Zxid(0x1_0000_0003), watches: expected });
    conn.write(&event(0x1_0000_0004, "/a", EventKind::Deleted)).await;
    conn.write(&event(0x1_0000_0004, "/b/x", EventKind::Created)).await;
    conn.reply(restore.id, Ok(Response::WatchesRestored { reset: false })).await;
    let exists = conn.request().await;
    assert!(matches!(exists.op, Op::Exists { .. }));
    conn.reply(exists.id, Ok(Response::Exists(Some(stat(1))))).await;
    assert!(step(queued).await.unwrap().unwrap().is_some());
    assert_eq!(step(oneshot.changed()).await.unwrap().kind, EventKind::Deleted);
    assert_eq!(step(watcher.next()).await.unwrap().path, "/b/x");
    wait_state(&client, |s| s == SessionState::Connected).await;
}

#[tokio::test]
async fn a_refused_resume_expires_the_session_and_ends_watchers() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        let add = conn.request().await;
        conn.reply(add.id, Ok(Response::WatchAdded)).await;
    };
    let (watcher, ()) = tokio::join!(client.watch("/a", false), script);
    let mut watcher = watcher.unwrap();
    drop(conn);
    let (mut conn, hello) = server.accept().await;
    assert!(matches!(hello.session, SessionRequest::Resume { .. }));
    conn.refuse_hello(ErrorReply::new(ErrorCode::SessionExpired, "gone")).await;
    wait_state(&client, |s| s == SessionState::Expired).await;
    assert!(matches!(step(watcher.next()).await, Err(Error::SessionExpired)));
    assert!(matches!(client.get("/a").await, Err(Error::SessionExpired)));
}

#[tokio::test]
async fn the_session_expires_locally_when_no_server_answers_in_time() {
    let server = FakeServer::start();
    let (client, conn) = connected(&server, 300).await;
    std::fs::remove_file(&server.path).unwrap();
    drop(conn);
    let suspended = wait_state(&client, |s| matches!(s, SessionState::Suspended { .. })).await;
    assert!(suspended.time_left().unwrap() <= Duration::from_millis(300));
    wait_state(&client, |s| s == SessionState::Expired).await;
}

#[tokio::test]
async fn a_closing_with_session_expired_expires_the_session() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    conn.write(&baton::proto::ServerMessage::Closing(ErrorReply::new(ErrorCode::SessionExpired, "timed out"))).await;
    wait_state(&client, |s| s == SessionState::Expired).await;
}

#[tokio::test]
async fn a_connection_bound_session_ends_with_its_connection() {
    let server = FakeServer::start();
    let addr = server.addr();
    let (client, mut conn) = tokio::join!(Client::builder().connection_bound(true).connect(&addr), async {
        let (mut conn, hello) = server.accept().await;
        assert_eq!(hello.session, SessionRequest::New { timeout_ms: 10_000, connection_bound: true });
        conn.accept_hello(SESSION, LONG_MS, false).await;
        conn
    });
    let client = client.unwrap();
    conn.write(&event(9, "/nobody", EventKind::Created)).await;
    drop(conn);
    wait_state(&client, |s| s == SessionState::Expired).await;
}

#[tokio::test]
async fn connection_bound_needs_a_unix_socket() {
    let err = Client::builder().connection_bound(true).connect("127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn dropping_the_last_watcher_removes_the_servers_watch() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        for _ in 0..2 {
            let add = conn.request().await;
            conn.reply(add.id, Ok(Response::WatchAdded)).await;
        }
    };
    let (first, second, ()) = tokio::join!(client.watch("/a", false), client.watch("/a", true), script);
    drop(first.unwrap());
    let second = second.unwrap();
    // Still one watcher on /a: nothing is sent. Then the last one goes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(second);
    let remove = conn.request().await;
    assert_eq!(remove.op, Op::RemoveWatches { path: "/a".into() });
    conn.reply(remove.id, Ok(Response::WatchesRemoved)).await;
}

#[tokio::test]
async fn close_answers_earlier_requests_then_ends_everything() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        let add = conn.request().await;
        conn.reply(add.id, Ok(Response::WatchAdded)).await;
    };
    let (watcher, ()) = tokio::join!(client.watch("/a", false), script);
    let mut watcher = watcher.unwrap();
    let other = client.clone();
    let script = async {
        let close = conn.request().await;
        assert_eq!(close.op, Op::CloseSession);
        conn.reply(close.id, Ok(Response::SessionClosed)).await;
    };
    let (closed, ()) = tokio::join!(client.close(), script);
    closed.unwrap();
    assert!(matches!(step(watcher.next()).await, Err(Error::Closed)));
    assert!(matches!(other.get("/a").await, Err(Error::Closed)));
    assert_eq!(*other.session_state().borrow(), SessionState::Closed);
    other.close().await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let second = client.clone();
    drop(client);
    drop(second);
    let close = conn.request().await;
    assert_eq!(close.op, Op::CloseSession);
    conn.reply(close.id, Ok(Response::SessionClosed)).await;
    conn.expect_eof().await;
}

#[tokio::test]
async fn a_failed_multi_names_the_failing_op() {
    use baton::proto::{MultiOp, OpResult};
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async {
        let multi = conn.request().await;
        let results = vec![OpResult::Error(ErrorCode::RolledBack), OpResult::Error(ErrorCode::BadVersion)];
        conn.reply(multi.id, Ok(Response::Multi(results))).await;
    };
    let ops =
        vec![MultiOp::Delete { path: "/a".into(), version: None }, MultiOp::Check { path: "/b".into(), version: 3 }];
    let (result, ()) = tokio::join!(client.multi(ops), script);
    match result {
        Err(Error::MultiFailed { index, code, .. }) => {
            assert_eq!((index, code), (1, ErrorCode::BadVersion));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_request_does_not_break_the_connection() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let cancelled = tokio::time::timeout(Duration::from_millis(20), client.get("/slow")).await;
    assert!(cancelled.is_err());
    let slow = conn.request().await;
    let script = async {
        let next = conn.request().await;
        conn.reply(slow.id, Ok(Response::Data { data: Some(vec![]), stat: stat(1) })).await;
        conn.reply(next.id, Ok(Response::Exists(None))).await;
    };
    let (exists, ()) = tokio::join!(client.exists("/b"), script);
    assert_eq!(exists.unwrap(), None);
}

#[tokio::test]
async fn connecting_to_a_missing_socket_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let err = Client::connect(path.to_str().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("none.sock"), "{err}");
}

#[tokio::test]
async fn addresses_are_tried_in_order() {
    let server = FakeServer::start();
    let missing = server.dir.path().join("missing.sock");
    let addrs = format!("{},{}", missing.display(), server.addr());
    let (client, _conn) = tokio::join!(Client::connect(&addrs), server.accept_new(SESSION, LONG_MS));
    assert_eq!(client.unwrap().session_id().0, SESSION);
}

#[tokio::test]
async fn a_server_behind_the_client_is_not_resumed_on() {
    let server = FakeServer::start();
    let (client, mut conn) = connected(&server, LONG_MS).await;
    let script = async move {
        let get = conn.request().await;
        let data = Response::Data { data: Some(vec![]), stat: stat(0x1_0000_0050) };
        conn.reply(get.id, Ok(data)).await;
    };
    let (got, ()) = tokio::join!(client.get("/a"), script);
    got.unwrap();
    // The old connection is gone; the next server is behind what the client has seen.
    let (mut behind, hello) = server.accept().await;
    assert_eq!(hello.last_zxid_seen, Zxid(0x1_0000_0050));
    behind.accept_hello(SESSION, LONG_MS, true).await;
    behind.expect_eof().await;
    // The client tries again, and resumes on a server that has caught up.
    let (mut conn, hello) = server.accept().await;
    conn.accept_resume(&hello, LONG_MS).await;
    wait_state(&client, |s| s == SessionState::Connected).await;
}
