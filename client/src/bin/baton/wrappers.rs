//! The process wrappers `baton lock` and `baton elect` (and `elect --observe`): take the
//! lock (win the election) with the recipe, run CMD under [`supervise`], release (resign)
//! once CMD's whole process group is dead; `elect` then campaigns again if the leadership
//! was lost, with a new session if the old one ended. The recipes do the coordination; this module only connects them to a
//! process.
//!
//! Sessions: connection-bound on a Unix socket (the session, and with it the lock, ends the
//! moment this process's connection closes, so a dead wrapper frees the lock at once), else
//! (or with `--resumable`) a normal session of `--session-timeout`.

use crate::args::SessionArgs;
use crate::commands::{at, close, print_line};
use crate::exit::{Outcome, child_status};
use crate::group::{ChildExits, ProcessGroup};
use crate::output::leader_line;
use crate::signals::{Interrupts, stopped_by};
use crate::supervise::{Ending, Watched, supervise};
use anyhow::Result;
use baton::recipes::election::{LeaderElection, Leadership};
use baton::recipes::lock::{Lock, LockGuard};
use baton::{Client, SessionState};
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

/// How long releasing the lock may take before the wrapper leaves it to the session's end.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between attempts to connect again after `elect`'s session ended.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// How `baton lock` waits for the lock.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Not at all (`--nonblock`).
    NonBlocking,
    /// Up to this long (`--timeout`), or for ever.
    Up(Option<Duration>),
}

/// A session for a wrapper, and whether it is connection-bound.
pub struct Session {
    pub client: Client,
    pub bound: bool,
}

/// Connects for a wrapper: connection-bound when every address is a Unix socket and
/// `--resumable` was not given.
///
/// # Errors
/// An unparsable address, or the connection's errors.
pub async fn connect(addr: &str, args: &SessionArgs) -> Result<Session> {
    let unix = baton::addr::parse_endpoints(addr)?.iter().all(baton::addr::Endpoint::is_unix);
    let bound = unix && !args.resumable;
    let client =
        crate::commands::builder().session_timeout(args.session_timeout).connection_bound(bound).connect(addr).await?;
    Ok(Session { client, bound })
}

/// Why a hold was lost, judged from the session's state when the recipe reported it.
pub fn loss_reason(client: &Client, bound: bool) -> String {
    match *client.session_state().borrow() {
        SessionState::Connected => "its node was deleted".to_owned(),
        SessionState::Suspended { .. } => "the session may have expired".to_owned(),
        SessionState::Expired if bound => "the connection was lost, which ends a connection-bound session".to_owned(),
        SessionState::Expired => "the session expired".to_owned(),
        _ => "the session was closed".to_owned(),
    }
}

/// This process as a candidate or holder: `HOSTNAME:PID`.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

/// `baton lock`: see its `--help`.
pub async fn lock(
    addr: &str,
    path: &str,
    wait: Wait,
    grace: Duration,
    args: &SessionArgs,
    command: &[OsString],
) -> Result<ExitCode> {
    // Before anything can be held: from here on these signals are ours to forward.
    let mut interrupts = Interrupts::install()?;
    let mut exits = ChildExits::install()?;
    let session = connect(addr, args).await?;
    let result = lock_and_run(&session, path, wait, grace, &mut interrupts, &mut exits, command).await;
    close(&session.client).await;
    result
}

async fn lock_and_run(
    session: &Session,
    path: &str,
    wait: Wait,
    grace: Duration,
    interrupts: &mut Interrupts,
    exits: &mut ChildExits,
    command: &[OsString],
) -> Result<ExitCode> {
    let lock = Lock::new(session.client.clone(), path).with_data(holder_id());
    let acquiring = async {
        match wait {
            Wait::NonBlocking => lock.try_acquire().await,
            Wait::Up(Some(timeout)) => lock.acquire_timeout(timeout).await,
            Wait::Up(None) => lock.acquire().await.map(Some),
        }
    };
    let acquired = tokio::select! {
        acquired = acquiring => acquired.map_err(|e| at(path, e))?,
        sig = interrupts.recv() => return Ok(stopped_by(sig)),
    };
    let Some(guard) = acquired else {
        let message = match wait {
            Wait::NonBlocking => format!("{path}: the lock is held by another process"),
            Wait::Up(timeout) => format!(
                "{path}: the lock was not acquired within {}",
                humantime::format_duration(timeout.unwrap_or_default())
            ),
        };
        return Err(Outcome::NotAcquired(message).into());
    };
    let env = [("BATON_FENCING_TOKEN", guard.token().to_string())];
    let mut group = match ProcessGroup::spawn(command, &env) {
        Ok(group) => group,
        Err(e) => {
            release(guard, path).await;
            return Err(e);
        }
    };
    let lost = async {
        guard.lost().await;
        loss_reason(&session.client, session.bound)
    };
    let watched = Watched {
        exits: &mut *exits,
        interrupts,
        state: session.client.session_state(),
        lost,
        grace,
        what: format!("the lock on {path}"),
    };
    let ending = supervise(&mut group, watched).await;
    // Whatever happened, nothing of CMD's may run once the lock is released.
    let status = group.finish(exits).await?;
    release(guard, path).await;
    match ending? {
        Ending::Exited => Ok(ExitCode::from(child_status(status))),
        Ending::Lost(message) => Err(Outcome::Lost(message).into()),
    }
}

/// Releases the lock, leaving it to the session's close (or expiry) if the server does not
/// answer in time.
async fn release(guard: LockGuard, path: &str) {
    match tokio::time::timeout(RELEASE_TIMEOUT, guard.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("baton: {path}: releasing the lock failed ({e}); it goes with the session"),
        Err(_) => eprintln!("baton: {path}: releasing the lock timed out; it goes with the session"),
    }
}

/// `baton elect`: see its `--help`.
pub async fn elect(
    addr: &str,
    path: &str,
    id: Option<String>,
    grace: Duration,
    args: &SessionArgs,
    command: &[OsString],
) -> Result<ExitCode> {
    let mut interrupts = Interrupts::install()?;
    let mut exits = ChildExits::install()?;
    let id = id.unwrap_or_else(holder_id);
    let mut session = connect(addr, args).await?;
    loop {
        let term = Term { session: &session, path, id: &id, grace, command };
        let result = term.serve(&mut interrupts, &mut exits).await;
        match result {
            Ok(Some(code)) => {
                close(&session.client).await;
                return Ok(code);
            }
            Ok(None) => {}
            Err(e) => {
                close(&session.client).await;
                return Err(e);
            }
        }
        if session.client.session_state().borrow().is_terminal() {
            close(&session.client).await;
            session = match reconnect(addr, args, &mut interrupts).await {
                Ok(session) => session,
                Err(code) => return Ok(code),
            };
        }
    }
}

/// One campaign of `baton elect` and, if won, one run of CMD.
struct Term<'a> {
    session: &'a Session,
    path: &'a str,
    id: &'a str,
    grace: Duration,
    command: &'a [OsString],
}

impl Term<'_> {
    /// Campaigns and runs CMD while leader. `Some(code)`: exit with it; `None`: the
    /// leadership (or the session, while campaigning) was lost, campaign again.
    async fn serve(self, interrupts: &mut Interrupts, exits: &mut ChildExits) -> Result<Option<ExitCode>> {
        let Term { session, path, id, grace, command } = self;
        let election = LeaderElection::new(session.client.clone(), path);
        let campaigned = tokio::select! {
            campaigned = election.campaign(id.as_bytes()) => campaigned,
            sig = interrupts.recv() => return Ok(Some(stopped_by(sig))),
        };
        let leadership = match campaigned {
            Ok(leadership) => leadership,
            Err(baton::Error::SessionExpired | baton::Error::Closed) => {
                eprintln!("baton: {path}: {}; campaigning again", loss_reason(&session.client, session.bound));
                return Ok(None);
            }
            Err(e) => return Err(at(path, e)),
        };
        eprintln!("baton: {path}: leading as {id}");
        let env = [("BATON_LEADER_ID", id.to_owned()), ("BATON_FENCING_TOKEN", leadership.token().to_string())];
        let mut group = match ProcessGroup::spawn(command, &env) {
            Ok(group) => group,
            Err(e) => {
                resign(leadership, path).await;
                return Err(e);
            }
        };
        let lost = async {
            leadership.lost().await;
            loss_reason(&session.client, session.bound)
        };
        let what = format!("the leadership of {path}");
        let watched =
            Watched { exits: &mut *exits, interrupts, state: session.client.session_state(), lost, grace, what };
        let ending = supervise(&mut group, watched).await;
        let status = group.finish(exits).await?;
        resign(leadership, path).await;
        match ending? {
            Ending::Exited => Ok(Some(ExitCode::from(child_status(status)))),
            Ending::Lost(message) => {
                eprintln!("baton: {message}; campaigning again");
                Ok(None)
            }
        }
    }
}

/// Resigns, leaving it to the session's close (or expiry) if the server does not answer in
/// time.
async fn resign(leadership: Leadership, path: &str) {
    match tokio::time::timeout(RELEASE_TIMEOUT, leadership.resign()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("baton: {path}: resigning failed ({e}); the candidacy goes with the session"),
        Err(_) => eprintln!("baton: {path}: resigning timed out; the candidacy goes with the session"),
    }
}

/// Connects again after the session ended, retrying every [`RECONNECT_PAUSE`] until it
/// succeeds or a signal says stop (`Err` with the exit code).
async fn reconnect(addr: &str, args: &SessionArgs, interrupts: &mut Interrupts) -> Result<Session, ExitCode> {
    loop {
        let attempt = async {
            let result = connect(addr, args).await;
            if let Err(e) = &result {
                eprintln!("baton: {e:#}; retrying in {}", humantime::format_duration(RECONNECT_PAUSE));
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
            result
        };
        tokio::select! {
            attempt = attempt => if let Ok(session) = attempt { return Ok(session) },
            sig = interrupts.recv() => return Err(stopped_by(sig)),
        }
    }
}

/// `baton elect --observe`: prints the leader, then a line per change.
pub async fn observe(client: &Client, path: &str, json: bool, count: Option<u64>) -> Result<ExitCode> {
    let mut interrupts = Interrupts::install()?;
    let election = LeaderElection::new(client.clone(), path);
    let mut observer = tokio::select! {
        observer = election.observe() => observer.map_err(|e| at(path, e))?,
        sig = interrupts.recv() => return Ok(stopped_by(sig)),
    };
    let mut printed = 0_u64;
    while count.is_none_or(|n| printed < n) {
        let leader = tokio::select! {
            leader = observer.next() => leader.map_err(|e| at(path, e))?,
            sig = interrupts.recv() => return Ok(stopped_by(sig)),
        };
        let leader = leader.map(|id| String::from_utf8_lossy(&id).into_owned());
        print_line(&leader_line(leader.as_deref(), json))?;
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}
