//! Helpers for a primary and its standby: a shared replication token, and waiting until the
//! standby holds exactly the primary's state.

use baton::Client;
use baton::proto::message::StatusReport;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A replication token in a temp dir that lives as long as the value.
pub struct Token {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Token {
    pub fn new() -> Token {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "a-shared-replication-secret-for-tests\n").expect("write token");
        Token { _dir: dir, path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

impl Default for Token {
    fn default() -> Self {
        Token::new()
    }
}

/// Waits until the standby has applied everything the primary has, then checks they hold
/// the same state (digest and node count). Keep `on_primary` connected while calling, so no
/// session comes or goes meanwhile.
pub async fn assert_caught_up(on_primary: &Client, on_standby: &Client) -> StatusReport {
    let target = on_primary.status().await.expect("primary status");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = on_standby.status().await.expect("standby status");
        if now.last_zxid == target.last_zxid {
            assert_eq!(now.digest, target.digest, "standby and primary digests at {}", target.last_zxid);
            assert_eq!(now.nodes, target.nodes);
            return now;
        }
        assert!(Instant::now() < deadline, "standby stuck at {} (primary {})", now.last_zxid, target.last_zxid);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
