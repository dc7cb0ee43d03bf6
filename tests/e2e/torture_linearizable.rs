//! T5 (RELIABILITY.md): linearizability under faults. Concurrent clients, each on its own
//! session over TCP through a proxy, run seeded random creates, sets (some version-checked),
//! gets and deletes on a few paths while the test cuts every connection and kill -9s and
//! restarts the daemon. The recorded history must be linearizable per path (Wing–Gong–Lowe),
//! and every watcher's events ordered, unique, gap-free and delivered before the data.

use baton::{Client, CreateOptions};
use baton_tests::Daemon;
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use baton_tests::torture::history::{Recorder, Ret};
use baton_tests::torture::workload::{self, Progress, Workload};
use baton_tests::torture::{self, linearizability, watches};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Waits until `count` operations are done (or the run is over).
async fn until_done(progress: &Progress, count: usize, run: &tokio::task::JoinHandle<workload::Outcome>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.done.load(Ordering::SeqCst) < count && !run.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_histories_stay_linearizable_through_connection_cuts_and_kill_9() {
    let (seed, scale) = (torture::seed(5), torture::scale() as usize);
    let access = TcpAccess::new("t5");
    let mut daemon = Daemon::start_with_config(&access.config());
    let proxy = Proxy::start(access.tcp()).await;
    let _keep = torture::KeepOnPanic::new("T5", daemon.dir());
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/t5", b"", CreateOptions::persistent()).await.unwrap();
    drop(setup);

    let load = Workload {
        addr: proxy.addr(),
        root: "/t5".into(),
        clients: 6,
        paths: 3,
        ops_per_client: 400 * scale,
        seed,
        session_timeout: Duration::from_secs(10),
        op_timeout: Duration::from_secs(5),
        connect_patience: Duration::from_secs(30),
        builder: access.builder(),
    };
    let total = load.clients * load.ops_per_client;
    let (recorder, progress) = (Recorder::new(), Progress::default());
    let run = {
        let (load, recorder, progress) = (load.clone(), recorder.clone(), progress.clone());
        tokio::spawn(async move { workload::run(&load, &recorder, &progress).await })
    };
    // Faults at fixed fractions of the run: cuts, then kill -9 and restart, then cuts again.
    let (mut cuts, mut kills) = (0, 0);
    let old_pid = daemon.pid();
    for step in 1..=4 * scale {
        until_done(&progress, total * step / (4 * scale + 1), &run).await;
        if run.is_finished() {
            break;
        }
        if step % 4 == 2 {
            daemon.kill9();
            daemon.restart();
            kills += 1;
        } else {
            proxy.cut(false);
            cuts += 1;
        }
    }
    let outcome = run.await.unwrap();
    let accepted = proxy.accepted();
    // The faults fired: a new daemon process, and clients reconnected after the cuts.
    assert!(kills >= 1 && cuts >= 3, "faults injected: {kills} kills, {cuts} cuts");
    assert_ne!(daemon.pid(), old_pid);
    assert!(accepted > load.clients * 2, "clients reconnected through the proxy: {accepted} connections");
    judge("T5", &outcome, total, &format!("faults: {kills} kill -9, {cuts} cuts, {accepted} connections; seed {seed}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_histories_stay_linearizable_through_daemon_pauses_and_session_expiry() {
    let (seed, scale) = (torture::seed(50), torture::scale() as usize);
    let daemon = Daemon::start();
    let _keep = torture::KeepOnPanic::new("T5-pause", daemon.dir());
    let setup = Client::connect(&daemon.addr()).await.unwrap();
    setup.create("/t5", b"", CreateOptions::persistent()).await.unwrap();
    drop(setup);
    // Short sessions, paused past their timeout: clients see expiry and start new sessions
    // (and new watchers) mid-run.
    let load = Workload {
        addr: daemon.addr(),
        root: "/t5".into(),
        clients: 6,
        paths: 3,
        ops_per_client: 300 * scale,
        seed,
        session_timeout: Duration::from_secs(2),
        op_timeout: Duration::from_secs(10),
        connect_patience: Duration::from_secs(30),
        builder: Client::builder(),
    };
    let total = load.clients * load.ops_per_client;
    let (recorder, progress) = (Recorder::new(), Progress::default());
    let run = {
        let (load, recorder, progress) = (load.clone(), recorder.clone(), progress.clone());
        tokio::spawn(async move { workload::run(&load, &recorder, &progress).await })
    };
    let mut pauses = 0;
    for step in 1..=2 * scale {
        until_done(&progress, total * step / (2 * scale + 1), &run).await;
        if run.is_finished() {
            break;
        }
        let before = progress.done.load(Ordering::SeqCst);
        daemon.signal(nix::sys::signal::Signal::SIGSTOP);
        tokio::time::sleep(Duration::from_secs(3)).await;
        daemon.signal(nix::sys::signal::Signal::SIGCONT);
        pauses += 1;
        // Progress resumes before the next pause.
        until_done(&progress, before + load.clients, &run).await;
    }
    let outcome = run.await.unwrap();
    assert_eq!(pauses, 2 * scale, "the pauses did not all happen during the run");
    judge("T5", &outcome, total, &format!("faults: {pauses} daemon pauses of 3 s (sessions of 2 s); seed {seed}"));
}

/// Checks a recorded run: linearizable per path, watch guarantees held, enough checked;
/// prints the figure (`what` names the faults).
fn judge(name: &str, outcome: &workload::Outcome, total: usize, what: &str) {
    let report = linearizability::check(&outcome.records, &BTreeMap::new(), 50_000_000);
    let watch = watches::check(&outcome.watch_logs, &outcome.records, "/t5");
    torture::figure(&format!(
        "{name} linearizability violations: {} of {} ops on {} paths; indeterminate {} ({:.2} %); {what}; watch failures {} of {} deliveries and {} reveals ({} resets, {} sessions expired)",
        report.violations.len(),
        report.ops,
        report.paths,
        report.indeterminate,
        report.indeterminate_percent(),
        watch.failures(),
        watch.deliveries_checked,
        watch.reveals_checked,
        watch.resets,
        outcome.sessions_expired,
    ));
    if !report.violations.is_empty() || watch.failures() > 0 {
        let kept = torture::keep(name, &format!("{:#?}\n{:#?}", outcome.records, outcome.watch_logs));
        eprintln!("history kept in {}", kept.display());
    }
    // Enough was checked to mean something.
    assert!(report.ops >= total * 9 / 10, "only {} of {total} ops recorded", report.ops);
    assert!(report.ops - report.indeterminate >= total * 8 / 10, "too many indeterminate: {report:?}");
    assert!(watch.deliveries_checked >= 100 && watch.reveals_checked >= 50, "{watch:?}");
    assert!(report.undecided.is_empty(), "{:?}", report.undecided);
    assert!(report.violations.is_empty(), "not linearizable:\n{}", report.violations.join("\n"));
    // Negative control on this very history: one read turned into a value nobody wrote must
    // make it non-linearizable.
    let mut stale = outcome.records.clone();
    let read = stale.iter_mut().find(|r| matches!(r.ret, Some(Ret::Got(Some(_))))).expect("a read that found data");
    read.ret = Some(Ret::Got(Some((u64::MAX - 1, 0))));
    let control = linearizability::check(&stale, &BTreeMap::new(), 50_000_000);
    assert_eq!(control.violations.len(), 1, "the checker missed an impossible read");
    assert_eq!(
        watch.failures(),
        0,
        "watch failures: reorders {:?} duplicates {:?} gaps {:?} phantoms {:?} late {:?}",
        watch.reorders,
        watch.duplicates,
        watch.gaps,
        watch.phantoms,
        watch.late
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_negative_control_a_daemon_serving_stale_reads_is_caught() {
    let broken = torture::broken::Broken::start("stale-reads");
    let setup = Client::connect(&broken.addr()).await.unwrap();
    setup.create("/t5", b"", CreateOptions::persistent()).await.unwrap();
    drop(setup);
    let load = Workload {
        addr: broken.addr(),
        root: "/t5".into(),
        clients: 4,
        paths: 3,
        ops_per_client: 150,
        seed: torture::seed(5),
        session_timeout: Duration::from_secs(10),
        op_timeout: Duration::from_secs(5),
        connect_patience: Duration::from_secs(10),
        builder: Client::builder(),
    };
    let outcome = workload::run(&load, &Recorder::new(), &Progress::default()).await;
    let report = linearizability::check(&outcome.records, &BTreeMap::new(), 50_000_000);
    torture::figure(&format!(
        "T5 negative control (daemon serving stale reads): non-linearizable paths {} of {}, over {} ops",
        report.violations.len(),
        report.paths,
        report.ops
    ));
    assert!(!report.violations.is_empty(), "the checker passed a daemon that serves stale reads");
}
