//! Runs a wrapper's command while a lock (or leadership, or a registration) is held, and
//! kills it before the server could hand that lock to anyone else.
//!
//! [`supervise`] watches four things at once:
//!
//! - **Loss** (the recipe's lost signal: the holder's node was deleted, or the session
//!   ended; or the session state turns `Expired`/`Closed` — a connection-bound session is
//!   expired the moment its connection is lost): the lock may already be someone else's, so
//!   the whole group gets SIGKILL at once.
//! - **Jeopardy** (the session is `Suspended`, a normal session only): the server may expire
//!   it as soon as `expires_at`. At `expires_at - grace - KILL_MARGIN` the group gets
//!   SIGTERM, at `expires_at - KILL_MARGIN` SIGKILL, unless the session is connected again
//!   before the SIGTERM moment. Once SIGTERM was sent the command is finished off whatever
//!   happens next: a half-terminated command is not worth resuming.
//! - **Signals** to the wrapper (SIGINT, SIGTERM, SIGHUP): forwarded to the group; the
//!   wrapper then waits for the command and exits with its status.
//! - **The command's exit.**
//!
//! In every case the group is killed (what is left of it) and CMD reaped before this
//! returns, so the caller can release the lock knowing nothing of CMD's still runs.

use crate::group::{ChildExits, ProcessGroup, Sig};
use crate::signals::Interrupts;
use anyhow::Result;
use baton::SessionState;
use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// How long before the session may expire the command must be dead: covers
/// the kernel delivering SIGKILL to the group and the wrapper being scheduled a little late.
pub const KILL_MARGIN: Duration = Duration::from_millis(250);

/// How the supervised command ended.
#[derive(Debug)]
pub enum Ending {
    /// It exited by itself (possibly after a forwarded signal).
    Exited,
    /// What it ran under was lost (or about to be) and its group was killed.
    Lost(String),
}

/// When to send SIGTERM and SIGKILL to a command whose session may expire at `expires_at`.
pub fn deadlines(expires_at: Instant, grace: Duration) -> (Instant, Instant) {
    let kill_at = expires_at.checked_sub(KILL_MARGIN).unwrap_or(expires_at);
    let term_at = kill_at.checked_sub(grace).unwrap_or(kill_at);
    (term_at, kill_at)
}

/// The jeopardy schedule in force.
#[derive(Clone, Copy, Debug)]
struct Jeopardy {
    term_at: Instant,
    kill_at: Instant,
    /// SIGTERM has been sent: no way back.
    terminating: bool,
}

/// What a session state means for the command.
enum Verdict {
    Fine,
    Jeopardy(Instant),
    Lost(&'static str),
}

fn verdict(state: SessionState) -> Verdict {
    match state {
        SessionState::Connected => Verdict::Fine,
        SessionState::Suspended { expires_at } => Verdict::Jeopardy(expires_at),
        SessionState::Expired => Verdict::Lost("the session expired"),
        _ => Verdict::Lost("the session was closed"),
    }
}

/// Everything [`supervise`] watches besides the command.
pub struct Watched<'a, L> {
    pub exits: &'a mut ChildExits,
    pub interrupts: &'a mut Interrupts,
    pub state: watch::Receiver<SessionState>,
    /// Completes, with a reason, when the recipe reports the loss.
    pub lost: L,
    pub grace: Duration,
    /// What is held, for messages: "the lock on /x", "the leadership of /x".
    pub what: String,
}

/// Supervises `group` until it ends; see the module documentation. The group is dead and
/// reaped when this returns.
///
/// # Cancellation safety
/// Not meant to be cancelled; if it is, dropping `group` kills it.
pub async fn supervise<L>(group: &mut ProcessGroup, watched: Watched<'_, L>) -> Result<Ending>
where
    L: Future<Output = String>,
{
    let Watched { exits, interrupts, mut state, lost, grace, what } = watched;
    tokio::pin!(lost);
    let mut jeopardy: Option<Jeopardy> = None;
    let mut current = *state.borrow_and_update();
    loop {
        match verdict(current) {
            Verdict::Lost(reason) => return kill_now(group, exits, &what, reason).await,
            Verdict::Jeopardy(expires_at) => jeopardy = Some(schedule(jeopardy, expires_at, grace, &what)),
            Verdict::Fine => {
                if jeopardy.is_some_and(|j| !j.terminating) {
                    eprintln!("baton: reconnected in time; {what} is still held");
                    jeopardy = None;
                }
            }
        }
        let (term_at, kill_at) = jeopardy.map_or((None, None), |j| (Some(j.term_at), Some(j.kill_at)));
        let terminating = jeopardy.is_some_and(|j| j.terminating);
        tokio::select! {
            biased;
            reason = &mut lost => return kill_now(group, exits, &what, &reason).await,
            changed = state.changed() => {
                // A dropped sender means the session task ended: its last state is final.
                current = if changed.is_ok() { *state.borrow_and_update() } else { SessionState::Closed };
            }
            () = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                return kill_now(group, exits, &what, "the session could expire any moment").await;
            }
            () = sleep_until(term_at.unwrap_or_else(Instant::now)), if term_at.is_some() && !terminating => {
                eprintln!("baton: still disconnected: sending SIGTERM to the command before {what} may be lost");
                group.signal(Sig::Term);
                jeopardy = jeopardy.map(|j| Jeopardy { terminating: true, ..j });
            }
            status = group.wait(exits) => {
                let status = status?;
                if terminating {
                    return Ok(Ending::Lost(format!(
                        "the session was disconnected too long; the command was terminated ({})",
                        describe(status)
                    )));
                }
                return Ok(Ending::Exited);
            }
            sig = interrupts.recv() => group.signal(sig),
        }
    }
}

/// The schedule for a session suspended until `expires_at`, given the one in force.
fn schedule(current: Option<Jeopardy>, expires_at: Instant, grace: Duration, what: &str) -> Jeopardy {
    let (term_at, kill_at) = deadlines(expires_at, grace);
    if let Some(j) = current {
        // Already counting down: never postpone.
        return Jeopardy { term_at: j.term_at.min(term_at), kill_at: j.kill_at.min(kill_at), ..j };
    }
    let left = term_at.saturating_duration_since(Instant::now());
    eprintln!(
        "baton: disconnected from the server; {what} may be lost: the command gets SIGTERM in {} ms \
         unless the session is resumed before",
        left.as_millis()
    );
    Jeopardy { term_at, kill_at, terminating: false }
}

/// SIGKILLs the whole group at once and reaps the command.
async fn kill_now(group: &mut ProcessGroup, exits: &mut ChildExits, what: &str, reason: &str) -> Result<Ending> {
    group.signal(Sig::Kill);
    let status = group.wait(exits).await?;
    Ok(Ending::Lost(format!("lost {what}: {reason}; the command was killed ({})", describe(status))))
}

/// "exit status N" or "signal N".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_leave_grace_then_margin_before_expiry() {
        let now = Instant::now();
        let (term_at, kill_at) = deadlines(now + Duration::from_secs(5), Duration::from_secs(2));
        assert_eq!(kill_at - now, Duration::from_millis(4750));
        assert_eq!(term_at - now, Duration::from_millis(2750));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_suspension_never_postpones_the_schedule() {
        let now = Instant::now();
        let first = schedule(None, now + Duration::from_secs(5), Duration::from_secs(1), "x");
        let later = schedule(Some(first), now + Duration::from_secs(9), Duration::from_secs(1), "x");
        assert_eq!((later.term_at, later.kill_at), (first.term_at, first.kill_at));
        let sooner = schedule(Some(first), now + Duration::from_secs(2), Duration::from_secs(1), "x");
        assert!(sooner.kill_at < first.kill_at);
    }

    #[test]
    fn states_map_to_verdicts() {
        assert!(matches!(verdict(SessionState::Connected), Verdict::Fine));
        assert!(matches!(verdict(SessionState::Expired), Verdict::Lost(_)));
        assert!(matches!(verdict(SessionState::Closed), Verdict::Lost(_)));
    }
}
