//! Plain reads, which the daemon answers on the client's connection itself rather than on its
//! engine thread: they still come in the session's order, never before the event of a change
//! they reveal, and they keep the session alive on their own.

use baton::{Client, CreateOptions, SessionState};
use baton_tests::Daemon;
use std::time::{Duration, Instant};

/// How many changes the writer makes while the reader watches and reads.
const CHANGES: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_pipelined_behind_a_write_sees_it() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    a.create("/n", b"v0", CreateOptions::persistent()).await.unwrap();
    for round in 1..=200 {
        // Both are sent before either reply comes back: the read must not overtake the write.
        let value = format!("v{round}");
        let (set, got) = tokio::join!(a.set("/n", value.as_bytes(), None), a.get("/n"));
        let (data, stat) = got.unwrap();
        assert_eq!(data, value.as_bytes(), "round {round}: the read missed the write sent before it");
        assert_eq!(stat, set.unwrap());
        let child = format!("/n/c{round}");
        let (created, exists, children) =
            tokio::join!(a.create(&child, b"", CreateOptions::persistent()), a.exists(&child), a.children("/n"));
        created.unwrap();
        assert!(exists.unwrap().is_some(), "round {round}: exists missed the create sent before it");
        assert_eq!(children.unwrap().len(), round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_change_comes_before_a_read_that_reveals_it() {
    let daemon = Daemon::start();
    let a = Client::connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    a.create("/p", b"0", CreateOptions::persistent()).await.unwrap();
    let mut watcher = a.watch("/p", false).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 1..=CHANGES {
            b.set("/p", i.to_string().as_bytes(), None).await.unwrap();
        }
    });
    let mut events = 0;
    loop {
        let (data, _) = a.get("/p").await.unwrap();
        let seen: u32 = std::str::from_utf8(&data).unwrap().parse().unwrap();
        // Whatever the read revealed, its events must already be here.
        while let Ok(event) = tokio::time::timeout(Duration::ZERO, watcher.next()).await {
            event.unwrap();
            events += 1;
        }
        assert!(events >= seen, "a read revealed change {seen} with only {events} events received");
        if seen == CHANGES {
            break;
        }
    }
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_alone_keep_a_session_alive() {
    let daemon = Daemon::start();
    let timeout = Duration::from_secs(2);
    let a = Client::builder().session_timeout(timeout).connect(&daemon.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    a.create("/mine", b"", CreateOptions::ephemeral()).await.unwrap();
    let session = a.session_id();
    // Busy with reads, the client never pings: the reads are the session's only traffic.
    let started = Instant::now();
    let mut reads = 0u64;
    while started.elapsed() < timeout * 3 {
        a.get("/mine").await.unwrap();
        reads += 1;
    }
    assert!(reads > 0);
    assert_eq!(*a.session_state().borrow(), SessionState::Connected);
    assert_eq!(a.session_id(), session);
    assert!(b.exists("/mine").await.unwrap().is_some(), "the session expired while it was reading");
}
