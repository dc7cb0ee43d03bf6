//! Wires the parts together: data directory, store, state machine, engine thread, listeners,
//! ticks and signals; and stops them in order.

use crate::config::Config;
use crate::config::SyncStandbyGone;
use crate::engine::{Engine, EngineConfig, EngineInput, SyncPolicy};
use crate::metrics;
use crate::open_files;
use crate::placement;
use crate::replication;
use crate::sd_notify;
use crate::server::{Authenticator, ConnLimits, Listeners, TlsServer};
use crate::signals;
use crate::state::{HistoryBound, StateMachine};
use crate::store::{Checkpoints, JournalIo, Retention, Store};
use anyhow::{Context, bail};
use baton_proto::message::Role;
use baton_proto::replication::ReplicationMode;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

/// Depth of the engine's input queue; connections wait (backpressure) when it is full.
const ENGINE_QUEUE_DEPTH: usize = 16_384;

/// Runs the daemon until SIGTERM/SIGINT, then drains and returns.
///
/// # Errors
/// Bad setup (data directory, store, socket) or a fatal commit failure.
pub fn run(config: &Config) -> anyhow::Result<()> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    check_open_files(config);
    prepare_data_dir(&config.data_dir)?;
    let (store, restored) = open_store(config)?;
    let sm = StateMachine::restore(config.limits(), restored).context("cannot restore the stored state")?;
    info!(data_dir = %config.data_dir.display(), nodes = sm.tree().len(), sessions = sm.sessions().len(), last_zxid = %sm.last_zxid(), "store recovered");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let zk_listener = match config.zk_listen {
        Some(addr) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("cannot listen for ZooKeeper clients on {addr}"))?,
        ),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    // The client socket last: once it answers, every other listener is bound too.
    let listeners = runtime
        .block_on(Listeners::bind(&config.socket, config.listen))
        .with_context(|| format!("cannot listen on {}", config.socket.display()))?;

    let (engine_tx, engine_rx) = mpsc::channel(ENGINE_QUEUE_DEPTH);
    let engine_config = engine_config(config)?;
    let auth = Authenticator::new(config.tokens_file.as_deref(), config.tcp_allow_anonymous)
        .map_err(|e| anyhow::anyhow!(e))?;
    let tls = config.tls_files().map(|files| TlsServer::load(&files)).transpose().map_err(|e| anyhow::anyhow!(e))?;
    info!(
        tokens = auth.token_count(),
        mutual_tls = tls.is_some(),
        tcp_allow_anonymous = config.tcp_allow_anonymous,
        "authentication ready"
    );
    let mut engine = Engine::new(sm, store, engine_config);
    engine.set_inputs(engine_tx.clone());
    let engine_metrics = engine.metrics();
    let state = engine.state_view();
    let handles = replication::EngineHandles {
        feed: engine.feed(),
        role: engine.role_watch(),
        reader: engine.store_reader(),
        engine: engine_tx.clone(),
    };
    let (engine_cpu, follower) = place_engine(config)?;
    let (engine_thread, engine_tid, engine_done_rx) = spawn_engine(engine, engine_rx, engine_cpu)?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let limits = ConnLimits {
        frame_len_max: config.frame_len_max,
        handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
        outbound_messages_max: config.outbound_messages_max,
        connections_per_peer_max: config.connections_per_peer_max,
        requests_in_flight_max: config.requests_in_flight_max,
        outbound_bytes_max: config.outbound_bytes_max,
    };
    runtime.block_on(async {
        tokio::spawn(async move {
            if let Err(e) = signals::forward_shutdown(shutdown_tx, engine_done_rx).await {
                warn!(error = %e, "cannot watch for signals");
            }
        });
        tokio::spawn(tick(engine_tx.clone(), Duration::from_millis(config.tick_ms), shutdown_rx.clone()));
        if let Some(follower) = follower {
            tokio::spawn(follow_disk_interrupts(follower, engine_tid, shutdown_rx.clone()));
        }
        if let Some(listener) = metrics_listener {
            tokio::spawn(metrics::http::serve(listener, engine_metrics, engine_tx.clone(), shutdown_rx.clone()));
        }
        if let Some(listener) = zk_listener {
            let (engine, shutdown) = (engine_tx.clone(), shutdown_rx.clone());
            tokio::spawn(crate::zk::serve(listener, engine, limits, config.connections_max, shutdown));
        }
        if let Err(e) = replication::start(config, handles, shutdown_rx.clone()).await {
            error!("{e:#}");
            return Err(e);
        }
        let notifier = notify_systemd(&engine_tx, &shutdown_rx).await?;
        listeners.serve((engine_tx, state), limits, config.connections_max, auth, tls, shutdown_rx).await;
        // If the task that says so at the signal has not run yet, it would be cancelled with
        // the runtime: say it here (it is sent only once).
        notifier.stopping();
        Ok(())
    })?;
    drop(runtime);
    match engine_thread.join() {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(panic)) | Err(panic) => bail!(
            "the engine stopped on an internal error ({}); if the store in {} is damaged, restore it from a backup (batond --restore) or a standby",
            panic_message(panic.as_ref()),
            config.data_dir.display()
        ),
    }
}

/// The engine's settings, from the daemon's.
fn engine_config(config: &Config) -> anyhow::Result<EngineConfig> {
    Ok(EngineConfig {
        session_timeout_min_ms: config.session_timeout_min_ms,
        session_timeout_max_ms: config.session_timeout_max_ms,
        batch_txns_max: config.batch_txns_max,
        batch_bytes_max: config.batch_bytes_max,
        spin: std::time::Duration::from_micros(config.engine_spin_us),
        line_join_wait_max: std::time::Duration::from_micros(config.line_join_wait_max_us),
        outbound_bytes_max: config.outbound_bytes_max,
        role: if config.standby_of.is_some() { Role::Standby } else { Role::Primary },
        peer_addr: config.standby_of.clone(),
        mode: config.replication_mode(),
        sync: (config.replication_mode() == Some(ReplicationMode::Sync)).then(|| SyncPolicy {
            wait_when_gone: config.sync_standby_gone == SyncStandbyGone::Wait,
            standby_timeout: Duration::from_millis(config.sync_standby_timeout_ms),
        }),
        superusers: config.superusers()?,
        root_acl: config.root_acl()?,
        tick: Duration::from_millis(config.tick_ms),
    })
}

/// Raises the open-files limit as far as the hard limit allows, and warns when even that cannot
/// hold the connections the config admits: they would be refused by the kernel, not by
/// `connections_max`.
fn check_open_files(config: &Config) {
    let raised = match open_files::raise() {
        Ok(raised) => raised,
        Err(e) => return warn!(error = %e, "cannot read or raise the open-files limit"),
    };
    if raised.now > raised.before {
        info!(from = raised.before, to = raised.now, "open-files limit raised to the hard limit");
    }
    let needed = open_files::needed(config.connections_max, config.zk_listen.is_some());
    if raised.now < needed {
        warn!(
            limit = raised.now,
            needed,
            connections_max = config.connections_max,
            "the open-files limit is too low for connections_max: raise LimitNOFILE or ulimit -n, \
             or lower connections_max"
        );
    }
}

/// How often `engine_cpu = "auto"` looks again where the data disk's interrupts go: an
/// interrupt balancer (irqbalance) may move them.
const PLACEMENT_RECHECK: Duration = Duration::from_secs(30);

/// Where the engine's thread runs (see `placement`), said in the log either way; and, with
/// `engine_cpu = "auto"`, what follows the disk's interrupts.
fn place_engine(config: &Config) -> anyhow::Result<(Option<usize>, Option<placement::Follower>)> {
    let allowed = placement::allowed_cpus().context("cannot read this process's CPU affinity")?;
    let (placed, follower) = placement::decide(config.engine_cpu, &config.data_dir, &allowed, Path::new("/"))
        .map_err(|why| anyhow::anyhow!("invalid configuration: {why}"))?;
    if let Some(cpu) = placed.cpu {
        info!(cpu, why = %placed.why, "engine kept on one CPU");
    } else {
        info!(why = %placed.why, "engine placed by the scheduler");
    }
    Ok((placed.cpu, follower))
}

/// Moves the engine (thread `engine`) after its data disk's interrupts when they move,
/// until shutdown.
async fn follow_disk_interrupts(
    mut follower: placement::Follower,
    engine: nix::unistd::Pid,
    shutdown: watch::Receiver<bool>,
) {
    let mut beats = Periodic::new(PLACEMENT_RECHECK, shutdown);
    // The first beat is at once.
    beats.beat().await;
    while beats.beat().await {
        let Ok(allowed) = placement::allowed_cpus() else { continue };
        let Some(moved) = follower.recheck(&allowed) else { continue };
        match placement::set_thread_cpus(engine, &moved.cpus) {
            Ok(()) => {
                info!(to = ?moved.cpu, why = %moved.why, "engine moved after its disk's interrupts");
                follower.moved(moved.cpu);
            }
            Err(e) => warn!(error = %e, "cannot move the engine after its disk's interrupts"),
        }
    }
}

type EngineThread = std::thread::JoinHandle<std::thread::Result<Result<(), crate::engine::EngineError>>>;

/// Starts the engine's thread. However the engine ends — an error, or a panic such as redb's on
/// a damaged page met only at a commit — the returned receiver hears of it, so that the daemon
/// does not go on listening without an engine: it stops, saying why. Returns the thread, its
/// id (for `placement`) and that receiver; the thread keeps itself on `cpu` if one is given.
fn spawn_engine(
    engine: Engine,
    inputs: mpsc::Receiver<EngineInput>,
    cpu: Option<usize>,
) -> std::io::Result<(EngineThread, nix::unistd::Pid, oneshot::Receiver<()>)> {
    let (done_tx, done_rx) = oneshot::channel();
    let (tid_tx, tid_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new().name("engine".into()).spawn(move || {
        let _ = tid_tx.send(nix::unistd::gettid());
        if let Some(cpu) = cpu
            && let Err(e) = placement::pin_current_thread(cpu)
        {
            warn!(cpu, error = %e, "cannot keep the engine on its CPU; the scheduler places it");
        }
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run(inputs)));
        let _ = done_tx.send(());
        ended
    })?;
    let tid = tid_rx.recv().map_err(|_| std::io::Error::other("the engine's thread ended at its start"))?;
    Ok((thread, tid, done_rx))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic")
}

/// A beat every `every` until shutdown (missed beats are delayed, not bunched).
struct Periodic {
    interval: tokio::time::Interval,
    shutdown: watch::Receiver<bool>,
}

impl Periodic {
    fn new(every: Duration, shutdown: watch::Receiver<bool>) -> Periodic {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Periodic { interval, shutdown }
    }

    /// Waits for the next beat; false once shutdown was asked for.
    async fn beat(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.shutdown.wait_for(|stop| *stop) => false,
        }
    }
}

async fn tick(engine: mpsc::Sender<EngineInput>, every: Duration, shutdown: watch::Receiver<bool>) {
    let mut beats = Periodic::new(every, shutdown);
    while beats.beat().await {
        // A full queue means the engine is busy; the next tick will do.
        if let Err(mpsc::error::TrySendError::Closed(_)) = engine.try_send(EngineInput::Tick) {
            return;
        }
    }
}

/// Opens the store and reads back its state. redb panics on some damaged pages rather than
/// returning an error: either way the answer is a clear refusal to serve from this store.
fn open_store(config: &Config) -> anyhow::Result<(Store, crate::state::Restored)> {
    let retention = Retention { txns: config.log_retention_txns, bytes: config.log_retention_bytes };
    let history = HistoryBound { txns: config.watch_history_txns, bytes: config.watch_history_bytes };
    let io = if config.journal_direct_io { JournalIo::Direct } else { JournalIo::Buffered };
    let opened =
        std::panic::catch_unwind(|| Store::open_with(&config.data_dir, retention, history, io)).map_err(|panic| {
            let why = panic_message(panic.as_ref());
            anyhow::anyhow!(
                "the store in {} is damaged ({why}); restore it from a backup (batond --restore) or a standby",
                config.data_dir.display()
            )
        })?;
    let (mut store, restored) =
        opened.with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    store.set_checkpoints(Checkpoints {
        commits: config.journal_checkpoint_commits,
        bytes: config.journal_checkpoint_bytes,
    });
    Ok((store, restored))
}

/// Tells systemd (when it started us as `Type=notify`) that clients can be served — the
/// store is recovered, the engine answers and every listener is bound — then that we are
/// stopping on the shutdown signal; and pings its watchdog while the engine answers.
async fn notify_systemd(
    engine: &mpsc::Sender<EngineInput>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Arc<sd_notify::Notifier>> {
    let notifier = Arc::new(sd_notify::Notifier::from_env().context("cannot set up systemd notification")?);
    if !notifier.is_active() {
        return Ok(notifier);
    }
    if !engine_answers(engine).await {
        bail!("the engine stopped before serving");
    }
    notifier.ready();
    let stopping = notifier.clone();
    let mut until_stop = shutdown.clone();
    tokio::spawn(async move {
        if until_stop.wait_for(|stop| *stop).await.is_ok() {
            stopping.stopping();
        }
    });
    if let Some(every) = sd_notify::watchdog_interval() {
        info!(every_ms = every.as_millis() as u64, "systemd watchdog on: pinging while the engine answers");
        tokio::spawn(watchdog(engine.clone(), notifier.clone(), every, shutdown.clone()));
    }
    Ok(notifier)
}

/// Pings systemd's watchdog every `every`, but only after the engine has answered a health
/// check within that time: a hung engine (or a stopped process) stops the pings and systemd
/// restarts the daemon.
async fn watchdog(
    engine: mpsc::Sender<EngineInput>,
    notifier: Arc<sd_notify::Notifier>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut beats = Periodic::new(every, shutdown);
    while beats.beat().await {
        match tokio::time::timeout(every, engine_answers(&engine)).await {
            Ok(true) => notifier.watchdog(),
            Ok(false) => return,
            Err(_) => warn!(
                waited_ms = every.as_millis() as u64,
                "the engine did not answer a health check; no watchdog ping"
            ),
        }
    }
}

/// Asks the engine thread to answer; false if it is gone.
///
/// # Cancellation safety
/// Safe: an abandoned question is answered into a dropped channel.
async fn engine_answers(engine: &mpsc::Sender<EngineInput>) -> bool {
    let (reply, answered) = oneshot::channel();
    engine.send(EngineInput::Health { reply }).await.is_ok() && answered.await.is_ok()
}

/// Copies a backup into a data directory that has no store yet (created 0700 if missing).
///
/// # Errors
/// The data directory already holds a store, or the copy fails.
pub fn restore(backup: &Path, data_dir: &Path) -> anyhow::Result<()> {
    prepare_data_dir(data_dir)?;
    let target = data_dir.join(crate::store::DB_FILE_NAME);
    if target.exists() {
        bail!("{} already holds a store; restore into a fresh data directory", data_dir.display());
    }
    let partial = target.with_extension("restoring");
    std::fs::copy(backup, &partial).with_context(|| format!("cannot copy {}", backup.display()))?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all())?;
    std::fs::rename(&partial, &target)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all())?;
    info!(backup = %backup.display(), data_dir = %data_dir.display(), "restored from a backup");
    Ok(())
}

/// Creates the data directory 0700, or checks that an existing one is private.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "the data directory {} is accessible to others (mode {:o}); run `chmod 700 {}`",
            dir.display(),
            mode & 0o777,
            dir.display()
        );
    }
    Ok(())
}
