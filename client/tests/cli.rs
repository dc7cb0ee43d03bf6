//! The `baton` binary: its help, its failure when no server is there, and a few commands
//! against a scripted fake server (exit statuses, output formats, closing the session).

mod fake;

use baton::proto::{ErrorReply, Op, Response, ServerMessage, WatchEvent};
use baton::{ErrorCode, EventKind, Stat, Zxid};
use fake::{FakeConn, FakeServer, step};
use std::process::{Command, Output};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

fn baton(args: &[&str]) -> Output {
    Command::new(BATON).args(args).env_remove("BATON_ADDR").output().unwrap()
}

/// Runs `baton --addr <server> args...` in the background.
fn spawn_baton(server: &FakeServer, args: &[&str]) -> tokio::task::JoinHandle<Output> {
    let mut full = vec!["--addr".to_owned(), server.addr()];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        baton(&args)
    })
}

/// Answers the CLI's closing `CloseSession` (and a `RemoveWatches` for a dropped watcher
/// that may come first).
async fn expect_close(conn: &mut FakeConn) {
    let mut close = conn.request().await;
    if matches!(close.op, Op::RemoveWatches { .. }) {
        conn.reply(close.id, Ok(Response::WatchesRemoved)).await;
        close = conn.request().await;
    }
    assert_eq!(close.op, Op::CloseSession);
    conn.reply(close.id, Ok(Response::SessionClosed)).await;
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn help_lists_every_subcommand() {
    let out = baton(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["create", "get", "set", "rm", "ls", "stat", "tree", "watch"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(sub)), "{sub} missing from:\n{help}");
    }
    assert!(help.contains("--addr"));
    assert!(help.contains("Exit status"));
}

#[test]
fn usage_errors_exit_2() {
    let out = baton(&["create"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_socket_exits_1_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody-home.sock");
    let out = baton(&["--addr", sock.to_str().unwrap(), "ls", "/"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("baton: cannot connect to "), "{err}");
    assert!(err.contains("nobody-home.sock"), "{err}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_node_exits_3_and_the_session_is_closed() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["get", "/nope"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let get = conn.request().await;
    assert_eq!(get.op, Op::Get { path: "/nope".into(), watch: false });
    conn.reply(get.id, Err(ErrorReply::new(ErrorCode::NoNode, ""))).await;
    expect_close(&mut conn).await;
    let out = step(cli).await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stderr).trim_end(), "baton: /nope: no such node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_conflict_exits_4() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["set", "/a", "x", "--version", "3"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let set = conn.request().await;
    assert_eq!(set.op, Op::Set { path: "/a".into(), data: Some(b"x".to_vec()), version: Some(3) });
    conn.reply(set.id, Err(ErrorReply::new(ErrorCode::BadVersion, ""))).await;
    expect_close(&mut conn).await;
    assert_eq!(step(cli).await.unwrap().status.code(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_json_prints_one_object() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["get", "/a", "--json"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let get = conn.request().await;
    let stat = Stat { version: 2, data_length: 2, ..Stat::default() };
    conn.reply(get.id, Ok(Response::Data { data: Some(b"hi".to_vec()), stat })).await;
    expect_close(&mut conn).await;
    let out = step(cli).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["path"], "/a");
    assert_eq!(value["data"], "hi");
    assert_eq!(value["encoding"], "utf8");
    assert_eq!(value["stat"]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_writes_raw_data_without_a_newline() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["get", "/a"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let get = conn.request().await;
    let data = vec![0, 159, 146, 150];
    conn.reply(get.id, Ok(Response::Data { data: Some(data.clone()), stat: Stat::default() })).await;
    expect_close(&mut conn).await;
    let out = step(cli).await.unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_count_events_as_json_lines() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["watch", "/a", "--count", "2", "--json"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let add = conn.request().await;
    assert!(matches!(add.op, Op::AddWatch { .. }));
    conn.reply(add.id, Ok(Response::WatchAdded)).await;
    for (zxid, kind) in [(5, EventKind::Created), (6, EventKind::DataChanged)] {
        conn.write(&ServerMessage::Event(WatchEvent { zxid: Zxid(zxid), path: "/a".into(), kind })).await;
    }
    expect_close(&mut conn).await;
    let out = step(cli).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "created");
    assert_eq!(lines[1]["type"], "data_changed");
    assert_eq!(lines[1]["zxid"], 6);
    assert_eq!(lines[1]["path"], "/a");
    assert!(text(&out.stderr).contains("baton: watching /a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_recursive_deletes_children_first() {
    let server = FakeServer::start();
    let cli = spawn_baton(&server, &["rm", "-r", "/a"]);
    let mut conn = server.accept_new(1, 10_000).await;
    let listing = [("/a", vec!["b", "c"]), ("/a/b", vec!["d"]), ("/a/c", vec![]), ("/a/b/d", vec![])];
    for (path, children) in listing {
        let ls = conn.request().await;
        assert!(matches!(&ls.op, Op::Children { path: p, .. } if p == path), "{ls:?}");
        let children = children.into_iter().map(String::from).collect();
        let reply = Response::Children { children, stat: Stat::default() };
        conn.reply(ls.id, Ok(reply)).await;
    }
    for path in ["/a/b/d", "/a/c", "/a/b", "/a"] {
        let rm = conn.request().await;
        assert_eq!(rm.op, Op::Delete { path: path.into(), version: None });
        conn.reply(rm.id, Ok(Response::Deleted)).await;
    }
    expect_close(&mut conn).await;
    assert!(step(cli).await.unwrap().status.success());
}
