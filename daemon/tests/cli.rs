//! The `batond` binary's command line: help, and clear refusals of bad setups.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn batond() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batond"))
}

#[test]
fn help_lists_every_flag() {
    let out = batond().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--config", "--data-dir", "--socket", "--listen"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn invalid_config_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("batond.toml");
    std::fs::write(&config, "session_timeout_min_ms = 0\n").unwrap();
    let out = batond().arg("--config").arg(&config).arg("--data-dir").arg(dir.path().join("d")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session_timeout_min_ms"));

    std::fs::write(&config, "no_such_option = 1\n").unwrap();
    let out = batond().arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_option"));
}

#[test]
fn a_data_directory_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = batond().arg("--data-dir").arg(&data).arg("--socket").arg(dir.path().join("s.sock")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"));
}
