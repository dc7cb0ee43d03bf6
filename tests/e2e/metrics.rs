//! The metrics endpoint of the real daemon, fetched over raw TCP: counters and histograms
//! reflect the requests made, gauges match `status`, `/health` answers, and bad requests get
//! a 4xx without stopping the endpoint or the daemon.

use baton::{Client, CreateOptions};
use baton_tests::pair::{Token, assert_caught_up};
use baton_tests::{Daemon, eventually, free_tcp_addr};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// A daemon serving metrics, and the address it serves them on.
fn daemon_with_metrics() -> (Daemon, SocketAddr) {
    let addr = free_tcp_addr();
    let daemon = Daemon::start_with(&["--metrics-listen", &addr.to_string()]);
    (daemon, addr)
}

/// An HTTP response: status code, head, body.
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads the response until the server closes.
fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response to its end");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    Response { status, head: head.to_owned(), body: body.to_owned() }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

fn scrape(addr: SocketAddr) -> String {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(response.head.contains("Content-Type: application/openmetrics-text"), "{}", response.head);
    assert!(response.body.ends_with("# EOF\n"), "the exposition is complete");
    response.body
}

/// The value of one series (`name` or `name{labels}`), panicking if it is absent.
fn value<T: std::str::FromStr>(text: &str, series: &str) -> T {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} of that type in:\n{text}"))
}

/// The value of a counter, an integer gauge or a histogram's count.
fn int(text: &str, series: &str) -> u64 {
    value(text, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_histograms_and_gauges_reflect_the_requests_made() {
    let (daemon, addr) = daemon_with_metrics();
    let c = Client::connect(&daemon.addr()).await.unwrap();
    for i in 0..5 {
        c.create(&format!("/n{i}"), b"v", CreateOptions::persistent()).await.unwrap();
    }
    for _ in 0..3 {
        c.get("/n0").await.unwrap();
    }
    c.set("/n1", b"w", None).await.unwrap();
    c.delete("/n4", None).await.unwrap();
    let (_, _watcher) = c.exists_and_watch("/n2").await.unwrap();
    assert!(c.get("/missing").await.is_err(), "a domain error is a request too");

    let text = scrape(addr);
    assert!(int(&text, "baton_requests_total{op=\"create\"}") >= 5);
    assert!(int(&text, "baton_requests_total{op=\"get\"}") >= 4);
    assert!(int(&text, "baton_requests_total{op=\"set\"}") >= 1);
    assert!(int(&text, "baton_requests_total{op=\"delete\"}") >= 1);
    assert!(int(&text, "baton_request_duration_seconds_count{op=\"create\"}") >= 5);
    assert!(value::<f64>(&text, "baton_request_duration_seconds_sum{op=\"create\"}") > 0.0);
    assert!(int(&text, "baton_request_duration_seconds_bucket{le=\"+Inf\",op=\"create\"}") >= 5);
    assert_eq!(int(&text, "baton_requests_total{op=\"promote\"}"), 0, "every op has a series");
    // Each create, set and delete was committed (alone or with others) before its reply.
    assert!(int(&text, "baton_commit_batch_txns_count") > 0);
    assert!(value::<f64>(&text, "baton_commit_batch_txns_sum") >= 7.0);
    assert!(int(&text, "baton_commit_duration_seconds_count") > 0);
    assert!(int(&text, "baton_store_bytes") > 0);
    assert_eq!(int(&text, "baton_primary"), 1);
    assert_eq!(int(&text, "baton_fenced"), 0);
    assert_eq!(int(&text, "baton_sync_degraded"), 0);
    assert_eq!(int(&text, "baton_replication_lag_txns"), 0);
    assert!(value::<f64>(&text, "baton_uptime_seconds") > 0.0);

    // The gauges are published after each engine round, just after its replies go out.
    let status = c.status().await.unwrap();
    let matches = |text: &str| {
        int(text, "baton_nodes") == status.nodes
            && int(text, "baton_sessions") == status.sessions
            && int(text, "baton_watches") == status.watches
            && int(text, "baton_connections") == status.connections
    };
    assert!(eventually(WAIT, || matches(&scrape(addr))).await, "gauges vs {status:?}:\n{}", scrape(addr));
    assert_eq!(status.nodes, 5, "the root and four nodes");
    assert!(status.watches >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok_and_bad_requests_get_a_4xx_while_serving_goes_on() {
    let (daemon, addr) = daemon_with_metrics();
    let health = get(addr, "/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{}", health.head);
    assert_eq!(http(addr, b"HEAD /health HTTP/1.1\r\n\r\n").body, "", "HEAD has no body");

    assert_eq!(http(addr, b"garbage\r\n\r\n").status, 400);
    assert_eq!(http(addr, b"GET /metrics HTTP/9\r\n\r\n").status, 400);
    assert_eq!(http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status, 405);
    assert_eq!(get(addr, "/nothing-here").status, 404);
    let oversized = format!("GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(16 * 1024));
    assert_eq!(http(addr, oversized.as_bytes()).status, 431);
    // A client that connects and hangs up without a word costs nothing.
    drop(TcpStream::connect(addr).unwrap());

    assert_eq!(get(addr, "/health").status, 200, "the endpoint still serves");
    scrape(addr);
    let c = Client::connect(&daemon.addr()).await.unwrap();
    c.create("/still", b"", CreateOptions::persistent()).await.unwrap();
    assert!(int(&scrape(addr), "baton_requests_total{op=\"create\"}") >= 1, "and so does the daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_in_the_config_file_serves_as_the_flag_does() {
    let addr = free_tcp_addr();
    let daemon = Daemon::start_with_config(&format!("metrics_listen = \"{addr}\"\n"));
    Client::connect(&daemon.addr()).await.unwrap();
    assert_eq!(get(addr, "/health").status, 200);
    assert!(int(&scrape(addr), "baton_sessions") <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_and_its_standby_show_their_roles_link_and_lag() {
    let token = Token::new();
    let (primary_metrics, standby_metrics, link) = (free_tcp_addr(), free_tcp_addr(), free_tcp_addr().to_string());
    let primary = Daemon::start_with(&[
        "--replication-listen",
        &link,
        "--replication-token-file",
        token.arg(),
        "--metrics-listen",
        &primary_metrics.to_string(),
    ]);
    let standby = Daemon::start_with(&[
        "--standby-of",
        &link,
        "--replication-token-file",
        token.arg(),
        "--metrics-listen",
        &standby_metrics.to_string(),
    ]);
    let on_primary = Client::connect(&primary.addr()).await.unwrap();
    for i in 0..10 {
        on_primary.create(&format!("/r{i}"), b"", CreateOptions::persistent()).await.unwrap();
    }
    let on_standby = Client::connect(&standby.addr()).await.unwrap();
    let caught_up = assert_caught_up(&on_primary, &on_standby).await;

    let linked = |addr, primary_flag| {
        let text = scrape(addr);
        int(&text, "baton_primary") == primary_flag
            && int(&text, "baton_replication_peer_connected") == 1
            && int(&text, "baton_replication_lag_txns") == 0
            && int(&text, "baton_nodes") == caught_up.nodes
    };
    assert!(eventually(WAIT, || linked(primary_metrics, 1)).await, "primary:\n{}", scrape(primary_metrics));
    assert!(eventually(WAIT, || linked(standby_metrics, 0)).await, "standby:\n{}", scrape(standby_metrics));
    let standby_text = scrape(standby_metrics);
    assert!(int(&standby_text, "baton_commit_batch_txns_count") > 0, "the standby commits what it applies");
    assert_eq!(get(standby_metrics, "/health").status, 200);
}

/// 16 clients creating at once, each with one create in flight; returns the daemon's
/// `(commits, txns committed)` from its metrics afterwards.
async fn commits_of_concurrent_creates(config: &str) -> (u64, f64) {
    let addr = free_tcp_addr();
    let daemon = Daemon::start_with_config(&format!("metrics_listen = \"{addr}\"\n{config}"));
    let mut writers = Vec::new();
    for w in 0..16 {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        writers.push(tokio::spawn(async move {
            for i in 0..20 {
                client.create(&format!("/w{w}-{i}"), b"v", CreateOptions::persistent()).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let text = scrape(addr);
    (int(&text, "baton_commit_batch_txns_count"), value(&text, "baton_commit_batch_txns_sum"))
}

/// `batch_bytes_max` closes a group commit once its txns reach that many bytes: at 1 byte
/// every commit holds one txn, where the same load otherwise shares commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_bytes_max_bounds_a_group_commit() {
    let (commits, txns) = commits_of_concurrent_creates("batch_bytes_max = 1\n").await;
    assert!(txns >= 320.0, "the 320 creates and the sessions were committed: {txns}");
    assert!((txns - commits as f64).abs() < 0.5, "one txn per commit: {txns} txns in {commits} commits");
    let (commits, txns) = commits_of_concurrent_creates("").await;
    assert!((commits as f64) < txns, "by default, {txns} txns shared {commits} commits");
}
