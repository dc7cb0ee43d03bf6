//! The runnable examples of the four coordination jobs, run as separate processes against the
//! real daemon, exactly as a user would run them.

use baton::Client;
use baton_tests::{Daemon, Spawned, example};
use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Reads a child's stdout lines on a thread, so a test can wait for them with a deadline.
fn line_reader(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines: Lines<BufReader<ChildStdout>> = BufReader::new(stdout).lines();
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn a_requester_is_woken_by_the_worker_writing_its_result() {
    let daemon = Daemon::start();
    let mut worker = Spawned::spawn(
        example("request_reply").args(["worker", &daemon.addr()]).stdout(Stdio::null()).stderr(Stdio::piped()),
    );
    // The worker says when its watch is in place.
    let mut ready = String::new();
    BufReader::new(worker.0.stderr.take().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "worker ready");
    for input in ["hello", "second request"] {
        let out = example("request_reply").args(["request", &daemon.addr(), input]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim_end(), input.to_uppercase());
    }
    // Several requesters at once are each answered with their own result.
    let requesters: Vec<_> = (0..5)
        .map(|i| {
            Spawned::spawn(
                example("request_reply").args(["request", &daemon.addr(), &format!("job {i}")]).stdout(Stdio::piped()),
            )
        })
        .collect();
    for (i, mut requester) in requesters.into_iter().enumerate() {
        let mut line = String::new();
        BufReader::new(requester.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), format!("JOB {i}"));
        assert!(requester.0.wait().unwrap().success());
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let leftovers = rt.block_on(async {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        let requests = client.children("/work/requests").await.unwrap();
        let results = client.children("/work/results").await.unwrap();
        (requests, results)
    });
    assert_eq!(leftovers, (vec![], vec![]), "requests served and results collected");
}

#[test]
fn a_configuration_change_is_pushed_to_every_subscriber() {
    const SUBSCRIBERS: usize = 5;
    let daemon = Daemon::start();
    let publish = |value: &str| {
        let out = example("config_push").args(["publish", &daemon.addr(), "/app-config", value]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    publish("v0");
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut child = Spawned::spawn(
            example("config_push").args(["subscribe", &daemon.addr(), "/app-config"]).stdout(Stdio::piped()),
        );
        let lines = line_reader(child.0.stdout.take().unwrap());
        assert_eq!(lines.recv_timeout(WAIT).unwrap(), "v0", "a subscriber starts with the current value");
        subscribers.push((child, lines));
    }
    for value in ["v1", "v2", "v3"] {
        publish(value);
        for (_, lines) in &subscribers {
            assert_eq!(lines.recv_timeout(WAIT).expect("the change is pushed"), value);
        }
    }
}

/// Waits for a line starting with `prefix`, returning it; panics after `WAIT`.
fn expect_line(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line starting with {prefix:?}: {e}"),
        }
    }
}

fn signal(child: &Spawned, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.pid() as i32), signal).unwrap();
}

#[test]
fn a_stale_lock_holder_resumed_after_its_session_expired_is_fenced() {
    use nix::sys::signal::Signal;
    let daemon = Daemon::start();
    let mut a = Spawned::spawn(example("fenced_lock").args([&daemon.addr(), "A", "100000"]).stdout(Stdio::piped()));
    let a_lines = line_reader(a.0.stdout.take().unwrap());
    let a_token: u64 = expect_line(&a_lines, "acquired A").rsplit(' ').next().unwrap().parse().unwrap();
    expect_line(&a_lines, "wrote A 1");
    signal(&a, Signal::SIGSTOP);

    // B waits for the lock, and gets it once A's session has expired.
    let mut b = Spawned::spawn(example("fenced_lock").args([&daemon.addr(), "B", "5"]).stdout(Stdio::piped()));
    let b_lines = line_reader(b.0.stdout.take().unwrap());
    let b_token: u64 = expect_line(&b_lines, "acquired B").rsplit(' ').next().unwrap().parse().unwrap();
    assert!(b_token > a_token, "fencing tokens increase: {a_token} then {b_token}");
    expect_line(&b_lines, "wrote B 4");
    assert!(b.0.wait().unwrap().success());

    // A wakes up believing it still holds the lock; its next write is refused by the server.
    signal(&a, Signal::SIGCONT);
    let fenced = expect_line(&a_lines, "fenced A");
    assert_eq!(fenced, format!("fenced A {a_token}"));
    assert_eq!(a.0.wait().unwrap().code(), Some(3));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = rt.block_on(async {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        client.get("/examples/fenced/data").await.unwrap().0
    });
    assert_eq!(data, b"B 4", "the stale holder overwrote nothing");
}

#[test]
fn the_standby_takes_over_within_the_session_timeout_and_never_two_are_active() {
    let daemon = Daemon::start();
    let mut a = Spawned::spawn(example("active_standby").args([&daemon.addr(), "A"]).stdout(Stdio::piped()));
    let a_lines = line_reader(a.0.stdout.take().unwrap());
    expect_line(&a_lines, "active A");
    let mut b = Spawned::spawn(example("active_standby").args([&daemon.addr(), "B"]).stdout(Stdio::piped()));
    let b_lines = line_reader(b.0.stdout.take().unwrap());
    expect_line(&b_lines, "standby B");
    // While A is alive, B stays a standby.
    assert!(b_lines.recv_timeout(Duration::from_millis(500)).is_err(), "B must not become active beside A");

    signal(&a, nix::sys::signal::Signal::SIGKILL);
    let killed = std::time::Instant::now();
    expect_line(&b_lines, "active B");
    let takeover = killed.elapsed();
    eprintln!("standby took over {takeover:?} after the active process was SIGKILLed (session timeout 2 s)");
    assert!(takeover <= Duration::from_secs(3), "takeover within the session timeout + 1 s, took {takeover:?}");
    let _ = a.0.wait();

    // B's heartbeats are the only ones landing now.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while client.get("/examples/active/heartbeat").await.map(|(d, _)| d).unwrap_or_default() != b"B" {
            assert!(std::time::Instant::now() < deadline, "B's heartbeat never landed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    drop(b);
}
