//! Durability against the real daemon: data survives a clean restart, and kill -9 in the
//! middle of a concurrent write load loses no acknowledged write and invents none.

use baton::{Client, CreateOptions};
use baton_tests::Daemon;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_restart_keeps_the_data() {
    let mut daemon = Daemon::start();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    client.create("/keep", b"v1", CreateOptions::persistent()).await.unwrap();
    client.create("/keep/child", b"c", CreateOptions::persistent()).await.unwrap();
    let stat = client.set("/keep", b"v2", Some(0)).await.unwrap();
    let seen = client.last_zxid();
    drop(client);

    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM must drain and exit 0, got {status}; log:\n{}", daemon.log());
    assert!(!daemon.socket().exists(), "the socket file is removed on a clean stop");
    daemon.restart();

    let client = Client::connect(&daemon.addr()).await.unwrap();
    let (data, restored) = client.get("/keep").await.unwrap();
    assert_eq!(data, b"v2");
    assert_eq!(restored, stat, "the stat survives exactly");
    assert_eq!(client.children("/keep").await.unwrap(), ["child"]);
    let (path, created) = client.create("/after", b"", CreateOptions::persistent()).await.unwrap();
    assert_eq!(path, "/after");
    assert!(created.czxid > seen, "zxids keep increasing across a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    const WRITERS: usize = 16;
    let mut daemon = Daemon::start();
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/load", b"", CreateOptions::persistent()).await.unwrap();

    let acked = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let attempted = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        let (acked, attempted) = (acked.clone(), attempted.clone());
        writers.push(tokio::spawn(async move {
            for n in 0u32.. {
                let path = format!("/load/w{w}-{n}");
                let data = format!("{w}:{n}").into_bytes();
                attempted.lock().unwrap().insert(path.clone());
                match client.create(&path, &data, CreateOptions::persistent()).await {
                    Ok(_) => acked.lock().unwrap().push((path, data)),
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the load build up, then pull the plug mid-stream.
    let target = 2_000;
    let started = std::time::Instant::now();
    while acked.lock().unwrap().len() < target && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill9();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer).await.expect("writer stops").unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 500, "too few writes acknowledged to prove anything: {}", acked.len());

    daemon.restart();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    let recovered: BTreeSet<String> =
        client.children("/load").await.unwrap().into_iter().map(|name| format!("/load/{name}")).collect();
    let mut lost = 0;
    for (path, data) in &acked {
        match client.get(path).await {
            Ok((found, _)) => assert_eq!(&found, data, "{path} recovered with other data"),
            Err(e) if e.is_no_node() => lost += 1,
            Err(e) => panic!("reading {path}: {e}"),
        }
    }
    let attempted = attempted.lock().unwrap();
    let phantoms: Vec<_> = recovered.iter().filter(|p| !attempted.contains(*p)).collect();
    eprintln!("kill -9 under load: {} acknowledged, {} recovered, {lost} lost", acked.len(), recovered.len());
    assert_eq!(lost, 0, "acknowledged writes lost after kill -9");
    assert!(phantoms.is_empty(), "recovered writes nobody attempted: {phantoms:?}");
    assert!(recovered.len() >= acked.len());
}
