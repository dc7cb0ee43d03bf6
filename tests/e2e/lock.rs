//! The waiting recipes against the real daemon, each contender on its own session: the lock
//! (mutual exclusion, FIFO order, one wake-up per release, increasing fencing tokens, fencing
//! of a stale holder, time-outs and cancellation that leave nothing behind), leader election
//! (never two leaders, everyone leads in turn, observers see every change), the read-write lock
//! (readers share, writers exclude, a waiting writer holds later readers back) and the
//! semaphore (never more than N holders).
//!
//! The figures go to stderr (`--nocapture` shows them).

use baton::recipes::election::LeaderElection;
use baton::recipes::lock::{HoldState, Lock};
use baton::recipes::rwlock::RwLock;
use baton::recipes::semaphore::Semaphore;
use baton::{Client, CreateOptions, Error, ErrorCode, MultiOp};
use baton_tests::Daemon;
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(10);
const CONTENDERS: usize = 16;

async fn clients(addr: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(addr).await.unwrap());
    }
    clients
}

/// Waits until the children of `path` satisfy `condition`, woken by a children watch.
async fn wait_children(client: &Client, path: &str, condition: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (children, watcher) = client.children_and_watch(path).await.unwrap();
        if condition(&children) {
            return children;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        timeout(left, watcher.changed())
            .await
            .unwrap_or_else(|_| panic!("{path}: children stayed {children:?}"))
            .unwrap();
    }
}

/// Enters a critical section: bumps `inside` and returns how many were inside before.
fn enter(inside: &AtomicUsize) -> usize {
    inside.fetch_add(1, Ordering::SeqCst)
}

fn leave(inside: &AtomicUsize) {
    inside.fetch_sub(1, Ordering::SeqCst);
}

/// The wire code of a failed multi.
fn multi_code(result: baton::Result<Vec<baton::OpResult>>) -> ErrorCode {
    match result {
        Err(Error::MultiFailed { code, .. }) => code,
        other => panic!("expected a failed multi, got {other:?}"),
    }
}

fn set_op(path: &str, data: &[u8]) -> MultiOp {
    MultiOp::Set { path: path.to_owned(), data: Some(data.to_vec()), version: None }
}

/// One acquisition, recorded inside the critical section: so the records are in acquisition
/// order.
struct Acquired {
    sequence: i32,
    token: u64,
    wakeups: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_exclusive_fifo_and_each_release_wakes_at_most_one_waiter() {
    const ROUNDS: usize = 5;
    let daemon = Daemon::start();
    let inside = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let log: Arc<Mutex<Vec<Acquired>>> = Arc::default();
    let start = Arc::new(tokio::sync::Barrier::new(CONTENDERS));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients(&daemon.addr(), CONTENDERS).await {
        let (inside, violations, log, start) = (inside.clone(), violations.clone(), log.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(client, "/locks/fifo");
            start.wait().await;
            for _ in 0..ROUNDS {
                let before = lock.wakeups();
                let guard = lock.acquire().await.unwrap();
                if enter(&inside) != 0 {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                let wakeups = lock.wakeups() - before;
                log.lock().unwrap().push(Acquired { sequence: guard.sequence(), token: guard.token(), wakeups });
                assert_eq!(guard.state(), HoldState::Held);
                tokio::time::sleep(Duration::from_millis(1)).await; // let the queue build up
                leave(&inside);
                guard.release().await.unwrap();
            }
            lock.wakeups()
        }));
    }
    let mut wakeups = 0;
    for task in tasks {
        wakeups += timeout(WAIT * 3, task).await.expect("contenders finish").unwrap();
    }
    let elapsed = started.elapsed();
    let log = std::mem::take(&mut *log.lock().unwrap());
    let acquisitions = log.len();
    let waited = log.iter().filter(|a| a.wakeups > 0).count();
    let most_in_one_wait = log.iter().map(|a| a.wakeups).max().unwrap_or(0);
    let out_of_order = log.windows(2).filter(|w| w[0].sequence >= w[1].sequence).count();
    let tokens_not_increasing = log.windows(2).filter(|w| w[0].token >= w[1].token).count();
    let violations = violations.load(Ordering::SeqCst);
    eprintln!(
        "lock: {CONTENDERS} contenders, {acquisitions} acquisitions in {elapsed:?}, {violations} violations, \
         {out_of_order} out of FIFO order, {tokens_not_increasing} tokens not increasing; \
         {wakeups} wake-ups for {acquisitions} releases = {:.3} per release \
         ({waited} acquisitions waited, at most {most_in_one_wait} wake-up in one wait)",
        wakeups as f64 / acquisitions as f64
    );
    assert_eq!(acquisitions, CONTENDERS * ROUNDS);
    assert_eq!(violations, 0, "mutual exclusion");
    assert_eq!(out_of_order, 0, "acquired in the order of the waiters' suffixes");
    assert_eq!(tokens_not_increasing, 0, "fencing tokens strictly increase");
    assert!(wakeups <= acquisitions as u64, "at most one wake-up per release");
    assert!(most_in_one_wait <= 1, "a waiter is woken once, by its predecessor's release");
    assert!(waited > acquisitions / 2, "the test made contenders wait: {waited} of {acquisitions}");
    let observer = Client::connect(&daemon.addr()).await.unwrap();
    assert!(observer.children("/locks/fifo").await.unwrap().is_empty(), "no waiter left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_holder_loses_the_lock_at_its_deadline_and_its_stale_writes_are_fenced() {
    let access = TcpAccess::new("holder");
    let mut daemon = Daemon::start_with_config(&access.config());
    let proxy = Proxy::start(access.tcp()).await;
    let a = access.builder().session_timeout(Duration::from_secs(2)).connect(&proxy.addr()).await.unwrap();
    let b = Client::connect(&daemon.addr()).await.unwrap();
    b.create("/data", b"", CreateOptions::persistent()).await.unwrap();

    let a_guard = Lock::new(a.clone(), "/locks/fenced").acquire().await.unwrap();
    let t1 = a_guard.token();
    a.multi(vec![a_guard.guard_op(), set_op("/data", b"from a")]).await.unwrap();
    let b_lock = Lock::new(b.clone(), "/locks/fenced");
    let b_waits = tokio::spawn(async move {
        let guard = b_lock.acquire().await.unwrap();
        (guard, Instant::now())
    });

    // A is cut off: jeopardy first, then lost when its session may have expired.
    proxy.cut(true);
    let mut state = a_guard.watch();
    let jeopardy = *timeout(WAIT, state.wait_for(|s| matches!(s, HoldState::Jeopardy { .. }))).await.unwrap().unwrap();
    let HoldState::Jeopardy { expires_at } = jeopardy else { unreachable!() };
    timeout(WAIT, a_guard.lost()).await.expect("A is told it lost the lock");
    let lost_at = Instant::now();
    let (b_guard, b_acquired_at) = timeout(WAIT, b_waits).await.expect("B acquires after A's expiry").unwrap();
    let t2 = b_guard.token();
    eprintln!(
        "fencing: A token {t1:#x}; A lost it {:?} after its jeopardy deadline; B acquired it {:?} after that \
         deadline, token {t2:#x}",
        lost_at.saturating_duration_since(expires_at),
        b_acquired_at.saturating_duration_since(expires_at)
    );
    assert!(t2 > t1, "a later holder has a larger token");
    // The deadline A was given is one the server honours: nobody else held the lock before it.
    assert!(expires_at <= b_acquired_at, "B held the lock before A's jeopardy deadline");

    // A's late write, guarded by its stale token, is refused; B's goes through.
    let stale = b.multi(vec![a_guard.guard_op(), set_op("/data", b"late write from a")]).await;
    assert_eq!(multi_code(stale), ErrorCode::LockLost);
    b.multi(vec![b_guard.guard_op(), set_op("/data", b"from b")]).await.unwrap();
    assert_eq!(b.get("/data").await.unwrap().0, b"from b");
    a_guard.release().await.expect("releasing a lost lock is not an error");

    // Tokens keep increasing across a daemon restart.
    b_guard.release().await.unwrap();
    drop(b);
    assert!(daemon.terminate().success());
    daemon.restart();
    let c = Client::connect(&daemon.addr()).await.unwrap();
    let c_guard = Lock::new(c, "/locks/fenced").acquire().await.unwrap();
    assert!(c_guard.token() > t2, "tokens increase across a restart: {:#x} after {t2:#x}", c_guard.token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_outs_and_cancellations_leave_no_waiter_and_try_returns_at_once() {
    let daemon = Daemon::start();
    let [holder, other, admin]: [Client; 3] = clients(&daemon.addr(), 3).await.try_into().unwrap();
    let path = "/locks/timeouts";
    let guard = Lock::new(holder.clone(), path).acquire().await.unwrap();
    let held_by = vec![guard.path().rsplit('/').next().unwrap().to_owned()];
    let contender = Lock::new(other.clone(), path);

    let asked = Instant::now();
    assert!(contender.try_acquire().await.unwrap().is_none());
    let try_took = asked.elapsed();
    let asked = Instant::now();
    assert!(contender.acquire_timeout(Duration::from_millis(300)).await.unwrap().is_none());
    let timed_out_after = asked.elapsed();
    assert_eq!(admin.children(path).await.unwrap(), held_by, "the timed-out waiter is gone at once");
    eprintln!("try_acquire on a held lock answered in {try_took:?}; acquire_timeout(300ms) in {timed_out_after:?}");
    assert!(try_took < Duration::from_secs(1), "try_acquire does not wait");
    assert!(timed_out_after >= Duration::from_millis(300));

    // A dropped acquire future withdraws its waiter too.
    assert!(timeout(Duration::from_millis(200), contender.acquire()).await.is_err());
    wait_children(&admin, path, |c| c == held_by.as_slice()).await;

    // Released, the lock is free for try_acquire.
    guard.release().await.unwrap();
    let second = contender.try_acquire().await.unwrap().expect("a free lock is taken at once");

    // A holder whose node someone deletes is told, and fenced.
    admin.delete(second.path(), None).await.unwrap();
    timeout(WAIT, second.lost()).await.expect("the holder learns its node is gone");
    assert_eq!(second.state(), HoldState::Lost);
    assert_eq!(multi_code(admin.multi(vec![second.guard_op()]).await), ErrorCode::LockLost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_everyone_leads_in_turn_and_observers_see_each_change() {
    let daemon = Daemon::start();
    let path = "/election/scheduler";
    let watcher = Client::connect(&daemon.addr()).await.unwrap();
    let mut observer = LeaderElection::new(watcher, path).observe().await.unwrap();
    assert_eq!(observer.next().await.unwrap(), None, "no leader yet");
    let (seen_tx, seen) = watch::channel(Vec::<Option<Vec<u8>>>::new());
    let observing = tokio::spawn(async move {
        loop {
            let leader = observer.next().await.unwrap();
            let done = leader.is_none();
            seen_tx.send_modify(|seen| seen.push(leader));
            if done {
                return;
            }
        }
    });

    let leaders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let order: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, client) in clients(&daemon.addr(), CONTENDERS).await.into_iter().enumerate() {
        let (leaders, most, order, mut seen) = (leaders.clone(), most.clone(), order.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let election = LeaderElection::new(client, path);
            let id = format!("candidate-{i:02}").into_bytes();
            let leadership = election.campaign(&id).await.unwrap();
            most.fetch_max(enter(&leaders) + 1, Ordering::SeqCst);
            order.lock().unwrap().push(id.clone());
            assert_eq!(leadership.state(), HoldState::Held);
            assert_eq!(election.leader().await.unwrap().as_deref(), Some(id.as_slice()));
            // Lead until the observer has seen it, so that no change can go unseen.
            let observed = timeout(WAIT, seen.wait_for(|s| s.last() == Some(&Some(id.clone())))).await;
            observed.expect("the observer sees this leader").unwrap();
            leave(&leaders);
            leadership.resign().await.unwrap();
            election.wakeups()
        }));
    }
    let mut wakeups = 0;
    for task in tasks {
        wakeups += timeout(WAIT * 3, task).await.expect("every candidate leads in turn").unwrap();
    }
    timeout(WAIT, observing).await.expect("the observer sees the last resignation").unwrap();
    let order = order.lock().unwrap().clone();
    let seen = seen.borrow().clone();
    let most = most.load(Ordering::SeqCst);
    eprintln!(
        "election: {CONTENDERS} candidates, {} terms, at most {most} leader(s) at once, {wakeups} wake-ups for {} \
         resignations, observer saw {} changes",
        order.len(),
        order.len(),
        seen.len()
    );
    assert_eq!(most, 1, "never two leaders at once");
    let mut everyone = order.clone();
    everyone.sort();
    everyone.dedup();
    assert_eq!(everyone.len(), CONTENDERS, "every candidate led");
    let expected: Vec<Option<Vec<u8>>> = order.into_iter().map(Some).chain([None]).collect();
    assert_eq!(seen, expected, "the observer saw each leader, in order, then none");
    assert!(wakeups <= CONTENDERS as u64, "at most one wake-up per resignation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rwlock_readers_share_and_a_waiting_writer_holds_later_readers_back() {
    let daemon = Daemon::start();
    let path = "/locks/rw";
    let [c1, c2, c3, c4, admin]: [Client; 5] = clients(&daemon.addr(), 5).await.try_into().unwrap();
    let r1 = RwLock::new(c1, path).read().await.unwrap();
    let r2 = timeout(WAIT, RwLock::new(c2, path).read()).await.expect("readers share").unwrap();
    let events: Arc<Mutex<Vec<&str>>> = Arc::default();
    let writer = {
        let events = events.clone();
        tokio::spawn(async move {
            let w = RwLock::new(c3, path).write().await.unwrap();
            events.lock().unwrap().push("writer in");
            events.lock().unwrap().push("writer out");
            w.release().await.unwrap();
        })
    };
    wait_children(&admin, path, |c| c.len() == 3).await;
    let late_reader = {
        let events = events.clone();
        tokio::spawn(async move {
            let r = RwLock::new(c4, path).read().await.unwrap();
            events.lock().unwrap().push("late reader in");
            r.release().await.unwrap();
        })
    };
    wait_children(&admin, path, |c| c.len() == 4).await;
    assert!(events.lock().unwrap().is_empty(), "the writer waits for the readers, the late reader for the writer");
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    timeout(WAIT, writer).await.unwrap().unwrap();
    timeout(WAIT, late_reader).await.unwrap().unwrap();
    assert_eq!(*events.lock().unwrap(), ["writer in", "writer out", "late reader in"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rwlock_writers_are_alone_among_many_readers() {
    let daemon = Daemon::start();
    let path = "/locks/rw-many";
    let (readers, writers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (violations, most_readers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for (i, client) in clients(&daemon.addr(), CONTENDERS).await.into_iter().enumerate() {
        let (readers, writers, violations, most_readers) =
            (readers.clone(), writers.clone(), violations.clone(), most_readers.clone());
        tasks.push(tokio::spawn(async move {
            let lock = RwLock::new(client, path);
            for _ in 0..3 {
                if i % 4 == 0 {
                    let guard = lock.write().await.unwrap();
                    if enter(&writers) != 0 || readers.load(Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    leave(&writers);
                    guard.release().await.unwrap();
                } else {
                    let guard = lock.read().await.unwrap();
                    most_readers.fetch_max(enter(&readers) + 1, Ordering::SeqCst);
                    if writers.load(Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    leave(&readers);
                    guard.release().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        timeout(WAIT * 3, task).await.expect("readers and writers finish").unwrap();
    }
    let (violations, most_readers) = (violations.load(Ordering::SeqCst), most_readers.load(Ordering::SeqCst));
    eprintln!(
        "rwlock: {CONTENDERS} contenders (4 writers), {violations} violations, up to {most_readers} readers at once"
    );
    assert_eq!(violations, 0, "a writer is alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_never_has_more_than_n_holders() {
    const PERMITS: u32 = 3;
    let daemon = Daemon::start();
    let path = "/limits/sem";
    let first: Vec<Client> = clients(&daemon.addr(), 4).await;
    let mut permits = Vec::new();
    for client in &first[..3] {
        let permit = Semaphore::new(client.clone(), path, PERMITS).acquire_timeout(WAIT).await.unwrap();
        permits.push(permit.expect("three permits are free"));
    }
    let fourth = Semaphore::new(first[3].clone(), path, PERMITS);
    assert!(fourth.try_acquire().await.unwrap().is_none(), "all permits are taken");
    assert!(fourth.acquire_timeout(Duration::from_millis(200)).await.unwrap().is_none());
    let waiting = tokio::spawn(async move { fourth.acquire().await.unwrap() });
    permits.pop().unwrap().release().await.unwrap();
    permits.push(timeout(WAIT, waiting).await.expect("a released permit goes to the waiter").unwrap());
    let wrong = Semaphore::new(first[0].clone(), path, PERMITS + 1).acquire().await;
    assert_eq!(wrong.unwrap_err().code(), Some(ErrorCode::InvalidArgument), "all must agree on N");
    for permit in permits {
        permit.release().await.unwrap();
    }

    let (holders, most, violations) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let rounds = 3;
    let mut tasks = Vec::new();
    for client in clients(&daemon.addr(), CONTENDERS).await {
        let (holders, most, violations) = (holders.clone(), most.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let semaphore = Semaphore::new(client, path, PERMITS);
            for _ in 0..rounds {
                let permit = semaphore.acquire().await.unwrap();
                let now = enter(&holders) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                if now > PERMITS as usize {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                leave(&holders);
                permit.release().await.unwrap();
            }
            semaphore.wakeups()
        }));
    }
    let mut wakeups = 0;
    for task in tasks {
        wakeups += timeout(WAIT * 3, task).await.expect("every contender gets its permits").unwrap();
    }
    let (most, violations) = (most.load(Ordering::SeqCst), violations.load(Ordering::SeqCst));
    let releases = CONTENDERS * rounds;
    eprintln!(
        "semaphore: {PERMITS} permits, {CONTENDERS} contenders, {releases} acquisitions, {violations} violations, \
         at most {most} holders at once, {wakeups} wake-ups = {:.3} per release",
        wakeups as f64 / releases as f64
    );
    assert_eq!(violations, 0, "never more than N holders");
    assert!(most <= PERMITS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_connection_never_queues_a_waiter_twice_nor_leaves_one_behind() {
    const CYCLES: usize = 30;
    let access = TcpAccess::new("flaky");
    let daemon = Daemon::start_with_config(&access.config());
    let proxy = Arc::new(Proxy::start(access.tcp()).await);
    let flaky = access.builder().session_timeout(Duration::from_secs(10)).connect(&proxy.addr()).await.unwrap();
    let rival = Client::connect(&daemon.addr()).await.unwrap();
    let path = "/locks/flapping";
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = {
        let (proxy, done) = (proxy.clone(), done.clone());
        tokio::spawn(async move {
            let mut cuts = 0;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(15 + cuts % 4 * 10)).await;
                proxy.cut(false);
                cuts += 1;
            }
            cuts
        })
    };
    let lock = Lock::new(flaky.clone(), path);
    let rival_lock = Lock::new(rival, path);
    let mut twice = 0;
    for _ in 0..CYCLES {
        let rivals = rival_lock.acquire().await.unwrap();
        let waiting = {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire().await })
        };
        rivals.release().await.unwrap();
        let guard = timeout(WAIT, waiting).await.expect("acquired despite the cuts").unwrap().unwrap();
        let mine = loop {
            match flaky.ephemerals(None).await {
                Ok(mine) => break mine,
                Err(e) if e.is_retryable() => {}
                Err(e) => panic!("{e}"),
            }
        };
        twice += usize::from(mine.len() != 1);
        assert!(mine.contains(&guard.path().to_owned()), "{mine:?}");
        guard.release().await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let cuts = cutter.await.unwrap();
    let observer = Client::connect(&daemon.addr()).await.unwrap();
    let left = wait_children(&observer, path, <[String]>::is_empty).await;
    eprintln!(
        "flapping: {CYCLES} acquisitions through {cuts} connection cuts, {twice} queued twice, {} left",
        left.len()
    );
    assert_eq!(twice, 0, "a waiter found its own node again instead of queueing twice");
}
