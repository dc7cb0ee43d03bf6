//! The tree through the real client against the real daemon: every node kind (persistent,
//! ephemeral, sequential, container, TTL), every operation with and without versions, every
//! domain error, the full Stat, multi's all-or-nothing results, sync, ephemerals, and zxid
//! order.

use baton::{Client, CreateOptions, Error, ErrorCode, MultiOp, OpResult, SessionId, Stat, Zxid};
use baton_tests::Daemon;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(5);

/// The default `node_data_max`.
const MIB: usize = 1024 * 1024;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The wire code of a failed call, panicking with context if it did not fail.
fn code<T: std::fmt::Debug>(result: baton::Result<T>, what: &str) -> ErrorCode {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("{what}: error without a code: {e:?}")),
    }
}

fn create_op(path: &str, data: &[u8], options: CreateOptions) -> MultiOp {
    MultiOp::Create(baton::CreateRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        kind: options.kind,
        sequential: options.sequential,
        acl: Vec::new(),
    })
}

/// The 10-digit suffix of a sequential node's name after `prefix`, parsed.
fn suffix(path: &str, prefix: &str) -> i32 {
    let digits = path.strip_prefix(prefix).unwrap_or_else(|| panic!("{path} does not start with {prefix}"));
    assert_eq!(digits.len(), 10, "{path}: the suffix is 10 digits");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{path}: the suffix is zero-padded digits");
    digits.parse().unwrap()
}

async fn connect(daemon: &Daemon) -> Client {
    Client::connect(&daemon.addr()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_delete_honour_versions_and_report_bad_version() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let (path, created) = c.create("/n", b"v0", CreateOptions::persistent()).await.unwrap();
    assert_eq!(path, "/n");
    let (data, stat) = c.get("/n").await.unwrap();
    assert_eq!((data.as_slice(), stat), (&b"v0"[..], created));

    let s1 = c.set("/n", b"v1", Some(0)).await.unwrap();
    assert_eq!(s1.version, 1);
    let err = c.set("/n", b"stale", Some(0)).await.unwrap_err();
    assert!(err.is_bad_version(), "{err:?}");
    let s2 = c.set("/n", b"v2", None).await.unwrap();
    assert_eq!(s2.version, 2, "an unconditional set bumps the version too");
    assert_eq!(c.get("/n").await.unwrap().0, b"v2", "the refused set changed nothing");

    let err = c.delete("/n", Some(1)).await.unwrap_err();
    assert!(err.is_bad_version(), "{err:?}");
    assert!(c.exists("/n").await.unwrap().is_some(), "a refused delete leaves the node");
    c.delete("/n", Some(2)).await.unwrap();
    assert!(c.exists("/n").await.unwrap().is_none());

    c.create("/m", b"", CreateOptions::persistent()).await.unwrap();
    c.set("/m", b"x", None).await.unwrap();
    c.delete("/m", None).await.unwrap();
    assert!(c.get("/m").await.unwrap_err().is_no_node(), "an unconditional delete removes any version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_nodes_are_no_node_and_existing_ones_node_exists() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/a", b"", CreateOptions::persistent()).await.unwrap();
    assert!(c.create("/a", b"again", CreateOptions::persistent()).await.unwrap_err().is_node_exists());
    assert!(c.create("/a", b"", CreateOptions::ephemeral()).await.unwrap_err().is_node_exists());
    assert_eq!(c.get("/a").await.unwrap().0, b"", "a refused create changed nothing");
    assert_eq!(code(c.create("/", b"", CreateOptions::persistent()).await, "create /"), ErrorCode::NodeExists);

    assert!(c.create("/missing/child", b"", CreateOptions::persistent()).await.unwrap_err().is_no_node());
    assert!(c.get("/missing").await.unwrap_err().is_no_node());
    assert!(c.set("/missing", b"", None).await.unwrap_err().is_no_node());
    assert!(c.set("/missing", b"", Some(0)).await.unwrap_err().is_no_node());
    assert!(c.delete("/missing", None).await.unwrap_err().is_no_node());
    assert!(c.children("/missing").await.unwrap_err().is_no_node());
    assert!(c.children_with_stats("/missing").await.unwrap_err().is_no_node());
    assert_eq!(c.exists("/missing").await.unwrap(), None);
    assert_eq!(c.children("/").await.unwrap(), ["a"], "no failed call created anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_children_cannot_be_deleted_and_ephemerals_cannot_have_children() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/p", b"", CreateOptions::persistent()).await.unwrap();
    c.create("/p/c", b"", CreateOptions::persistent()).await.unwrap();
    assert_eq!(code(c.delete("/p", None).await, "delete /p"), ErrorCode::NotEmpty);
    assert_eq!(code(c.delete("/p", Some(0)).await, "delete /p at its version"), ErrorCode::NotEmpty);
    assert!(c.exists("/p/c").await.unwrap().is_some());

    c.create("/e", b"", CreateOptions::ephemeral()).await.unwrap();
    for options in [
        CreateOptions::persistent(),
        CreateOptions::ephemeral(),
        CreateOptions::persistent().sequential(),
        CreateOptions::container(),
        CreateOptions::ttl(Duration::from_secs(60)),
    ] {
        let got = code(c.create("/e/child", b"", options).await, "child of an ephemeral");
        assert_eq!(got, ErrorCode::NoChildrenForEphemerals, "{options:?}");
    }
    assert!(c.children("/e").await.unwrap().is_empty());
    assert_eq!(c.exists("/e").await.unwrap().unwrap().cversion, 0, "refused creates leave cversion alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_refused_by_every_operation() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let long = format!("/{}", "x".repeat(1024));
    let bad: Vec<&str> = vec!["", "a", "/a/", "//", "/a/./b", "/a/../b", "/a\0b", "/a/b\0", "/a\n", &long];
    for p in bad {
        let shown = format!("{:?}", p.chars().take(20).collect::<String>());
        let invalid = ErrorCode::InvalidPath;
        assert_eq!(code(c.create(p, b"", CreateOptions::persistent()).await, "create"), invalid, "create {shown}");
        assert_eq!(code(c.get(p).await, "get"), invalid, "get {shown}");
        assert_eq!(code(c.exists(p).await, "exists"), invalid, "exists {shown}");
        assert_eq!(code(c.set(p, b"", None).await, "set"), invalid, "set {shown}");
        assert_eq!(code(c.delete(p, None).await, "delete"), invalid, "delete {shown}");
        assert_eq!(code(c.children(p).await, "children"), invalid, "children {shown}");
        assert_eq!(code(c.children_with_stats(p).await, "children_with_stats"), invalid, "children {shown}");
        assert_eq!(code(c.sync(p).await, "sync"), invalid, "sync {shown}");
    }
    // The same paths with their parent present: validity must not depend on the tree.
    c.create("/a", b"", CreateOptions::persistent()).await.unwrap();
    for p in ["/a/", "/a/./b", "/a/../b", "/a/.", "/a/..", "/a\0b"] {
        let got = code(c.create(p, b"", CreateOptions::persistent()).await, "create under /a");
        assert_eq!(got, ErrorCode::InvalidPath, "create {p:?} with /a present");
    }
    assert_eq!(c.children("/").await.unwrap(), ["a"], "nothing invalid was created");
    assert!(c.children("/a").await.unwrap().is_empty(), "nothing invalid was created");

    // The limit itself is allowed: 1024 bytes exactly.
    let longest = format!("/{}", "y".repeat(1023));
    assert_eq!(c.create(&longest, b"", CreateOptions::persistent()).await.unwrap().0, longest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_path_whose_parent_is_missing_is_invalid_path_not_no_node() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    for p in ["/a/", "/a/.", "/a/.."] {
        let got = code(c.create(p, b"", CreateOptions::persistent()).await, "create");
        assert_eq!(got, ErrorCode::InvalidPath, "create {p:?} (no /a)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_sequential_name_whose_parent_is_missing_is_invalid_path_not_no_node() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let sequential = CreateOptions::persistent().sequential();
    let long = format!("/a/{}", "x".repeat(1020));
    let mut wrong = Vec::new();
    for p in ["/a/bad\0name-", "/a/bad\nname-", long.as_str()] {
        let shown = format!("{:?}", &p[..12]);
        let missing = code(c.create(p, b"", sequential).await, "sequential create, /a missing");
        c.create("/a", b"", CreateOptions::persistent()).await.unwrap();
        let present = code(c.create(p, b"", sequential).await, "sequential create, /a present");
        c.delete("/a", None).await.unwrap();
        assert_eq!(present, ErrorCode::InvalidPath, "sequential {shown} with /a present");
        if missing != ErrorCode::InvalidPath {
            wrong.push(format!("{shown}: {missing:?}"));
        }
    }
    assert!(wrong.is_empty(), "invalid sequential names with a missing parent, not InvalidPath: {wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_one_mib_is_too_large_and_one_mib_fits() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let too_big = vec![7u8; MIB + 1];
    assert_eq!(code(c.create("/big", &too_big, CreateOptions::persistent()).await, "create"), ErrorCode::TooLarge);
    assert!(c.exists("/big").await.unwrap().is_none());

    let fits = vec![9u8; MIB];
    let (_, stat) = c.create("/big", &fits, CreateOptions::persistent()).await.unwrap();
    assert_eq!(stat.data_length as usize, MIB);
    assert_eq!(code(c.set("/big", &too_big, None).await, "set"), ErrorCode::TooLarge);
    let (data, after) = c.get("/big").await.unwrap();
    assert!(data == fits, "a refused set changed the data");
    assert_eq!(after, stat, "a refused set changed the stat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_exists_and_cannot_be_deleted() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let root = c.exists("/").await.unwrap().expect("the root always exists");
    assert_eq!(root.ephemeral_owner, SessionId::NONE);
    assert!(c.delete("/", None).await.is_err(), "deleting the root must be refused");
    assert!(c.delete("/", Some(root.version)).await.is_err(), "deleting the root must be refused");
    assert!(c.exists("/").await.unwrap().is_some());
    c.create("/still-works", b"", CreateOptions::persistent()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_fields_change_exactly_when_they_should() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;

    let before = now_ms();
    let (_, created) = c.create("/s", b"abc", CreateOptions::persistent()).await.unwrap();
    let after = now_ms();
    assert!(created.czxid > Zxid::ZERO);
    assert_eq!((created.mzxid, created.pzxid), (created.czxid, created.czxid), "a new node: czxid = mzxid = pzxid");
    assert!((before..=after).contains(&created.ctime_ms), "ctime {} not in [{before}, {after}]", created.ctime_ms);
    assert_eq!(created.mtime_ms, created.ctime_ms);
    assert_eq!((created.version, created.cversion, created.aversion), (0, 0, 0));
    assert_eq!(created.ephemeral_owner, SessionId::NONE);
    assert_eq!((created.data_length, created.num_children), (3, 0));

    // A data change: mzxid, mtime, version and data_length move; nothing else.
    let set = c.set("/s", b"hello", None).await.unwrap();
    assert!(set.mzxid > created.czxid);
    assert!(set.mtime_ms >= created.mtime_ms && set.mtime_ms <= now_ms());
    assert_eq!((set.version, set.data_length), (1, 5));
    let unchanged = Stat { mzxid: created.mzxid, mtime_ms: created.mtime_ms, version: 0, data_length: 3, ..set };
    assert_eq!(unchanged, created, "a set changes only mzxid, mtime, version and data_length");

    // A child create: pzxid, cversion and num_children move; the data fields do not.
    let (_, child) = c.create("/s/c", b"", CreateOptions::persistent()).await.unwrap();
    let with_child = c.exists("/s").await.unwrap().unwrap();
    assert_eq!(with_child.pzxid, child.czxid, "pzxid is the child create's zxid");
    assert_eq!((with_child.cversion, with_child.num_children), (1, 1));
    assert_eq!(Stat { pzxid: set.pzxid, cversion: 0, num_children: 0, ..with_child }, set);

    // A change to the child's data does not touch the parent.
    c.set("/s/c", b"x", None).await.unwrap();
    assert_eq!(c.exists("/s").await.unwrap().unwrap(), with_child, "a child's data change leaves the parent alone");

    // A child delete: pzxid moves to the delete's zxid, cversion counts it, num_children drops.
    c.delete("/s/c", None).await.unwrap();
    let delete_zxid = c.sync("/").await.unwrap();
    let without_child = c.exists("/s").await.unwrap().unwrap();
    assert_eq!(without_child.pzxid, delete_zxid);
    assert!(delete_zxid > child.czxid);
    assert_eq!((without_child.cversion, without_child.num_children), (2, 0), "cversion counts deletes too");
    assert_eq!(Stat { pzxid: with_child.pzxid, cversion: 1, num_children: 1, ..without_child }, with_child);

    // An ephemeral's owner is its session; its children fields never move.
    let (_, eph) = c.create("/s/e", b"", CreateOptions::ephemeral()).await.unwrap();
    assert_eq!(eph.ephemeral_owner, c.session_id());
    assert!(!eph.ephemeral_owner.is_none());
    // aversion never changes without an ACL change.
    assert_eq!(c.exists("/s").await.unwrap().unwrap().aversion, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zxids_strictly_increase_across_writes() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let other = connect(&daemon).await;
    let mut zxids = Vec::new();
    zxids.push(c.create("/z", b"", CreateOptions::persistent()).await.unwrap().1.czxid);
    for i in 0..5 {
        zxids.push(c.set("/z", format!("{i}").as_bytes(), None).await.unwrap().mzxid);
        let (_, stat) = other.create(&format!("/z/{i}"), b"", CreateOptions::persistent()).await.unwrap();
        zxids.push(stat.czxid);
    }
    other.delete("/z/0", None).await.unwrap();
    zxids.push(c.sync("/").await.unwrap());
    zxids.push(c.set("/z", b"end", None).await.unwrap().mzxid);
    assert!(zxids.windows(2).all(|w| w[0] < w[1]), "zxids not strictly increasing: {zxids:?}");
    assert!(c.last_zxid() >= *zxids.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_is_the_parents_cversion() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/q", b"", CreateOptions::persistent()).await.unwrap();
    c.create("/q/a", b"", CreateOptions::persistent()).await.unwrap();
    c.create("/q/b", b"", CreateOptions::persistent()).await.unwrap();
    c.delete("/q/a", None).await.unwrap();
    assert_eq!(c.exists("/q").await.unwrap().unwrap().cversion, 3);

    let (p, stat) = c.create("/q/job-", b"d", CreateOptions::persistent().sequential()).await.unwrap();
    assert_eq!(p, "/q/job-0000000003");
    assert_eq!(suffix(&p, "/q/job-"), 3);
    assert_eq!(stat.ephemeral_owner, SessionId::NONE);
    assert_eq!(c.get(&p).await.unwrap().0, b"d");

    let (p, stat) = c.create("/q/lock-", b"", CreateOptions::ephemeral().sequential()).await.unwrap();
    assert_eq!(p, "/q/lock-0000000004");
    assert_eq!(stat.ephemeral_owner, c.session_id());

    // A prefix ending in '/' names the node by its suffix alone, as in ZooKeeper.
    let (p, _) = c.create("/q/", b"", CreateOptions::persistent().sequential()).await.unwrap();
    assert_eq!(p, "/q/0000000005");
    let parent = c.exists("/q").await.unwrap().unwrap();
    assert_eq!(parent.cversion, 6);
    assert_eq!(c.children("/q").await.unwrap(), ["0000000005", "b", "job-0000000003", "lock-0000000004"]);

    // Under the root too.
    let root_cversion = c.exists("/").await.unwrap().unwrap().cversion;
    let (p, _) = c.create("/top-", b"", CreateOptions::persistent().sequential()).await.unwrap();
    assert_eq!(suffix(&p, "/top-"), root_cversion);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_never_repeats_after_deletes() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/q", b"", CreateOptions::persistent()).await.unwrap();
    let mut seen = Vec::new();
    for round in 0..10 {
        let options = if round % 2 == 0 {
            CreateOptions::persistent().sequential()
        } else {
            CreateOptions::ephemeral().sequential()
        };
        let cversion = c.exists("/q").await.unwrap().unwrap().cversion;
        let (p, _) = c.create("/q/n-", b"", options).await.unwrap();
        let n = suffix(&p, "/q/n-");
        assert_eq!(n, cversion, "round {round}: suffix is the parent's cversion");
        // Delete everything, so a counter based on the number of children would repeat.
        c.delete(&p, None).await.unwrap();
        assert!(c.children("/q").await.unwrap().is_empty());
        seen.push(n);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "suffixes repeat or go backwards: {seen:?}");
    assert_eq!(seen, (0..10).map(|i| i * 2).collect::<Vec<_>>(), "each create and delete counts once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_stays_while_it_has_children_and_goes_with_the_last_one() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let (_, stat) = c.create("/box", b"", CreateOptions::container()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, SessionId::NONE);
    assert_eq!(
        code(c.create("/box-", b"", CreateOptions::container().sequential()).await, "sequential container"),
        ErrorCode::InvalidArgument
    );
    c.create("/box/a", b"", CreateOptions::persistent()).await.unwrap();
    c.create("/box/b", b"", CreateOptions::persistent()).await.unwrap();
    c.delete("/box/a", None).await.unwrap();
    c.set("/box", b"touched", None).await.unwrap();
    assert!(c.exists("/box").await.unwrap().is_some(), "a container with a child stays");

    let (present, gone) = c.exists_and_watch("/box").await.unwrap();
    assert!(present.is_some());
    c.delete("/box/b", None).await.unwrap();
    // The container goes in the same transaction as its last child: the very next read sees it.
    assert!(c.exists("/box").await.unwrap().is_none(), "an emptied container is deleted");
    let event = tokio::time::timeout(WAIT, gone.changed()).await.unwrap().unwrap();
    assert_eq!(event.kind, baton::EventKind::Deleted);

    // Nested containers go together; a persistent ancestor stays.
    c.create("/keep", b"", CreateOptions::persistent()).await.unwrap();
    c.create("/keep/outer", b"", CreateOptions::container()).await.unwrap();
    c.create("/keep/outer/inner", b"", CreateOptions::container()).await.unwrap();
    c.create("/keep/outer/inner/leaf", b"", CreateOptions::persistent()).await.unwrap();
    c.delete("/keep/outer/inner/leaf", None).await.unwrap();
    assert!(c.exists("/keep/outer").await.unwrap().is_none(), "emptied container ancestors go too");
    assert!(c.exists("/keep").await.unwrap().is_some());

    // Emptied by a multi: the container goes too, and the reply has one result per op.
    c.create("/keep/box", b"", CreateOptions::container()).await.unwrap();
    c.create("/keep/box/last", b"", CreateOptions::persistent()).await.unwrap();
    let results = c.multi(vec![MultiOp::Delete { path: "/keep/box/last".into(), version: None }]).await.unwrap();
    assert_eq!(results, [OpResult::Deleted]);
    assert!(c.exists("/keep/box").await.unwrap().is_none());
    // A multi that empties a container and refills it in one go keeps it.
    c.create("/keep/box", b"", CreateOptions::container()).await.unwrap();
    c.create("/keep/box/a", b"", CreateOptions::persistent()).await.unwrap();
    let ops = vec![
        MultiOp::Delete { path: "/keep/box/a".into(), version: None },
        create_op("/keep/box/b", b"", CreateOptions::persistent()),
    ];
    c.multi(ops).await.unwrap();
    assert_eq!(c.children("/keep/box").await.unwrap(), ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_goes_when_its_last_ephemeral_child_goes_with_its_session() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let owner = connect(&daemon).await;
    c.create("/box", b"", CreateOptions::container()).await.unwrap();
    owner.create("/box/member", b"", CreateOptions::ephemeral()).await.unwrap();
    owner.close().await.unwrap();
    assert!(c.exists("/box/member").await.unwrap().is_none());
    assert!(c.exists("/box").await.unwrap().is_none(), "the session's close empties and deletes the container");
}

/// One txn reaps at most 10,000 containers (so that no txn grows with the tree); a session's
/// end that empties more leaves the rest to the next tick, which takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_beyond_one_txns_share_go_at_the_next_tick() {
    const CONTAINERS: usize = 10_001;
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let owner = connect(&daemon).await;
    c.create("/boxes", b"", CreateOptions::persistent()).await.unwrap();
    let boxes = (0..CONTAINERS).map(|i| create_op(&format!("/boxes/{i}"), b"", CreateOptions::container()));
    c.multi(boxes.collect()).await.unwrap();
    let members = (0..CONTAINERS).map(|i| create_op(&format!("/boxes/{i}/m"), b"", CreateOptions::ephemeral()));
    owner.multi(members.collect()).await.unwrap();
    owner.close().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = c.children("/boxes").await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "containers never reaped: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_node_is_reaped_once_childless_and_unmodified_for_its_ttl() {
    const TTL: Duration = Duration::from_millis(400);
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    assert_eq!(
        code(c.create("/zero", b"", CreateOptions::ttl(Duration::ZERO)).await, "TTL 0"),
        ErrorCode::InvalidArgument
    );

    // A TTL node with a child outlives its TTL.
    let (_, parent) = c.create("/parent", b"", CreateOptions::ttl(TTL)).await.unwrap();
    c.create("/parent/child", b"", CreateOptions::persistent()).await.unwrap();
    // A TTL node kept modified outlives its TTL too.
    let (_, mut busy) = c.create("/busy", b"", CreateOptions::ttl(TTL)).await.unwrap();
    let started = now_ms();
    while now_ms() < started + 2 * TTL.as_millis() as u64 {
        busy = c.set("/busy", b"still here", None).await.unwrap();
        tokio::time::sleep(TTL / 8).await;
    }
    assert!(c.exists("/parent").await.unwrap().is_some(), "a TTL node with children is kept");
    assert!(now_ms() > parent.mtime_ms + 2 * TTL.as_millis() as u64);
    assert!(c.exists("/busy").await.unwrap().is_some(), "a TTL node modified within its TTL is kept");

    // Once left alone (and childless), both go, and not before their TTL has passed.
    let (_, busy_gone) = c.exists_and_watch("/busy").await.unwrap();
    let event = tokio::time::timeout(WAIT, busy_gone.changed()).await.expect("reaped in time").unwrap();
    let seen_at = now_ms();
    assert_eq!(event.kind, baton::EventKind::Deleted);
    assert!(seen_at >= busy.mtime_ms + TTL.as_millis() as u64, "reaped before its TTL: {seen_at} vs {busy:?}");
    assert!(c.exists("/parent").await.unwrap().is_some(), "still has its child");

    // TTL nodes may be sequential, and are reaped the same way.
    let (seq, _) = c.create("/lease-", b"", CreateOptions::ttl(TTL).sequential()).await.unwrap();
    assert!(seq.starts_with("/lease-"), "{seq}");
    let (_, seq_gone) = c.exists_and_watch(&seq).await.unwrap();

    let (_, parent_gone) = c.exists_and_watch("/parent").await.unwrap();
    c.delete("/parent/child", None).await.unwrap();
    let event = tokio::time::timeout(WAIT, parent_gone.changed()).await.expect("reaped in time").unwrap();
    assert_eq!(event.kind, baton::EventKind::Deleted);
    assert!(c.exists("/parent").await.unwrap().is_none());
    let event = tokio::time::timeout(WAIT, seq_gone.changed()).await.expect("reaped in time").unwrap();
    assert_eq!(event.kind, baton::EventKind::Deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_sorted_names_and_children_with_stats_match_get() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/dir", b"", CreateOptions::persistent()).await.unwrap();
    for name in ["zeta", "alpha", "Mid", "beta-2", "beta-10", "ä"] {
        c.create(&format!("/dir/{name}"), name.as_bytes(), CreateOptions::persistent()).await.unwrap();
    }
    c.create("/dir/alpha/deeper", b"", CreateOptions::persistent()).await.unwrap();
    let expected = ["Mid", "alpha", "beta-10", "beta-2", "zeta", "ä"];
    assert_eq!(c.children("/dir").await.unwrap(), expected, "byte-wise sorted names, direct children only");

    let (names, stat) = c.children_and_stat("/dir").await.unwrap();
    assert_eq!(names, expected);
    assert_eq!(stat, c.exists("/dir").await.unwrap().unwrap(), "the node's own stat");

    let with_stats = c.children_with_stats("/dir").await.unwrap();
    assert_eq!(with_stats.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), expected);
    for (name, stat) in &with_stats {
        let (data, own) = c.get(&format!("/dir/{name}")).await.unwrap();
        assert_eq!(*stat, own, "{name}");
        assert_eq!(data, name.as_bytes());
    }
    assert_eq!(with_stats[1].1.num_children, 1, "alpha has one child");
    assert!(c.children("/dir/zeta").await.unwrap().is_empty());
    assert!(c.children_with_stats("/dir/zeta").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_multi_changes_nothing_and_names_the_failing_op() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/m", b"orig", CreateOptions::persistent()).await.unwrap();
    c.create("/m/old", b"", CreateOptions::persistent()).await.unwrap();
    let before = c.exists("/m").await.unwrap().unwrap();
    let zxid_before = c.sync("/").await.unwrap();

    let ops = vec![
        create_op("/m/new", b"", CreateOptions::persistent()),
        MultiOp::Set { path: "/m".into(), data: Some(b"changed".to_vec()), version: Some(0) },
        MultiOp::Check { path: "/m".into(), version: 7 },
        MultiOp::Delete { path: "/m/old".into(), version: None },
    ];
    match c.multi(ops).await {
        Err(Error::MultiFailed { index, code, results }) => {
            assert_eq!((index, code), (2, ErrorCode::BadVersion));
            assert_eq!(
                results,
                [
                    OpResult::Error(ErrorCode::RolledBack),
                    OpResult::Error(ErrorCode::RolledBack),
                    OpResult::Error(ErrorCode::BadVersion),
                    OpResult::Error(ErrorCode::Skipped),
                ]
            );
        }
        other => panic!("expected MultiFailed, got {other:?}"),
    }
    assert!(c.exists("/m/new").await.unwrap().is_none(), "the create was rolled back");
    assert!(c.exists("/m/old").await.unwrap().is_some(), "the delete was not applied");
    let (data, after) = c.get("/m").await.unwrap();
    assert_eq!((data.as_slice(), after), (&b"orig"[..], before), "the set was rolled back");
    assert_eq!(c.sync("/").await.unwrap(), zxid_before, "a failed multi commits no transaction");

    // A later op may depend on an earlier one; the failure of the first op skips all others.
    let ops = vec![
        create_op("/m/old", b"", CreateOptions::persistent()),
        MultiOp::Delete { path: "/m".into(), version: None },
    ];
    match c.multi(ops).await {
        Err(Error::MultiFailed { index: 0, code: ErrorCode::NodeExists, results }) => {
            assert_eq!(results, [OpResult::Error(ErrorCode::NodeExists), OpResult::Error(ErrorCode::Skipped)]);
        }
        other => panic!("expected MultiFailed at op 0, got {other:?}"),
    }
    assert!(c.exists("/m").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_multi_gives_a_result_per_op_all_at_one_zxid() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    c.create("/m", b"v0", CreateOptions::persistent()).await.unwrap();
    c.create("/m/old", b"", CreateOptions::persistent()).await.unwrap();
    let before = c.sync("/").await.unwrap();

    let ops = vec![
        MultiOp::Check { path: "/m".into(), version: 0 },
        create_op("/m/new", b"n", CreateOptions::persistent()),
        MultiOp::Set { path: "/m".into(), data: Some(b"v1".to_vec()), version: Some(0) },
        MultiOp::Delete { path: "/m/old".into(), version: Some(0) },
        // Ops see the effects of the ones before them.
        MultiOp::Set { path: "/m/new".into(), data: Some(b"n2".to_vec()), version: Some(0) },
    ];
    let results = c.multi(ops).await.unwrap();
    assert_eq!(results.len(), 5, "{results:?}");
    assert_eq!(results[0], OpResult::Checked);
    let OpResult::Created { path, stat: created } = &results[1] else { panic!("{results:?}") };
    assert_eq!(path, "/m/new");
    let OpResult::Set(set) = results[2] else { panic!("{results:?}") };
    assert_eq!(results[3], OpResult::Deleted);
    let OpResult::Set(set_new) = results[4] else { panic!("{results:?}") };

    let zxid = created.czxid;
    assert!(zxid > before);
    assert_eq!((set.mzxid, set_new.mzxid), (zxid, zxid), "every op of a multi shares one zxid");
    assert_eq!(set.version, 1);
    assert_eq!(set_new.version, 1);
    let parent = c.exists("/m").await.unwrap().unwrap();
    assert_eq!(parent.pzxid, zxid);
    assert_eq!((parent.cversion, parent.num_children), (3, 1));
    assert_eq!(c.sync("/").await.unwrap(), zxid, "one multi, one transaction");
    assert_eq!(c.get("/m/new").await.unwrap().0, b"n2");
    assert_eq!(c.get("/m").await.unwrap().0, b"v1");
    assert!(c.exists("/m/old").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_in_a_multi_see_the_effects_of_the_ops_before_them() {
    let daemon = Daemon::start();
    let c = connect(&daemon).await;
    let seq = CreateOptions::persistent().sequential();
    let ops = vec![
        create_op("/q", b"", CreateOptions::persistent()),
        create_op("/q/n-", b"", seq),
        create_op("/q/n-", b"", seq),
        create_op("/q/tmp", b"", CreateOptions::persistent()),
        MultiOp::Delete { path: "/q/tmp".into(), version: Some(0) },
        create_op("/q/n-", b"", CreateOptions::ephemeral().sequential()),
    ];
    let results = c.multi(ops).await.unwrap();
    let paths: Vec<&str> = results
        .iter()
        .filter_map(|r| match r {
            OpResult::Created { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(paths, ["/q", "/q/n-0000000000", "/q/n-0000000001", "/q/tmp", "/q/n-0000000004"]);
    assert_eq!(c.children("/q").await.unwrap(), ["n-0000000000", "n-0000000001", "n-0000000004"]);
    assert_eq!(c.exists("/q").await.unwrap().unwrap().cversion, 5);

    // A node created earlier in the multi is an ephemeral parent for the ops after it.
    let ops =
        vec![create_op("/e", b"", CreateOptions::ephemeral()), create_op("/e/child", b"", CreateOptions::persistent())];
    match c.multi(ops).await {
        Err(Error::MultiFailed { index: 1, code: ErrorCode::NoChildrenForEphemerals, .. }) => {}
        other => panic!("expected NoChildrenForEphemerals at op 1, got {other:?}"),
    }
    assert!(c.exists("/e").await.unwrap().is_none());
    assert!(c.ephemerals(None).await.unwrap().iter().all(|p| p != "/e"));

    // Children deleted first make their parent deletable in the same multi.
    let ops = vec![
        MultiOp::Delete { path: "/q/n-0000000000".into(), version: None },
        MultiOp::Delete { path: "/q/n-0000000001".into(), version: None },
        MultiOp::Delete { path: "/q/n-0000000004".into(), version: None },
        MultiOp::Delete { path: "/q".into(), version: None },
    ];
    assert_eq!(c.multi(ops).await.unwrap(), vec![OpResult::Deleted; 4]);
    assert!(c.exists("/q").await.unwrap().is_none());
    assert!(c.ephemerals(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_returns_a_zxid_at_least_everything_seen() {
    let daemon = Daemon::start();
    let a = connect(&daemon).await;
    let b = connect(&daemon).await;
    let mut last = Zxid::ZERO;
    for i in 0..10 {
        let (_, stat) = b.create(&format!("/s{i}"), b"", CreateOptions::persistent()).await.unwrap();
        last = stat.czxid;
    }
    let synced = a.sync("/").await.unwrap();
    assert!(synced >= last, "sync {synced} is behind another client's write {last}");
    assert!(a.last_zxid() >= synced, "the client remembers the zxid it synced to");
    let (_, own) = a.create("/after", b"", CreateOptions::persistent()).await.unwrap();
    let again = a.sync("/after").await.unwrap();
    assert!(again >= own.czxid && again > synced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_lists_this_sessions_or_another_sessions_nodes() {
    let daemon = Daemon::start();
    let a = connect(&daemon).await;
    let b = connect(&daemon).await;
    a.create("/dir", b"", CreateOptions::persistent()).await.unwrap();
    a.create("/dir/a1", b"", CreateOptions::ephemeral()).await.unwrap();
    let (seq, _) = a.create("/dir/a-", b"", CreateOptions::ephemeral().sequential()).await.unwrap();
    a.create("/a-persistent", b"", CreateOptions::persistent()).await.unwrap();
    b.create("/b1", b"", CreateOptions::ephemeral()).await.unwrap();

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let a_own = sorted(vec!["/dir/a1".to_owned(), seq.clone()]);
    assert_eq!(sorted(a.ephemerals(None).await.unwrap()), a_own);
    assert_eq!(sorted(b.ephemerals(Some(a.session_id())).await.unwrap()), a_own);
    assert_eq!(a.ephemerals(Some(b.session_id())).await.unwrap(), ["/b1"]);
    assert_eq!(b.ephemerals(None).await.unwrap(), ["/b1"]);

    a.delete("/dir/a1", None).await.unwrap();
    assert_eq!(a.ephemerals(None).await.unwrap(), std::slice::from_ref(&seq));
    // Another session may delete an ephemeral; it leaves its owner's list.
    b.delete(&seq, None).await.unwrap();
    assert!(a.ephemerals(None).await.unwrap().is_empty());
    assert!(a.ephemerals(Some(SessionId(0xdead_beef))).await.unwrap().is_empty(), "an unknown session owns none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_disappears_when_its_session_is_closed() {
    let daemon = Daemon::start();
    let owner = connect(&daemon).await;
    let observer = connect(&daemon).await;
    let (_, stat) = owner.create("/eph", b"", CreateOptions::ephemeral()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, owner.session_id());
    let (_, gone) = observer.exists_and_watch("/eph").await.unwrap();
    let owner_id = owner.session_id();

    owner.close().await.unwrap();
    assert!(observer.exists("/eph").await.unwrap().is_none(), "gone as soon as close() returns");
    let event = tokio::time::timeout(WAIT, gone.changed()).await.unwrap().unwrap();
    assert_eq!(event.kind, baton::EventKind::Deleted);
    assert!(observer.ephemerals(Some(owner_id)).await.unwrap().is_empty());
    assert!(matches!(owner.get("/").await, Err(Error::Closed)), "a closed client refuses calls");
    assert!(owner.close().await.is_ok(), "closing twice is fine");
}
