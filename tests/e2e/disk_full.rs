//! A full disk: writes fail with DiskFull, reads go on, no acknowledged write is lost, and
//! writes resume by themselves once space is freed. On a small tmpfs and on a small
//! loop-mounted ext4 image (T4; both need root to mount, and skip elsewhere with the reason).

use baton::{Client, CreateOptions, ErrorCode};
use baton_tests::Daemon;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A small filesystem mounted for the test, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    kind: &'static str,
}

impl SmallDisk {
    /// A tmpfs of `size`.
    fn tmpfs(size: &str) -> Option<SmallDisk> {
        let (dir, mount) = SmallDisk::mount_point()?;
        let options = format!("size={size},mode=0700");
        let mounted = run(Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&mount));
        mounted.then_some(SmallDisk { _dir: dir, mount, kind: "tmpfs" }).or_else(|| skip("cannot mount a tmpfs here"))
    }

    /// An ext4 filesystem in an image file of `mib` MiB, mounted through a loop device.
    fn ext4_loop(mib: u64) -> Option<SmallDisk> {
        let (dir, mount) = SmallDisk::mount_point()?;
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(mib * 1024 * 1024).unwrap();
        if !run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image)) {
            return skip("mkfs.ext4 failed (is e2fsprogs installed?)");
        }
        let mounted = run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        mounted
            .then_some(SmallDisk { _dir: dir, mount, kind: "loop-mounted ext4" })
            .or_else(|| skip("cannot loop-mount an image here"))
    }

    fn mount_point() -> Option<(tempfile::TempDir, PathBuf)> {
        if !nix::unistd::geteuid().is_root() {
            return skip("mounting a small filesystem needs root (CI runs as root)");
        }
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        Some((dir, mount))
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

fn run(command: &mut Command) -> bool {
    command.status().is_ok_and(|s| s.success())
}

fn skip<T>(why: &str) -> Option<T> {
    eprintln!("skipped: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tmpfs_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::tmpfs("8m") else { return };
    full_disk(&disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_loop_mounted_ext4_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::ext4_loop(16) else { return };
    full_disk(&disk).await;
}

async fn full_disk(disk: &SmallDisk) {
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
            Err(e) => panic!("unexpected error: {e}; log:\n{}", daemon.log()),
        }
    }
    let refused = refused.expect("the disk filled up");
    println!("FIGURE T4 disk full ({}) after {} acknowledged 64 KiB nodes: {refused}", disk.kind, acked.len());
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
