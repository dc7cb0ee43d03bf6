//! kazoo's own test suite, run against batond's ZooKeeper listener by
//! `tests/zk/kazoo-suite.sh` (which fetches kazoo's source distribution and lets its harness
//! start batond instead of a Java ZooKeeper). Every selected test must pass; the tests that
//! need what one node does not have (SASL, SSL, reconfig, read-only mode, a 3-server cluster)
//! are deselected by the script, which lists them.
//!
//! Runs in CI (`CI` set, where `.ci/run` installs `kazoo[test]`) and wherever python3 has
//! kazoo and pytest; elsewhere it says why and passes without running.

use std::path::Path;
use std::process::Command;

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn kazoo_suite_passes_against_the_listener() {
    if std::env::var_os("CI").is_none() && !python_has("kazoo, pytest") {
        eprintln!("skipping: needs python3 with kazoo[test] (pip install 'kazoo[test]'); CI runs it");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("zk/kazoo-suite.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(["-q", "--no-header", "-p", "no:cacheprovider", "--color=no", "-rfEs"])
        .env("BATOND", baton_tests::binary("batond"))
        .output()
        .expect("run tests/zk/kazoo-suite.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().rev().find(|l| l.contains(" passed") || l.contains(" failed")).unwrap_or("");
    eprintln!("kazoo suite: {summary}");
    let tail: Vec<&str> = stdout.lines().rev().take(80).collect();
    assert!(
        output.status.success()
            && summary.contains(" passed")
            && !summary.contains("failed")
            && !summary.contains("error"),
        "kazoo's suite failed: {summary}\n{}\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
}
