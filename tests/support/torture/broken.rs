//! A `batond` deliberately broken by the daemon's negative controls
//! (`BATON_NEGATIVE_CONTROLS`: `stale-reads`, `skip-fencing`), so that a torture test can
//! prove its checker catches what it exists to catch. The controls are compiled in only with
//! the daemon's `negative-controls` feature, which the test build turns on; a binary without
//! them fails the test rather than letting a negative control pass without running.

use crate::{Spawned, binary};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broken {
    _child: Spawned,
    dir: tempfile::TempDir,
}

impl Broken {
    /// Starts a daemon with `controls` (comma-separated) on.
    ///
    /// # Panics
    /// If the binary lacks the negative controls.
    pub fn start(controls: &str) -> Broken {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("batond.log")).expect("log file");
        let child = Spawned::spawn(
            Command::new(binary("batond"))
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .arg("--socket")
                .arg(dir.path().join("baton.sock"))
                .env("BATON_LOG", "debug")
                .env("BATON_NEGATIVE_CONTROLS", controls)
                .stdout(Stdio::null())
                .stderr(log),
        );
        let broken = Broken { _child: child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(broken.socket()).is_err() {
            assert!(Instant::now() < deadline, "the broken batond did not listen; log:\n{}", broken.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            broken.log().contains("NEGATIVE CONTROLS ON"),
            "this batond has no negative controls: `cargo test --workspace` builds it with them (or \
             `cargo build -p batond --features negative-controls`)"
        );
        broken
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("baton.sock")
    }

    pub fn addr(&self) -> String {
        self.socket().display().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("batond.log")).unwrap_or_default()
    }
}
