//! systemd's service notification protocol (`sd_notify(3)`): `READY=1` once clients can be
//! served, `STOPPING=1` when draining starts, and `WATCHDOG=1` pings while the engine answers.
//!
//! A datagram to `$NOTIFY_SOCKET` — a path, or an abstract address written with a leading
//! `@`. Without that variable (not started by systemd as `Type=notify`) every call is a no-op.
//! Owns no policy: `daemon.rs` decides when to say what. Imports only std and tracing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;
use tracing::{info, warn};

/// Where systemd listens for our notifications, if it does.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// STOPPING=1 goes once, from whichever path notices the stop first.
    stopping_sent: std::sync::atomic::AtomicBool,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`; unset or empty means not under systemd (every call a no-op).
    ///
    /// # Errors
    /// An address that is neither a path nor `@abstract`, or no socket could be made.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) {
            None => Ok(Notifier { target: None, stopping_sent: std::sync::atomic::AtomicBool::new(false) }),
            Some(addr) => Notifier::to(&addr.to_string_lossy()),
        }
    }

    /// A notifier sending to `addr` (`/path` or `@abstract`).
    ///
    /// # Errors
    /// An unsupported address, or no socket could be made.
    pub fn to(addr: &str) -> io::Result<Notifier> {
        let address = if let Some(name) = addr.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("NOTIFY_SOCKET {addr:?} is neither a path nor an abstract address"),
            ));
        };
        let socket = UnixDatagram::unbound()?;
        // A full queue at systemd must never block the runtime; a lost ping is only a ping.
        socket.set_nonblocking(true)?;
        Ok(Notifier { target: Some((socket, address)), stopping_sent: std::sync::atomic::AtomicBool::new(false) })
    }

    /// True when notifications go somewhere.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments) as one datagram.
    ///
    /// # Errors
    /// The send failed (systemd gone, its queue full).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            None => Ok(()),
            Some((socket, address)) => socket.send_to_addr(state.as_bytes(), address).map(drop),
        }
    }

    /// `READY=1`: recovery is done, the engine runs and every listener is bound.
    pub fn ready(&self) {
        if self.is_active() {
            info!("notifying systemd: READY=1");
        }
        log_failure(self.notify("READY=1\nSTATUS=serving"), "READY=1");
    }

    /// `STOPPING=1`: draining has begun. Sent once however often it is called.
    pub fn stopping(&self) {
        if self.stopping_sent.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        if self.is_active() {
            info!("notifying systemd: STOPPING=1");
        }
        log_failure(self.notify("STOPPING=1\nSTATUS=draining"), "STOPPING=1");
    }

    /// `WATCHDOG=1`: still alive (the caller checked that the engine answers).
    pub fn watchdog(&self) {
        log_failure(self.notify("WATCHDOG=1"), "WATCHDOG=1");
    }
}

fn log_failure(sent: io::Result<()>, what: &str) {
    if let Err(e) = sent {
        warn!(error = %e, "cannot notify systemd ({what})");
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is set and meant for
/// this process (`$WATCHDOG_PID` unset or ours), as `sd_watchdog_enabled(3)` says.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(&usec, pid.as_deref(), std::process::id())
}

fn watchdog_interval_from(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_the_timeout_and_only_for_this_process() {
        assert_eq!(watchdog_interval_from("2000000", None, 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval_from("2000000", Some("7"), 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval_from("2000000", Some("8"), 7), None);
        assert_eq!(watchdog_interval_from("0", None, 7), None);
        assert_eq!(watchdog_interval_from("soon", None, 7), None);
    }

    #[test]
    fn notifications_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(path.to_str().unwrap()).unwrap();
        notifier.ready();
        let mut buf = [0u8; 128];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
    }

    #[test]
    fn notifications_reach_an_abstract_socket() {
        let name = format!("baton-sd-notify-test-{}", std::process::id());
        let systemd = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let notifier = Notifier::to(&format!("@{name}")).unwrap();
        notifier.watchdog();
        let mut buf = [0u8; 128];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn without_notify_socket_nothing_is_sent_and_other_addresses_are_refused() {
        let quiet = Notifier { target: None, stopping_sent: std::sync::atomic::AtomicBool::new(false) };
        assert!(!quiet.is_active());
        quiet.notify("READY=1").unwrap();
        assert!(Notifier::to("vsock:2:1234").is_err());
    }
}
