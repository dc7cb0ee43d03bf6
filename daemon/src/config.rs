//! The daemon's configuration: one struct, read from an optional TOML file, then overridden
//! by command-line flags, then validated. Defaults are named constants and documented in
//! `systemd/batond.toml`.

use baton_proto::defaults;
use baton_proto::frame::FRAME_LEN_MAX_DEFAULT;
use baton_proto::{AclEntry, Principal};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const SESSION_TIMEOUT_MIN_MS: u32 = 2_000;
pub const SESSION_TIMEOUT_MAX_MS: u32 = 60_000;
pub const TICK_MS: u64 = 50;
pub const NODE_DATA_MAX: usize = 1024 * 1024;
/// The largest `frame_len_max` accepted: every txn a request makes must fit one replication
/// frame (`replication::PEER_FRAME_LEN_MAX`) with room to spare.
pub const FRAME_LEN_MAX_CAP: u32 = 16 * 1024 * 1024;
pub const CONNECTIONS_MAX: usize = 4_096;
pub const CONNECTIONS_PER_PEER_MAX: usize = 1_024;
pub const REQUESTS_IN_FLIGHT_MAX: usize = 4_096;
pub const OUTBOUND_BYTES_MAX: usize = 64 * 1024 * 1024;
pub const PATH_DEPTH_MAX: usize = 128;
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
pub const OUTBOUND_MESSAGES_MAX: usize = 16_384;
pub const BATCH_TXNS_MAX: usize = 4_096;
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The largest `batch_bytes_max` accepted: a group commit is one journal record, whose length
/// is 32 bits, and it holds each change twice (the txn and the stored record it leaves).
pub const BATCH_BYTES_MAX_CAP: usize = 1024 * 1024 * 1024;
/// How long the engine polls for more work before it sleeps (see `engine::spin`).
pub const ENGINE_SPIN_US: u64 = 100;
/// The longest `engine_spin_us` accepted: past it, polling costs more CPU than a wake-up.
pub const ENGINE_SPIN_US_MAX: u64 = 10_000;
/// The longest a round of waiters joining a line waits for company (see `engine::line_wait`).
pub const LINE_JOIN_WAIT_MAX_US: u64 = 1_000;
/// The largest `line_join_wait_max_us` accepted.
pub const LINE_JOIN_WAIT_MAX_US_CAP: u64 = 100_000;
pub const LOG_RETENTION_TXNS: u64 = 100_000;
pub const LOG_RETENTION_BYTES: u64 = 256 * 1024 * 1024;
pub const WATCH_HISTORY_TXNS: usize = 100_000;
/// About 8,000 small creates' changes (docs/BENCHMARKS.md, "Optimisations").
pub const WATCH_HISTORY_BYTES: usize = 1024 * 1024;
pub const WATCHES_PER_SESSION_MAX: usize = 100_000;
pub const EPHEMERALS_PER_SESSION_MAX: usize = 100_000;
pub const CHILDREN_PER_NODE_MAX: u32 = 1_000_000;
pub const SYNC_STANDBY_TIMEOUT_MS: u64 = 5_000;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store lives (created 0700 if missing).
    pub data_dir: PathBuf,
    /// The Unix socket local clients connect to (always on).
    pub socket: PathBuf,
    /// A TCP address to listen on as well; off when unset.
    pub listen: Option<SocketAddr>,
    pub session_timeout_min_ms: u32,
    pub session_timeout_max_ms: u32,
    /// How often sessions and TTL nodes are checked for expiry.
    pub tick_ms: u64,
    /// Largest frame accepted or sent.
    pub frame_len_max: u32,
    pub node_data_max: usize,
    pub connections_max: usize,
    /// Connections one Unix user (uid) or one TCP address may hold at once.
    pub connections_per_peer_max: usize,
    /// Requests one connection may have sent and not yet been answered; past it the
    /// connection is closed (a client must read its replies).
    pub requests_in_flight_max: usize,
    /// Bytes of replies and events queued for one connection; past it the client is cut off
    /// as too slow (it may reconnect and resume its session).
    pub outbound_bytes_max: usize,
    /// Longest node path a create accepts, in bytes (at most 1024).
    pub path_len_max: usize,
    /// Most segments in a node path a create accepts.
    pub path_depth_max: usize,
    /// Time a new connection has to send its hello.
    pub handshake_timeout_ms: u64,
    /// Replies and events queued for one connection before it is cut off as too slow.
    pub outbound_messages_max: usize,
    pub batch_txns_max: usize,
    /// Bytes of txn records past which a group commit takes no more (one large write may
    /// pass it alone).
    pub batch_bytes_max: usize,
    /// Microseconds the engine keeps polling for work after a round before it sleeps, so
    /// that a request soon after does not pay a thread wake-up (0: sleep at once).
    pub engine_spin_us: u64,
    /// Microseconds at most that a group commit holding only waiters joining a line behind
    /// others (`CreateInLine`) waits for another request to commit with; the wait is about
    /// one commit's measured duration, and any request ends it (0: commit at once).
    pub line_join_wait_max_us: u64,
    /// The CPU the engine's thread runs on: "auto" (the one that takes the data disk's
    /// completion interrupts, when that is a single CPU; see `placement`), "none" (wherever
    /// the scheduler puts it), or a CPU number.
    pub engine_cpu: crate::placement::EngineCpu,
    /// Transactions kept in the on-disk log (for watch replay and a standby's catch-up).
    pub log_retention_txns: u64,
    /// Bytes of log records kept; whichever of the two limits is reached first trims the log.
    pub log_retention_bytes: u64,
    /// Commits made durable by the write-ahead journal before one goes to the database
    /// durably (a checkpoint) and the journal starts over.
    pub journal_checkpoint_commits: u64,
    /// Bytes the journal may hold before a checkpoint; a batch larger than this goes to the
    /// database durably at once.
    pub journal_checkpoint_bytes: u64,
    /// Write the journal's records with direct, synchronous I/O (`O_DIRECT | O_DSYNC`) where
    /// the file system takes it; false: through the page cache, then `fdatasync`. Equally
    /// durable either way.
    pub journal_direct_io: bool,
    /// Transactions whose changes are kept in memory for resuming watchers.
    pub watch_history_txns: usize,
    /// Memory those changes may take; whichever of the two limits is reached first forgets
    /// the oldest.
    pub watch_history_bytes: usize,
    pub watches_per_session_max: usize,
    pub ephemerals_per_session_max: usize,
    pub children_per_node_max: u32,
    /// Run as the warm standby of the primary whose replication listener is at HOST:PORT.
    pub standby_of: Option<String>,
    /// Serve standbys (and peers' epoch checks) on this TCP address.
    pub replication_listen: Option<SocketAddr>,
    /// A primary's standby (its replication listener), whose epoch is checked at start and
    /// periodically: a newer one means this node was deposed and must not accept writes.
    pub peer: Option<String>,
    /// The shared secret of the replication link (at least 16 bytes); required for
    /// replication. It is never sent: both sides prove they hold it.
    pub replication_token_file: Option<PathBuf>,
    pub replication_mode: ReplicationModeSetting,
    /// With `replication_mode = "sync"`: when the standby is gone, "wait" for it (writes are
    /// not acknowledged meanwhile) or "degrade" to asynchronous with an alarm.
    pub sync_standby_gone: SyncStandbyGone,
    /// With `replication_mode = "sync"`: a standby that leaves writes unacknowledged this
    /// long counts as gone.
    pub sync_standby_timeout_ms: u64,
    /// Serve Prometheus metrics (`GET /metrics`) and a health check (`GET /health`) over
    /// HTTP on this TCP address; off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve ZooKeeper clients (protocol 3.5–3.9) on this TCP address as well; off when
    /// unset. They share the tree, sessions and watches with native clients, and are
    /// `anyone` in ACLs plus the `digest` ids they authenticate as.
    pub zk_listen: Option<SocketAddr>,
    /// The ACL of a node created without one, as `PRINCIPAL:PERMS` entries; `creator`
    /// stands for the creating client's own identity (its uid, token or certificate name).
    pub default_acl: Vec<String>,
    /// The ACL the root gets when the data directory is new (afterwards: `baton acl set /`).
    /// Admin operations need `a` on the root.
    pub root_acl: Vec<String>,
    /// Identities that pass every ACL check (`uid:N`, `gid:N`, `token:NAME`, `cert:NAME`;
    /// user and group names work for uid and gid). The daemon's own user always is one.
    pub superusers: Vec<String>,
    /// Token verifiers TCP (and Unix) clients may authenticate with, one `NAME:SALT:KEY`
    /// line each, as `baton token new` prints them.
    pub tokens_file: Option<PathBuf>,
    /// Let TCP clients in without a token or certificate, as `anyone` only. For trusted
    /// networks; such clients cannot create nodes under a `creator` default ACL.
    pub tcp_allow_anonymous: bool,
    /// Serve TCP clients over mutual TLS: this server's certificate chain (PEM) ...
    pub tls_cert: Option<PathBuf>,
    /// ... its private key (PEM) ...
    pub tls_key: Option<PathBuf>,
    /// ... and the CA (PEM) every client certificate must be signed by. A client so
    /// authenticated is `cert:NAME` in ACLs, NAME being its certificate's common name.
    pub tls_client_ca: Option<PathBuf>,
}

/// `sync_standby_gone` in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStandbyGone {
    /// Hold acknowledgements until a standby has the writes (no write is ever acknowledged
    /// that a failover could lose).
    #[default]
    Wait,
    /// Acknowledge on the primary alone, with an alarm in status, metrics and logs.
    Degrade,
}

/// `replication_mode` in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationModeSetting {
    /// Acknowledge writes once durable on the primary (the standby may lag).
    #[default]
    Async,
    /// Acknowledge writes once durable on both.
    Sync,
}

/// One principal as the config writes it; `uid:` and `gid:` also take user and group names.
fn parse_principal(field: &str, text: &str) -> Result<Principal, ConfigError> {
    baton_proto::acl::parse_principal_named(text).map_err(|why| ConfigError::Invalid(format!("{field}: {why}")))
}

fn parse_acl(field: &str, entries: &[String]) -> Result<Vec<AclEntry>, ConfigError> {
    entries
        .iter()
        .map(|text| {
            baton_proto::acl::parse_entry_named(text)
                .map_err(|why| ConfigError::Invalid(format!("{field}: {text:?}: {why}")))
        })
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            socket: defaults::socket_path(),
            listen: None,
            session_timeout_min_ms: SESSION_TIMEOUT_MIN_MS,
            session_timeout_max_ms: SESSION_TIMEOUT_MAX_MS,
            tick_ms: TICK_MS,
            frame_len_max: FRAME_LEN_MAX_DEFAULT,
            node_data_max: NODE_DATA_MAX,
            connections_max: CONNECTIONS_MAX,
            connections_per_peer_max: CONNECTIONS_PER_PEER_MAX,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX,
            outbound_bytes_max: OUTBOUND_BYTES_MAX,
            path_len_max: baton_proto::path::PATH_LEN_MAX,
            path_depth_max: PATH_DEPTH_MAX,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
            outbound_messages_max: OUTBOUND_MESSAGES_MAX,
            batch_txns_max: BATCH_TXNS_MAX,
            batch_bytes_max: BATCH_BYTES_MAX,
            engine_spin_us: ENGINE_SPIN_US,
            line_join_wait_max_us: LINE_JOIN_WAIT_MAX_US,
            engine_cpu: crate::placement::EngineCpu::AUTO,
            log_retention_txns: LOG_RETENTION_TXNS,
            log_retention_bytes: LOG_RETENTION_BYTES,
            journal_checkpoint_commits: crate::store::Checkpoints::default().commits,
            journal_checkpoint_bytes: crate::store::Checkpoints::default().bytes,
            journal_direct_io: true,
            watch_history_txns: WATCH_HISTORY_TXNS,
            watch_history_bytes: WATCH_HISTORY_BYTES,
            watches_per_session_max: WATCHES_PER_SESSION_MAX,
            ephemerals_per_session_max: EPHEMERALS_PER_SESSION_MAX,
            children_per_node_max: CHILDREN_PER_NODE_MAX,
            standby_of: None,
            replication_listen: None,
            peer: None,
            replication_token_file: None,
            replication_mode: ReplicationModeSetting::Async,
            sync_standby_gone: SyncStandbyGone::Wait,
            sync_standby_timeout_ms: SYNC_STANDBY_TIMEOUT_MS,
            metrics_listen: None,
            zk_listen: None,
            default_acl: vec!["creator:all".to_owned()],
            root_acl: vec!["anyone:rwcd".to_owned()],
            superusers: vec!["uid:0".to_owned()],
            tokens_file: None,
            tcp_allow_anonymous: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The data directory when none is configured: the system service's as root, else
/// `$XDG_STATE_HOME/baton`, else `$HOME/.local/state/baton`, else `./baton-data`.
pub fn default_data_dir() -> PathBuf {
    if defaults::effective_uid() == 0 {
        return PathBuf::from(defaults::SYSTEM_DATA_DIR);
    }
    let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(state) = env_dir("XDG_STATE_HOME") {
        return state.join("baton");
    }
    match env_dir("HOME") {
        Some(home) => home.join(".local/state/baton"),
        None => PathBuf::from("baton-data"),
    }
}

impl Config {
    /// The replication mode a primary serves its standby with, if it serves one.
    pub fn replication_mode(&self) -> Option<baton_proto::replication::ReplicationMode> {
        use baton_proto::replication::ReplicationMode;
        self.replication_listen.map(|_| match self.replication_mode {
            ReplicationModeSetting::Async => ReplicationMode::Async,
            ReplicationModeSetting::Sync => ReplicationMode::Sync,
        })
    }

    /// Reads `path` as TOML; unset fields keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    /// The size limits that bound one another: a frame holds a node's data, a replication
    /// message holds a frame's write or a session's expiry, a journal record holds a group
    /// commit.
    fn validate_sizes(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.batch_bytes_max > BATCH_BYTES_MAX_CAP {
            return invalid(format!(
                "batch_bytes_max ({}) must be at most {BATCH_BYTES_MAX_CAP} (1 GiB): a group commit is one journal record",
                self.batch_bytes_max
            ));
        }
        if self.frame_len_max > FRAME_LEN_MAX_CAP {
            return invalid(format!(
                "frame_len_max ({}) must be at most {FRAME_LEN_MAX_CAP} (16 MiB): a write must fit a replication message",
                self.frame_len_max
            ));
        }
        // A session's expiry or close is one txn naming every ephemeral it deletes.
        let expiry = self.ephemerals_per_session_max as u64 * (self.path_len_max as u64 + 2) + 64 * 1024;
        if expiry > u64::from(crate::replication::PEER_FRAME_LEN_MAX) {
            return invalid(format!(
                "ephemerals_per_session_max ({}) paths of path_len_max ({}) bytes must fit one replication frame \
                 ({} bytes): a session's expiry is one txn that names them all",
                self.ephemerals_per_session_max,
                self.path_len_max,
                crate::replication::PEER_FRAME_LEN_MAX
            ));
        }
        let room = self.node_data_max as u64 + 8 * 1024;
        if u64::from(self.frame_len_max) < room {
            return invalid(format!(
                "frame_len_max ({}) must leave room for node_data_max ({}) plus 8 KiB of path and stat",
                self.frame_len_max, self.node_data_max
            ));
        }
        Ok(())
    }

    /// Rejects values that cannot work, naming the field; never clamps silently.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.session_timeout_min_ms == 0 || self.session_timeout_min_ms > self.session_timeout_max_ms {
            return invalid(format!(
                "session_timeout_min_ms ({}) must be positive and at most session_timeout_max_ms ({})",
                self.session_timeout_min_ms, self.session_timeout_max_ms
            ));
        }
        if self.engine_spin_us > ENGINE_SPIN_US_MAX {
            return invalid(format!("engine_spin_us ({}) must be at most {ENGINE_SPIN_US_MAX}", self.engine_spin_us));
        }
        if self.line_join_wait_max_us > LINE_JOIN_WAIT_MAX_US_CAP {
            return invalid(format!(
                "line_join_wait_max_us ({}) must be at most {LINE_JOIN_WAIT_MAX_US_CAP}",
                self.line_join_wait_max_us
            ));
        }
        if !(1..=1000).contains(&self.tick_ms) {
            return invalid(format!("tick_ms ({}) must be within 1..=1000", self.tick_ms));
        }
        if self.tick_ms >= u64::from(self.session_timeout_min_ms) {
            return invalid(format!("tick_ms ({}) must be shorter than session_timeout_min_ms", self.tick_ms));
        }
        self.validate_sizes()?;
        let positive: [(&str, u64); 18] = [
            ("connections_max", self.connections_max as u64),
            ("connections_per_peer_max", self.connections_per_peer_max as u64),
            ("requests_in_flight_max", self.requests_in_flight_max as u64),
            ("outbound_bytes_max", self.outbound_bytes_max as u64),
            ("path_depth_max", self.path_depth_max as u64),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("outbound_messages_max", self.outbound_messages_max as u64),
            ("batch_txns_max", self.batch_txns_max as u64),
            ("batch_bytes_max", self.batch_bytes_max as u64),
            ("log_retention_txns", self.log_retention_txns),
            ("log_retention_bytes", self.log_retention_bytes),
            ("journal_checkpoint_commits", self.journal_checkpoint_commits),
            ("journal_checkpoint_bytes", self.journal_checkpoint_bytes),
            ("watch_history_txns", self.watch_history_txns as u64),
            ("watch_history_bytes", self.watch_history_bytes as u64),
            ("watches_per_session_max", self.watches_per_session_max as u64),
            ("ephemerals_per_session_max", self.ephemerals_per_session_max as u64),
            ("children_per_node_max", u64::from(self.children_per_node_max)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{name} must be positive"));
        }
        let replicating = self.standby_of.is_some() || self.replication_listen.is_some() || self.peer.is_some();
        if replicating && self.replication_token_file.is_none() {
            return invalid("replication (standby_of, replication_listen, peer) needs replication_token_file".into());
        }
        if self.standby_of.is_some() && self.peer.is_some() {
            return invalid("a standby follows standby_of; peer is for a primary".into());
        }
        if self.replication_mode == ReplicationModeSetting::Sync && self.replication_listen.is_none() {
            return invalid("replication_mode = \"sync\" needs replication_listen (where the standby connects)".into());
        }
        if self.sync_standby_timeout_ms == 0 {
            return invalid("sync_standby_timeout_ms must be positive".into());
        }
        if !(2..=baton_proto::path::PATH_LEN_MAX).contains(&self.path_len_max) {
            return invalid(format!(
                "path_len_max ({}) must be within 2..={}",
                self.path_len_max,
                baton_proto::path::PATH_LEN_MAX
            ));
        }
        if (self.outbound_bytes_max as u64) < u64::from(self.frame_len_max) {
            return invalid(format!(
                "outbound_bytes_max ({}) must hold at least one frame of frame_len_max ({})",
                self.outbound_bytes_max, self.frame_len_max
            ));
        }
        if self.data_dir.as_os_str().is_empty() || self.socket.as_os_str().is_empty() {
            return invalid("data_dir and socket must not be empty".into());
        }
        for (name, acl) in [("default_acl", self.default_acl()?), ("root_acl", self.root_acl()?)] {
            if acl.is_empty() {
                return invalid(format!("{name} must grant something to someone"));
            }
        }
        if self.root_acl()?.iter().any(|e| e.principal == Principal::Creator) {
            return invalid("root_acl cannot name `creator`: the root has none".into());
        }
        self.superusers()?;
        let tls = [&self.tls_cert, &self.tls_key, &self.tls_client_ca].map(Option::is_some);
        if tls.contains(&true) && tls.contains(&false) {
            return invalid("mutual TLS needs all of tls_cert, tls_key and tls_client_ca".into());
        }
        if tls[0] && self.listen.is_none() {
            return invalid("tls_cert and the rest are for the TCP listener: set listen too".into());
        }
        Ok(())
    }

    /// The TLS files, when mutual TLS is configured.
    pub fn tls_files(&self) -> Option<crate::server::TlsFiles<'_>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(cert), Some(key), Some(client_ca)) => Some(crate::server::TlsFiles { cert, key, client_ca }),
            _ => None,
        }
    }

    /// `default_acl`, parsed.
    pub fn default_acl(&self) -> Result<Vec<AclEntry>, ConfigError> {
        parse_acl("default_acl", &self.default_acl)
    }

    /// `root_acl`, parsed.
    pub fn root_acl(&self) -> Result<Vec<AclEntry>, ConfigError> {
        parse_acl("root_acl", &self.root_acl)
    }

    /// `superusers`, parsed, with the daemon's own user added.
    pub fn superusers(&self) -> Result<Vec<Principal>, ConfigError> {
        let mut principals: Vec<Principal> =
            self.superusers.iter().map(|text| parse_principal("superusers", text)).collect::<Result<_, _>>()?;
        principals.push(Principal::Uid(defaults::effective_uid()));
        Ok(principals)
    }

    /// The state machine's limits.
    pub fn limits(&self) -> crate::state::Limits {
        crate::state::Limits {
            node_data_max: self.node_data_max,
            watches_per_session_max: self.watches_per_session_max,
            children_per_node_max: self.children_per_node_max,
            ephemerals_per_session_max: self.ephemerals_per_session_max,
            history_txns: self.watch_history_txns,
            history_bytes: self.watch_history_bytes,
            path_len_max: self.path_len_max,
            path_depth_max: self.path_depth_max,
            // Validated before this is called; were it not, only creators could use their nodes.
            skip_fencing_check: crate::negative::NegativeControls::from_env().skip_fencing,
            default_acl: self
                .default_acl()
                .unwrap_or_else(|_| vec![AclEntry::new(Principal::Creator, baton_proto::Perms::ALL)]),
            ..crate::state::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superusers_may_name_a_zookeeper_digest() {
        let config =
            Config { superusers: vec!["digest:super:lK75jTNcA+U9vtVEw5vB51mj/w4=".into()], ..Config::default() };
        let superusers = config.superusers().unwrap();
        assert_eq!(superusers[0], Principal::Digest("super:lK75jTNcA+U9vtVEw5vB51mj/w4=".into()));
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn file_overrides_some_fields_and_keeps_the_rest() {
        let config: Config = toml::from_str("data_dir = \"/srv/baton\"\nlisten = \"127.0.0.1:7000\"\n").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/baton"));
        assert_eq!(config.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(config.tick_ms, TICK_MS);
    }

    #[test]
    fn acls_parse_with_user_names_and_bad_ones_are_named() {
        let config: Config =
            toml::from_str("default_acl = [\"creator:all\", \"gid:root:r\"]\nsuperusers = [\"uid:root\"]\n").unwrap();
        config.validate().unwrap();
        let acl: Vec<String> = config.default_acl().unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(acl, ["creator:rwcda", "gid:0:r"]);
        assert!(config.superusers().unwrap().contains(&Principal::Uid(0)));
        for (text, why) in [
            ("default_acl = [\"uid:x:q\"]", "default_acl"),
            ("root_acl = [\"creator:all\"]", "root_acl cannot name"),
            ("superusers = [\"uid:no-such-user-here\"]", "no user named"),
            ("default_acl = []", "must grant"),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(toml::from_str::<Config>("tick = 5").is_err());
        let config = Config { session_timeout_min_ms: 9_000, session_timeout_max_ms: 1_000, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("session_timeout_min_ms"));
        let config = Config { node_data_max: 10 * 1024 * 1024, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("frame_len_max"));
        let config =
            Config { frame_len_max: FRAME_LEN_MAX_CAP + 1, node_data_max: 10 * 1024 * 1024, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("at most 16777216"));
        let config = Config { frame_len_max: FRAME_LEN_MAX_CAP, node_data_max: 10 * 1024 * 1024, ..Config::default() };
        config.validate().unwrap();
        let config = Config { batch_bytes_max: BATCH_BYTES_MAX_CAP + 1, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("batch_bytes_max"));
        let config = Config { batch_bytes_max: 0, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("batch_bytes_max must be positive"));
    }

    #[test]
    fn a_sessions_expiry_must_fit_one_replication_frame() {
        let config = Config { ephemerals_per_session_max: 300_000, ..Config::default() };
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("ephemerals_per_session_max (300000)"), "{refused}");
        Config { ephemerals_per_session_max: 300_000, path_len_max: 512, ..Config::default() }.validate().unwrap();
        let most = (crate::replication::PEER_FRAME_LEN_MAX as usize - 64 * 1024) / (1024 + 2);
        Config { ephemerals_per_session_max: most, ..Config::default() }.validate().unwrap();
        Config { ephemerals_per_session_max: most + 1, ..Config::default() }.validate().unwrap_err();
    }

    #[test]
    fn a_line_join_waits_from_never_up_to_its_bound() {
        for wait in [0, LINE_JOIN_WAIT_MAX_US, LINE_JOIN_WAIT_MAX_US_CAP] {
            let config: Config = toml::from_str(&format!("line_join_wait_max_us = {wait}")).unwrap();
            assert_eq!(config.line_join_wait_max_us, wait);
            config.validate().unwrap();
        }
        let config = Config { line_join_wait_max_us: LINE_JOIN_WAIT_MAX_US_CAP + 1, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("line_join_wait_max_us"));
    }

    #[test]
    fn the_engine_may_poll_from_never_up_to_its_bound() {
        for spin in [0, ENGINE_SPIN_US, ENGINE_SPIN_US_MAX] {
            let config: Config = toml::from_str(&format!("engine_spin_us = {spin}")).unwrap();
            config.validate().unwrap();
        }
        let config = Config { engine_spin_us: ENGINE_SPIN_US_MAX + 1, ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("engine_spin_us"));
    }
}
