//! Where the engine's thread runs (`engine_cpu`), seen from outside the real daemon: the
//! thread's CPU affinity in `/proc`, and the disk's interrupts counted while it commits.

use baton::{Client, CreateOptions};
use baton_tests::{Daemon, binary};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The CPUs thread `comm` of process `pid` may run on, from its `Cpus_allowed_list`.
fn thread_cpus(pid: u32, comm: &str) -> BTreeSet<usize> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        if std::fs::read_to_string(task.join("comm")).unwrap().trim() != comm {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap();
        return cpu_list(list.trim());
    }
    panic!("no thread named {comm} in process {pid}");
}

fn cpu_list(text: &str) -> BTreeSet<usize> {
    text.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => a.parse::<usize>().unwrap()..=b.parse().unwrap(),
            None => part.parse().unwrap()..=part.parse().unwrap(),
        })
        .collect()
}

/// Each numbered interrupt's count per CPU, from `/proc/interrupts`.
fn interrupts() -> BTreeMap<u32, Vec<u64>> {
    let text = std::fs::read_to_string("/proc/interrupts").unwrap();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let irq = fields.next()?.strip_suffix(':')?.parse().ok()?;
            Some((irq, fields.map_while(|f| f.parse().ok()).collect()))
        })
        .collect()
}

async fn commit_some(daemon: &Daemon, count: usize) {
    let client = Client::connect(&daemon.addr()).await.unwrap();
    for _ in 0..count {
        client.create("/n", b"x", CreateOptions::persistent().sequential()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_named_in_the_config_holds_the_engine_and_none_leaves_it_free() {
    // The daemon inherits this process's CPUs.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let process = cpu_list(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim());
    let last = *process.iter().next_back().unwrap();
    let daemon = Daemon::start_with_config(&format!("engine_cpu = {last}\n"));
    // The socket listens before the engine starts: an answered write says it runs.
    commit_some(&daemon, 5).await;
    assert_eq!(thread_cpus(daemon.pid(), "engine"), BTreeSet::from([last]), "log:\n{}", daemon.log());
    assert!(daemon.log().contains("engine kept on one CPU"), "{}", daemon.log());
    // The rest of the daemon is not held anywhere.
    assert_eq!(thread_cpus(daemon.pid(), "batond"), process);

    let daemon = Daemon::start_with_config("engine_cpu = \"none\"\n");
    commit_some(&daemon, 5).await;
    assert_eq!(thread_cpus(daemon.pid(), "engine"), thread_cpus(daemon.pid(), "batond"));
    assert!(daemon.log().contains("engine placed by the scheduler"), "{}", daemon.log());
}

#[test]
fn a_cpu_the_daemon_may_not_use_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("batond.toml"), "engine_cpu = 100000\n").unwrap();
    let out = Command::new(binary("batond"))
        .arg("--config")
        .arg(dir.path().join("batond.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with engine_cpu = 100000: {stderr}");
    assert!(stderr.contains("engine_cpu = 100000, but this process may run only on CPUs"), "{stderr}");
}

const COMMITS: usize = 50;

/// By default the engine runs on the CPU that takes its disk's completion interrupts, when
/// that is one CPU: checked against the interrupts counted while the daemon commits, not
/// against the daemon's own reading of sysfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_engine_runs_where_its_disk_completes() {
    let daemon = Daemon::start();
    // The socket listens before the engine starts: an answered write says it runs.
    commit_some(&daemon, 1).await;
    let log = daemon.log();
    let engine = thread_cpus(daemon.pid(), "engine");
    if log.contains("engine placed by the scheduler") {
        // Nothing to follow here (tmpfs, a disk with a queue per CPU, one CPU): say why.
        let why = log.lines().find(|l| l.contains("engine placed by the scheduler")).unwrap();
        eprintln!("the engine is not pinned on this machine: {why}");
        assert_eq!(engine, thread_cpus(daemon.pid(), "batond"));
        return;
    }
    assert!(log.contains("engine kept on one CPU"), "{log}");
    assert_eq!(engine.len(), 1, "{engine:?}");
    let cpu = *engine.first().unwrap();

    let before = interrupts();
    commit_some(&daemon, COMMITS).await;
    let after = interrupts();
    // The disk's queue interrupt: one or more per commit, all on the engine's CPU.
    let disk = after.iter().find(|(irq, counts)| {
        let Some(was) = before.get(irq) else { return false };
        let rose: Vec<u64> = counts.iter().zip(was).map(|(a, b)| a - b).collect();
        rose.iter().sum::<u64>() >= COMMITS as u64 && rose.iter().enumerate().all(|(c, n)| c == cpu || *n == 0)
    });
    assert!(
        disk.is_some(),
        "no interrupt rose by {COMMITS} on CPU {cpu} alone while the daemon committed {COMMITS} times; log:\n{log}"
    );
}
