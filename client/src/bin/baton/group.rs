//! CMD's process group, for the process wrappers (`lock`, `elect`, `register`).
//!
//! CMD starts in a process group of its own (`process_group(0)`: its pid is the group id),
//! so one signal to the group reaches CMD and every process it started that stayed in the
//! group, grandchildren included. When CMD ends, whatever it left in its group is killed
//! too ([`ProcessGroup::finish`]), so nothing keeps running after the lock is released.
//!
//! A *guard* process (this same binary, run as the hidden `baton __guard`) holds the read
//! end of a pipe whose write end only this process holds. If this process dies without
//! cleaning up (SIGKILL, a crash, the OOM killer), the kernel closes the write end, the
//! guard reads end-of-file and SIGKILLs the group: CMD never outlives its wrapper by more
//! than the guard's reaction time. The guard sits in a process group of its own, so a
//! Ctrl-C at the terminal does not reach it.
//!
//! Signalling a group takes kill(2) with a negative pid. This crate forbids unsafe code and
//! none of its dependencies offers a safe wrapper, so [`signal_group`] runs `kill(1)` (a
//! fork and exec, about a millisecond). When `kill(1)` cannot run, a SIGKILL still reaches
//! CMD itself through [`std::process::Child::kill`], but not its grandchildren.

use crate::exit::Outcome;
use anyhow::{Context as _, Result};
use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals the wrappers send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    Hup,
    Int,
    Term,
    Kill,
}

impl Sig {
    /// The name `kill -s` takes.
    pub fn name(self) -> &'static str {
        match self {
            Sig::Hup => "HUP",
            Sig::Int => "INT",
            Sig::Term => "TERM",
            Sig::Kill => "KILL",
        }
    }

    /// The signal's number (the same on every Linux architecture for these four).
    pub fn number(self) -> u8 {
        match self {
            Sig::Hup => 1,
            Sig::Int => 2,
            Sig::Kill => 9,
            Sig::Term => 15,
        }
    }
}

/// Sends `sig` to every process in the group `pgid` (killpg(2)). Returns `false` when no
/// process was left in the group.
///
/// # Errors
/// The signal could not be sent for another reason (permissions).
pub fn signal_group(pgid: u32, sig: Sig) -> std::io::Result<bool> {
    use nix::sys::signal::{Signal, killpg};
    assert!(pgid > 1, "refusing to signal process group {pgid}");
    let signal = match sig {
        Sig::Hup => Signal::SIGHUP,
        Sig::Int => Signal::SIGINT,
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    match killpg(nix::unistd::Pid::from_raw(pgid as i32), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// A wake-up on every SIGCHLD, to reap CMD without a thread or a polling loop.
pub struct ChildExits(Signal);

impl ChildExits {
    /// Installs the SIGCHLD handler. Do it before spawning, so no exit is missed.
    pub fn install() -> Result<ChildExits> {
        Ok(ChildExits(signal(SignalKind::child()).context("installing a SIGCHLD handler")?))
    }
}

/// CMD running in its own process group, with its guard.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    guard: Option<Guard>,
    status: Option<ExitStatus>,
    finished: bool,
}

impl ProcessGroup {
    /// Starts `argv` (program first) in a new process group, with `env` added to this
    /// process's environment, stdin, stdout and stderr inherited, under a guard.
    ///
    /// # Errors
    /// The guard could not be started, or CMD could not: then the error is an
    /// [`Outcome::CannotRun`] with the status a shell would report (127 not found, 126 not
    /// executable).
    pub fn spawn(argv: &[OsString], env: &[(&str, String)]) -> Result<ProcessGroup> {
        let (program, args) = argv.split_first().context("no command given")?;
        let mut guard = Guard::spawn()?;
        let mut command = Command::new(program);
        command.args(args).process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                guard.disarm();
                let status = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
                let message = format!("cannot run {}: {e}", program.to_string_lossy());
                return Err(Outcome::CannotRun { message, status }.into());
            }
        };
        guard.arm(child.id());
        Ok(ProcessGroup { child, guard: Some(guard), status: None, finished: false })
    }

    /// The process group's id (CMD's pid).
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the whole group. A SIGKILL that `kill(1)` cannot deliver is sent to
    /// CMD itself at least.
    pub fn signal(&mut self, sig: Sig) {
        match signal_group(self.pgid(), sig) {
            Ok(_) => {}
            Err(e) => {
                eprintln!("baton: cannot run kill(1) to send SIG{} to process group {}: {e}", sig.name(), self.pgid());
                if sig == Sig::Kill && self.status.is_none() {
                    let _ = self.child.kill();
                }
            }
        }
    }

    /// CMD's exit status once it has exited (reaping it), else `None`.
    ///
    /// # Errors
    /// waitpid failed (it cannot, for a child we own and have not reaped elsewhere).
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait().context("waiting for the command")?;
        }
        Ok(self.status)
    }

    /// Waits for CMD to exit and returns its status (also if it had already).
    ///
    /// # Cancellation safety
    /// Cancel-safe: nothing is lost; the status is kept once reaped.
    pub async fn wait(&mut self, exits: &mut ChildExits) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            // A SIGCHLD is delivered after every child's exit; several may coalesce into one
            // wake-up, which is why the status is checked after each.
            exits.0.recv().await;
        }
    }

    /// Kills what CMD left in its group (CMD has exited) or the whole group (it has not),
    /// waits for CMD, and retires the guard. Returns CMD's status.
    ///
    /// # Cancellation safety
    /// Cancel-safe in effect: if dropped, [`Drop`] kills and reaps synchronously.
    pub async fn finish(mut self, exits: &mut ChildExits) -> Result<ExitStatus> {
        self.signal(Sig::Kill);
        let status = self.wait(exits).await?;
        // Stragglers that were forking while the first SIGKILL went out.
        self.signal(Sig::Kill);
        self.retire_guard();
        self.finished = true;
        Ok(status)
    }

    fn retire_guard(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.disarm();
        }
    }
}

impl Drop for ProcessGroup {
    /// An early return (an error) must not leave CMD running: kill the group and reap CMD.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.signal(Sig::Kill);
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.retire_guard();
    }
}

/// The guard process and the write end of its pipe.
#[derive(Debug)]
struct Guard {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Guard {
    /// Starts `baton __guard` in a process group of its own, its stdin a pipe from us.
    fn spawn() -> Result<Guard> {
        // /proc/self/exe still runs this very program after it was replaced on disk (an
        // upgrade while `elect` runs for weeks); its resolved path would not.
        let exe = if Path::new(SELF_EXE).exists() {
            std::path::PathBuf::from(SELF_EXE)
        } else {
            std::env::current_exe().context("finding this program to start its guard process")?
        };
        let mut child = Command::new(exe)
            .arg0("baton")
            .arg(GUARD_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .context("starting the guard process")?;
        let pipe = child.stdin.take();
        Ok(Guard { child, pipe })
    }

    /// Tells the guard which group to kill should the pipe close.
    fn arm(&mut self, pgid: u32) {
        let written = self.pipe.as_mut().map(|pipe| writeln!(pipe, "{pgid}").and_then(|()| pipe.flush()));
        if let Some(Err(e)) = written {
            eprintln!("baton: warning: the guard process is gone ({e}); the command would outlive a killed baton");
        }
    }

    /// Stops the guard without it killing anything: SIGKILL first, then the pipe closes.
    fn disarm(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pipe = None;
    }
}

/// This process's own executable, on Linux.
const SELF_EXE: &str = "/proc/self/exe";

/// The hidden subcommand that runs the guard.
pub const GUARD_COMMAND: &str = "__guard";

/// The guard's body: read a process group id from stdin, wait for end-of-file, SIGKILL the
/// group. Returns the exit status.
pub fn run_guard() -> u8 {
    let mut input = Vec::new();
    // Blocks until every write end is closed: the wrapper exited, one way or another.
    let _ = std::io::stdin().lock().read_to_end(&mut input);
    let text = String::from_utf8_lossy(&input);
    let Some(pgid) = text.lines().next().and_then(|line| line.trim().parse::<u32>().ok()).filter(|&p| p > 1) else {
        return 0;
    };
    match signal_group(pgid, Sig::Kill) {
        Ok(true) => {
            eprintln!("baton: the wrapper died; killed its command's process group {pgid}");
            0
        }
        Ok(false) => 0,
        Err(e) => {
            eprintln!("baton: the wrapper died, and its command's process group {pgid} could not be killed: {e}");
            crate::exit::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers_match() {
        for (sig, name, number) in
            [(Sig::Hup, "HUP", 1), (Sig::Int, "INT", 2), (Sig::Term, "TERM", 15), (Sig::Kill, "KILL", 9)]
        {
            assert_eq!((sig.name(), sig.number()), (name, number));
        }
    }

    #[test]
    fn signalling_an_empty_group_reports_nobody_there() {
        // A fresh child's pid is a group id nobody uses once it has been reaped.
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!signal_group(pid, Sig::Term).unwrap());
    }
}
