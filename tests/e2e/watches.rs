//! Watches against the real daemon: one-shot fires once, persistent and recursive fire for
//! every change in zxid order, and an event always arrives before any reply that reveals
//! its change.

use baton::{Client, CreateOptions, ErrorCode, EventKind, Turn};
use baton_tests::Daemon;
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once_for_the_right_changes() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();

    let (none, created) = a.exists_and_watch("/x").await.unwrap();
    assert!(none.is_none());
    b.create("/x", b"1", CreateOptions::persistent()).await.unwrap();
    let event = tokio::time::timeout(WAIT, created.changed()).await.unwrap().unwrap();
    assert_eq!((event.path.as_str(), event.kind), ("/x", EventKind::Created));

    let (children, child_watch) = a.children_and_watch("/x").await.unwrap();
    assert!(children.is_empty());
    let (_, _, data_watch) = a.get_and_watch("/x").await.unwrap();
    b.set("/x", b"2", None).await.unwrap();
    b.create("/x/c", b"", CreateOptions::persistent()).await.unwrap();
    let data_event = tokio::time::timeout(WAIT, data_watch.changed()).await.unwrap().unwrap();
    assert_eq!(data_event.kind, EventKind::DataChanged);
    let child_event = tokio::time::timeout(WAIT, child_watch.changed()).await.unwrap().unwrap();
    assert_eq!((child_event.path.as_str(), child_event.kind), ("/x", EventKind::ChildrenChanged));
    assert!(child_event.zxid > data_event.zxid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_arrives_before_the_reply_that_reveals_the_change() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    a.create("/flag", b"old", CreateOptions::persistent()).await.unwrap();
    for round in 0..50 {
        let (_, _, watch) = a.get_and_watch("/flag").await.unwrap();
        let value = format!("v{round}");
        let setter = {
            let b = b.clone();
            let value = value.clone();
            tokio::spawn(async move { b.set("/flag", value.as_bytes(), None).await.unwrap() })
        };
        // Poll until a reads the new value; by then its watch must already have fired.
        loop {
            let (data, _) = a.get("/flag").await.unwrap();
            if data == value.as_bytes() {
                break;
            }
        }
        let fired = tokio::time::timeout(Duration::ZERO, watch.changed()).await;
        assert!(fired.is_ok(), "round {round}: a reply showed the change before its event arrived");
        setter.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches_see_every_change_in_order() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    b.create("/app", b"", CreateOptions::persistent()).await.unwrap();
    let mut exact = a.watch("/app", false).await.unwrap();
    let mut subtree = a.watch("/app", true).await.unwrap();

    b.create("/app/one", b"", CreateOptions::persistent()).await.unwrap();
    for i in 0..20 {
        b.set("/app/one", format!("{i}").as_bytes(), None).await.unwrap();
    }
    b.delete("/app/one", None).await.unwrap();
    b.set("/app", b"done", None).await.unwrap();

    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, subtree.next()).await.unwrap().unwrap();
        seen.push(event.clone());
        if event.path == "/app" {
            break;
        }
    }
    assert_eq!(seen.len(), 23, "create, 20 sets, delete, then the set of /app: {seen:?}");
    assert_eq!(seen[0].kind, EventKind::Created);
    assert!(seen[1..21].iter().all(|e| e.kind == EventKind::DataChanged));
    assert_eq!(seen[21].kind, EventKind::Deleted);
    assert!(seen.windows(2).all(|w| w[0].zxid < w[1].zxid), "zxid order");
    assert!(!seen.iter().any(|e| e.kind == EventKind::ChildrenChanged), "recursive watches skip child-list events");

    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(tokio::time::timeout(WAIT, exact.next()).await.unwrap().unwrap().kind);
    }
    assert_eq!(kinds, [EventKind::ChildrenChanged, EventKind::ChildrenChanged, EventKind::DataChanged]);
}

/// A line of three waiters and a turn watch each: a waiter in the middle leaving wakes
/// nobody; the holder leaving wakes only the one it made first, which then holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_watch_wakes_only_the_waiter_a_departure_makes_first() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    let c = Client::connect(&daemon.addr()).await.unwrap();
    a.create("/line", b"", CreateOptions::persistent()).await.unwrap();
    a.create("/line/plain", b"", CreateOptions::persistent()).await.unwrap();
    let mut waiters = Vec::new();
    for client in [&a, &b, &c] {
        let (path, _) = client.create("/line/w-", b"", CreateOptions::ephemeral().sequential()).await.unwrap();
        waiters.push(path);
    }
    assert!(matches!(a.turn_and_watch(&waiters[0]).await.unwrap(), Turn::First(_)), "the first waiter holds");
    let Turn::Waiting(_, b_turn) = b.turn_and_watch(&waiters[1]).await.unwrap() else { panic!("b waits") };
    let Turn::Waiting(_, c_turn) = c.turn_and_watch(&waiters[2]).await.unwrap() else { panic!("c waits") };
    assert!(matches!(c.turn_and_watch("/line/w-9999999999").await.unwrap(), Turn::Gone));

    b.delete(&waiters[1], None).await.unwrap();
    let b_event = tokio::time::timeout(WAIT, b_turn.changed()).await.unwrap().unwrap();
    assert_eq!(b_event.kind, EventKind::Deleted, "a waiter that leaves hears of its own node");
    let mut c_turn = Box::pin(c_turn.changed());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut c_turn).await.is_err(),
        "a departure from the middle of the line makes nobody first"
    );
    a.delete(&waiters[0], None).await.unwrap();
    let c_event = tokio::time::timeout(WAIT, c_turn).await.unwrap().unwrap();
    assert_eq!((c_event.path.as_str(), c_event.kind), (waiters[2].as_str(), EventKind::Turn));
    assert!(matches!(c.turn_and_watch(&waiters[2]).await.unwrap(), Turn::First(_)));
}

/// `create_in_line` joins a line in one request: the node and its turn, with a turn watch
/// when it waits; a create that could not wait in line creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_created_in_line_learns_its_turn_in_the_same_request() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    let in_line = CreateOptions::ephemeral().sequential();
    let missing = a.create_in_line("/line/w-", b"", in_line).await.unwrap_err();
    assert!(missing.is_no_node(), "{missing}");
    a.create("/line", b"", CreateOptions::persistent()).await.unwrap();
    let (first, turn) = a.create_in_line("/line/w-", b"a", in_line).await.unwrap();
    assert!(matches!(turn, Turn::First(_)), "the first waiter holds at once");
    let (second, turn) = b.create_in_line("/line/w-", b"b", in_line).await.unwrap();
    let Turn::Waiting(stat, watcher) = turn else { panic!("b waits") };
    assert_eq!(b.get(&second).await.unwrap(), (b"b".to_vec(), stat));
    let unsuffixed = b.create_in_line("/line/plain", b"", CreateOptions::ephemeral()).await.unwrap_err();
    assert_eq!(unsuffixed.code(), Some(ErrorCode::InvalidArgument), "{unsuffixed}");
    assert_eq!(a.children("/line").await.unwrap().len(), 2, "the refused create left nothing");

    a.delete(&first, None).await.unwrap();
    let event = tokio::time::timeout(WAIT, watcher.changed()).await.unwrap().unwrap();
    assert_eq!((event.path.as_str(), event.kind), (second.as_str(), EventKind::Turn));
}

/// The server keeps no turn watch over a reconnect and cannot replay turns: the watcher hears
/// `WatchReset` and asks again, and finds its turn even if it came while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_watch_is_reset_by_a_reconnect() {
    let access = TcpAccess::new("waiter");
    let daemon = Daemon::start_with_config(&access.config());
    let proxy = Proxy::start(access.tcp()).await;
    let waiter = access.builder().session_timeout(Duration::from_secs(10)).connect(&proxy.addr()).await.unwrap();
    let holder = Client::connect(&daemon.addr()).await.unwrap();
    holder.create("/line", b"", CreateOptions::persistent()).await.unwrap();
    let (first, _) = holder.create("/line/w-", b"", CreateOptions::ephemeral().sequential()).await.unwrap();
    let (second, _) = waiter.create("/line/w-", b"", CreateOptions::ephemeral().sequential()).await.unwrap();
    let Turn::Waiting(_, turn) = waiter.turn_and_watch(&second).await.unwrap() else { panic!("it waits") };
    proxy.cut_off(&waiter).await;
    holder.delete(&first, None).await.unwrap();
    proxy.unblock();
    let event = tokio::time::timeout(Duration::from_secs(10), turn.changed()).await.expect("an event").unwrap();
    assert_eq!((event.path.as_str(), event.kind), (second.as_str(), EventKind::WatchReset));
    assert!(matches!(waiter.turn_and_watch(&second).await.unwrap(), Turn::First(_)), "asked again: its turn");
}
