//! The data recipes against the real daemon, each participant with its own client (its own
//! session): the queue hands out every item exactly once in FIFO order to concurrent
//! consumers; the counter's concurrent adds sum exactly; the barrier releases waiters only
//! when removed; the double barrier lets nobody out of enter or leave early; the cache
//! converges to the server's subtree, also after a `WatchReset`; the registry follows
//! registrations, deregistrations and closed sessions.

use baton::recipes::barrier::Barrier;
use baton::recipes::cache::{Cache, CacheEvent};
use baton::recipes::counter::Counter;
use baton::recipes::double_barrier::DoubleBarrier;
use baton::recipes::queue::Queue;
use baton::recipes::registry::{InstanceWatch, ServiceRegistry};
use baton::{Client, CreateOptions, CreateRequest, MultiOp, Stat};
use baton_tests::Daemon;
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(daemon: &Daemon) -> Client {
    Client::connect(&daemon.addr()).await.unwrap()
}

/// The subtree under `root` as the server has it now: data and stat of every node.
async fn read_tree(client: &Client, root: &str) -> BTreeMap<String, (Vec<u8>, Stat)> {
    let mut nodes = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(node) = client.get(&path).await else { continue };
        for child in client.children(&path).await.unwrap() {
            pending.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
        nodes.insert(path, node);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_hands_every_item_to_exactly_one_consumer_in_fifo_order() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 110;
    const CONSUMERS: usize = 8;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER;
    let daemon = Daemon::start();
    let started = Instant::now();
    let taken = Arc::new(AtomicUsize::new(0));

    // Consumers first: they block on the empty queue until the producers start.
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let queue = Queue::new(connect(&daemon).await, "/jobs");
        let taken = taken.clone();
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while taken.load(Ordering::SeqCst) < TOTAL {
                if let Some(item) = queue.take_timeout(Duration::from_millis(200)).await.unwrap() {
                    taken.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8(item).unwrap();
                    let (p, i) = text.split_once(':').unwrap();
                    got.push((p.parse::<usize>().unwrap(), i.parse::<usize>().unwrap()));
                }
            }
            got
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let queue = Queue::new(connect(&daemon).await, "/jobs");
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                queue.put(format!("{p}:{i}").as_bytes()).await.unwrap();
            }
        }));
    }
    for producer in producers {
        tokio::time::timeout(WAIT * 3, producer).await.expect("producers finish").unwrap();
    }
    let mut per_consumer = Vec::new();
    for consumer in consumers {
        per_consumer.push(tokio::time::timeout(WAIT * 3, consumer).await.expect("consumers finish").unwrap());
    }

    let all: Vec<(usize, usize)> = per_consumer.iter().flatten().copied().collect();
    let distinct: BTreeSet<(usize, usize)> = all.iter().copied().collect();
    let expected: BTreeSet<(usize, usize)> =
        (0..PRODUCERS).flat_map(|p| (0..PER_PRODUCER).map(move |i| (p, i))).collect();
    let duplicates = all.len() - distinct.len();
    let missing = expected.difference(&distinct).count();
    // Each consumer must see each producer's items in the order they were put.
    let order_violations: usize = per_consumer
        .iter()
        .map(|got| {
            (0..PRODUCERS)
                .map(|p| {
                    let seq: Vec<usize> = got.iter().filter(|(q, _)| *q == p).map(|(_, i)| *i).collect();
                    seq.windows(2).filter(|w| w[0] >= w[1]).count()
                })
                .sum::<usize>()
        })
        .sum();
    let counts: Vec<usize> = per_consumer.iter().map(Vec::len).collect();
    eprintln!(
        "queue: {PRODUCERS} producers x {PER_PRODUCER} items, {CONSUMERS} consumers; taken {} (per consumer {counts:?}), \
         duplicates {duplicates}, missing {missing}, FIFO violations {order_violations}, {:?}",
        all.len(),
        started.elapsed()
    );
    assert_eq!((duplicates, missing, order_violations), (0, 0, 0));
    assert_eq!(all.len(), TOTAL);
    assert!(counts.iter().filter(|&&n| n > 0).count() > 1, "more than one consumer took items: {counts:?}");

    let queue = Queue::new(connect(&daemon).await, "/jobs");
    assert_eq!(queue.len().await.unwrap(), 0);
    assert_eq!(queue.try_take().await.unwrap(), None);
    queue.put(b"last").await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 1);
    assert_eq!(queue.try_take().await.unwrap().as_deref(), Some(&b"last"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counter_adds_sum_exactly() {
    const CLIENTS: usize = 16;
    const ADDS: usize = 50;
    let daemon = Daemon::start();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let counter = Counter::new(connect(&daemon).await, "/stats/hits");
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(ADDS);
            for _ in 0..ADDS {
                seen.push(counter.add(1).await.unwrap());
            }
            seen
        }));
    }
    let mut values = Vec::new();
    for task in tasks {
        values.extend(tokio::time::timeout(WAIT * 3, task).await.expect("adders finish").unwrap());
    }
    let counter = Counter::new(connect(&daemon).await, "/stats/hits");
    let total = counter.get().await.unwrap();
    values.sort_unstable();
    let expected: Vec<i64> = (1..=(CLIENTS * ADDS) as i64).collect();
    eprintln!(
        "counter: {CLIENTS} clients x {ADDS} adds -> {total} (expected {}), every intermediate value returned once: {}, {:?}",
        CLIENTS * ADDS,
        values == expected,
        started.elapsed()
    );
    assert_eq!(total, (CLIENTS * ADDS) as i64);
    assert_eq!(values, expected, "each add produced its own value");
    assert_eq!(counter.add(-10).await.unwrap(), total - 10);
    assert_eq!(Counter::new(connect(&daemon).await, "/stats/none").get().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_releases_waiters_only_when_removed() {
    const WAITERS: usize = 4;
    let daemon = Daemon::start();
    let owner_client = connect(&daemon).await;
    let owner = Barrier::new(owner_client.clone(), "/gates/start");
    assert!(owner.set().await.unwrap(), "raised");
    assert!(!owner.set().await.unwrap(), "already raised");
    assert!(owner.is_set().await.unwrap());

    let removed = Arc::new(AtomicBool::new(false));
    let (blocked_tx, mut blocked_rx) = tokio::sync::mpsc::channel(WAITERS);
    let mut waiters = Vec::new();
    for _ in 0..WAITERS {
        let barrier = Barrier::new(connect(&daemon).await, "/gates/start");
        let (removed, blocked_tx) = (removed.clone(), blocked_tx.clone());
        waiters.push(tokio::spawn(async move {
            // Held back while the node exists...
            assert!(!barrier.wait_timeout(Duration::from_millis(300)).await.unwrap(), "passed a raised barrier");
            blocked_tx.send(()).await.unwrap();
            // ...and released only by its removal.
            barrier.wait().await.unwrap();
            removed.load(Ordering::SeqCst)
        }));
    }
    for _ in 0..WAITERS {
        tokio::time::timeout(WAIT, blocked_rx.recv()).await.unwrap().unwrap();
    }
    // A data change wakes the waiters' watches but must not let them through.
    owner_client.set("/gates/start", b"poke", None).await.unwrap();
    removed.store(true, Ordering::SeqCst);
    assert!(owner.remove().await.unwrap());
    let started = Instant::now();
    for waiter in waiters {
        let after_removal = tokio::time::timeout(WAIT, waiter).await.expect("released").unwrap();
        assert!(after_removal, "a waiter passed before the barrier was removed");
    }
    eprintln!("barrier: {WAITERS} waiters held, all released {:?} after remove()", started.elapsed());
    assert!(!owner.remove().await.unwrap(), "already removed");
    assert!(owner.wait_timeout(Duration::from_millis(10)).await.unwrap(), "an absent barrier passes at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_lets_nobody_out_early() {
    const N: usize = 5;
    const ROUNDS: usize = 2;
    let daemon = Daemon::start();
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    // Rounds are separated: a new round may start only after everyone has left the last.
    let between_rounds = Arc::new(tokio::sync::Barrier::new(N));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..N {
        let mut barrier = DoubleBarrier::new(connect(&daemon).await, "/rounds", N);
        let (arrived, leaving, early, between_rounds) =
            (arrived.clone(), leaving.clone(), early.clone(), between_rounds.clone());
        tasks.push(tokio::spawn(async move {
            for round in 1..=ROUNDS {
                // Staggered arrivals and departures, so an early exit would show.
                let pause = Duration::from_millis(40 * i as u64);
                tokio::time::sleep(pause).await;
                arrived.fetch_add(1, Ordering::SeqCst);
                barrier.enter().await.unwrap();
                if arrived.load(Ordering::SeqCst) < round * N {
                    early.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(40 * (N - 1 - i) as u64)).await;
                leaving.fetch_add(1, Ordering::SeqCst);
                barrier.leave().await.unwrap();
                if leaving.load(Ordering::SeqCst) < round * N {
                    early.fetch_add(1, Ordering::SeqCst);
                }
                between_rounds.wait().await;
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(WAIT, task).await.expect("everyone gets through").unwrap();
    }
    let early = early.load(Ordering::SeqCst);
    eprintln!(
        "double barrier: {N} participants x {ROUNDS} rounds, {early} early exits from enter/leave, {:?}",
        started.elapsed()
    );
    assert_eq!(early, 0);
    let observer = connect(&daemon).await;
    assert!(observer.children("/rounds").await.unwrap().is_empty(), "no participant or ready node is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_follows_a_subtree_and_converges_to_the_server_state() {
    let daemon = Daemon::start();
    let writer = connect(&daemon).await;
    writer.create("/app", b"root", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/a", b"a0", CreateOptions::persistent()).await.unwrap();
    writer.create("/outside", b"", CreateOptions::persistent()).await.unwrap();

    let cache = Cache::start(connect(&daemon).await, "/app").await.unwrap();
    assert_eq!(cache.get("/app/a").map(|(data, _)| data), Some(b"a0".to_vec()));
    assert_eq!(cache.get("/outside"), None);
    let (snapshot, mut changes) = cache.snapshot_and_subscribe();
    assert_eq!(snapshot.nodes, read_tree(&writer, "/app").await);

    // Creates (nested), sets, deletes, an ephemeral, sequentials, a multi.
    writer.create("/app/b", b"", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/b/c", b"c0", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/b/c/d", b"d0", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/b/eph", b"e", CreateOptions::ephemeral()).await.unwrap();
    for i in 0..20 {
        writer.set("/app/b/c/d", format!("d{i}").as_bytes(), None).await.unwrap();
        writer.create("/app/b/seq-", b"", CreateOptions::persistent().sequential()).await.unwrap();
    }
    writer.delete("/app/a", None).await.unwrap();
    let create = |path: &str| {
        MultiOp::Create(CreateRequest {
            path: path.to_owned(),
            data: Some(b"m".to_vec()),
            kind: CreateOptions::persistent().kind,
            sequential: false,
            acl: Vec::new(),
        })
    };
    writer.multi(vec![create("/app/m"), create("/app/m/1"), create("/app/m/2")]).await.unwrap();
    writer.set("/outside", b"ignored", None).await.unwrap();
    let written = writer.sync("/").await.unwrap();

    let zxid = tokio::time::timeout(WAIT, cache.sync()).await.unwrap().unwrap();
    assert!(zxid >= written, "the cache is consistent at {zxid}, after the writes at {written}");
    let snapshot = cache.snapshot();
    let server = read_tree(&writer, "/app").await;
    assert_eq!(snapshot.zxid, zxid);
    assert_eq!(snapshot.nodes, server, "the cache equals the server's subtree, stats included");
    assert_eq!(cache.get("/app/b/c/d").unwrap().0, b"d19");
    assert_eq!(cache.children("/app/m").unwrap(), ["1", "2"]);
    assert_eq!(cache.get("/app/a"), None);

    // The change stream told the same story.
    let mut seen = Vec::new();
    while let Ok(event) = changes.try_recv() {
        seen.push(event);
    }
    let added = |p: &str| seen.iter().any(|e| matches!(e, CacheEvent::Added { path, .. } if path == p));
    assert!(added("/app/b/c/d") && added("/app/m/2") && added("/app/b/eph"), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, CacheEvent::Removed { path, .. } if path == "/app/a")));
    assert!(seen.iter().any(|e| matches!(e, CacheEvent::Updated { path, .. } if path == "/app/b/c/d")));
    assert!(seen.iter().all(|e| e.path().is_none_or(|p| p.starts_with("/app"))), "nothing from outside");

    // The writer's session ends: its ephemeral goes. Then the whole subtree goes, and comes back.
    writer.close().await.unwrap();
    let writer = connect(&daemon).await;
    for path in read_tree(&writer, "/app").await.keys().rev() {
        writer.delete(path, None).await.unwrap();
    }
    writer.create("/app", b"again", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/z", b"", CreateOptions::persistent()).await.unwrap();
    writer.sync("/").await.unwrap();
    cache.sync().await.unwrap();
    let snapshot = cache.snapshot();
    assert_eq!(snapshot.nodes, read_tree(&writer, "/app").await);
    assert_eq!(snapshot.nodes.len(), 2);
    eprintln!(
        "cache: {} change events followed; converged to the server's {} nodes at {zxid}; reloads {}",
        seen.len(),
        server.len(),
        cache.reloads()
    );
    assert_eq!(cache.reloads(), 0);
    assert!(cache.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reloads_after_a_watch_reset_and_converges() {
    let access = TcpAccess::new("follower");
    let daemon = Daemon::start_with_config(&format!("{}watch_history_txns = 2\n", access.config()));
    let proxy = Proxy::start(access.tcp()).await;
    let writer = connect(&daemon).await;
    writer.create("/app", b"", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/keep", b"k", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/doomed", b"x", CreateOptions::persistent()).await.unwrap();
    let follower = access.builder().session_timeout(Duration::from_secs(10)).connect(&proxy.addr()).await.unwrap();
    let cache = Cache::start(follower.clone(), "/app").await.unwrap();
    let mut changes = cache.subscribe();

    proxy.cut_off(&follower).await;
    // More changes than the server keeps history for.
    writer.delete("/app/doomed", None).await.unwrap();
    writer.set("/app/keep", b"k2", None).await.unwrap();
    writer.create("/app/new", b"n", CreateOptions::persistent()).await.unwrap();
    writer.create("/app/new/deep", b"d", CreateOptions::persistent()).await.unwrap();
    for i in 0..5 {
        writer.create(&format!("/elsewhere{i}"), b"", CreateOptions::persistent()).await.unwrap();
    }
    proxy.unblock();

    let started = Instant::now();
    let reloaded = tokio::time::timeout(WAIT, async {
        loop {
            if let CacheEvent::Reloaded { zxid } = changes.recv().await.unwrap() {
                return zxid;
            }
        }
    })
    .await
    .expect("a reload after the reset");
    let zxid = cache.sync().await.unwrap();
    let server = read_tree(&writer, "/app").await;
    assert_eq!(cache.snapshot().nodes, server, "converged after the reset");
    assert_eq!(cache.reloads(), 1);
    // And it keeps following.
    writer.set("/app/new/deep", b"live", None).await.unwrap();
    writer.sync("/").await.unwrap();
    cache.sync().await.unwrap();
    assert_eq!(cache.get("/app/new/deep").unwrap().0, b"live");
    eprintln!(
        "cache reset: reloaded at {reloaded} {:?} after reconnecting, consistent at {zxid} with {} nodes",
        started.elapsed(),
        server.len()
    );
}

/// Waits until the watched set holds exactly `ids`.
async fn wait_for_ids(watch: &mut InstanceWatch, ids: &[&str]) {
    let current = |set: &[baton::recipes::registry::Instance]| set.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let mut set = watch.current();
    let deadline = Instant::now() + WAIT;
    while current(&set) != ids {
        let left = deadline.saturating_duration_since(Instant::now());
        set = tokio::time::timeout(left, watch.changed())
            .await
            .unwrap_or_else(|_| panic!("the set never became {ids:?}; last {:?}", current(&set)))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_follows_registrations_and_forgets_closed_sessions() {
    let daemon = Daemon::start();
    let observer = ServiceRegistry::default_root(connect(&daemon).await);
    let mut watch = observer.watch("api").await.unwrap();
    assert!(watch.current().is_empty());

    let (a, b, c) = (connect(&daemon).await, connect(&daemon).await, connect(&daemon).await);
    let reg_a = ServiceRegistry::default_root(a.clone()).register("api", "a:80", b"zone=1").await.unwrap();
    let _reg_b = ServiceRegistry::default_root(b.clone()).register("api", "b:80", b"zone=2").await.unwrap();
    let _reg_c = ServiceRegistry::default_root(c.clone()).register("api", "c:80", b"zone=3").await.unwrap();
    wait_for_ids(&mut watch, &["a:80", "b:80", "c:80"]).await;

    let found = observer.discover("api").await.unwrap();
    let metadata: Vec<&[u8]> = found.iter().map(|i| i.metadata.as_slice()).collect();
    assert_eq!(metadata, [&b"zone=1"[..], b"zone=2", b"zone=3"]);
    assert_eq!(found[1].stat.ephemeral_owner, b.session_id());
    assert!(observer.discover("unknown").await.unwrap().is_empty());

    let again = ServiceRegistry::default_root(b.clone()).register("api", "a:80", b"").await.unwrap_err();
    assert!(again.is_node_exists(), "{again:?}");
    let bad = observer.register("a/b", "x", b"").await.unwrap_err();
    assert!(matches!(bad, baton::Error::InvalidArgument(_)), "{bad:?}");

    reg_a.update(b"zone=9").await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let set = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), watch.changed())
            .await
            .unwrap()
            .unwrap();
        if set[0].metadata == b"zone=9" {
            break;
        }
    }
    reg_a.deregister().await.unwrap();
    wait_for_ids(&mut watch, &["b:80", "c:80"]).await;

    let started = Instant::now();
    c.close().await.unwrap();
    wait_for_ids(&mut watch, &["b:80"]).await;
    eprintln!("registry: 3 registered, 1 deregistered, 1 gone {:?} after its client closed", started.elapsed());
    drop(b);
    assert_eq!(
        observer.discover("api").await.unwrap().len(),
        1,
        "b's session lives while its registration's handle does"
    );
}

/// A small deterministic pseudo-random sequence (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_converge_under_concurrent_writers() {
    const WRITERS: u64 = 3;
    const OPS: usize = 250;
    let daemon = Daemon::start();
    let setup = connect(&daemon).await;
    setup.create("/s", b"", CreateOptions::persistent()).await.unwrap();
    let subtree = Cache::start(connect(&daemon).await, "/s").await.unwrap();
    let whole = Cache::start(connect(&daemon).await, "/").await.unwrap();
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = connect(&daemon).await;
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            for _ in 0..OPS {
                // A small space of paths three levels deep, so writers collide.
                let depth = 1 + rng.below(3);
                let mut path = String::from("/s");
                for _ in 0..depth {
                    path.push('/');
                    path.push_str(&rng.below(3).to_string());
                }
                let result = match rng.below(10) {
                    0..=3 => client.create(&path, b"new", CreateOptions::persistent()).await.map(drop),
                    4..=6 => client.set(&path, format!("w{w}").as_bytes(), None).await.map(drop),
                    7 => client.create(&path, b"", CreateOptions::ephemeral()).await.map(drop),
                    _ => client.delete(&path, None).await,
                };
                if let Err(e) = result {
                    let code = e.code();
                    assert!(
                        e.is_no_node()
                            || e.is_node_exists()
                            || code == Some(baton::ErrorCode::NotEmpty)
                            || code == Some(baton::ErrorCode::NoChildrenForEphemerals),
                        "{path}: {e:?}"
                    );
                }
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for writer in writers {
        clients.push(tokio::time::timeout(WAIT, writer).await.expect("writers finish").unwrap());
    }
    // One writer leaves: its ephemerals go too.
    clients.pop().unwrap().close().await.unwrap();
    setup.sync("/").await.unwrap();
    let zxid = tokio::time::timeout(WAIT, subtree.sync()).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, whole.sync()).await.unwrap().unwrap();
    let server = read_tree(&setup, "/s").await;
    assert_eq!(subtree.snapshot().nodes, server, "the /s cache equals the server's subtree");
    assert_eq!(whole.snapshot().nodes, read_tree(&setup, "/").await, "the / cache equals the whole tree");
    eprintln!(
        "cache under {WRITERS} concurrent writers x {OPS} ops: converged to {} nodes at {zxid} in {:?}",
        server.len(),
        started.elapsed()
    );
}
