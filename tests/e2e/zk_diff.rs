//! Differential test: the same request sequence, as raw jute frames, to a real ZooKeeper 3.8
//! (Debian's package, started by `start-zk.sh` from the peers directory) and to batond's
//! listener; every reply must be the same, modulo zxids, times and session ids.
//!
//! The peers directory is `$BATON_ZK_PEERS` (default `/work/shared/peers`), whose
//! `start-zk.sh` prints `ADDR=`, `PID=`, `PIDFILE=` and whose `stop-zk.sh PIDFILE` stops
//! exactly that server; without it the test launches Debian's ZooKeeper itself. Without
//! Debian's `zookeeper` package (or Java) the test says so and passes.

#[path = "zk_support/mod.rs"]
mod zk_support;

use batond::zk::jute::{Reader, Stat, Writer};
use std::net::SocketAddr;
use std::path::PathBuf;
use zk_support::{Raw, start};

/// A ZooKeeper 3.8 on loopback, stopped on drop: started by the peers' `start-zk.sh` (and
/// stopped by its `stop-zk.sh PIDFILE`), or else launched here from Debian's jars.
struct ZooKeeper {
    addr: SocketAddr,
    how: Started,
}

enum Started {
    Script { stop: PathBuf, pidfile: String },
    Here { child: std::process::Child, _dir: tempfile::TempDir },
}

const JARS: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

impl ZooKeeper {
    fn start() -> Option<ZooKeeper> {
        let peers = PathBuf::from(std::env::var("BATON_ZK_PEERS").unwrap_or_else(|_| "/work/shared/peers".into()));
        let (start, stop) = (peers.join("start-zk.sh"), peers.join("stop-zk.sh"));
        if !std::path::Path::new("/usr/share/java/zookeeper.jar").exists()
            || std::process::Command::new("java").arg("-version").output().is_err()
        {
            eprintln!("skipping: no ZooKeeper to compare with (apt-get install zookeeper)");
            return None;
        }
        if !start.exists() {
            return Some(ZooKeeper::launch());
        }
        let out = std::process::Command::new(&start).output().expect("run start-zk.sh");
        assert!(out.status.success(), "start-zk.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
        let addr = field("ADDR=").and_then(|a| a.parse().ok()).expect("ADDR= from start-zk.sh");
        let pidfile = field("PIDFILE=").expect("PIDFILE= from start-zk.sh");
        Some(ZooKeeper { addr, how: Started::Script { stop, pidfile } })
    }

    /// Runs `ZooKeeperServerMain` on a free loopback port and waits until `srvr` answers.
    fn launch() -> ZooKeeper {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=srvr\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("zoo.cfg"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("zookeeper.log")).unwrap();
        let child = std::process::Command::new("java")
            .args(["-Xmx256m", "-cp", JARS, "org.apache.zookeeper.server.ZooKeeperServerMain"])
            .arg(dir.path().join("zoo.cfg"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start java");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let zookeeper = ZooKeeper { addr, how: Started::Here { child, _dir: dir } };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !serving(addr) {
            assert!(std::time::Instant::now() < deadline, "ZooKeeper did not start on {addr}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        zookeeper
    }
}

/// Whether a ZooKeeper at `addr` answers `srvr` with its mode.
fn serving(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let mut answer = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(2))).is_ok()
        && s.write_all(b"srvr").is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.contains("Mode:")
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        match &mut self.how {
            Started::Script { stop, pidfile } => {
                let _ = std::process::Command::new(stop).arg(pidfile).status();
            }
            Started::Here { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn acl_open(w: &mut Writer) {
    w.int(1).int(31).string("world").string("anyone");
}

fn create(path: &str, data: &[u8], flags: i32) -> Vec<u8> {
    create_nullable(path, Some(data), flags)
}

/// A create whose data may be null (length -1), as kazoo sends `create(path, None)`.
fn create_nullable(path: &str, data: Option<&[u8]>, flags: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).opt_bytes(data);
    acl_open(&mut w);
    w.int(flags);
    w.into_bytes()
}

fn path_only(path: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path);
    w.into_bytes()
}

fn path_watch(path: &str, watch: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).boolean(watch);
    w.into_bytes()
}

fn path_int(path: &str, n: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).int(n);
    w.into_bytes()
}

fn set_data(path: &str, data: &[u8], version: i32) -> Vec<u8> {
    set_nullable(path, Some(data), version)
}

fn set_nullable(path: &str, data: Option<&[u8]>, version: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).opt_bytes(data).int(version);
    w.into_bytes()
}

/// A multi request: each op as (type, record), then the terminator.
fn multi(ops: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (op, record) in ops {
        let mut w = Writer::new();
        w.int(*op).boolean(false).int(-1);
        bytes.extend_from_slice(&w.into_bytes());
        bytes.extend_from_slice(record);
    }
    let mut w = Writer::new();
    w.int(-1).boolean(true).int(-1);
    bytes.extend_from_slice(&w.into_bytes());
    bytes
}

/// The request sequence: (what, op, record). Paths live under /diff.
fn sequence() -> Vec<(&'static str, i32, Vec<u8>)> {
    vec![
        ("create", 1, create("/diff", b"d", 0)),
        ("create existing", 1, create("/diff", b"", 0)),
        ("create2", 15, create("/diff/a", b"aa", 0)),
        ("create without parent", 1, create("/nope/x", b"", 0)),
        ("create relative path", 1, create("diff", b"", 0)),
        ("create trailing slash", 1, create("/diff/", b"", 0)),
        ("create empty acl", 1, {
            let mut w = Writer::new();
            w.string("/diff/noacl").bytes(b"").int(0).int(0);
            w.into_bytes()
        }),
        ("exists", 3, path_watch("/diff", false)),
        ("exists missing", 3, path_watch("/diff/missing", true)),
        ("getData", 4, path_watch("/diff", false)),
        ("getData missing", 4, path_watch("/diff/missing", false)),
        ("setData", 5, set_data("/diff", b"dd", 0)),
        ("setData stale", 5, set_data("/diff", b"x", 0)),
        ("sequential 1", 1, create("/diff/s-", b"", 2)),
        ("sequential 2", 15, create("/diff/s-", b"", 2)),
        ("ephemeral", 1, create("/diff/e", b"", 1)),
        ("child of ephemeral", 1, create("/diff/e/c", b"", 0)),
        ("container", 19, create("/diff/c", b"", 4)),
        ("create null data", 1, create_nullable("/diff/null", None, 0)),
        ("getData null", 4, path_watch("/diff/null", false)),
        ("create empty data", 1, create("/diff/empty", b"", 0)),
        ("getData empty", 4, path_watch("/diff/empty", false)),
        ("setData null", 5, set_nullable("/diff/empty", None, -1)),
        ("getData set to null", 4, path_watch("/diff/empty", false)),
        ("getChildren", 8, path_watch("/diff", false)),
        ("getChildren2", 12, path_watch("/diff", true)),
        ("getChildren missing", 12, path_watch("/diff/missing", false)),
        ("delete not empty", 2, path_int("/diff", -1)),
        ("delete bad version", 2, path_int("/diff/a", 7)),
        ("delete missing", 2, path_int("/diff/missing", -1)),
        ("getACL", 6, path_only("/diff")),
        ("setACL stale", 7, {
            let mut w = Writer::new();
            w.string("/diff/a");
            acl_open(&mut w);
            w.int(3);
            w.into_bytes()
        }),
        ("setACL", 7, {
            let mut w = Writer::new();
            w.string("/diff/a");
            acl_open(&mut w);
            w.int(0);
            w.into_bytes()
        }),
        (
            "multi failing",
            14,
            multi(&[
                (1, create("/diff/m", b"", 0)),
                (2, path_int("/diff/missing", -1)),
                (5, set_data("/diff", b"", -1)),
            ]),
        ),
        (
            "multi",
            14,
            multi(&[
                (1, create("/diff/m", b"m", 0)),
                (13, path_int("/diff", 1)),
                (5, set_data("/diff/m", b"mm", 0)),
                (2, path_int("/diff/m", -1)),
            ]),
        ),
        ("multi empty", 14, multi(&[])),
        ("getAllChildrenNumber", 104, path_only("/diff")),
        ("getEphemerals", 103, path_only("/diff")),
        ("sync", 9, path_only("/diff")),
        ("checkWatches none", 17, path_int("/diff/a", 1)),
        ("addWatch", 106, path_int("/diff", 1)),
        ("getData /zookeeper/config", 4, path_watch("/zookeeper/config", false)),
        ("getChildren /zookeeper", 8, path_watch("/zookeeper", false)),
        ("delete", 2, path_int("/diff/a", 0)),
        ("exists deleted", 3, path_watch("/diff/a", false)),
        ("unknown op", 999, Vec::new()),
        ("exists after an unknown op", 3, path_watch("/diff", false)),
    ]
}

/// A Stat with zxids, times and a session id masked.
fn stat(r: &mut Reader<'_>) -> String {
    let s = Stat::read(r).expect("a Stat");
    let owner = match s.ephemeral_owner {
        0 => "0".to_owned(),
        o if o < 0 => format!("{o:#x}"),
        _ => "SESSION".to_owned(),
    };
    format!(
        "Stat{{version={}, cversion={}, aversion={}, owner={owner}, dataLength={}, numChildren={}}}",
        s.version, s.cversion, s.aversion, s.data_length, s.num_children
    )
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// A reply body, decoded by the request's op, with what may differ masked.
fn body(op: i32, bytes: &[u8]) -> String {
    let mut r = Reader::new(bytes);
    let text = match op {
        1 | 9 => r.string("path").unwrap(),
        15 | 19 => format!("{} {}", r.string("path").unwrap(), stat(&mut r)),
        3 | 5 | 7 => stat(&mut r),
        // Null data (length -1) shows as `None`, empty as `Some([])`.
        4 => format!("{:?} {}", r.opt_buffer("data").unwrap(), stat(&mut r)),
        6 => format!("{:?} {}", r.acls().unwrap(), stat(&mut r)),
        8 | 103 => format!("{:?}", sorted(r.strings("children").unwrap())),
        12 => format!("{:?} {}", sorted(r.strings("children").unwrap()), stat(&mut r)),
        104 | 106 => r.int("int").unwrap().to_string(),
        14 => {
            let mut parts = Vec::new();
            loop {
                let (kind, done, err) = (r.int("type").unwrap(), r.boolean("done").unwrap(), r.int("err").unwrap());
                if done {
                    break;
                }
                parts.push(match kind {
                    1 => format!("create {}", r.string("path").unwrap()),
                    5 => format!("setData {}", stat(&mut r)),
                    -1 => format!("error {err} {}", r.int("err").unwrap()),
                    other => format!("op {other} err {err}"),
                });
            }
            parts.join("; ")
        }
        _ => format!("{bytes:?}"),
    };
    assert!(r.remaining() == 0, "op {op}: {} bytes left over", r.remaining());
    text
}

/// Runs the sequence on a fresh session at `addr`: one line per reply.
fn run(addr: SocketAddr) -> Vec<String> {
    let mut c = Raw::connect(addr);
    // Sessions from the start: the ephemeral's owner is this session.
    sequence()
        .into_iter()
        .map(|(what, op, record)| {
            let Some((reply, events)) = c.try_call(op, &record) else {
                c = Raw::connect(addr);
                return format!("{what}: the connection closed");
            };
            let body = if reply.err == 0 { body(op, &reply.body) } else { format!("{:?}", reply.body) };
            format!("{what}: err {} events {} {body}", reply.err, events.len())
        })
        .collect()
}

/// Where the listener differs on purpose. ZooKeeper 3.8.0 answers an unknown opcode with
/// `Unimplemented` and then closes the connection (seen by this test); issue 8 asks for the
/// connection to stay, as closing turned into `ConnectionLoss` for ClickHouse's client.
const INTENDED: [&str; 1] = ["exists after an unknown op"];

#[test]
fn the_listener_answers_a_request_sequence_as_zookeeper_does() {
    let Some(zookeeper) = ZooKeeper::start() else { return };
    let (daemon, addr) = start();
    let expected = run(zookeeper.addr);
    let actual = run(addr);
    let differences: Vec<String> = expected
        .iter()
        .zip(&actual)
        .filter(|(e, a)| e != a && !INTENDED.iter().any(|what| e.starts_with(&format!("{what}:"))))
        .map(|(e, a)| format!("  ZooKeeper: {e}\n  batond:    {a}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} replies differ:\n{}\ndaemon log:\n{}",
        differences.len(),
        expected.len(),
        differences.join("\n"),
        daemon.log()
    );
    assert_eq!(expected.len(), actual.len());
    let after_unknown = actual.iter().find(|line| line.starts_with("exists after an unknown op:")).unwrap();
    assert!(after_unknown.contains("err 0"), "the connection stays after an unknown opcode: {after_unknown}");
}
