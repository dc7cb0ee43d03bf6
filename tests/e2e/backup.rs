//! Online backup and restore with the real daemon and CLI: a consistent copy written while
//! writes go on, restored into a fresh data directory, holding exactly the state it reports.

use baton::{Client, CreateOptions};
use baton_tests::{Daemon, cli};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_into_a_fresh_data_directory() {
    let daemon = Daemon::start();
    let client = Client::connect(&daemon.addr()).await.unwrap();
    for i in 0..200 {
        client.create(&format!("/n{i}"), format!("value {i}").as_bytes(), CreateOptions::persistent()).await.unwrap();
    }
    // A writer keeps going while the backup is taken.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn({
        let client = Client::connect(&daemon.addr()).await.unwrap();
        async move {
            let mut writes = 0u64;
            while !*stop.borrow() {
                client.set("/n0", format!("{writes}").as_bytes(), None).await.unwrap();
                writes += 1;
            }
            writes
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baton-backup.redb");
    let out = cli(&daemon.addr()).args(["admin", "backup"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    let _ = stop_tx.send(true);
    let writes = writer.await.unwrap();
    assert!(writes > 0, "writes went on");
    eprintln!("backup: {} (while {writes} writes went through)", said.trim());
    let zxid_text = said.split("as of ").nth(1).unwrap().split_whitespace().next().unwrap();
    let backup_zxid = u64::from_str_radix(zxid_text.trim_start_matches("0x"), 16).unwrap();

    // A second backup to the same file is refused: a backup never overwrites.
    let again = cli(&daemon.addr()).args(["admin", "backup"]).arg(&file).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let restored = Daemon::start_with(&["--restore", file.to_str().unwrap()]);
    let on_restored = Client::connect(&restored.addr()).await.unwrap();
    let status = on_restored.status().await.unwrap();
    assert!(status.last_zxid.0 >= backup_zxid, "restored at {} from a backup of {backup_zxid:#x}", status.last_zxid);
    for i in 1..200 {
        let (data, _) = on_restored.get(&format!("/n{i}")).await.unwrap();
        assert_eq!(data, format!("value {i}").as_bytes());
    }
    // The restored copy is a consistent state: /n0 holds one of the writer's values.
    let (n0, _) = on_restored.get("/n0").await.unwrap();
    let value: u64 = String::from_utf8(n0).unwrap().parse().unwrap_or(u64::MAX);
    assert!(value < writes, "n0 = {value} is one of the {writes} values written");
}

#[test]
fn restore_refuses_a_data_directory_that_already_holds_a_store() {
    let daemon = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.redb");
    assert!(cli(&daemon.addr()).args(["admin", "backup"]).arg(&file).status().unwrap().success());
    let out = std::process::Command::new(baton_tests::binary("batond"))
        .arg("--restore")
        .arg(&file)
        .arg("--data-dir")
        .arg(daemon.data_dir())
        .arg("--socket")
        .arg(dir.path().join("other.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a store"));
}
