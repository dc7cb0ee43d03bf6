//! Primary and warm standby on loopback: catch-up through the log and through a snapshot,
//! read-only standby, promotion, fencing of the old primary, a client that follows the
//! primary across a failover, an old primary's divergent tail set aside when it rejoins, and
//! values large enough that what is sent goes as several messages.

use baton::proto::message::{Role, StatusReport};
use baton::{Client, CreateOptions, ErrorCode, EventKind};
use baton_tests::pair::{Token, assert_caught_up};
use baton_tests::{Daemon, free_tcp_addr};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn token() -> Token {
    Token::new()
}

fn primary(token: &Token, listen: &str, extra: &[&str]) -> Daemon {
    let mut args = vec!["--replication-listen", listen, "--replication-token-file", token.arg()];
    args.extend_from_slice(extra);
    Daemon::start_with(&args)
}

/// A primary that keeps only its last 10 txns in its log, so that a new standby needs a
/// snapshot; the directory of its config file goes with the second half.
fn primary_keeping_10_txns(token: &Token, listen: &str) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("primary.toml");
    std::fs::write(&config, "log_retention_txns = 10\n").unwrap();
    (primary(token, listen, &["--config", config.to_str().unwrap()]), dir)
}

fn standby(token: &Token, of: &str, extra: &[&str]) -> Daemon {
    let mut args = vec!["--standby-of", of, "--replication-token-file", token.arg()];
    args.extend_from_slice(extra);
    Daemon::start_with(&args)
}

async fn status(client: &Client) -> StatusReport {
    client.status().await.unwrap()
}

async fn create_many(client: &Client, prefix: &str, n: usize) {
    for i in 0..n {
        client
            .create(&format!("{prefix}{i}"), format!("value {i}").as_bytes(), CreateOptions::persistent())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_catches_up_through_the_log_serves_reads_and_refuses_writes() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let p = primary(&token, &link, &[]);
    let writer = Client::connect(&p.addr()).await.unwrap();
    create_many(&writer, "/before-", 50).await;
    let s = standby(&token, &link, &[]);
    let reader = Client::connect(&s.addr()).await.unwrap();
    create_many(&writer, "/after-", 50).await;
    let caught_up = assert_caught_up(&writer, &reader).await;
    assert_eq!(caught_up.role, Role::Standby);
    assert_eq!(reader.get("/after-49").await.unwrap().0, b"value 49");

    // Watches work on the standby, fed by the primary's writes.
    let (_, _, watch) = reader.get_and_watch("/before-0").await.unwrap();
    writer.set("/before-0", b"changed", None).await.unwrap();
    let event = tokio::time::timeout(WAIT, watch.changed()).await.unwrap().unwrap();
    assert_eq!(event.kind, EventKind::DataChanged);
    assert_eq!(reader.get("/before-0").await.unwrap().0, b"changed");

    let refused = reader.create("/nope", b"", CreateOptions::persistent()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotPrimary));
    assert!(refused.to_string().contains(&link), "the refusal names the primary: {refused}");
    let peer = status(&writer).await.peer.expect("the primary sees its standby");
    assert!(peer.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_older_than_the_retained_log_catches_up_from_a_snapshot() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let (p, _config) = primary_keeping_10_txns(&token, &link);
    let writer = Client::connect(&p.addr()).await.unwrap();
    create_many(&writer, "/n", 100).await;
    let s = standby(&token, &link, &[]);
    let reader = Client::connect(&s.addr()).await.unwrap();
    assert_caught_up(&writer, &reader).await;
    // And it keeps following live after the snapshot.
    create_many(&writer, "/live", 20).await;
    assert_caught_up(&writer, &reader).await;
    assert!(s.log().contains("installed a snapshot"), "the snapshot path was taken");
    let window = status(&writer).await;
    assert!(window.log_txns <= 10 && window.log_txns > 0, "the log window is bounded and visible: {window:?}");
    assert!(window.log_floor > baton::Zxid::ZERO, "the oldest entries were compacted away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_takes_writes_and_the_old_primary_is_fenced_by_its_peer() {
    let token = token();
    let (a_link, b_link) = (free_tcp_addr().to_string(), free_tcp_addr().to_string());
    let p = primary(&token, &a_link, &["--peer", &b_link]);
    let s = standby(&token, &a_link, &["--replication-listen", &b_link]);
    let on_p = Client::connect(&p.addr()).await.unwrap();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    create_many(&on_p, "/x", 10).await;
    assert_caught_up(&on_p, &on_s).await;

    let promotion = on_s.promote().await.unwrap();
    assert_eq!(promotion.epoch, 2);
    assert_eq!(promotion.behind_txns, Some(0));
    let new = Client::connect(&s.addr()).await.unwrap();
    new.create("/on-the-new-primary", b"", CreateOptions::persistent()).await.unwrap();
    assert_eq!(status(&new).await.role, Role::Primary);

    // The old primary learns of epoch 2 from its peer and refuses writes from then on.
    let deadline = Instant::now() + WAIT;
    loop {
        match on_p.set("/x0", b"split-brain", None).await {
            Err(e) if e.code() == Some(ErrorCode::Fenced) => break,
            // Accepted before the check came round: it never reaches the new primary.
            Ok(_) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(Instant::now() < deadline, "the old primary was never fenced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status(&on_p).await.fenced);
    // Once it knows, it accepts nothing.
    let mut accepted = 0;
    for i in 0..20 {
        if on_p.create(&format!("/late{i}"), b"", CreateOptions::persistent()).await.is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 0, "writes accepted by the deposed primary after it learned of epoch 2");
    assert_eq!(new.get("/x0").await.unwrap().0, b"value 0", "nothing of the old primary's reached the new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_both_addresses_keeps_its_session_across_a_failover() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let mut p = primary(&token, &link, &[]);
    let s = standby(&token, &link, &[]);
    let both = format!("{},{}", p.addr(), s.addr());
    let client = Client::builder().session_timeout(Duration::from_secs(10)).connect(&both).await.unwrap();
    client.create("/leader-lease", b"mine", CreateOptions::ephemeral()).await.unwrap();
    let session = client.session_id();
    let watcher = Client::connect(&p.addr()).await.unwrap();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    assert_caught_up(&watcher, &on_s).await;
    drop(watcher);

    let killed = Instant::now();
    p.kill9();
    on_s.promote().await.unwrap();
    // The client finds the new primary and resumes its session there.
    let deadline = Instant::now() + WAIT;
    loop {
        match client.set("/leader-lease", b"still mine", None).await {
            Ok(_) => break,
            Err(e) if e.is_retryable() || e.code() == Some(ErrorCode::NotPrimary) => {}
            Err(e) => panic!("the session did not survive the failover: {e}"),
        }
        assert!(Instant::now() < deadline, "no write on the new primary");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("failover: kill of the primary to the first successful write on the new one: {:?}", killed.elapsed());
    assert_eq!(client.session_id(), session);
    let check = Client::connect(&s.addr()).await.unwrap();
    let stat = check.exists("/leader-lease").await.unwrap().expect("the ephemeral survived");
    assert_eq!(stat.ephemeral_owner, session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_rejoining_sets_its_divergent_tail_aside_and_resyncs() {
    let token = token();
    let (a_link, b_link) = (free_tcp_addr().to_string(), free_tcp_addr().to_string());
    let mut p = primary(&token, &a_link, &[]);
    let mut s = standby(&token, &a_link, &["--replication-listen", &b_link]);
    let on_p = Client::connect(&p.addr()).await.unwrap();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    create_many(&on_p, "/shared", 5).await;
    assert_caught_up(&on_p, &on_s).await;
    drop(on_s);

    // The standby goes away; the primary takes writes it will never see.
    s.kill9();
    create_many(&on_p, "/lost", 3).await;
    drop(on_p);
    p.kill9();

    // The standby comes back alone and is promoted.
    s.restart();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    on_s.promote().await.unwrap();
    let new = Client::connect(&s.addr()).await.unwrap();
    new.create("/after-failover", b"", CreateOptions::persistent()).await.unwrap();

    // The old primary restarts as the new one's standby.
    p.restart_with(&["--standby-of", &b_link, "--replication-token-file", token.arg()]);
    let (rejoined, old_data) = (&p, p.data_dir());
    let on_old = Client::connect(&rejoined.addr()).await.unwrap();
    assert_caught_up(&new, &on_old).await;
    assert!(on_old.exists("/lost0").await.unwrap().is_none(), "the divergent writes are not served");
    assert!(on_old.exists("/after-failover").await.unwrap().is_some());

    let recovery: Vec<_> = std::fs::read_dir(&old_data)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("recovery-")))
        .collect();
    assert_eq!(recovery.len(), 1, "one recovery file: {recovery:?}");
    let out = baton_tests::cli("unused").args(["admin", "recovery"]).arg(&recovery[0]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    for i in 0..3 {
        assert!(listing.contains(&format!("create /lost{i}")), "recovery lists /lost{i}:\n{listing}");
    }
    assert!(rejoined.log().contains("set aside"), "the divergence is reported in the log");
}

/// 16 writers create nodes on `addr` until stopped; returns what was acknowledged, each
/// with the zxid that created it.
async fn write_load(addr: &str, stop: tokio::sync::watch::Receiver<bool>) -> Vec<(String, u64)> {
    let mut writers = Vec::new();
    for w in 0..16 {
        let client = Client::connect(addr).await.unwrap();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0u32.. {
                if *stop.borrow() {
                    break;
                }
                match client.create(&format!("/load/w{w}-{n}"), b"x", CreateOptions::persistent()).await {
                    Ok((path, stat)) => acked.push((path, stat.czxid.0)),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    acked
}

async fn missing_on(client: &Client, acked: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut missing = Vec::new();
    for (path, zxid) in acked {
        if client.exists(path).await.unwrap().is_none() {
            missing.push((path.clone(), *zxid));
        }
    }
    missing
}

/// What a failover under load leaves: the writes acknowledged by the old primary (with
/// their zxids), its status taken just before it was killed, and a client of the promoted
/// standby.
struct Failover {
    acked: Vec<(String, u64)>,
    before: StatusReport,
    after: Client,
    _pair: (Daemon, Daemon, Token),
}

/// 16 writers on a primary (started with `primary_args`) until the standby holds 1000 nodes;
/// then the primary is killed with SIGKILL and the standby promoted.
async fn failover_under_load(primary_args: &[&str]) -> Failover {
    let token = token();
    let link = free_tcp_addr().to_string();
    let mut p = primary(&token, &link, primary_args);
    let s = standby(&token, &link, &[]);
    let setup = Client::connect(&p.addr()).await.unwrap();
    setup.create("/load", b"", CreateOptions::persistent()).await.unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let addr = p.addr();
    let load = tokio::spawn(async move { write_load(&addr, stop).await });
    let on_s = Client::connect(&s.addr()).await.unwrap();
    while on_s.status().await.unwrap().nodes < 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = setup.status().await.unwrap();
    p.kill9();
    let _ = stop_tx.send(true);
    let acked = load.await.unwrap();
    on_s.promote().await.unwrap();
    let after = Client::connect(&s.addr()).await.unwrap();
    Failover { acked, before, after, _pair: (p, s, token) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_loses_no_acknowledged_write_when_the_primary_is_killed() {
    // Bound whole: the pair of daemons lives as long as `failover`.
    let failover = failover_under_load(&["--replication-mode", "sync"]).await;
    let (acked, after) = (&failover.acked, &failover.after);
    let missing = missing_on(after, acked).await;
    eprintln!(
        "sync mode: {} writes acknowledged before kill -9 of the primary, {} missing after promotion",
        acked.len(),
        missing.len()
    );
    assert!(acked.len() >= 500, "too few writes to prove anything: {}", acked.len());
    assert!(missing.is_empty(), "acknowledged writes lost in a sync failover: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mode_loses_no_more_than_the_lag_reported_just_before() {
    let failover = failover_under_load(&[]).await;
    let (acked, before, after) = (&failover.acked, &failover.before, &failover.after);
    let covered: Vec<_> = acked.iter().filter(|(_, z)| *z <= before.last_zxid.0).cloned().collect();
    let lost = missing_on(after, &covered).await;
    let lag = before.peer.as_ref().map_or(0, |p| p.lag_txns);
    eprintln!(
        "async mode: lag reported just before kill -9: {lag} txns; of {} writes acknowledged by then, {} lost ({} acknowledged in all)",
        covered.len(),
        lost.len(),
        acked.len()
    );
    assert!(lost.len() as u64 <= lag, "lost {} > reported lag {lag}", lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_waits_for_a_missing_standby_or_degrades_with_an_alarm() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let degrade = dir.path().join("degrade.toml");
    std::fs::write(&degrade, "sync_standby_gone = \"degrade\"\nsync_standby_timeout_ms = 300\n").unwrap();

    // wait (the default): with the standby gone, a write is not acknowledged until a
    // standby has it. (Even a new session waits: opening one is a replicated write.)
    let p = primary(&token, &link, &["--replication-mode", "sync"]);
    let mut s = standby(&token, &link, &[]);
    let client = Client::connect(&p.addr()).await.unwrap();
    s.kill9();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.create("/held", b"", CreateOptions::persistent()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "a sync write was acknowledged with the standby gone");
    s.restart();
    tokio::time::timeout(WAIT, pending).await.expect("acknowledged once the standby has it").unwrap().unwrap();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    assert!(on_s.exists("/held").await.unwrap().is_some());
    drop((client, p, s, on_s));

    // degrade: with no standby, writes go through after the timeout, and status says so.
    let link = free_tcp_addr().to_string();
    let p = primary(&token, &link, &["--replication-mode", "sync", "--config", degrade.to_str().unwrap()]);
    let client = Client::connect(&p.addr()).await.unwrap();
    tokio::time::timeout(WAIT, client.create("/degraded", b"", CreateOptions::persistent())).await.unwrap().unwrap();
    let report = client.status().await.unwrap();
    assert!(report.sync_degraded, "the degradation is visible in status");
    assert!(p.log().contains("ALARM"), "and in the log");
    let s = standby(&token, &link, &[]);
    let on_s = Client::connect(&s.addr()).await.unwrap();
    assert_caught_up(&client, &on_s).await;
    client.create("/synchronous-again", b"", CreateOptions::persistent()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while client.status().await.unwrap().sync_degraded {
        assert!(Instant::now() < deadline, "never synchronous again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_follow_the_client_across_a_failover_and_miss_nothing() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let mut p = primary(&token, &link, &[]);
    let s = standby(&token, &link, &[]);
    let both = format!("{},{}", p.addr(), s.addr());
    let client = Client::builder().session_timeout(Duration::from_secs(10)).connect(&both).await.unwrap();
    client.create("/w", b"0", CreateOptions::persistent()).await.unwrap();
    let mut watch = client.watch("/w", false).await.unwrap();
    client.set("/w", b"1", None).await.unwrap();
    assert_eq!(tokio::time::timeout(WAIT, watch.next()).await.unwrap().unwrap().kind, EventKind::DataChanged);
    let on_s = Client::connect(&s.addr()).await.unwrap();
    assert_caught_up(&client, &on_s).await;

    p.kill9();
    on_s.promote().await.unwrap();
    // Changes on the new primary before and after the client finds it.
    let writer = Client::connect(&s.addr()).await.unwrap();
    writer.set("/w", b"2", None).await.unwrap();
    let first = tokio::time::timeout(WAIT, watch.next()).await.expect("the change made during the failover").unwrap();
    assert_eq!((first.path.as_str(), first.kind), ("/w", EventKind::DataChanged));
    writer.set("/w", b"3", None).await.unwrap();
    let second = tokio::time::timeout(WAIT, watch.next()).await.expect("and the live one").unwrap();
    assert_eq!(second.kind, EventKind::DataChanged);
    assert!(second.zxid > first.zxid);
    assert_eq!(client.get("/w").await.unwrap().0, b"3");
}

/// Creates `n` nodes `{prefix}{i}` of `value` from four clients at once, so that group commits
/// carry several of them; the clients' sessions are closed when it returns.
async fn create_large(addr: &str, prefix: &str, n: usize, value: &[u8]) {
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (addr, prefix, value) = (addr.to_owned(), prefix.to_owned(), value.to_vec());
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(&addr).await.unwrap();
            for i in (task..n).step_by(4) {
                client.create(&format!("{prefix}{i}"), &value, CreateOptions::persistent()).await.unwrap();
            }
            // Closed before returning: `assert_caught_up` wants no session to come or go.
            client.close().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// A snapshot or a group commit larger than one replication message (8 MiB of records) goes
/// as several, which the standby takes as it would the whole: 18 MB of 1 MB values reach it
/// through a snapshot, then 10 MB more through the live stream. (Before, each went as one
/// message, and past 64 MiB the standby could never catch up: `replication::chunks` has the
/// unit tests of the split, `store::tests` those of the catch-up's byte budget.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_reach_a_standby_in_messages_of_a_bounded_size() {
    let token = token();
    let link = free_tcp_addr().to_string();
    let (p, _config) = primary_keeping_10_txns(&token, &link);
    let value: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    create_large(&p.addr(), "/large-", 18, &value).await;
    let s = standby(&token, &link, &[]);
    let writer = Client::connect(&p.addr()).await.unwrap();
    // The standby's engine answers nothing, pings included, while it installs the snapshot:
    // about 1 s for these 18 MB in a quiet debug build, more under the whole suite's load.
    // The longest timeout keeps the reader's local session (which cannot be resumed) alive.
    let patient = Client::builder().session_timeout(Duration::from_secs(60));
    let reader = patient.connect(&s.addr()).await.unwrap();
    assert_caught_up(&writer, &reader).await;
    assert!(s.log().contains("installed a snapshot"), "the snapshot path was taken");
    create_large(&p.addr(), "/live-", 10, &value).await;
    assert_caught_up(&writer, &reader).await;
    assert!(reader.get("/large-17").await.unwrap().0 == value && reader.get("/live-9").await.unwrap().0 == value);
}
