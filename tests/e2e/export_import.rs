//! `baton export` and `baton import` against the real daemon: a tree with nested, binary,
//! empty and UTF-8 data survives the round trip into a fresh daemon (checked by walking both
//! trees with the library client, not with export itself); ephemerals are left out unless
//! asked for; existing nodes are a conflict (exit 4, nothing written) unless --overwrite;
//! --under moves the tree; bad input exits 1 with a message and writes nothing; exporting a
//! missing path exits 3.

use baton::{Client, CreateOptions};
use baton_tests::{Daemon, cli};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Output, Stdio};

/// Runs `baton --addr <daemon> ARGS` with `input` on stdin.
fn baton(daemon: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut command = cli(&daemon.addr());
    command.args(args).env_remove("BATON_LOG").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn baton");
    let mut stdin = child.stdin.take().unwrap();
    // The command may exit before reading everything (a usage error): that is no failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command exited with `status`, and returns its stdout.
#[track_caller]
fn exits(out: &Output, status: i32) -> Vec<u8> {
    assert_eq!(out.status.code(), Some(status), "stderr: {}", stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    out.stdout.clone()
}

/// Asserts the command failed with `status` and a `baton: ` message, printing nothing on
/// stdout; returns the message.
#[track_caller]
fn fails(out: &Output, status: i32) -> String {
    assert!(exits(out, status).is_empty(), "a failure prints nothing on stdout");
    let message = stderr(out);
    assert!(message.starts_with("baton: "), "{message:?}");
    message
}

/// Every node of the daemon's tree and its data, walked with the library client.
async fn tree_of(daemon: &Daemon) -> BTreeMap<String, Vec<u8>> {
    let client = Client::connect(&daemon.addr()).await.unwrap();
    let mut nodes = BTreeMap::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(path) = stack.pop() {
        let (data, _) = client.get(&path).await.unwrap();
        for child in client.children(&path).await.unwrap() {
            stack.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
        nodes.insert(path, data);
    }
    client.close().await.unwrap();
    nodes
}

/// The sample tree: nested nodes, binary, empty and UTF-8 data (newlines, non-ASCII).
async fn fill(client: &Client) {
    let persistent = CreateOptions::persistent();
    for (path, data) in [
        ("/app", &b"v1"[..]),
        ("/app/config", "héllo\nwörld\t\"quoted\"\n".as_bytes()),
        ("/app/config/db", b"postgres://db:5432"),
        ("/app/blob", &[0xff, 0xfe, 0x00, 0x01, 0x80]),
        ("/app/empty", b""),
        ("/app/empty/deeper", b""),
        ("/app/empty/deeper/leaf", b"\x00"),
        ("/other", b"{\"json\": true}"),
    ] {
        client.create(path, data, persistent).await.unwrap();
    }
}

fn document(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_survives_export_and_import_into_a_fresh_daemon() {
    let source = Daemon::start();
    let client = Client::connect(&source.addr()).await.unwrap();
    fill(&client).await;
    let exported = exits(&baton(&source, &["export"], b""), 0);

    let doc = document(&exported);
    assert_eq!((&doc["format"], &doc["version"], &doc["root"]), (&"baton-export".into(), &1.into(), &"/".into()));
    let nodes = doc["nodes"].as_array().unwrap();
    let paths: Vec<&str> = nodes.iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/",
            "/app",
            "/app/blob",
            "/app/config",
            "/app/config/db",
            "/app/empty",
            "/app/empty/deeper",
            "/app/empty/deeper/leaf",
            "/other"
        ],
        "depth first, parents before children, names in order"
    );
    let blob = &nodes[2];
    assert_eq!(
        (&blob["data"], &blob["encoding"], &blob["kind"]),
        (&"//4AAYA=".into(), &"base64".into(), &"persistent".into())
    );
    assert_eq!((&nodes[3]["data"], &nodes[3]["encoding"]), (&"héllo\nwörld\t\"quoted\"\n".into(), &"utf8".into()));
    assert_eq!((&nodes[5]["data"], &nodes[5]["encoding"]), (&"".into(), &"utf8".into()));
    assert_eq!(nodes[1]["stat"]["version"], 0);
    assert!(nodes[1]["stat"]["mtime_ms"].as_u64().unwrap() > 0 && nodes[1]["stat"]["ctime"].is_string());
    assert!(exported.split(|&b| b == b'\n').count() >= nodes.len(), "one node per line");

    let target = Daemon::start();
    let out = baton(&target, &["import"], &exported);
    assert!(exits(&out, 0).is_empty(), "import prints nothing on stdout");
    assert!(stderr(&out).contains("imported 8 node(s)"), "{}", stderr(&out));
    let copied = tree_of(&target).await;
    assert_eq!(copied, tree_of(&source).await);
    assert_eq!(copied["/app/blob"], [0xff, 0xfe, 0x00, 0x01, 0x80]);
    assert_eq!(copied["/app/empty/deeper/leaf"], [0]);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_leaves_out_ephemerals_unless_asked_and_import_skips_them() {
    let daemon = Daemon::start();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    client.create("/svc", b"", CreateOptions::persistent()).await.unwrap();
    client.create("/svc/live", b"me", CreateOptions::ephemeral()).await.unwrap();

    let out = baton(&daemon, &["export", "/svc"], b"");
    let doc = document(&exits(&out, 0));
    assert_eq!(doc["root"], "/svc");
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 1, "{doc}");
    assert!(stderr(&out).contains("left out 1 ephemeral node"), "{}", stderr(&out));

    let with = exits(&baton(&daemon, &["export", "/svc", "--ephemeral"], b""), 0);
    let doc = document(&with);
    assert_eq!((&doc["nodes"][1]["path"], &doc["nodes"][1]["kind"]), (&"/svc/live".into(), &"ephemeral".into()));

    let target = Daemon::start();
    let out = baton(&target, &["import"], &with);
    exits(&out, 0);
    assert!(stderr(&out).contains("skipping 1 ephemeral node"), "{}", stderr(&out));
    assert_eq!(tree_of(&target).await.keys().collect::<Vec<_>>(), ["/", "/svc"]);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_over_existing_nodes_exits_4_and_writes_nothing_unless_overwrite() {
    let source = Daemon::start();
    let client = Client::connect(&source.addr()).await.unwrap();
    fill(&client).await;
    client.close().await.unwrap();
    let exported = exits(&baton(&source, &["export", "/app"], b""), 0);

    let target = Daemon::start();
    let client = Client::connect(&target.addr()).await.unwrap();
    client.create("/app", b"mine", CreateOptions::persistent()).await.unwrap();
    client.create("/app/config", b"mine too", CreateOptions::persistent()).await.unwrap();
    client.create("/app/local", b"only here", CreateOptions::persistent()).await.unwrap();
    let before = tree_of(&target).await;

    let message = fails(&baton(&target, &["import"], &exported), 4);
    assert!(message.contains("node exists: /app, /app/config; nothing was imported"), "{message}");
    assert_eq!(tree_of(&target).await, before, "nothing was imported, not even the new nodes");

    let out = baton(&target, &["import", "--overwrite"], &exported);
    exits(&out, 0);
    assert!(stderr(&out).contains("imported 7 node(s): 5 created, 2 updated"), "{}", stderr(&out));
    let after = tree_of(&target).await;
    let source_tree = tree_of(&source).await;
    for (path, data) in source_tree.iter().filter(|(p, _)| p.starts_with("/app")) {
        assert_eq!(after.get(path), Some(data), "{path}");
    }
    assert_eq!(after["/app/local"], b"only here", "nodes not in the document are left alone");
    assert_eq!(client.get("/app").await.unwrap().1.version, 1, "overwrite sets the data");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_under_places_the_tree_below_a_path_creating_missing_parents() {
    let source = Daemon::start();
    let client = Client::connect(&source.addr()).await.unwrap();
    fill(&client).await;
    client.close().await.unwrap();
    let exported = exits(&baton(&source, &["export", "/app/config"], b""), 0);

    let target = Daemon::start();
    exits(&baton(&target, &["import", "--under", "/restore/v1"], &exported), 0);
    let tree = tree_of(&target).await;
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        ["/", "/restore", "/restore/v1", "/restore/v1/app", "/restore/v1/app/config", "/restore/v1/app/config/db"]
    );
    assert_eq!(tree["/restore"], b"", "missing parents are created empty");
    assert_eq!(tree["/restore/v1/app"], b"", "the exported root's parent is not in the document");
    assert_eq!(tree["/restore/v1/app/config/db"], b"postgres://db:5432");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_exits_1_with_a_message_and_writes_nothing() {
    let daemon = Daemon::start();
    let good = |nodes: &str| format!(r#"{{"format":"baton-export","version":1,"root":"/","nodes":[{nodes}]}}"#);
    let cases = [
        (String::new(), "not a baton export document"),
        ("this is not json".to_owned(), "not a baton export document"),
        (r#"{"format":"baton-export","version":1,"nodes":[{"path":"/a"}"#.to_owned(), "EOF while parsing"),
        (r#"{"format":"zk-dump","version":1,"nodes":[]}"#.to_owned(), "\"format\" is \"zk-dump\""),
        (r#"{"format":"baton-export","version":9,"nodes":[]}"#.to_owned(), "version 9 is not supported"),
        (good(r#"{"path":"/ok"},{"path":"no-slash"}"#), "node 1 of the document: invalid path \"no-slash\""),
        (good(r#"{"path":"/a//b"}"#), "invalid path \"/a//b\""),
        (good(r#"{"path":"/a","data":"%%%%","encoding":"base64"}"#), "/a: \"data\" is not valid base64"),
        (good(r#"{"path":"/a","data":"x","encoding":"rot13"}"#), "unknown variant `rot13`"),
        (good(r#"{"path":"/a"},{"path":"/a"}"#), "/a appears twice"),
        (good(r#"{"path":"/a","data":7}"#), "invalid type"),
    ];
    for (input, expected) in &cases {
        let message = fails(&baton(&daemon, &["import"], input.as_bytes()), 1);
        assert!(message.contains(expected), "input {input:?}: {message:?} lacks {expected:?}");
    }
    let message = fails(&baton(&daemon, &["import"], &[0xff, 0xfe]), 1);
    assert!(message.contains("reading the document from stdin"), "{message}");
    let message = fails(&baton(&daemon, &["import", "--under", "rel"], good("").as_bytes()), 1);
    assert!(message.contains("--under \"rel\""), "{message}");
    assert_eq!(tree_of(&daemon).await.keys().collect::<Vec<_>>(), ["/"], "nothing was written");
}

#[test]
fn export_of_a_missing_path_exits_3() {
    let daemon = Daemon::start();
    let message = fails(&baton(&daemon, &["export", "/nope"], b""), 3);
    assert!(message.contains("/nope"), "{message}");
}

#[test]
fn help_documents_the_format_and_the_ephemeral_rule() {
    let daemon = Daemon::start();
    let export_help = String::from_utf8(exits(&baton(&daemon, &["export", "--help"], b""), 0)).unwrap();
    for expected in ["Ephemeral nodes are left out unless", "\"encoding\"", "base64", "\"format\":\"baton-export\""] {
        assert!(export_help.contains(expected), "export --help lacks {expected:?}:\n{export_help}");
    }
    let import_help = String::from_utf8(exits(&baton(&daemon, &["import", "--help"], b""), 0)).unwrap();
    for expected in ["--overwrite", "--under", "the exit status is 4", "\"stat\" is ignored"] {
        assert!(import_help.contains(expected), "import --help lacks {expected:?}:\n{import_help}");
    }
}
