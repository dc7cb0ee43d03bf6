//! The `baton` CLI's process wrappers and shell verbs against the real daemon: `lock` (exit
//! status pass-through, fencing tokens, `--nonblock`/`--timeout`, mutual exclusion, killing
//! CMD's whole process group when the lock is lost, signal forwarding, a killed wrapper,
//! jeopardy over a cut connection), `elect` (one leader runs CMD; a SIGKILLed leader is
//! replaced at once; `--observe`), `wait`, `queue`, `counter`, `barrier`, `register` and
//! `discover`.
//!
//! Every spawned process is held by a [`Proc`], which SIGKILLs and reaps it when dropped,
//! also when a test fails; a killed wrapper's guard process then kills its command.

use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use baton_tests::{Daemon, cli};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A spawned process, SIGKILLed and reaped on drop; its stdout and stderr go to files.
struct Proc {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the wrapper");
    }

    /// Waits for the exit (at most `limit`) and returns its status.
    #[track_caller]
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} still running after {limit:?}; stderr: {}",
                self.pid(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The exit code (panics if a signal killed it).
    #[track_caller]
    fn code(&mut self, limit: Duration) -> i32 {
        let status = self.wait(limit);
        status.code().unwrap_or_else(|| panic!("killed by a signal: {status}; stderr: {}", self.stderr()))
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's daemon and scratch directory.
struct World {
    daemon: Daemon,
    dir: tempfile::TempDir,
    spawned: usize,
}

impl World {
    fn new() -> World {
        World::with(Daemon::start())
    }

    fn with(daemon: Daemon) -> World {
        World { daemon, dir: tempfile::tempdir().unwrap(), spawned: 0 }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A scratch file's path as a shell word.
    fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Starts `baton --addr ADDR ARGS` in the background.
    fn spawn_at(&mut self, addr: &str, args: &[&str]) -> Proc {
        self.spawned += 1;
        let out = self.path(&format!("proc-{}.out", self.spawned));
        let err = self.path(&format!("proc-{}.err", self.spawned));
        let child = cli(addr)
            .args(args)
            .env_remove("BATON_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("spawn baton");
        Proc { child, out, err }
    }

    fn spawn(&mut self, args: &[&str]) -> Proc {
        let addr = self.daemon.addr();
        self.spawn_at(&addr, args)
    }

    /// Runs `baton ARGS` to completion with `input` on stdin.
    fn run_in(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = cli(&self.daemon.addr())
            .args(args)
            .env_remove("BATON_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(args, b"")
    }

    /// Runs `baton ARGS`, asserts exit status 0 and returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Waits until `condition` holds, for at most `limit`.
#[track_caller]
fn until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids a command wrote to `file`, one per line, once there are `n`.
#[track_caller]
fn pids(file: &Path, n: usize) -> Vec<i32> {
    let mut found = Vec::new();
    until(WAIT, "the command's pids", || {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        found = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        found.len() >= n
    });
    found
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by its new parent).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
    }
}

#[track_caller]
fn all_dead(pids: &[i32]) {
    until(Duration::from_secs(3), "the command's processes to die", || pids.iter().all(|&p| dead(p)));
}

/// A shell command that writes its pid and a background grandchild's pid to `file`, then
/// waits for the grandchild. A default-handled SIGTERM kills the shell (and the group).
fn with_grandchild(file: &str) -> String {
    format!("echo $$ > {file}; sleep 60 & echo $! >> {file}; wait")
}

#[test]
fn lock_passes_cmd_status_through_with_a_growing_fencing_token() {
    let mut w = World::new();
    let mut first = w.spawn(&["lock", "/locks/a", "--", "sh", "-c", "echo $BATON_FENCING_TOKEN; exit 7"]);
    assert_eq!(first.code(WAIT), 7);
    let mut second = w.spawn(&["lock", "/locks/a", "--", "sh", "-c", "echo $BATON_FENCING_TOKEN"]);
    assert_eq!(second.code(WAIT), 0);
    let token = |p: &Proc| p.stdout().trim().parse::<u64>().unwrap_or_else(|e| panic!("{e}: {:?}", p.stdout()));
    assert!(token(&second) > token(&first), "{} then {}", token(&first), token(&second));
    // A signal's death is reported as a shell does; a missing command as 127.
    let mut killed = w.spawn(&["lock", "/locks/a", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.code(WAIT), 137);
    let mut missing = w.spawn(&["lock", "/locks/a", "--", "/nonexistent/cmd"]);
    assert_eq!(missing.code(WAIT), 127);
    assert!(missing.stderr().starts_with("baton: cannot run /nonexistent/cmd"), "{}", missing.stderr());
}

#[test]
fn a_held_lock_exits_5_at_once_with_nonblock_and_after_the_timeout() {
    let mut w = World::new();
    let held = w.file("held");
    let _holder = w.spawn(&["lock", "/locks/b", "--", "sh", "-c", &format!("echo x > {held}; sleep 60")]);
    until(WAIT, "the holder's command", || w.path("held").exists());
    let ran = w.file("ran");
    let started = Instant::now();
    let mut nonblock = w.spawn(&["lock", "/locks/b", "--nonblock", "--", "touch", &ran]);
    assert_eq!(nonblock.code(WAIT), 5, "{}", nonblock.stderr());
    assert!(started.elapsed() < Duration::from_secs(3), "--nonblock waited {:?}", started.elapsed());
    let started = Instant::now();
    let mut timeout = w.spawn(&["lock", "/locks/b", "--timeout", "300ms", "--", "touch", &ran]);
    assert_eq!(timeout.code(WAIT), 5);
    assert!(started.elapsed() >= Duration::from_millis(300), "gave up after {:?}", started.elapsed());
    assert!(timeout.stderr().starts_with("baton: /locks/b: the lock was not acquired within 300ms"));
    assert!(!w.path("ran").exists(), "CMD must not run without the lock");
}

#[test]
fn eight_concurrent_lock_wrappers_never_overlap() {
    let mut w = World::new();
    let log = w.file("log");
    let body = format!("echo start >> {log}; sleep 0.02; echo end >> {log}");
    let mut procs: Vec<Proc> = (0..8).map(|_| w.spawn(&["lock", "/locks/mx", "--", "sh", "-c", &body])).collect();
    for p in &mut procs {
        assert_eq!(p.code(Duration::from_secs(20)), 0, "{}", p.stderr());
    }
    let text = std::fs::read_to_string(w.path("log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 16, "{text}");
    for pair in lines.chunks(2) {
        assert_eq!(pair, ["start", "end"], "two holders at once:\n{text}");
    }
}

#[test]
fn a_lost_lock_kills_the_whole_group_and_exits_6() {
    let mut w = World::new();
    let file = w.file("pids");
    let mut wrapper = w.spawn(&["lock", "/locks/lost", "--", "sh", "-c", &with_grandchild(&file)]);
    let pids = pids(&w.path("pids"), 2);
    let holder = w.ok(&["ls", "/locks/lost"]);
    let holder = holder.trim();
    assert!(!holder.is_empty() && !holder.contains('\n'), "one holder node: {holder:?}");
    w.ok(&["rm", &format!("/locks/lost/{holder}")]);
    assert_eq!(wrapper.code(WAIT), 6, "{}", wrapper.stderr());
    assert!(wrapper.stderr().contains("lost the lock on /locks/lost"), "{}", wrapper.stderr());
    all_dead(&pids);
}

#[test]
fn signals_to_the_wrapper_are_forwarded_and_cmd_status_returned() {
    let mut w = World::new();
    let file = w.file("pids");
    let mut wrapper = w.spawn(&["lock", "/locks/t", "--", "sh", "-c", &with_grandchild(&file)]);
    let pids = pids(&w.path("pids"), 2);
    wrapper.signal(Signal::SIGTERM);
    assert_eq!(wrapper.code(WAIT), 143, "{}", wrapper.stderr());
    all_dead(&pids);
    // The lock was released.
    assert_eq!(w.run(&["lock", "/locks/t", "--nonblock", "--", "true"]).status.code(), Some(0));

    // A command that handles SIGTERM decides the status.
    let ready = w.file("ready");
    let trapping = format!("trap 'exit 3' TERM; touch {ready}; sleep 60 & wait");
    let mut wrapper = w.spawn(&["lock", "/locks/t", "--", "sh", "-c", &trapping]);
    until(WAIT, "the trap", || w.path("ready").exists());
    wrapper.signal(Signal::SIGTERM);
    assert_eq!(wrapper.code(WAIT), 3);

    // SIGINT: the shell dies of it (130); its background job, which a non-interactive shell
    // starts with SIGINT ignored, is killed when the shell has exited.
    let file = w.file("pids2");
    let mut wrapper = w.spawn(&["lock", "/locks/t", "--", "sh", "-c", &with_grandchild(&file)]);
    let pids = self::pids(&w.path("pids2"), 2);
    wrapper.signal(Signal::SIGINT);
    assert_eq!(wrapper.code(WAIT), 130, "{}", wrapper.stderr());
    all_dead(&pids);
}

#[test]
fn the_guard_outlives_signals_passed_on_to_the_group_and_still_kills_it() {
    let mut w = World::new();
    let file = w.file("pids");
    // CMD and its grandchild ignore SIGTERM: the wrapper passes one on to the group, which
    // also holds the guard; the guard must still be there when the wrapper is killed.
    let ignoring = format!("trap '' TERM; echo $$ > {file}; sleep 60 & echo $! >> {file}; wait");
    let mut wrapper = w.spawn(&["lock", "/locks/g", "--", "sh", "-c", &ignoring]);
    let pids = pids(&w.path("pids"), 2);
    wrapper.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(pids.iter().all(|&p| !dead(p)), "the command ignores SIGTERM");
    wrapper.signal(Signal::SIGKILL);
    wrapper.wait(WAIT);
    all_dead(&pids);
}

#[test]
fn a_killed_wrapper_takes_its_command_group_along_and_frees_the_lock() {
    let mut w = World::new();
    let file = w.file("pids");
    let mut wrapper = w.spawn(&["lock", "/locks/k", "--", "sh", "-c", &with_grandchild(&file)]);
    let pids = pids(&w.path("pids"), 2);
    wrapper.signal(Signal::SIGKILL);
    wrapper.wait(WAIT);
    all_dead(&pids);
    // Connection-bound: the lock is free as soon as the connection closed.
    let out = w.run(&["lock", "/locks/k", "--nonblock", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Over TCP (a normal session of 3 s, grace 1 s), a connection cut for good: the command
/// gets SIGTERM and is dead while the server still holds the session, i.e. before the lock
/// could go to anyone else; the wrapper exits 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_session_terminates_the_command_before_it_could_expire() {
    let access = TcpAccess::new("wrapper");
    let mut w = World::with(Daemon::start_with_config(&access.config()));
    let proxy = Proxy::start(access.tcp()).await;
    let (terms, pid_file) = (w.file("terms"), w.file("pid"));
    let body = format!("trap 'echo term >> {terms}; exit 0' TERM; echo $$ > {pid_file}; sleep 60 & wait");
    let token = access.token_file().to_str().unwrap();
    let args = [
        "--token-file",
        token,
        "lock",
        "/locks/j",
        "--session-timeout",
        "3s",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        &body,
    ];
    let mut wrapper = w.spawn_at(&proxy.addr(), &args);
    let pid = pids(&w.path("pid"), 1)[0];
    let holder = w.ok(&["ls", "/locks/j"]);
    assert_eq!(holder.lines().count(), 1);
    // The body of this test blocks its thread; the proxy runs on the runtime's workers.
    proxy.cut(true);
    let cut = Instant::now();
    until(WAIT, "the command's SIGTERM", || w.path("terms").exists());
    all_dead(&[pid]);
    let termed = cut.elapsed();
    assert_eq!(w.ok(&["ls", "/locks/j"]), holder, "the session (and lock) must outlive the command");
    // At most expires_at - grace - 250 ms = 1.75 s after the cut, plus scheduling.
    assert!(termed < Duration::from_millis(2500), "SIGTERM came {termed:?} after the cut");
    assert_eq!(wrapper.code(WAIT), 6, "{}", wrapper.stderr());
    assert!(wrapper.stderr().contains("disconnected"), "{}", wrapper.stderr());
    // Once the server has expired the session, the lock is free.
    let out = w.run(&["lock", "/locks/j", "--timeout", "8s", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn only_the_leader_runs_cmd_and_a_killed_leader_is_replaced_at_once() {
    let mut w = World::new();
    let leaders = w.path("leaders");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let body = |w: &World, id: &str| {
        format!(
            "echo $BATON_LEADER_ID >> {}; echo $$ >> {}; exec sleep 60",
            w.file("leaders"),
            w.file(&format!("{id}.pid"))
        )
    };
    let (body_a, body_b) = (body(&w, "a"), body(&w, "b"));
    let mut a = w.spawn(&["elect", "/el", "--id", "A", "--", "sh", "-c", &body_a]);
    until(WAIT, "A to lead", || read(&leaders) == "A\n");
    let mut b = w.spawn(&["elect", "/el", "--id", "B", "--", "sh", "-c", &body_b]);
    until(WAIT, "B to stand", || w.ok(&["ls", "/el"]).lines().count() == 2);
    let mut observer = w.spawn(&["elect", "/el", "--observe", "--count", "2"]);
    until(WAIT, "the observer's first line", || observer.stdout() == "A\n");
    assert_eq!(read(&leaders), "A\n", "B must not run its command while A leads");
    let a_pid = pids(&w.path("a.pid"), 1)[0];

    a.signal(Signal::SIGKILL);
    let killed = Instant::now();
    until(WAIT, "B to lead", || read(&leaders) == "A\nB\n");
    // A connection-bound session ends with its connection: no session timeout to wait for.
    assert!(killed.elapsed() < Duration::from_secs(2), "took {:?}", killed.elapsed());
    all_dead(&[a_pid]);
    a.wait(WAIT);
    assert_eq!(observer.code(WAIT), 0);
    assert_eq!(observer.stdout(), "A\nB\n");

    // B's leadership taken away: its command dies and B campaigns (and wins) again.
    let b_first = pids(&w.path("b.pid"), 1)[0];
    let node = w.ok(&["ls", "/el"]);
    w.ok(&["rm", &format!("/el/{}", node.trim())]);
    until(WAIT, "B to lead again", || read(&leaders) == "A\nB\nB\n");
    all_dead(&[b_first]);
    assert!(b.running());
    b.signal(Signal::SIGTERM);
    assert_eq!(b.code(WAIT), 143, "{}", b.stderr());

    // A command that exits by itself: its status, and the candidacy is withdrawn.
    let mut c = w.spawn(&["elect", "/el", "--", "sh", "-c", "test -n \"$BATON_LEADER_ID\" && exit 9"]);
    assert_eq!(c.code(WAIT), 9, "{}", c.stderr());
    assert_eq!(w.ok(&["ls", "/el"]), "");
}

#[test]
fn wait_returns_once_the_condition_holds_and_5_after_the_timeout() {
    let mut w = World::new();
    let mut exists = w.spawn(&["wait", "/w"]);
    let mut value = w.spawn(&["wait", "/w", "--value", "go"]);
    let mut gone = w.spawn(&["wait", "/w", "--gone"]);
    assert_eq!(gone.code(WAIT), 0, "absent already");
    // Not a proof that they block, but they must not pass before the node exists.
    std::thread::sleep(Duration::from_millis(100));
    assert!(exists.running() && value.running());
    w.ok(&["create", "/w", "nope"]);
    assert_eq!(exists.code(WAIT), 0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(value.running(), "the value is not 'go' yet");
    w.ok(&["set", "/w", "go"]);
    assert_eq!(value.code(WAIT), 0);
    let mut gone = w.spawn(&["wait", "/w", "--gone"]);
    assert_eq!(w.run(&["wait", "/w", "--exists"]).status.code(), Some(0));
    w.ok(&["rm", "/w"]);
    assert_eq!(gone.code(WAIT), 0);

    let started = Instant::now();
    let out = w.run(&["wait", "/never", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.starts_with("baton: timed out after 300ms waiting for /never to exist"), "{message}");
    assert_eq!(w.run(&["wait", "/never", "--value", "x", "--timeout", "100ms"]).status.code(), Some(5));
}

#[test]
fn queue_counter_and_barrier_round_trip() {
    let mut w = World::new();
    assert_eq!(w.ok(&["queue", "put", "/q", "first"]), "/q/item-0000000000\n");
    let out = w.run_in(&["queue", "put", "/q", "-"], b"second\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(w.ok(&["queue", "take", "/q"]), "first");
    assert_eq!(w.ok(&["queue", "take", "/q", "--nonblock"]), "second\n");
    assert_eq!(w.run(&["queue", "take", "/q", "--nonblock"]).status.code(), Some(5));
    assert_eq!(w.run(&["queue", "take", "/q", "--timeout", "100ms"]).status.code(), Some(5));
    let mut taker = w.spawn(&["queue", "take", "/q"]);
    w.ok(&["queue", "put", "/q", "third"]);
    assert_eq!(taker.code(WAIT), 0);
    assert_eq!(taker.stdout(), "third");

    assert_eq!(w.ok(&["counter", "add", "/c", "5"]), "5\n");
    assert_eq!(w.ok(&["counter", "add", "/c", "-7"]), "-2\n");
    assert_eq!(w.ok(&["counter", "get", "/c"]), "-2\n");
    assert_eq!(w.ok(&["counter", "get", "/none"]), "0\n");

    w.ok(&["barrier", "/b", "set"]);
    w.ok(&["barrier", "/b", "set"]);
    assert_eq!(w.run(&["barrier", "/b", "wait", "--timeout", "100ms"]).status.code(), Some(5));
    let mut waiter = w.spawn(&["barrier", "/b", "wait"]);
    w.ok(&["barrier", "/b", "remove"]);
    assert_eq!(waiter.code(WAIT), 0);
    w.ok(&["barrier", "/b", "wait"]);
}

#[test]
fn register_holds_the_registration_while_cmd_runs_and_discover_sees_it() {
    let mut w = World::new();
    let ready = w.file("ready");
    let body = format!("touch {ready}; sleep 60");
    let mut service = w.spawn(&["register", "api", "h1", r#"{"z":1}"#, "--", "sh", "-c", &body]);
    until(WAIT, "the service to start", || w.path("ready").exists());
    assert_eq!(w.ok(&["discover", "api"]), "h1 {\"z\":1}\n");
    let json: serde_json::Value = serde_json::from_str(&w.ok(&["discover", "api", "--json"])).unwrap();
    assert_eq!(json, serde_json::json!([{"id": "h1", "data": "{\"z\":1}", "encoding": "utf8"}]));
    let mut follower = w.spawn(&["discover", "api", "--watch", "--json", "--count", "2"]);
    until(WAIT, "the first set", || follower.stdout().lines().count() == 1);
    service.signal(Signal::SIGTERM);
    assert_eq!(service.code(WAIT), 143);
    assert_eq!(follower.code(WAIT), 0);
    assert_eq!(follower.stdout().lines().nth(1), Some("[]"), "{}", follower.stdout());

    // Without CMD: until a signal, then exit 0.
    let mut plain = w.spawn(&["register", "api", "h2", "--root", "/svc"]);
    until(WAIT, "the registration", || w.ok(&["discover", "api", "--root", "/svc"]) == "h2 \n");
    assert!(plain.running());
    plain.signal(Signal::SIGINT);
    assert_eq!(plain.code(WAIT), 0, "{}", plain.stderr());
    assert_eq!(w.ok(&["discover", "api", "--root", "/svc"]), "");
}
