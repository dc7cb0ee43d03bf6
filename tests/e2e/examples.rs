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
