//! Where the daemon puts its socket by default, so that the daemon and the `baton` CLI agree
//! without configuration.
//!
//! - root: `/run/baton/baton.sock` (the system service's socket)
//! - anyone else: `$XDG_RUNTIME_DIR/baton/baton.sock`, or `/tmp/baton-$UID/baton.sock` when
//!   `XDG_RUNTIME_DIR` is unset
//!
//! Clients try their own default first and fall back to the system socket, so an unprivileged
//! user in the `baton` group reaches the system service with no flags.

use std::path::PathBuf;

/// The system service's socket.
pub const SYSTEM_SOCKET_PATH: &str = "/run/baton/baton.sock";
/// The system service's data directory.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/baton";

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The socket path a daemon run by this user listens on by default.
pub fn socket_path() -> PathBuf {
    if effective_uid() == 0 {
        return PathBuf::from(SYSTEM_SOCKET_PATH);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("baton").join("baton.sock"),
        None => PathBuf::from(format!("/tmp/baton-{}", effective_uid())).join("baton.sock"),
    }
}

/// The socket a client should use when given no address: this user's default if a daemon
/// listens there, else the system service's socket if it exists, else this user's default
/// (so the error names the path the user's own daemon would use).
pub fn client_socket_path() -> PathBuf {
    let own = socket_path();
    if own.exists() {
        return own;
    }
    let system = PathBuf::from(SYSTEM_SOCKET_PATH);
    if system.exists() { system } else { own }
}
