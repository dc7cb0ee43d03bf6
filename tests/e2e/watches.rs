//! Watches against the real daemon: one-shot fires once, persistent and recursive fire for
//! every change in zxid order, and an event always arrives before any reply that reveals
//! its change.

use baton::{Client, CreateOptions, EventKind};
use baton_tests::Daemon;
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
