//! The CLI's exit statuses, and which error gets which.
//!
//! The process wrappers (`lock`, `elect`, `register`) exit with their command's status
//! ([`child_status`]); their own outcomes use the statuses below, which a command can return
//! as an [`Outcome`] error.

use baton::ErrorCode;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

/// Any error not listed below.
pub const FAILURE: u8 = 1;
/// No such node.
pub const NO_NODE: u8 = 3;
/// A version conflict, or the node already exists.
pub const CONFLICT: u8 = 4;
/// Not acquired within `--timeout` (or at once, with `--nonblock`); a `wait` or `barrier
/// wait` that timed out; `queue take` found no item.
pub const NOT_ACQUIRED: u8 = 5;
/// The lock or the leadership was lost while the command ran, and the command was killed.
pub const LOST: u8 = 6;

/// An outcome that is not a failure of the tool but has its own exit status. Its message
/// goes to stderr like an error's.
#[derive(Debug, thiserror::Error)]
pub enum Outcome {
    /// Exit status [`NOT_ACQUIRED`].
    #[error("{0}")]
    NotAcquired(String),
    /// Exit status [`LOST`].
    #[error("{0}")]
    Lost(String),
    /// A wrapper's command could not be started: `status` is what a shell reports, 127 for
    /// a command not found, 126 for one that cannot be executed.
    #[error("{message}")]
    CannotRun { message: String, status: u8 },
}

/// The exit status for `err`: an [`Outcome`] anywhere in its chain decides, else the first
/// client error.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if let Some(outcome) = err.chain().find_map(|cause| cause.downcast_ref::<Outcome>()) {
        return match outcome {
            Outcome::NotAcquired(_) => NOT_ACQUIRED,
            Outcome::Lost(_) => LOST,
            Outcome::CannotRun { status, .. } => *status,
        };
    }
    let code = err.chain().find_map(|cause| cause.downcast_ref::<baton::Error>()).and_then(baton::Error::code);
    match code {
        Some(ErrorCode::NoNode) => NO_NODE,
        Some(ErrorCode::BadVersion | ErrorCode::NodeExists) => CONFLICT,
        _ => FAILURE,
    }
}

/// The status a shell reports for a child that ended with `status`: its exit code, or
/// 128 + N if signal N killed it.
pub fn child_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => (128 + (signal & 0x7f)) as u8,
        (None, None) => FAILURE,
    }
}

/// Whether `err` is a write to a closed pipe (`baton watch | head -n 1`): not worth a
/// message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn server(code: ErrorCode) -> anyhow::Error {
        anyhow::Error::new(baton::Error::Server { code, message: "/a".into() })
    }

    #[test]
    fn maps_node_errors_to_their_statuses() {
        assert_eq!(exit_status(&server(ErrorCode::NoNode)), NO_NODE);
        assert_eq!(exit_status(&server(ErrorCode::BadVersion)), CONFLICT);
        assert_eq!(exit_status(&server(ErrorCode::NodeExists)), CONFLICT);
        assert_eq!(exit_status(&server(ErrorCode::NotEmpty)), FAILURE);
        assert_eq!(exit_status(&anyhow::Error::new(baton::Error::SessionExpired)), FAILURE);
        assert_eq!(exit_status(&anyhow::anyhow!("other")), FAILURE);
    }

    #[test]
    fn looks_through_context() {
        let err = Err::<(), _>(baton::Error::Server { code: ErrorCode::NoNode, message: String::new() })
            .context("/a")
            .unwrap_err();
        assert_eq!(exit_status(&err), NO_NODE);
    }

    #[test]
    fn outcomes_have_their_own_statuses() {
        let err = anyhow::Error::new(Outcome::NotAcquired("held".into())).context("/lock");
        assert_eq!(exit_status(&err), NOT_ACQUIRED);
        assert_eq!(exit_status(&anyhow::Error::new(Outcome::Lost("gone".into()))), LOST);
        assert_eq!(format!("{err:#}"), "/lock: held");
    }

    #[test]
    fn child_statuses_are_what_a_shell_reports() {
        assert_eq!(child_status(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(child_status(ExitStatus::from_raw(0)), 0);
        assert_eq!(child_status(ExitStatus::from_raw(15)), 143);
        assert_eq!(child_status(ExitStatus::from_raw(9)), 137);
    }

    #[test]
    fn recognises_a_broken_pipe() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&err.context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("x")));
    }
}
