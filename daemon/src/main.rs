//! `batond`: parse flags, read the config, set up logging, run the daemon.

use batond::config::Config;
use clap::Parser;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Baton's daemon: a durable tree of small nodes with sessions, ephemerals, sequential nodes
/// and watches, served over a Unix socket (always) and TCP (with --listen).
///
/// With no arguments it just works: as root, data in /var/lib/baton and the socket at
/// /run/baton/baton.sock; otherwise data in $XDG_STATE_HOME/baton (or ~/.local/state/baton)
/// and the socket at $XDG_RUNTIME_DIR/baton/baton.sock (or /tmp/baton-$UID/baton.sock),
/// where `baton` finds it by itself. SIGTERM drains and exits 0.
#[derive(Debug, Parser)]
#[command(name = "batond", version)]
struct Args {
    /// A TOML config file; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the durable store (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Unix socket path to listen on.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also listen on TCP at HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Start from a backup (`baton admin backup`): copies FILE into the data directory,
    /// which must hold no store yet, then serves as usual.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Run as the warm standby of the primary whose replication listener is HOST:PORT
    /// (read-only: writes are refused with the primary's address; `baton admin promote`).
    #[arg(long, value_name = "HOST:PORT")]
    standby_of: Option<String>,
    /// Serve standbys (and the peer's epoch checks) on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    replication_listen: Option<SocketAddr>,
    /// A primary's standby (its replication listener HOST:PORT): its epoch is checked before
    /// serving writes and periodically after; a newer one stops writes here.
    #[arg(long, value_name = "HOST:PORT")]
    peer: Option<String>,
    /// File holding the replication link's shared token (16 bytes or more).
    #[arg(long, value_name = "FILE")]
    replication_token_file: Option<PathBuf>,
    /// Acknowledge writes once durable on the primary ("async", the default) or on the
    /// primary and the standby ("sync"; see sync_standby_gone in the config file).
    #[arg(long, value_name = "MODE", value_parser = ["async", "sync"])]
    replication_mode: Option<String>,
    /// Serve Prometheus metrics (GET /metrics) and a health check (GET /health) over HTTP on
    /// HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Also serve ZooKeeper clients (its client protocol, 3.5–3.9) on HOST:PORT; they are
    /// `anyone` in ACLs, plus the `digest` ids they authenticate as.
    #[arg(long, value_name = "HOST:PORT")]
    zk_listen: Option<SocketAddr>,
    /// Token verifiers clients may authenticate with (lines from `baton token new`); TCP
    /// clients need a token or a TLS client certificate.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// The ACL of nodes created without one, comma-separated PRINCIPAL:PERMS entries
    /// (default creator:all — only the creator; anyone:all opens everything).
    #[arg(long, value_name = "ACL")]
    default_acl: Option<String>,
    /// Mutual TLS on the TCP listener: this server's certificate chain (PEM); needs
    /// --tls-key and --tls-client-ca too.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) client certificates must be signed by; a client is `cert:NAME` in
    /// ACLs, NAME being its certificate's common name.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Under systemd stderr goes to journald, which stamps each line itself and shows escape
    // codes verbatim: no colours and no timestamp unless a person is watching a terminal.
    let terminal = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    if terminal {
        logs.finish().with(log_filter("info")).init();
    } else {
        logs.without_time().finish().with(log_filter("info")).init();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("batond: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `BATON_LOG` (e.g. `debug`, or `warn,batond::engine=debug`), else `default`. A target
/// filter, not `EnvFilter`: no regular-expression engine in the daemon.
fn log_filter(default: &str) -> tracing_subscriber::filter::Targets {
    let parse = |text: &str| text.parse::<tracing_subscriber::filter::Targets>().ok();
    std::env::var("BATON_LOG").ok().and_then(|v| parse(&v)).or_else(|| parse(default)).unwrap_or_default()
}

fn run(args: Args) -> anyhow::Result<()> {
    let args_restore = args.restore.clone();
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(socket) = args.socket {
        config.socket = socket;
    }
    if let Some(listen) = args.listen {
        config.listen = Some(listen);
    }
    if let Some(primary) = args.standby_of {
        config.standby_of = Some(primary);
    }
    if let Some(addr) = args.replication_listen {
        config.replication_listen = Some(addr);
    }
    if let Some(peer) = args.peer {
        config.peer = Some(peer);
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Some(addr) = args.zk_listen {
        config.zk_listen = Some(addr);
    }
    if let Some(file) = args.tokens_file {
        config.tokens_file = Some(file);
    }
    if let Some(file) = args.tls_cert {
        config.tls_cert = Some(file);
    }
    if let Some(file) = args.tls_key {
        config.tls_key = Some(file);
    }
    if let Some(file) = args.tls_client_ca {
        config.tls_client_ca = Some(file);
    }
    if let Some(acl) = args.default_acl {
        config.default_acl = acl.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    }
    if let Some(file) = args.replication_token_file {
        config.replication_token_file = Some(file);
    }
    match args.replication_mode.as_deref() {
        Some("sync") => config.replication_mode = batond::config::ReplicationModeSetting::Sync,
        Some(_) => config.replication_mode = batond::config::ReplicationModeSetting::Async,
        None => {}
    }
    config.validate()?;
    if let Some(backup) = &args_restore {
        batond::daemon::restore(backup, &config.data_dir)?;
    }
    batond::daemon::run(&config)
}
