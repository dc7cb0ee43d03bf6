//! What a ZooKeeper client sees of a ZooKeeper server besides the operations: the
//! `/zookeeper` system nodes, the four-letter words `srvr`, `stat` and `mntr`, and zkCli.sh
//! (Debian's `zookeeper` package) driving the common commands against the listener.

#[path = "zk_support/mod.rs"]
mod zk_support;

use batond::zk::jute::{Reader, Stat, Writer};
use zk_support::{Raw, four_letter_word, start};

fn path_and_watch(path: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).boolean(false);
    w.into_bytes()
}

#[test]
fn four_letter_words_srvr_stat_and_mntr_report_the_daemon() {
    let (_daemon, addr) = start();
    let mut c = Raw::connect(addr);
    let mut create = Writer::new();
    create.string("/fl").bytes(b"").int(1).int(31).string("world").string("anyone").int(0);
    let (reply, _) = c.call(1, &create.into_bytes());
    assert_eq!(reply.err, 0);

    let srvr = four_letter_word(addr, "srvr");
    assert!(srvr.starts_with("Zookeeper version: 3.8.0-batond-"), "{srvr}");
    assert!(srvr.contains("\nMode: standalone\n"), "{srvr}");
    assert!(srvr.contains(&format!("\nZxid: 0x{:x}\n", reply.zxid)), "the create's zxid: {srvr}");
    let nodes: u64 = srvr.lines().find_map(|l| l.strip_prefix("Node count: ")).unwrap().parse().unwrap();
    assert!(nodes >= 2, "the root and /fl: {srvr}");
    let stat = four_letter_word(addr, "stat");
    assert!(stat.contains("\nClients:\n") && stat.contains("\nMode: standalone\n"), "{stat}");
    let mntr = four_letter_word(addr, "mntr");
    assert!(mntr.contains("zk_server_state\tstandalone\n"), "{mntr}");
    assert!(mntr.contains(&format!("zk_znode_count\t{nodes}\n")), "{mntr}");
    assert_eq!(four_letter_word(addr, "isro"), "rw");
}

#[test]
fn system_nodes_are_presented_as_a_standalone_zookeeper_does() {
    let (_daemon, addr) = start();
    let mut c = Raw::connect(addr);
    // The root lists `zookeeper` and counts it.
    let (root, _) = c.call(12, &path_and_watch("/"));
    assert_eq!(root.err, 0);
    let mut r = Reader::new(&root.body);
    let children = r.strings("children").unwrap();
    assert!(children.contains(&"zookeeper".to_owned()), "{children:?}");
    assert_eq!(Stat::read(&mut r).unwrap().num_children as usize, children.len());

    let (zookeeper, _) = c.call(12, &path_and_watch("/zookeeper"));
    let mut r = Reader::new(&zookeeper.body);
    assert_eq!(r.strings("children").unwrap(), ["config", "quota"]);
    // /zookeeper/config: empty data, a zero Stat but aversion -1 (observed on 3.8).
    let (config, _) = c.call(4, &path_and_watch("/zookeeper/config"));
    assert_eq!(config.err, 0);
    let mut r = Reader::new(&config.body);
    assert_eq!(r.buffer("data").unwrap(), b"");
    assert_eq!(Stat::read(&mut r).unwrap(), Stat { aversion: -1, ..Stat::default() });
    let (quota, _) = c.call(3, &path_and_watch("/zookeeper/quota"));
    assert_eq!((quota.err, quota.body.len()), (0, 68));
    let (missing, _) = c.call(3, &path_and_watch("/zookeeper/none"));
    assert_eq!(missing.err, -101);

    // They cannot be changed.
    let mut delete = Writer::new();
    delete.string("/zookeeper/quota").int(-1);
    assert_eq!(c.call(2, &delete.into_bytes()).0.err, -102);
    let mut create = Writer::new();
    create.string("/zookeeper").bytes(b"").int(1).int(31).string("world").string("anyone").int(0);
    assert_eq!(c.call(1, &create.into_bytes()).0.err, -110);
}

/// zkCli.sh's common commands, fed on its standard input. Skips, saying so, without Debian's
/// `zookeeper` package (`apt-get install zookeeper`).
#[test]
fn zkcli_runs_the_common_commands() {
    let zkcli = std::path::Path::new("/usr/share/zookeeper/bin/zkCli.sh");
    if !zkcli.exists() || std::process::Command::new("java").arg("-version").output().is_err() {
        eprintln!("skipping: zkCli.sh not installed (apt-get install zookeeper)");
        return;
    }
    let (daemon, addr) = start();
    let commands = "create /zc hello\ncreate -e /zc/eph e\ncreate -s /zc/seq- s\nls /zc\nget /zc\nset /zc world\n\
                    get /zc\nstat /zc\ngetAcl /zc\nls /zookeeper\ndelete /zc/seq-0000000001\nls /zc\nquit\n";
    let mut child = std::process::Command::new(zkcli)
        .args(["-server", &addr.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    // zkCli prints `Created PATH` on stderr, the rest on stdout.
    let out = [String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)].concat();
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty() && !l.starts_with("20")).collect();
    let after = |prefix: &str| lines.iter().skip_while(|l| !l.starts_with(prefix)).copied().collect::<Vec<_>>();
    let ctx =
        || format!("zkCli output:\n{out}\n{}\ndaemon log:\n{}", String::from_utf8_lossy(&output.stderr), daemon.log());
    for expected in ["Created /zc", "Created /zc/eph", "Created /zc/seq-0000000001", "[eph, seq-0000000001]"] {
        assert!(lines.contains(&expected), "missing {expected:?}\n{}", ctx());
    }
    let gets = after("[eph, seq-0000000001]");
    assert_eq!(gets.get(1..3), Some(&["hello", "world"][..]), "get, set, get\n{}", ctx());
    assert!(lines.contains(&"dataVersion = 1") && lines.contains(&"numChildren = 2"), "stat\n{}", ctx());
    assert!(lines.contains(&"ephemeralOwner = 0x0") && lines.contains(&"cversion = 2"), "stat\n{}", ctx());
    assert!(lines.contains(&"'world,'anyone") && lines.contains(&": cdrwa"), "getAcl\n{}", ctx());
    assert!(lines.contains(&"[config, quota]"), "ls /zookeeper\n{}", ctx());
    assert_eq!(lines.iter().filter(|l| **l == "[eph]").count(), 1, "the delete took\n{}", ctx());
}
