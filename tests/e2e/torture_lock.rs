//! T8 (RELIABILITY.md): lock contention with SIGSTOPped holders. Several processes take the
//! lock recipe's lock in turn and append fenced entries to a shared log; the test SIGSTOPs
//! the current holder until someone else gets the lock (its session expired), then SIGCONTs
//! it. Pass: the next holder's token is larger, the resumed holder's writes are refused
//! (LockLost), the log's tokens never go back (mutual exclusion as seen by the protected
//! resource: no stale-token write), every acknowledged write is in the log, and at most about
//! one wake-up per release (no herd).

use baton::{Client, CreateOptions};
use baton_tests::torture;
use baton_tests::{Daemon, Spawned, example};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every line of every locker, tagged with the locker's index.
fn lines(children: &mut [Spawned]) -> mpsc::Receiver<(usize, String)> {
    let (tx, rx) = mpsc::channel();
    for (i, child) in children.iter_mut().enumerate() {
        let stdout = child.0.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

fn signal(child: &Spawned, signal: Signal) {
    kill(Pid::from_raw(child.pid() as i32), signal).expect("signal the locker");
}

/// The protected resource's view: the log's (name, token) entries in commit order.
async fn read_log(client: &Client) -> Vec<(String, u64)> {
    let mut names = client.children("/t8/log").await.unwrap();
    names.sort();
    let mut log = Vec::new();
    for name in names {
        let (data, _) = client.get(&format!("/t8/log/{name}")).await.unwrap();
        let text = String::from_utf8(data).unwrap();
        let mut parts = text.split_whitespace();
        let token: u64 = parts.next().unwrap().parse().unwrap();
        log.push((parts.next().unwrap().to_owned(), token));
    }
    log
}

/// Acknowledged writes with no entry of theirs in the log.
fn missing_writes<'a>(wrote: &'a [(String, u64)], log: &[(String, u64)]) -> Vec<&'a (String, u64)> {
    let mut in_log: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for entry in log {
        *in_log.entry(entry.clone()).or_default() += 1;
    }
    wrote
        .iter()
        .filter(|w| match in_log.get_mut(*w) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

/// Log entries written with a token lower than one already seen: writes by a holder that no
/// longer held the lock.
fn stale_writes(log: &[(String, u64)]) -> Vec<String> {
    let mut stale = Vec::new();
    let mut highest = 0;
    for (name, token) in log {
        if *token < highest {
            stale.push(format!("{name} wrote with token {token} after token {highest}"));
        }
        highest = highest.max(*token);
    }
    stale
}

#[derive(Default)]
struct Tally {
    acquisitions: usize,
    /// (name, token) of every write acknowledged to a locker.
    wrote: Vec<(String, u64)>,
    unsure: usize,
    fenced: Vec<(String, u64)>,
    wakeups: u64,
    /// Token of a SIGSTOPped holder, then the token of the holder after it.
    handovers: Vec<(u64, u64)>,
}

/// Runs `lockers` locker processes for `rounds` rounds against `addr`, SIGSTOPping up to
/// `stops` holders until another holder has written; returns the tally and the log.
fn contend(addr: &str, lockers: usize, rounds: usize, stops: usize) -> (Tally, Vec<(String, u64)>) {
    let writes = 5;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = Client::connect(addr).await.unwrap();
        client.create("/t8", b"", CreateOptions::persistent()).await.unwrap();
        client.create("/t8/log", b"", CreateOptions::persistent()).await.unwrap();
        client
    });
    let mut children: Vec<Spawned> = (0..lockers)
        .map(|i| {
            Spawned::spawn(
                example("torture_locker")
                    .args([addr, &format!("L{i}"), &rounds.to_string(), &writes.to_string()])
                    .stdout(Stdio::piped()),
            )
        })
        .collect();
    let rx = lines(&mut children);
    let mut tally = Tally::default();
    let mut stopped: Option<(usize, u64)> = None;
    let mut finished = 0;
    let mut acquired = vec![0; lockers];
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished < lockers {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (i, line) = rx.recv_timeout(remaining).expect("the lockers stalled");
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |k: usize| words.get(k).and_then(|w| w.parse::<u64>().ok()).expect("a number");
        match words.first().copied() {
            Some("acquired") => {
                tally.acquisitions += 1;
                acquired[i] += 1;
                // Someone else must still want the lock, or a frozen holder would wait forever.
                let others_waiting = (0..lockers).any(|j| j != i && acquired[j] < rounds);
                if stopped.is_none() && others_waiting && tally.handovers.len() < stops {
                    // Freeze this holder until its session expires and another takes over.
                    signal(&children[i], Signal::SIGSTOP);
                    stopped = Some((i, number(2)));
                }
            }
            Some("wrote") => {
                let token = number(2);
                tally.wrote.push((words[1].to_owned(), token));
                // Wake the frozen holder once its successor has written: its next write
                // comes after a newer token's, where only fencing can stop it.
                if let Some((held_by, old)) = stopped.take_if(|(who, old)| *who != i && token > *old) {
                    tally.handovers.push((old, token));
                    signal(&children[held_by], Signal::SIGCONT);
                }
            }
            Some("unsure") => tally.unsure += 1,
            Some("fenced") => tally.fenced.push((words[1].to_owned(), number(2))),
            Some("wakeups") => {
                tally.wakeups += number(2);
                finished += 1;
            }
            _ => {}
        }
    }
    for child in &mut children {
        assert!(child.0.wait().unwrap().success(), "a locker failed");
    }
    (tally, rt.block_on(read_log(&client)))
}

#[test]
fn t8_lock_contention_with_sigstopped_holders_keeps_fencing_and_mutual_exclusion() {
    let scale = torture::scale() as usize;
    let (lockers, rounds, stops) = (8, 3 * scale, 2 * scale);
    let daemon = Daemon::start();
    let (tally, log) = contend(&daemon.addr(), lockers, rounds, stops);
    let stale = stale_writes(&log);
    // Negative control: the same log with one unfenced write by the first holder appended
    // (what a skipped fencing check would let through) must be caught.
    let mut unfenced = log.clone();
    unfenced.push(log[0].clone());
    assert_eq!(stale_writes(&unfenced).len(), 1, "the stale-token check is blind");
    let missing = missing_writes(&tally.wrote, &log);
    torture::figure(&format!(
        "T8 lock: {lockers} processes, {} acquisitions, {} SIGSTOPped holders taken over, {} fenced writes refused; stale-token writes {} of {} log entries; acknowledged writes missing {}; wake-ups {} ({:.2} per acquisition)",
        tally.acquisitions,
        tally.handovers.len(),
        tally.fenced.len(),
        stale.len(),
        log.len(),
        missing.len(),
        tally.wakeups,
        tally.wakeups as f64 / tally.acquisitions as f64
    ));
    assert_eq!(tally.acquisitions, lockers * rounds, "every round acquired the lock once");
    assert_eq!(tally.handovers.len(), stops, "the SIGSTOP fault fired {} times", tally.handovers.len());
    for (old, new) in &tally.handovers {
        assert!(new > old, "fencing tokens increase: {old} then {new}");
    }
    assert!(!tally.fenced.is_empty(), "no resumed holder was refused: the fencing went untested");
    assert!(stale.is_empty(), "stale-token writes: {stale:?}");
    assert!(missing.is_empty(), "acknowledged writes missing from the log: {missing:?}");
    assert!(log.len() >= tally.wrote.len() && log.len() <= tally.wrote.len() + tally.unsure);
    assert!(
        tally.wakeups as usize <= tally.acquisitions + tally.handovers.len(),
        "herd: {} wake-ups for {} acquisitions",
        tally.wakeups,
        tally.acquisitions
    );
}

#[test]
fn t8_negative_control_a_daemon_that_skips_fencing_checks_is_caught() {
    let broken = torture::broken::Broken::start("skip-fencing");
    let (tally, log) = contend(&broken.addr(), 4, 2, 1);
    let stale = stale_writes(&log);
    torture::figure(&format!(
        "T8 negative control (daemon skipping fencing checks): stale-token writes {} of {} log entries, fenced {}",
        stale.len(),
        log.len(),
        tally.fenced.len()
    ));
    assert_eq!(tally.handovers.len(), 1, "the SIGSTOP fault did not fire");
    assert!(!stale.is_empty(), "the log check passed a daemon that lets a stale holder write");
}
