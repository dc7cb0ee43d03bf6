//! The `baton` command line against the real daemon: what each subcommand prints, its exit
//! statuses (0 ok, 1 other error, 2 usage, 3 no node, 4 conflict), stdin data, `BATON_ADDR`,
//! `watch` as a long-running child process, and finding the daemon's socket with no address.

use baton_tests::{Daemon, binary, cli, wait_with_deadline};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(10);

/// Kills and reaps a spawned process when dropped, also when a test fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `baton --addr <daemon> ARGS` with empty stdin.
fn baton(daemon: &Daemon, args: &[&str]) -> Output {
    baton_in(daemon, args, b"")
}

/// Runs `baton --addr <daemon> ARGS` with `input` on stdin.
fn baton_in(daemon: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut command = cli(&daemon.addr());
    command.args(args);
    run_with_stdin(command, input)
}

fn run_with_stdin(mut command: Command, input: &[u8]) -> Output {
    command.env_remove("BATON_LOG").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn baton");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("baton was killed: {}", out.status))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command succeeded and returns its stdout.
#[track_caller]
fn ok(out: &Output) -> String {
    assert_eq!(code(out), 0, "stdout: {:?}\nstderr: {}", stdout(out), stderr(out));
    stdout(out)
}

/// Asserts the command failed with `status`, printing nothing on stdout and a `baton: `
/// message on stderr.
#[track_caller]
fn fails(out: &Output, status: i32) -> String {
    assert_eq!(code(out), status, "stdout: {:?}\nstderr: {}", stdout(out), stderr(out));
    assert!(out.stdout.is_empty(), "a failure prints nothing on stdout: {:?}", stdout(out));
    let message = stderr(out);
    assert!(message.starts_with("baton: "), "the message goes to stderr prefixed 'baton: ': {message:?}");
    message
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn stat_json(daemon: &Daemon, path: &str) -> Value {
    json(&ok(&baton(daemon, &["stat", path, "--json"])))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn create_prints_the_path_and_get_writes_the_raw_bytes() {
    let daemon = Daemon::start();
    assert_eq!(ok(&baton(&daemon, &["create", "/a", "hello world"])), "/a\n");
    let got = baton(&daemon, &["get", "/a"]);
    assert_eq!(got.stdout, b"hello world", "raw data, no newline added");
    assert!(got.stderr.is_empty(), "{}", stderr(&got));
    assert_eq!(ok(&baton(&daemon, &["create", "/empty"])), "/empty\n");
    assert!(baton(&daemon, &["get", "/empty"]).stdout.is_empty(), "DATA defaults to empty");

    // Any bytes an argument can carry are stored as given.
    let mut command = cli(&daemon.addr());
    command.args(["create", "/bytes"]).arg(std::ffi::OsStr::from_bytes(&[0xff, 0xfe, b'\n', b'x']));
    assert_eq!(ok(&run_with_stdin(command, b"")), "/bytes\n");
    assert_eq!(baton(&daemon, &["get", "/bytes"]).stdout, [0xff, 0xfe, b'\n', b'x']);
}

#[test]
fn create_sequential_prints_the_suffixed_path() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/q"]));
    assert_eq!(ok(&baton(&daemon, &["create", "/q/job-", "--sequential"])), "/q/job-0000000000\n");
    ok(&baton(&daemon, &["rm", "/q/job-0000000000"]));
    assert_eq!(ok(&baton(&daemon, &["create", "/q/job-", "d", "--sequential"])), "/q/job-0000000002\n");
    assert_eq!(baton(&daemon, &["get", "/q/job-0000000002"]).stdout, b"d");
}

#[test]
fn create_kind_flags_make_ephemeral_container_and_ttl_nodes() {
    let daemon = Daemon::start();
    // The ephemeral belongs to the command's own session, which ends when it exits.
    assert_eq!(ok(&baton(&daemon, &["create", "/eph", "--ephemeral"])), "/eph\n");
    fails(&baton(&daemon, &["stat", "/eph"]), 3);
    assert_eq!(ok(&baton(&daemon, &["create", "/eph-", "--ephemeral", "--sequential"])), "/eph-0000000002\n");

    assert_eq!(ok(&baton(&daemon, &["create", "/box", "--container"])), "/box\n");
    ok(&baton(&daemon, &["create", "/box/item"]));
    ok(&baton(&daemon, &["rm", "/box/item"]));
    fails(&baton(&daemon, &["stat", "/box"]), 3);

    let created = now_ms();
    assert_eq!(ok(&baton(&daemon, &["create", "/lease", "--ttl", "1s"])), "/lease\n");
    let stat = stat_json(&daemon, "/lease");
    assert_eq!(stat["ephemeral_owner"], 0, "a TTL node outlives the command's session");
    let mtime = stat["mtime_ms"].as_u64().unwrap();
    assert!(mtime >= created.saturating_sub(5));
    let deadline = Instant::now() + WAIT;
    loop {
        let out = baton(&daemon, &["stat", "/lease"]);
        if code(&out) == 3 {
            break;
        }
        ok(&out);
        assert!(Instant::now() < deadline, "the TTL node was not reaped within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(now_ms() >= mtime + 1000, "reaped before its TTL");

    // The kinds exclude each other, and a bad duration is a usage error.
    assert_eq!(code(&baton(&daemon, &["create", "/x", "--ephemeral", "--container"])), 2);
    assert_eq!(code(&baton(&daemon, &["create", "/x", "--ttl", "forever"])), 2);
    fails(&baton(&daemon, &["stat", "/x"]), 3);
}

#[test]
fn get_json_has_path_data_and_stat_and_get_stat_goes_to_stderr() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/cfg", "{\"on\": true}"]));
    ok(&baton(&daemon, &["set", "/cfg", "v2"]));
    let node = json(&ok(&baton(&daemon, &["get", "/cfg", "--json"])));
    assert_eq!(node["path"], "/cfg");
    assert_eq!(node["data"], "v2");
    assert_eq!(node["encoding"], "utf8");
    assert_eq!(node["stat"], stat_json(&daemon, "/cfg"));
    assert_eq!(node["stat"]["version"], 1);
    assert_eq!(node["stat"]["data_length"], 2);

    let with_stat = baton(&daemon, &["get", "/cfg", "--stat"]);
    assert_eq!(with_stat.stdout, b"v2", "stdout stays the bare data");
    let text = stderr(&with_stat);
    assert_eq!(text.lines().count(), 11, "{text}");
    for field in ["czxid", "mzxid", "pzxid", "ctime", "mtime", "cversion", "aversion", "ephemeral_owner"] {
        assert!(text.lines().any(|l| l.starts_with(field)), "{field} missing from {text}");
    }
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["version", "=", "1"]), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["data_length", "=", "2"]), "{text}");

    fails(&baton(&daemon, &["get", "/missing"]), 3);
    fails(&baton(&daemon, &["get", "/missing", "--json"]), 3);
}

#[test]
fn stat_json_has_every_field_as_a_number() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/s", "abc"]));
    ok(&baton(&daemon, &["create", "/s/child"]));
    let stat = stat_json(&daemon, "/s");
    let fields = stat.as_object().unwrap();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut expected = [
        "czxid",
        "mzxid",
        "pzxid",
        "ctime_ms",
        "mtime_ms",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "data_length",
        "num_children",
    ];
    expected.sort_unstable();
    let mut names_sorted = names.clone();
    names_sorted.sort_unstable();
    assert_eq!(names_sorted, expected);
    assert!(fields.values().all(Value::is_u64), "{stat}");
    assert_eq!((&stat["version"], &stat["cversion"], &stat["num_children"]), (&0.into(), &1.into(), &1.into()));
    assert_eq!(stat["data_length"], 3);
    assert_eq!(stat["czxid"], stat["mzxid"]);
    assert_eq!(stat["pzxid"], stat_json(&daemon, "/s/child")["czxid"], "pzxid is the child's create");

    let text = ok(&baton(&daemon, &["stat", "/s"]));
    assert_eq!(text.lines().count(), 11, "{text}");
    let czxid = stat["czxid"].as_u64().unwrap();
    assert!(text.contains(&format!("{czxid:#x}")), "zxids in hex: {text}");
    fails(&baton(&daemon, &["stat", "/nope"]), 3);
    fails(&baton(&daemon, &["stat", "/nope", "--json"]), 3);
}

#[test]
fn set_with_a_wrong_version_exits_4_and_changes_nothing() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/v", "0"]));
    assert_eq!(ok(&baton(&daemon, &["set", "/v", "1", "--version", "0"])), "");
    let message = fails(&baton(&daemon, &["set", "/v", "stale", "--version", "0"]), 4);
    assert!(message.contains("/v"), "the message names the node: {message}");
    assert_eq!(baton(&daemon, &["get", "/v"]).stdout, b"1");
    ok(&baton(&daemon, &["set", "/v", "2"]));
    assert_eq!(stat_json(&daemon, "/v")["version"], 2);
    fails(&baton(&daemon, &["set", "/missing", "x"]), 3);
}

#[test]
fn rm_exits_3_for_a_missing_node_and_honours_version_and_recursive() {
    let daemon = Daemon::start();
    fails(&baton(&daemon, &["rm", "/missing"]), 3);

    ok(&baton(&daemon, &["create", "/v"]));
    ok(&baton(&daemon, &["set", "/v", "x"]));
    fails(&baton(&daemon, &["rm", "/v", "--version", "0"]), 4);
    ok(&baton(&daemon, &["stat", "/v"]));
    assert_eq!(ok(&baton(&daemon, &["rm", "/v", "--version", "1"])), "");
    fails(&baton(&daemon, &["stat", "/v"]), 3);

    for path in ["/r", "/r/a", "/r/a/b", "/r/a/b/c", "/r/d", "/keep"] {
        ok(&baton(&daemon, &["create", path]));
    }
    let message = fails(&baton(&daemon, &["rm", "/r"]), 1);
    assert!(message.to_lowercase().contains("empty") || message.contains("children"), "{message}");
    ok(&baton(&daemon, &["stat", "/r/a/b/c"]));
    assert_eq!(ok(&baton(&daemon, &["rm", "/r", "--recursive"])), "");
    fails(&baton(&daemon, &["stat", "/r"]), 3);
    assert_eq!(ok(&baton(&daemon, &["ls", "/"])), "keep\n");
    fails(&baton(&daemon, &["rm", "-r", "/r"]), 3);

    ok(&baton(&daemon, &["create", "/keep/x"]));
    ok(&baton(&daemon, &["rm", "-r", "/"]));
    assert_eq!(ok(&baton(&daemon, &["ls", "/"])), "", "rm -r / empties the tree");
    ok(&baton(&daemon, &["stat", "/"]));
}

#[test]
fn ls_prints_sorted_names_and_json_is_an_array() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/d"]));
    assert_eq!(ok(&baton(&daemon, &["ls", "/d"])), "");
    assert_eq!(json(&ok(&baton(&daemon, &["ls", "/d", "--json"]))), serde_json::json!([]));
    for name in ["c", "a", "b"] {
        ok(&baton(&daemon, &["create", &format!("/d/{name}")]));
    }
    ok(&baton(&daemon, &["create", "/d/a/deep"]));
    assert_eq!(ok(&baton(&daemon, &["ls", "/d"])), "a\nb\nc\n");
    assert_eq!(json(&ok(&baton(&daemon, &["ls", "/d", "--json"]))), serde_json::json!(["a", "b", "c"]));
    assert_eq!(ok(&baton(&daemon, &["ls", "/"])), "d\n");
    fails(&baton(&daemon, &["ls", "/nope"]), 3);
}

#[test]
fn tree_prints_the_subtree_indented_by_depth() {
    let daemon = Daemon::start();
    for path in ["/app", "/app/b", "/app/a", "/app/a/x", "/app/a/x/y", "/other"] {
        ok(&baton(&daemon, &["create", path]));
    }
    assert_eq!(ok(&baton(&daemon, &["tree", "/app"])), "/app\n  a\n    x\n      y\n  b\n");
    assert_eq!(ok(&baton(&daemon, &["tree"])), "/\n  app\n    a\n      x\n        y\n    b\n  other\n");
    assert_eq!(ok(&baton(&daemon, &["tree", "/other"])), "/other\n");
    fails(&baton(&daemon, &["tree", "/nope"]), 3);
}

#[test]
fn data_dash_reads_stdin() {
    let daemon = Daemon::start();
    let binary_data = b"\x00\xff\xfe\n";
    assert_eq!(ok(&baton_in(&daemon, &["create", "/in", "-"], binary_data)), "/in\n");
    assert_eq!(baton(&daemon, &["get", "/in"]).stdout, binary_data);
    let node = json(&ok(&baton(&daemon, &["get", "/in", "--json"])));
    assert_eq!((&node["data"], &node["encoding"]), (&"AP/+Cg==".into(), &"base64".into()));

    let text = "line one\nline two\n".repeat(1000);
    ok(&baton_in(&daemon, &["set", "/in", "-"], text.as_bytes()));
    assert_eq!(baton(&daemon, &["get", "/in"]).stdout, text.as_bytes());
    assert_eq!(stat_json(&daemon, "/in")["data_length"], text.len());
}

#[test]
fn create_of_an_existing_node_exits_4() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/dup", "first"]));
    let message = fails(&baton(&daemon, &["create", "/dup", "second"]), 4);
    assert!(message.contains("/dup"), "{message}");
    assert_eq!(baton(&daemon, &["get", "/dup"]).stdout, b"first");
    fails(&baton(&daemon, &["create", "/no/parent"]), 3);
}

#[test]
fn usage_errors_exit_2() {
    let daemon = Daemon::start();
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate", "/a"],
        &["create"],
        &["set", "/a"],
        &["get", "/a", "--bogus"],
        &["set", "/a", "x", "--version", "one"],
        &["rm", "/a", "--version"],
        &["watch", "/a", "--count", "-1"],
    ];
    for args in cases {
        let out = baton(&daemon, args);
        assert_eq!(code(&out), 2, "baton {args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "baton {args:?} printed {:?}", stdout(&out));
        assert!(!out.stderr.is_empty(), "baton {args:?} says why on stderr");
    }
    assert_eq!(ok(&baton(&daemon, &["ls", "/"])), "", "no usage error touched the tree");
}

#[test]
fn other_errors_exit_1_with_a_message_on_stderr() {
    let daemon = Daemon::start();
    fails(&baton(&daemon, &["get", "relative"]), 1);
    fails(&baton(&daemon, &["create", "/a/"]), 1);
    fails(&baton(&daemon, &["create", "/zero", "--ttl", "0s"]), 1);
    fails(&baton(&daemon, &["create", "/box-", "--container", "--sequential"]), 1);
    ok(&baton(&daemon, &["create", "/full"]));
    ok(&baton(&daemon, &["create", "/full/child"]));
    fails(&baton(&daemon, &["rm", "/full"]), 1);
    fails(&baton(&daemon, &["rm", "/"]), 1);
    assert_eq!(ok(&baton(&daemon, &["ls", "/"])), "full\n", "no failed command changed the tree");
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no.sock").display().to_string();
    let mut command = cli(&nowhere);
    command.args(["ls", "/"]);
    let message = fails(&run_with_stdin(command, b""), 1);
    assert!(message.contains(&nowhere), "the message names the address: {message}");
}

#[test]
fn baton_addr_env_works_instead_of_addr() {
    let daemon = Daemon::start();
    let mut command = Command::new(binary("baton"));
    command.env("BATON_ADDR", daemon.addr()).args(["create", "/via-env", "e"]);
    assert_eq!(ok(&run_with_stdin(command, b"")), "/via-env\n");
    assert_eq!(baton(&daemon, &["get", "/via-env"]).stdout, b"e");

    // --addr wins over the environment.
    let dir = tempfile::tempdir().unwrap();
    let mut command = cli(&daemon.addr());
    command.env("BATON_ADDR", dir.path().join("no.sock")).args(["ls", "/"]);
    assert_eq!(ok(&run_with_stdin(command, b"")), "via-env\n");

    // And the environment is really what is used without --addr.
    let mut command = Command::new(binary("baton"));
    command.env("BATON_ADDR", dir.path().join("no.sock")).args(["ls", "/"]);
    let message = fails(&run_with_stdin(command, b""), 1);
    assert!(message.contains("no.sock"), "{message}");
}

/// A running `baton watch`, its stdout collected by a thread.
struct Watch {
    guard: Guard,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Watch {
    /// Starts `baton watch ARGS` and waits until it says the watch is set.
    fn start(daemon: &Daemon, args: &[&str]) -> Watch {
        let mut command = cli(&daemon.addr());
        command.arg("watch").args(args).env_remove("BATON_LOG");
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut guard = Guard(command.spawn().expect("spawn baton watch"));
        let mut out = guard.0.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).unwrap();
            text
        });
        let (lines_tx, lines) = mpsc::channel();
        let err = guard.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        });
        let expected = format!("baton: watching {}", args[0]);
        match lines.recv_timeout(WAIT) {
            Ok(line) => assert_eq!(line, expected, "the first line baton watch writes to stderr"),
            Err(e) => panic!("baton watch did not report {expected:?} within {WAIT:?}: {e}"),
        }
        Watch { guard, stdout: Some(stdout) }
    }

    /// Waits for the process to exit on its own, returning its status code and stdout.
    fn finish(mut self) -> (i32, String) {
        let status = wait_with_deadline(&mut self.guard.0, WAIT);
        let text = self.stdout.take().unwrap().join().unwrap();
        (status.code().unwrap_or_else(|| panic!("baton watch was killed: {status}")), text)
    }
}

/// Parses `baton watch --json` output: one object per line with exactly type, path, zxid.
fn events(text: &str) -> Vec<(String, String, u64)> {
    text.lines()
        .map(|line| {
            let event = json(line);
            let object = event.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
            assert_eq!(object.len(), 3, "type, path and zxid only: {line}");
            let field = |name: &str| object[name].as_str().unwrap_or_else(|| panic!("{name} in {line}")).to_owned();
            (field("type"), field("path"), object["zxid"].as_u64().unwrap_or_else(|| panic!("zxid in {line}")))
        })
        .collect()
}

fn zxid(daemon: &Daemon, path: &str, field: &str) -> u64 {
    stat_json(daemon, path)[field].as_u64().unwrap()
}

#[test]
fn watch_prints_a_json_line_per_change_by_another_client_and_exits_after_count() {
    let daemon = Daemon::start();
    let watch = Watch::start(&daemon, &["/w", "--count", "4", "--json"]);
    ok(&baton(&daemon, &["create", "/w", "a"]));
    let created = zxid(&daemon, "/w", "czxid");
    ok(&baton(&daemon, &["set", "/w", "b"]));
    let set = zxid(&daemon, "/w", "mzxid");
    ok(&baton(&daemon, &["create", "/w/child"]));
    let child = zxid(&daemon, "/w/child", "czxid");
    ok(&baton(&daemon, &["set", "/w/child", "not seen by a non-recursive watch"]));
    ok(&baton(&daemon, &["rm", "-r", "/w"]));
    let (status, text) = watch.finish();
    assert_eq!(status, 0, "exits 0 after --count events; stdout: {text}");
    let seen = events(&text);
    assert_eq!(seen.len(), 4, "exactly --count lines: {text}");
    let want = |kind: &str, path: &str, zxid: u64| (kind.to_owned(), path.to_owned(), zxid);
    assert_eq!(
        &seen[..3],
        [want("created", "/w", created), want("data_changed", "/w", set), want("children_changed", "/w", child)]
    );
    assert_eq!((seen[3].0.as_str(), seen[3].1.as_str()), ("children_changed", "/w"), "the child's deletion");
    assert!(seen[3].2 > child);
}

#[test]
fn watch_recursive_sees_every_descendant_change() {
    let daemon = Daemon::start();
    ok(&baton(&daemon, &["create", "/r"]));
    let watch = Watch::start(&daemon, &["/r", "--recursive", "--count", "4", "--json"]);
    ok(&baton(&daemon, &["create", "/r/a"]));
    ok(&baton(&daemon, &["create", "/r/a/b"]));
    ok(&baton(&daemon, &["set", "/r/a/b", "x"]));
    let set = zxid(&daemon, "/r/a/b", "mzxid");
    ok(&baton(&daemon, &["create", "/elsewhere"]));
    ok(&baton(&daemon, &["rm", "/r/a/b"]));
    let (status, text) = watch.finish();
    assert_eq!(status, 0, "stdout: {text}");
    let seen = events(&text);
    let kinds: Vec<(&str, &str)> = seen.iter().map(|(k, p, _)| (k.as_str(), p.as_str())).collect();
    assert_eq!(
        kinds,
        [("created", "/r/a"), ("created", "/r/a/b"), ("data_changed", "/r/a/b"), ("deleted", "/r/a/b")],
        "{text}"
    );
    assert_eq!(seen[2].2, set);
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "zxid order: {text}");
}

#[test]
fn watch_text_lines_are_type_path_and_hex_zxid_and_sigterm_exits_143() {
    let daemon = Daemon::start();
    let watch = Watch::start(&daemon, &["/t", "--count", "1"]);
    ok(&baton(&daemon, &["create", "/t"]));
    let created = zxid(&daemon, "/t", "czxid");
    let (status, text) = watch.finish();
    assert_eq!(status, 0);
    assert_eq!(text, format!("created /t {created:#x}\n"));

    let watch = Watch::start(&daemon, &["/t"]);
    let pid = nix::unistd::Pid::from_raw(watch.guard.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let (status, text) = watch.finish();
    assert_eq!(status, 143, "SIGTERM closes the session and exits 128 + 15");
    assert_eq!(text, "");
}

#[test]
fn the_cli_finds_the_daemons_default_socket_without_an_address() {
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: as root, batond's and baton's default socket is the system one \
             (/run/baton/baton.sock), which a test must not take over; run as an unprivileged user"
        );
        return;
    }
    let runtime = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let socket = runtime.path().join("baton").join("baton.sock");
    let log_path = state.path().join("batond.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(binary("batond"));
    command
        .arg("--data-dir")
        .arg(state.path().join("data"))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env_remove("BATON_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut daemon = Guard(command.spawn().expect("spawn batond"));
    let deadline = Instant::now() + WAIT;
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("batond exited with {status}; log:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "batond did not listen at {} within {WAIT:?}", socket.display());
        std::thread::sleep(Duration::from_millis(5));
    }

    let without_addr = |args: &[&str]| {
        let mut command = Command::new(binary("baton"));
        command.args(args).env("XDG_RUNTIME_DIR", runtime.path()).env_remove("BATON_ADDR");
        run_with_stdin(command, b"")
    };
    assert_eq!(ok(&without_addr(&["create", "/found-by-default"])), "/found-by-default\n");
    assert_eq!(ok(&without_addr(&["ls", "/"])), "found-by-default\n");
}
