//! A full disk: writes fail with DiskFull, reads go on, no acknowledged write is lost, and
//! writes resume by themselves once space is freed. On a small tmpfs (needs root to mount;
//! skips elsewhere with the reason).

use baton::{Client, CreateOptions, ErrorCode};
use baton_tests::Daemon;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a small filesystem needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&mount)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(SmallDisk { _dir: dir, mount })
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let data = disk.path().join("data");
    let daemon = Daemon::start_on(&data, &[]);
    let client = Client::builder().session_timeout(Duration::from_secs(30)).connect(&daemon.addr()).await.unwrap();
    client.create("/kept", b"before", CreateOptions::persistent()).await.unwrap();
    // Room to free later.
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 2 * 1024 * 1024]).unwrap();

    // Fill the rest with nodes until the daemon says the disk is full.
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..1000 {
        match client.create(&format!("/big{i}"), &vec![i as u8; 64 * 1024], CreateOptions::persistent()).await {
            Ok((path, _)) => acked.push(path),
            Err(e) if e.code() == Some(ErrorCode::DiskFull) => {
                refused = Some(e);
                break;
            }
            // The failing commit disconnects everyone; the client resumes and goes on.
            Err(e) if e.is_retryable() => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let refused = refused.expect("the disk filled up");
    eprintln!("disk full after {} acknowledged 64 KiB nodes: {refused}", acked.len());
    assert!(!acked.is_empty());

    // Reads go on, and nothing acknowledged was lost.
    assert_eq!(client.get("/kept").await.unwrap().0, b"before");
    for path in &acked {
        assert!(client.exists(path).await.unwrap().is_some(), "{path} was acknowledged");
    }
    let again = client.set("/kept", b"still full", None).await.unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::DiskFull));

    // Free space: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.set("/kept", b"after", None).await {
            Ok(_) => break,
            Err(e) if e.is_retryable() => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(Instant::now() < deadline, "writes never resumed; log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.get("/kept").await.unwrap().0, b"after");
    assert!(daemon.log().contains("writes resume"));
}
