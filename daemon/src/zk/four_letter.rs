//! ZooKeeper's four-letter words on the client port (ZK-PROTOCOL.md §2.9): a connection whose
//! first four bytes spell one gets a plain-text answer and is closed. Pure: the answer is
//! formatted from the daemon's [`StatusReport`], which the listener asks the engine for.
//!
//! Served: `ruok`, `isro`, `envi`, `srvr`, `stat`, `mntr`. The version given is the protocol
//! level served (3.8), suffixed with the daemon's, so kazoo's `server_version()` (which reads
//! `envi`) and version-sniffing health checks see a 3.8 server.

use baton_proto::message::{Role, StatusReport};
use std::fmt::Write as _;

/// The version string: ZooKeeper's protocol level, then the daemon's own version.
pub const VERSION: &str = concat!("3.8.0-batond-", env!("CARGO_PKG_VERSION"));

/// The nodes ZooKeeper clients see besides the tree's: `/zookeeper` and its two children.
const SYSTEM_NODES: u64 = 3;

/// The build line's form is the 3.5-era `MM/DD/YYYY HH:MM GMT`, not 3.8's ISO date: harnesses
/// such as go-zookeeper's parse `srvr` with a pattern that expects it.
const BUILT: &str = "built on 01/01/1970 00:00 GMT";

/// The words answered; any other first four bytes are a frame length as usual.
const WORDS: [&[u8; 4]; 6] = [b"ruok", b"isro", b"envi", b"srvr", b"stat", b"mntr"];

/// Whether a connection's first four bytes are a word answered here.
pub fn is_word(head: [u8; 4]) -> bool {
    WORDS.iter().any(|w| **w == head)
}

/// Whether answering `word` needs the daemon's status.
pub fn needs_status(word: [u8; 4]) -> bool {
    matches!(&word, b"srvr" | b"stat" | b"mntr")
}

/// The text answering `word`; `status` is the daemon's (for `srvr`, `stat`, `mntr`; `None`
/// when the engine did not answer, which those words then say). `None`: not a word.
pub fn answer(word: [u8; 4], status: Option<&StatusReport>) -> Option<String> {
    let text = match &word {
        b"ruok" => "imok".to_owned(),
        // The handshake never says read-only (a standby refuses writes with an error instead).
        b"isro" => "rw".to_owned(),
        b"envi" => format!("Environment:\nzookeeper.version={VERSION}, {BUILT}\n"),
        b"srvr" | b"stat" | b"mntr" => match status {
            None => "This ZooKeeper instance is not currently serving requests\n".to_owned(),
            Some(s) if &word == b"mntr" => mntr(s),
            Some(s) => srvr(s, &word == b"stat"),
        },
        _ => return None,
    };
    Some(text)
}

/// ZooKeeper's name for the server's state.
fn mode(status: &StatusReport) -> &'static str {
    match status.role {
        Role::Primary => "standalone",
        Role::Standby => "read-only",
    }
}

/// `srvr`, and with `clients` `stat` (which lists no per-connection lines: the daemon keeps
/// no per-connection packet counts).
fn srvr(status: &StatusReport, clients: bool) -> String {
    let mut text = format!("Zookeeper version: {VERSION}, {BUILT}\n");
    if clients {
        text.push_str("Clients:\n\n");
    }
    let _ = write!(
        text,
        "Latency min/avg/max: 0/0.0/0\nReceived: 0\nSent: 0\nConnections: {}\nOutstanding: 0\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        status.connections,
        status.last_zxid.0,
        mode(status),
        status.nodes + SYSTEM_NODES,
    );
    text
}

/// `mntr`: tab-separated `key value` lines, the subset the daemon knows.
fn mntr(status: &StatusReport) -> String {
    let lines: [(&str, String); 9] = [
        ("zk_version", format!("{VERSION}, {BUILT}")),
        ("zk_server_state", mode(status).to_owned()),
        ("zk_uptime", status.uptime_ms.to_string()),
        ("zk_num_alive_connections", status.connections.to_string()),
        ("zk_outstanding_requests", "0".to_owned()),
        ("zk_znode_count", (status.nodes + SYSTEM_NODES).to_string()),
        ("zk_watch_count", status.watches.to_string()),
        ("zk_global_sessions", status.sessions.to_string()),
        ("zk_approximate_data_size", status.store_bytes.to_string()),
    ];
    let mut text = String::new();
    for (key, value) in &lines {
        let _ = writeln!(text, "{key}\t{value}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::Zxid;

    fn status() -> StatusReport {
        StatusReport {
            role: Role::Primary,
            epoch: 1,
            last_zxid: Zxid(0x1_0000_002a),
            mode: None,
            peer: None,
            sessions: 2,
            nodes: 7,
            watches: 3,
            connections: 4,
            uptime_ms: 1500,
            store_bytes: 4096,
            digest: 0,
            fenced: false,
            sync_degraded: false,
            log_floor: Zxid(0),
            log_txns: 0,
            log_bytes: 0,
        }
    }

    #[test]
    fn words_are_known_and_only_some_need_the_status() {
        for word in [b"ruok", b"isro", b"envi", b"srvr", b"stat", b"mntr"] {
            assert!(is_word(*word));
        }
        assert!(!is_word(*b"kill"));
        assert!(!is_word([0, 0, 0, 45]));
        assert!(needs_status(*b"mntr") && !needs_status(*b"ruok"));
        assert_eq!(answer(*b"ruok", None).as_deref(), Some("imok"));
        assert_eq!(answer(*b"isro", Some(&status())).as_deref(), Some("rw"));
        assert_eq!(answer(*b"nope", None), None);
    }

    #[test]
    fn srvr_and_stat_say_version_zxid_mode_and_node_count() {
        let srvr = answer(*b"srvr", Some(&status())).unwrap();
        assert!(srvr.starts_with("Zookeeper version: 3.8.0-batond-"), "{srvr}");
        assert!(srvr.contains("\nZxid: 0x10000002a\nMode: standalone\nNode count: 10\n"), "{srvr}");
        assert!(srvr.contains("\nConnections: 4\n"), "{srvr}");
        let stat = answer(*b"stat", Some(&status())).unwrap();
        assert!(stat.contains("\nClients:\n\n"), "{stat}");
        assert!(answer(*b"envi", None).unwrap().contains("\nzookeeper.version=3.8.0-batond-"));
        assert!(answer(*b"srvr", None).unwrap().contains("not currently serving"));
    }

    #[test]
    fn mntr_is_tab_separated_key_value_lines() {
        let mntr = answer(*b"mntr", Some(&status())).unwrap();
        assert!(mntr.contains("zk_server_state\tstandalone\n"), "{mntr}");
        assert!(mntr.contains("zk_znode_count\t10\n"), "{mntr}");
        assert!(mntr.contains("zk_watch_count\t3\n"), "{mntr}");
        assert!(mntr.lines().all(|line| line.split('\t').count() == 2), "{mntr}");
    }
}
