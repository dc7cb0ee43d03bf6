//! The daemon's metrics, all named `baton_*`, and their text exposition.
//!
//! Per-operation series are created up front, one per name in the table the engine passes
//! in, and kept as plain handles indexed by the operation's number: recording a request is an
//! atomic add and a histogram observation, with no label lookup or allocation.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The label set of per-operation series: `op="create"`.
type OpLabel = [(&'static str, &'static str); 1];

/// A gauge holding a float (seconds).
type FloatGauge = Gauge<f64, AtomicU64>;

/// The state the engine publishes after each round, as gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools, reason = "a snapshot of independent flags, one gauge each")]
pub struct Gauges {
    pub sessions: u64,
    pub watches: u64,
    pub nodes: u64,
    pub connections: u64,
    pub primary: bool,
    pub fenced: bool,
    pub sync_degraded: bool,
    /// The replication peer is connected (false when there is none).
    pub peer_connected: bool,
    pub lag_txns: u64,
    pub lag_ms: u64,
    pub uptime_ms: u64,
}

/// Every metric of the daemon, shared between the engine (writes) and the HTTP endpoint
/// (reads).
pub struct Metrics {
    registry: Registry,
    requests: Vec<Counter>,
    request_seconds: Vec<Histogram>,
    commit_batch_txns: Histogram,
    commit_seconds: Histogram,
    store_bytes: Gauge,
    sessions: Gauge,
    watches: Gauge,
    nodes: Gauge,
    connections: Gauge,
    primary: Gauge,
    fenced: Gauge,
    sync_degraded: Gauge,
    peer_connected: Gauge,
    lag_txns: Gauge,
    lag_seconds: FloatGauge,
    uptime_seconds: FloatGauge,
}

/// Request and commit latency: 10 µs (a read) to about 2.6 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 19))
}

impl Metrics {
    /// Defines every metric; `ops` names the operations, indexed as `request` is called.
    pub fn new(ops: &[&'static str]) -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let requests = Family::<OpLabel, Counter>::default();
        let request_seconds = Family::<OpLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let per_op = |name| [("op", name)];
        let metrics = Metrics {
            requests: ops.iter().map(|op| requests.get_or_create(&per_op(*op)).clone()).collect(),
            request_seconds: ops.iter().map(|op| request_seconds.get_or_create(&per_op(*op)).clone()).collect(),
            commit_batch_txns: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            commit_seconds: latency_histogram(),
            store_bytes: Gauge::default(),
            sessions: Gauge::default(),
            watches: Gauge::default(),
            nodes: Gauge::default(),
            connections: Gauge::default(),
            primary: Gauge::default(),
            fenced: Gauge::default(),
            sync_degraded: Gauge::default(),
            peer_connected: Gauge::default(),
            lag_txns: Gauge::default(),
            lag_seconds: FloatGauge::default(),
            uptime_seconds: FloatGauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("requests", "Requests answered, by operation", requests);
        r.register_with_unit(
            "request_duration",
            "Time from the engine taking a request to releasing its reply (after its commit)",
            Unit::Seconds,
            request_seconds,
        );
        r.register("commit_batch_txns", "Transactions per group commit", metrics.commit_batch_txns.clone());
        r.register_with_unit(
            "commit_duration",
            "Time of one durable store commit (write and fsync)",
            Unit::Seconds,
            metrics.commit_seconds.clone(),
        );
        r.register_with_unit(
            "store",
            "Size of the store files (database and journal), as of the last tick",
            Unit::Bytes,
            metrics.store_bytes.clone(),
        );
        r.register("sessions", "Live sessions", metrics.sessions.clone());
        r.register("watches", "Registered watches", metrics.watches.clone());
        r.register("nodes", "Nodes in the tree", metrics.nodes.clone());
        r.register("connections", "Client connections with a session", metrics.connections.clone());
        r.register("primary", "1 on the primary, 0 on a standby", metrics.primary.clone());
        r.register("fenced", "1 when a newer epoch exists and writes are refused", metrics.fenced.clone());
        r.register(
            "sync_degraded",
            "1 when synchronous replication degraded to asynchronous (an alarm)",
            metrics.sync_degraded.clone(),
        );
        r.register(
            "replication_peer_connected",
            "1 while the replication peer is connected",
            metrics.peer_connected.clone(),
        );
        r.register("replication_lag_txns", "Transactions the standby is behind the primary", metrics.lag_txns.clone());
        r.register_with_unit(
            "replication_lag",
            "How long the standby has been behind the primary",
            Unit::Seconds,
            metrics.lag_seconds.clone(),
        );
        r.register_with_unit("uptime", "Time since the engine started", Unit::Seconds, metrics.uptime_seconds.clone());
        Metrics { registry, ..metrics }
    }

    /// A request of operation number `op` was answered `latency` after the engine took it.
    pub fn request(&self, op: usize, latency: Duration) {
        if let (Some(count), Some(seconds)) = (self.requests.get(op), self.request_seconds.get(op)) {
            count.inc();
            seconds.observe(latency.as_secs_f64());
        }
    }

    /// A group commit of `txns` took `took`.
    pub fn commit(&self, txns: usize, took: Duration) {
        self.commit_batch_txns.observe(txns as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn store_bytes(&self, bytes: u64) {
        self.store_bytes.set(bytes as i64);
    }

    /// Sets the gauges from the engine's state.
    pub fn publish(&self, g: &Gauges) {
        let flag = |on: bool| i64::from(on);
        self.sessions.set(g.sessions as i64);
        self.watches.set(g.watches as i64);
        self.nodes.set(g.nodes as i64);
        self.connections.set(g.connections as i64);
        self.primary.set(flag(g.primary));
        self.fenced.set(flag(g.fenced));
        self.sync_degraded.set(flag(g.sync_degraded));
        self.peer_connected.set(flag(g.peer_connected));
        self.lag_txns.set(g.lag_txns as i64);
        self.lag_seconds.set(g.lag_ms as f64 / 1000.0);
        self.uptime_seconds.set(g.uptime_ms as f64 / 1000.0);
    }

    /// The OpenMetrics text exposition of every metric.
    ///
    /// # Errors
    /// Only if a metric cannot be formatted, which the crate's types never do.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'t>(text: &'t str, prefix: &str) -> &'t str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    }

    #[test]
    fn requests_are_counted_and_timed_by_operation() {
        let metrics = Metrics::new(&["get", "create"]);
        metrics.request(1, Duration::from_millis(2));
        metrics.request(1, Duration::from_millis(3));
        metrics.request(0, Duration::from_micros(50));
        metrics.request(7, Duration::from_millis(1)); // out of the table: ignored
        let text = metrics.encode().unwrap();
        assert_eq!(line(&text, "baton_requests_total{op=\"create\"}"), "baton_requests_total{op=\"create\"} 2");
        assert_eq!(line(&text, "baton_requests_total{op=\"get\"}"), "baton_requests_total{op=\"get\"} 1");
        assert_eq!(
            line(&text, "baton_request_duration_seconds_count{op=\"create\"}"),
            "baton_request_duration_seconds_count{op=\"create\"} 2"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn every_series_exists_before_anything_happens() {
        let text = Metrics::new(&["ping"]).encode().unwrap();
        for name in [
            "baton_requests_total{op=\"ping\"} 0",
            "baton_commit_batch_txns_count 0",
            "baton_commit_duration_seconds_count 0",
            "baton_store_bytes 0",
            "baton_sessions 0",
            "baton_watches 0",
            "baton_nodes 0",
            "baton_connections 0",
            "baton_primary 0",
            "baton_fenced 0",
            "baton_sync_degraded 0",
            "baton_replication_peer_connected 0",
            "baton_replication_lag_txns 0",
            "baton_replication_lag_seconds 0",
            "baton_uptime_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == name || l == format!("{name}.0")), "no `{name}` in:\n{text}");
        }
    }

    #[test]
    fn gauges_and_commits_show_what_was_published() {
        let metrics = Metrics::new(&[]);
        metrics.publish(&Gauges { nodes: 12, fenced: true, lag_ms: 1500, uptime_ms: 2000, ..Gauges::default() });
        metrics.commit(5, Duration::from_millis(4));
        metrics.store_bytes(4096);
        let text = metrics.encode().unwrap();
        assert_eq!(line(&text, "baton_nodes "), "baton_nodes 12");
        assert_eq!(line(&text, "baton_fenced "), "baton_fenced 1");
        assert_eq!(line(&text, "baton_replication_lag_seconds "), "baton_replication_lag_seconds 1.5");
        assert_eq!(line(&text, "baton_uptime_seconds "), "baton_uptime_seconds 2.0");
        assert_eq!(line(&text, "baton_store_bytes "), "baton_store_bytes 4096");
        assert_eq!(line(&text, "baton_commit_batch_txns_sum "), "baton_commit_batch_txns_sum 5.0");
        assert_eq!(
            line(&text, "baton_commit_batch_txns_bucket{le=\"4.0\"}"),
            "baton_commit_batch_txns_bucket{le=\"4.0\"} 0"
        );
        assert_eq!(
            line(&text, "baton_commit_batch_txns_bucket{le=\"8.0\"}"),
            "baton_commit_batch_txns_bucket{le=\"8.0\"} 1"
        );
    }
}
