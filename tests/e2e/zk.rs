//! The ZooKeeper-protocol listener, end to end: the real batond started with `--zk-listen`,
//! driven by `zookeeper-client` (an independent Rust ZooKeeper client from crates.io) and,
//! for what that client cannot be made to send, by hand-built jute frames on a raw socket.
//! Nodes and watches cross between ZooKeeper clients and the native `baton` client.

use baton::{AclEntry, CreateOptions, Perms, Principal};
use baton_tests::pair::{Token, assert_caught_up};
use baton_tests::{Daemon, free_tcp_addr};
use batond::zk::jute::{ConnectRequest, Reader, Writer};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use zookeeper_client as zk;

#[path = "zk_support/mod.rs"]
mod zk_support;

use zk_support::WAIT;

struct Fixture {
    daemon: Daemon,
    zk_addr: SocketAddr,
}

/// A daemon with the ZooKeeper listener (see `zk_support::start`).
fn start() -> Fixture {
    let (daemon, zk_addr) = zk_support::start();
    Fixture { daemon, zk_addr }
}

impl Fixture {
    async fn zk(&self) -> zk::Client {
        tokio::time::timeout(WAIT, zk::Client::connect(&self.zk_addr.to_string()))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    async fn native(&self) -> baton::Client {
        baton::Client::connect(&self.daemon.addr()).await.expect("native connect")
    }
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn event(watcher: zk::OneshotWatcher) -> zk::WatchedEvent {
    tokio::time::timeout(WAIT, watcher.changed()).await.expect("watch event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_client_creates_reads_sets_lists_and_deletes() {
    let f = start();
    let c = f.zk().await;
    let (created, _) = c.create("/a", b"v0", &open()).await.unwrap();
    assert_eq!((created.version, created.data_length, created.num_children), (0, 2, 0));
    assert_eq!(c.create("/a", b"again", &open()).await.unwrap_err(), zk::Error::NodeExists);
    assert_eq!(c.create("/missing/x", b"", &open()).await.unwrap_err(), zk::Error::NoNode);

    let (data, stat) = c.get_data("/a").await.unwrap();
    assert_eq!((data.as_slice(), stat), (&b"v0"[..], created));
    let set = c.set_data("/a", b"v1", Some(0)).await.unwrap();
    assert_eq!((set.version, set.czxid), (1, created.czxid));
    assert!(set.mzxid > created.mzxid);
    assert_eq!(c.set_data("/a", b"stale", Some(0)).await.unwrap_err(), zk::Error::BadVersion);

    c.create("/a/c", b"", &open()).await.unwrap();
    c.create("/a/b", b"", &open()).await.unwrap();
    let mut children = c.list_children("/a").await.unwrap();
    children.sort();
    assert_eq!(children, ["b", "c"]);
    let (_, parent) = c.get_children("/a").await.unwrap();
    assert_eq!((parent.num_children, parent.cversion), (2, 2));
    assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
    assert_eq!(c.delete("/a/b", Some(5)).await.unwrap_err(), zk::Error::BadVersion);
    c.delete("/a/b", Some(0)).await.unwrap();
    c.delete("/a/c", None).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(c.check_stat("/a").await.unwrap(), None);
    assert_eq!(c.get_data("/a").await.unwrap_err(), zk::Error::NoNode);
    c.sync("/").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_for_exists_data_and_children() {
    let f = start();
    let (watching, writer) = (f.zk().await, f.zk().await);
    let (missing, created_watch) = watching.check_and_watch_stat("/w").await.unwrap();
    assert_eq!(missing, None, "exists on a missing node still leaves a watch");
    writer.create("/w", b"", &open()).await.unwrap();
    let e = event(created_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeCreated, "/w"));

    let (_, _, data_watch) = watching.get_and_watch_data("/w").await.unwrap();
    let (_, _, child_watch) = watching.get_and_watch_children("/w").await.unwrap();
    writer.set_data("/w", b"x", None).await.unwrap();
    let e = event(data_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDataChanged, "/w"));
    writer.create("/w/kid", b"", &open()).await.unwrap();
    let e = event(child_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeChildrenChanged, "/w"));

    // A persistent recursive watch (addWatch) sees the whole subtree, and keeps firing.
    let mut recursive = watching.watch("/w", zk::AddWatchMode::PersistentRecursive).await.unwrap();
    writer.create("/w/kid/deep", b"", &open()).await.unwrap();
    writer.delete("/w/kid/deep", None).await.unwrap();
    let first = tokio::time::timeout(WAIT, recursive.changed()).await.unwrap();
    let second = tokio::time::timeout(WAIT, recursive.changed()).await.unwrap();
    assert_eq!((first.event_type, first.path.as_str()), (zk::EventType::NodeCreated, "/w/kid/deep"));
    assert_eq!((second.event_type, second.path.as_str()), (zk::EventType::NodeDeleted, "/w/kid/deep"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing_with_a_result_per_op() {
    let f = start();
    let c = f.zk().await;
    c.create("/m", b"0", &open()).await.unwrap();
    let mut writer = c.new_multi_writer();
    writer.add_check_version("/m", 0).unwrap();
    writer.add_create("/m/a", b"a", &open()).unwrap();
    writer.add_set_data("/m", b"1", Some(0)).unwrap();
    writer.add_delete("/m/a", None).unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(results[0], zk::MultiWriteResult::Check));
    assert!(matches!(results[1], zk::MultiWriteResult::Create { .. }));
    assert!(matches!(results[2], zk::MultiWriteResult::SetData { stat } if stat.version == 1));
    assert!(matches!(results[3], zk::MultiWriteResult::Delete));

    let mut failing = c.new_multi_writer();
    failing.add_create("/m/b", b"", &open()).unwrap();
    failing.add_delete("/m/missing", None).unwrap();
    failing.add_set_data("/m", b"2", None).unwrap();
    let err = failing.commit().await.unwrap_err();
    assert_eq!(err, zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::NoNode });
    assert_eq!(c.check_stat("/m/b").await.unwrap(), None, "nothing of a failed multi is applied");
    assert_eq!(c.get_data("/m").await.unwrap().0, b"1");
    assert!(c.new_multi_writer().commit().await.unwrap().is_empty());
    // multiRead: each read's result, or its error, in one reply.
    let mut reader = c.new_multi_reader();
    reader.add_get_data("/m").unwrap();
    reader.add_get_children("/m").unwrap();
    reader.add_get_data("/m/absent").unwrap();
    let reads = reader.commit().await.unwrap();
    assert!(
        matches!(&reads[0], zk::MultiReadResult::Data { data, stat } if data == b"1" && stat.version == 1),
        "{reads:?}"
    );
    assert!(matches!(&reads[1], zk::MultiReadResult::Children { children } if children.is_empty()), "{reads:?}");
    assert!(matches!(&reads[2], zk::MultiReadResult::Error { err: zk::Error::NoNode }), "{reads:?}");
    let mut any_version = c.new_multi_writer();
    any_version.add_check_version("/m", -1).unwrap();
    assert!(matches!(any_version.commit().await.unwrap()[..], [zk::MultiWriteResult::Check]), "-1 checks existence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_belong_to_the_session_and_go_when_it_closes() {
    let f = start();
    let (owner, observer) = (f.zk().await, f.zk().await);
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let (stat, _) = owner.create("/e", b"", &ephemeral).await.unwrap();
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    assert_eq!(owner.list_ephemerals("/").await.unwrap(), ["/e"]);
    assert!(observer.list_ephemerals("/").await.unwrap().is_empty());
    let (_, gone) = observer.check_and_watch_stat("/e").await.unwrap();
    drop(owner); // closeSession
    let e = event(gone).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDeleted, "/e"));
    assert_eq!(observer.check_stat("/e").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_take_the_parents_cversion() {
    let f = start();
    let c = f.zk().await;
    c.create("/q", b"", &open()).await.unwrap();
    let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let mut numbers = Vec::new();
    for _ in 0..2 {
        numbers.push(c.create("/q/n-", b"", &sequential).await.unwrap().1.into_i64());
    }
    c.delete("/q/n-0000000000", None).await.unwrap();
    numbers.push(c.create("/q/n-", b"", &sequential).await.unwrap().1.into_i64());
    assert_eq!(numbers, [0, 1, 3], "deletes move the counter too");
    let mut children = c.list_children("/q").await.unwrap();
    children.sort();
    assert_eq!(children, ["n-0000000001", "n-0000000003"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_watches_cross_between_zookeeper_and_native_clients() {
    let f = start();
    let (z, native) = (f.zk().await, f.native().await);
    let (zk_stat, _) = z.create("/from-zk", b"hello", &open()).await.unwrap();
    let (data, stat) = native.get("/from-zk").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!((stat.czxid.0 as i64, stat.version, stat.ctime_ms as i64), (zk_stat.czxid, 0, zk_stat.ctime));

    let anyone = [AclEntry::new(Principal::Anyone, Perms::ALL)];
    native.create_with_acl("/from-baton", b"native", CreateOptions::persistent(), &anyone).await.unwrap();
    let (_, _, watch) = z.get_and_watch_data("/from-baton").await.unwrap();
    assert_eq!(z.get_data("/from-baton").await.unwrap().0, b"native");
    native.set("/from-baton", b"changed", None).await.unwrap();
    let e = event(watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDataChanged, "/from-baton"));
    assert_eq!(z.get_data("/from-baton").await.unwrap().0, b"changed");
    let mut children = z.list_children("/").await.unwrap();
    children.sort();
    // ZooKeeper clients also see the `/zookeeper` system node, which is not in the tree.
    assert_eq!(children, ["from-baton", "from-zk", "zookeeper"]);
}

/// On a warm standby the listener serves ZooKeeper clients as a read-only ZooKeeper server
/// would: reads and watches of what the primary writes, `srvr` in read-only mode, and writes
/// refused with `NotReadOnly`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_zookeeper_clients_reads_and_watches_and_refuses_their_writes() {
    let token = Token::new();
    let link = free_tcp_addr().to_string();
    let primary = Daemon::start_with(&["--replication-listen", &link, "--replication-token-file", token.arg()]);
    let (standby, zk_addr) = zk_support::start_with(&["--standby-of", &link, "--replication-token-file", token.arg()]);
    let writer = baton::Client::connect(&primary.addr()).await.unwrap();
    let anyone = [AclEntry::new(Principal::Anyone, Perms::ALL)];
    writer.create_with_acl("/cfg", b"v1", CreateOptions::persistent(), &anyone).await.unwrap();
    assert_caught_up(&writer, &baton::Client::connect(&standby.addr()).await.unwrap()).await;

    let z = tokio::time::timeout(WAIT, zk::Client::connect(&zk_addr.to_string())).await.unwrap().unwrap();
    let (data, stat, watch) = z.get_and_watch_data("/cfg").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v1"[..], 0));
    writer.set("/cfg", b"v2", None).await.unwrap();
    let e = event(watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDataChanged, "/cfg"));
    assert_eq!(z.get_data("/cfg").await.unwrap().0, b"v2");
    assert_eq!(z.list_children("/").await.unwrap().len(), 2, "/cfg and /zookeeper");

    assert_eq!(z.create("/nope", b"", &open()).await.unwrap_err(), zk::Error::NotReadOnly);
    assert_eq!(z.set_data("/cfg", b"x", None).await.unwrap_err(), zk::Error::NotReadOnly);
    assert_eq!(z.delete("/cfg", None).await.unwrap_err(), zk::Error::NotReadOnly);
    assert_eq!(writer.get("/cfg").await.unwrap().0, b"v2", "the refused writes changed nothing");
    let srvr = zk_support::four_letter_word(zk_addr, "srvr");
    assert!(srvr.contains("Mode: read-only"), "{srvr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_map_world_anyone_and_who_am_i_names_the_address() {
    let f = start();
    let c = f.zk().await;
    c.create("/acl", b"", &open()).await.unwrap();
    let (acl, _) = c.get_acl("/acl").await.unwrap();
    assert_eq!(acl, [zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())]);
    let read_only = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
    let stat = c.set_acl("/acl", &read_only, Some(0)).await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(c.set_data("/acl", b"x", None).await.unwrap_err(), zk::Error::NoAuth);
    let by_ip = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("ip", "127.0.0.1"))];
    let ip_options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&by_ip));
    assert_eq!(c.create("/d", b"", &ip_options).await.unwrap_err(), zk::Error::InvalidAcl, "no ip scheme yet");
    let users = c.list_auth_users().await.unwrap();
    assert_eq!(users, [zk::AuthUser::new("ip", "127.0.0.1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_opens_nodes_whose_acl_names_it() {
    let f = start();
    let alice = f.zk().await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    let authed = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::authed())];
    let private = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&authed));
    alice.create("/private", b"p", &private).await.unwrap();
    let (acl, _) = alice.get_acl("/private").await.unwrap();
    // The `auth` scheme became the creator's digest id: user:base64(SHA-1("user:password")).
    assert_eq!(
        acl,
        [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="))]
    );
    assert!(alice.list_auth_users().await.unwrap().contains(&zk::AuthUser::new("digest", "alice")));

    let stranger = f.zk().await;
    assert_eq!(stranger.get_data("/private").await.unwrap_err(), zk::Error::NoAuth);
    assert_eq!(stranger.create("/mine", b"", &private).await.unwrap_err(), zk::Error::InvalidAcl, "auth with no ids");
    // Auth sent with the handshake (pipelined before the ConnectResponse) counts too.
    let connector = zk::Client::connector().with_auth("digest", b"alice:secret");
    let again = tokio::time::timeout(WAIT, connector.connect(&f.zk_addr.to_string())).await.unwrap().unwrap();
    assert_eq!(again.get_data("/private").await.unwrap().0, b"p");
    let wrong = zk::Client::connector().with_auth("digest", b"alice:guess");
    let guessing = tokio::time::timeout(WAIT, wrong.connect(&f.zk_addr.to_string())).await.unwrap().unwrap();
    assert_eq!(guessing.get_data("/private").await.unwrap_err(), zk::Error::NoAuth);
    // An unknown scheme fails, as in ZooKeeper.
    assert_eq!(stranger.auth("kerberos", b"x").await.unwrap_err(), zk::Error::AuthFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_session_resumes_with_its_password_and_keeps_its_ephemerals() {
    let f = start();
    let first = tokio::time::timeout(WAIT, zk::Client::connector().with_detached().connect(&f.zk_addr.to_string()))
        .await
        .unwrap()
        .unwrap();
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    first.create("/mine", b"", &ephemeral).await.unwrap();
    let id = first.session_id();
    let session = first.into_session();
    let second =
        tokio::time::timeout(WAIT, zk::Client::connector().with_session(session).connect(&f.zk_addr.to_string()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(second.session_id(), id);
    assert_eq!(second.list_ephemerals("/").await.unwrap(), ["/mine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_a_dropped_connection_through_set_watches() {
    let f = start();
    let proxy = baton_tests::proxy::Proxy::start(f.zk_addr).await;
    let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(20));
    let watching = tokio::time::timeout(WAIT, connector.connect(&proxy.addr())).await.unwrap().unwrap();
    let writer = f.zk().await;
    writer.create("/r", b"before", &open()).await.unwrap();
    let (_, _, data_watch) = watching.get_and_watch_data("/r").await.unwrap();
    let (_, _, child_watch) = watching.get_and_watch_children("/r").await.unwrap();
    let mut state = watching.state_watcher();
    let id = watching.session_id();

    proxy.cut(true);
    let lost = tokio::time::timeout(WAIT, state.changed()).await.unwrap();
    assert_eq!(lost, zk::SessionState::Disconnected);
    // Changes while the client is away: replayed when it re-sends its watches.
    writer.set_data("/r", b"meanwhile", None).await.unwrap();
    writer.create("/r/kid", b"", &open()).await.unwrap();
    proxy.unblock();

    let e = event(data_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDataChanged, "/r"));
    let e = event(child_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeChildrenChanged, "/r"));
    assert_eq!(watching.session_id(), id, "the same session, resumed with its password");
    assert_eq!(watching.get_data("/r").await.unwrap().0, b"meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_longer_than_its_timeout_is_told_its_session_expired() {
    let f = start();
    let proxy = baton_tests::proxy::Proxy::start(f.zk_addr).await;
    let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(2));
    let c = tokio::time::timeout(WAIT, connector.connect(&proxy.addr())).await.unwrap().unwrap();
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    c.create("/short-lived", b"", &ephemeral).await.unwrap();
    let observer = f.zk().await;
    let (_, gone) = observer.check_and_watch_stat("/short-lived").await.unwrap();
    let mut state = c.state_watcher();
    proxy.cut(true);
    assert_eq!(tokio::time::timeout(WAIT, state.changed()).await.unwrap(), zk::SessionState::Disconnected);
    // The daemon expires the session: its ephemeral goes, and the client hears so on return.
    let e = event(gone).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeDeleted, "/short-lived"));
    proxy.unblock();
    assert_eq!(tokio::time::timeout(WAIT, state.changed()).await.unwrap(), zk::SessionState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let f = start();
    let c = f.zk().await;
    c.create("/p", b"", &open()).await.unwrap();
    // The client checks every reply's xid against the order it sent them in, and drops the
    // connection on a mismatch: hundreds in flight at once, writes and reads mixed.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let c = c.clone();
        tasks.spawn(async move {
            let path = format!("/p/n{i}");
            c.create(&path, b"x", &open()).await.unwrap();
            let (data, _) = c.get_data(&path).await.unwrap();
            assert_eq!(data, b"x");
            c.check_stat("/p/absent").await.unwrap()
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap(), None);
    }
    assert_eq!(c.get_children("/p").await.unwrap().1.num_children, 300);
    c.create("/p/n0/deeper", b"", &open()).await.unwrap();
    assert_eq!(c.count_descendants_number("/p").await.unwrap(), 301, "getAllChildrenNumber counts every depth");
    assert_eq!(c.count_descendants_number("/p/n0").await.unwrap(), 1);
    assert_eq!(c.count_descendants_number("/p/absent").await.unwrap_err(), zk::Error::NoNode);
}

// ---- Raw frames: what a well-behaved client never sends -----------------------------------

fn send_frame(stream: &mut std::net::TcpStream, payload: &[u8]) {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    stream.write_all(&frame).unwrap();
}

/// A frame's payload, or `None` if the server closed the connection.
fn recv_frame(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).ok()?;
    Some(payload)
}

fn connect_frame(last_zxid: i64, session_id: i64, passwd: &[u8], read_only: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(0).long(last_zxid).int(10_000).long(session_id).bytes(passwd);
    if read_only {
        w.boolean(false);
    }
    w.into_bytes()
}

fn raw(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn raw_handshakes_new_expired_and_ahead_of_the_server() {
    let f = start();
    // A new session, 44-byte form: a 36-byte answer without the readOnly byte.
    let mut s = raw(f.zk_addr);
    send_frame(&mut s, &connect_frame(0, 0, &[0; 16], false));
    let answer = recv_frame(&mut s).unwrap();
    assert_eq!(answer.len(), 36);
    let mut r = Reader::new(&answer);
    let (_, timeout, session) = (r.int("v").unwrap(), r.int("t").unwrap(), r.long("s").unwrap());
    assert!(timeout >= 2000 && session != 0, "timeout {timeout}, session {session:#x}");

    // An unknown session: told it expired (the observed 37 bytes), then closed.
    let mut s = raw(f.zk_addr);
    send_frame(&mut s, &connect_frame(0, 0x1234, &[7; 16], true));
    let answer = recv_frame(&mut s).unwrap();
    let expected = [vec![0u8; 16], vec![0, 0, 0, 16], vec![0; 16], vec![0]].concat();
    assert_eq!(answer, expected);
    assert!(recv_frame(&mut s).is_none(), "closed after the expired answer");

    // A client that has seen a newer zxid than the server has: refused, the connection closed.
    let mut s = raw(f.zk_addr);
    send_frame(&mut s, &connect_frame(i64::MAX, 0, &[0; 16], true));
    assert!(recv_frame(&mut s).is_none());
    assert!(ConnectRequest::decode(&connect_frame(0, 0, &[0; 16], true)).is_ok());
}

/// Sends `request` (its header's xid and op first) and reads the reply header's err.
fn call(s: &mut std::net::TcpStream, xid: i32, op: i32, body: &[u8]) -> i32 {
    let mut w = Writer::new();
    w.int(xid).int(op);
    send_frame(s, &[w.into_bytes(), body.to_vec()].concat());
    let reply = recv_frame(s).unwrap();
    let mut r = Reader::new(&reply);
    assert_eq!(r.int("xid").unwrap(), xid, "replies in request order");
    let _zxid = r.long("zxid").unwrap();
    r.int("err").unwrap()
}

#[test]
fn raw_check_and_remove_watches_answer_no_watcher_when_none_matches() {
    let f = start();
    let mut s = raw(f.zk_addr);
    send_frame(&mut s, &connect_frame(0, 0, &[0; 16], true));
    recv_frame(&mut s).unwrap();
    let with_type = |watcher_type: i32| {
        let mut w = Writer::new();
        w.string("/rw").int(watcher_type);
        w.into_bytes()
    };
    let (children, data, any) = (with_type(1), with_type(2), with_type(3));
    let mut exists = Writer::new();
    exists.string("/rw").boolean(true);
    // exists with a watch on a missing node: NoNode, and the watch is left.
    assert_eq!(call(&mut s, 1, 3, &exists.into_bytes()), -101);
    assert_eq!(call(&mut s, 2, 17, &data), 0, "checkWatches finds the data watch");
    assert_eq!(call(&mut s, 3, 17, &children), -121, "no child watch: NoWatcher");
    assert_eq!(call(&mut s, 4, 18, &any), 0, "removeWatches Any");
    assert_eq!(call(&mut s, 5, 17, &data), -121, "gone");
    assert_eq!(call(&mut s, 6, 18, &any), -121);
}

#[test]
fn raw_unknown_opcode_is_unimplemented_and_the_connection_stays() {
    let f = start();
    let mut s = raw(f.zk_addr);
    send_frame(&mut s, &connect_frame(0, 0, &[0; 16], true));
    recv_frame(&mut s).unwrap();
    let mut w = Writer::new();
    w.int(1).int(999).int(42);
    send_frame(&mut s, &w.into_bytes());
    let mut ping = Writer::new();
    ping.int(-2).int(11);
    send_frame(&mut s, &ping.into_bytes());
    let reply = recv_frame(&mut s).unwrap();
    let mut r = Reader::new(&reply);
    assert_eq!((r.int("xid").unwrap(), r.long("zxid").unwrap(), r.int("err").unwrap()), (1, -1, -6));
    let pong = recv_frame(&mut s).unwrap();
    let mut r = Reader::new(&pong);
    assert_eq!(r.int("xid").unwrap(), -2);
    assert!(r.long("zxid").unwrap() > 0);
    assert_eq!(r.int("err").unwrap(), 0);

    // A request whose record cannot be read: MarshallingError in its turn, the connection stays.
    assert_eq!(call(&mut s, 2, 4, &[0xff, 0xff, 0xff, 0x00, 1]), -5);
    assert_eq!(call(&mut s, 3, 3, &[0, 0, 0, 1, b'/', 0]), 0, "exists / still answers");
    // A frame past the limit closes the connection; the daemon carries on.
    s.write_all(&0x7fff_0000u32.to_be_bytes()).unwrap();
    assert!(recv_frame(&mut s).is_none());
    let mut again = raw(f.zk_addr);
    send_frame(&mut again, &connect_frame(0, 0, &[0; 16], true));
    assert_eq!(recv_frame(&mut again).unwrap().len(), 37);
}

#[test]
fn four_letter_words_ruok_and_envi_are_answered() {
    let f = start();
    assert_eq!(zk_support::four_letter_word(f.zk_addr, "ruok"), "imok");
    let answer = zk_support::four_letter_word(f.zk_addr, "envi");
    assert!(answer.contains("\nzookeeper.version=3.8.0-batond-"), "{answer}");
}

/// kazoo, the Python client, through its basic operations, transactions, recipes, a dropped
/// connection and digest auth (`zk_kazoo.py`). Needs `pip install kazoo`; says so and passes
/// without it.
#[test]
fn kazoo_works_against_the_listener() {
    let has_kazoo = std::process::Command::new("python3")
        .args(["-c", "import kazoo"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_kazoo {
        eprintln!("skipping: python3 with kazoo is not installed (pip install kazoo)");
        return;
    }
    let f = start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/zk_kazoo.py");
    let output = std::process::Command::new("python3").arg(script).arg(f.zk_addr.to_string()).output().unwrap();
    assert!(
        output.status.success(),
        "kazoo checks failed:\n{}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        f.daemon.log()
    );
}
