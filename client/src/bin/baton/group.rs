//! CMD's process group, for the process wrappers (`lock`, `elect`, `register`).
//!
//! CMD runs in a process group apart from the wrapper's, so one signal to the group reaches
//! CMD and every process it started that stayed in the group, grandchildren included. When CMD
//! ends, whatever it left in its group is killed too ([`ProcessGroup::finish`]), so nothing
//! keeps running after the lock is released.
//!
//! The group is led by a *guard* process (this same binary, run as the hidden `baton
//! __guard`), started first, which holds the read end of a pipe whose write end only this
//! process holds. If this process dies without cleaning up (SIGKILL, a crash, the OOM
//! killer), the kernel closes the write end, the guard reads end-of-file and SIGKILLs its
//! group: CMD never outlives its wrapper by more than the guard's reaction time. Because the
//! group exists before CMD does and CMD is started inside it, there is no moment at which CMD
//! runs and the guard does not know its group (with CMD leading a group of its own, a wrapper
//! killed between starting CMD and telling the guard CMD's pid left CMD running). The guard
//! blocks the signals the wrapper passes on to the group, and says it is ready only then. The
//! group is not the terminal's foreground group, so a Ctrl-C reaches the wrapper alone, which
//! passes it on.

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
    pgid: u32,
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
        // Into the guard's group (its pid), which exists and is guarded before CMD runs.
        command.args(args).process_group(guard.pgid() as i32);
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
        let pgid = guard.pgid();
        Ok(ProcessGroup { child, pgid, guard: Some(guard), status: None, finished: false })
    }

    /// The process group's id (the guard's pid).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Sends `sig` to the whole group. A SIGKILL that cannot be sent to the group is sent to
    /// CMD itself at least.
    pub fn signal(&mut self, sig: Sig) {
        match signal_group(self.pgid(), sig) {
            Ok(_) => {}
            Err(e) => {
                eprintln!("baton: cannot send SIG{} to process group {}: {e}", sig.name(), self.pgid());
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
    /// Starts `baton __guard` leading a process group of its own, its stdin a pipe from us,
    /// and waits until it is ready (it blocks the signals passed on to the group first).
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
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .context("starting the guard process")?;
        let pipe = child.stdin.take();
        let mut guard = Guard { child, pipe };
        let mut ready = [0u8; 1];
        let answered = guard.child.stdout.take().map(|mut out| out.read_exact(&mut ready));
        if !matches!(answered, Some(Ok(()))) || ready[0] != GUARD_READY {
            guard.disarm();
            anyhow::bail!("the guard process did not start");
        }
        Ok(guard)
    }

    /// The group it leads: its pid.
    fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the guard without it killing anything: SIGKILL first, then the pipe closes.
    fn disarm(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pipe = None;
    }
}

/// What the guard writes once it is ready.
const GUARD_READY: u8 = b'+';

/// This process's own executable, on Linux.
const SELF_EXE: &str = "/proc/self/exe";

/// The hidden subcommand that runs the guard.
pub const GUARD_COMMAND: &str = "__guard";

/// The guard's body: block the signals the wrapper passes on to the group, say so, wait for
/// end-of-file on stdin (the wrapper is gone), SIGKILL the group — itself included. Returns
/// the exit status if it could not.
pub fn run_guard() -> u8 {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let mut passed_on = SigSet::empty();
    for signal in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM] {
        passed_on.add(signal);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&passed_on), None) {
        eprintln!("baton: the guard process cannot block signals: {e}");
        return crate::exit::FAILURE;
    }
    let mut stdout = std::io::stdout();
    if stdout.write_all(&[GUARD_READY]).and_then(|()| stdout.flush()).is_err() {
        return crate::exit::FAILURE;
    }
    // Blocks until every write end is closed: the wrapper exited, one way or another.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let pgid = std::process::id();
    eprintln!("baton: the wrapper died; killing its command's process group {pgid}");
    match signal_group(pgid, Sig::Kill) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("baton: the command's process group {pgid} could not be killed: {e}");
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
