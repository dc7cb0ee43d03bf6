//! The client's error type: what the server refused, what the connection did, and what the
//! caller got wrong, with a classifier ([`Error::is_retryable`]) and the wire code
//! ([`Error::code`]) to branch on.

use baton_proto::{ErrorCode, ErrorReply, OpResult};
use std::io;
use thiserror::Error;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a client call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request (`NoNode`, `BadVersion`, `NodeExists`, ...).
    #[error("{}", fmt_reply(*code, message))]
    Server { code: ErrorCode, message: String },

    /// A `multi` was rolled back: op `index` failed with `code`; `results` holds one entry
    /// per op (`RolledBack` before the failing one, `Skipped` after it).
    #[error("multi failed at op {index}: {code}")]
    MultiFailed { index: usize, code: ErrorCode, results: Vec<OpResult> },

    /// The connection was lost while the request was in flight: it may or may not have taken
    /// effect. The session itself may survive (see [`crate::SessionState::Suspended`]).
    #[error("connection lost: the request may or may not have taken effect")]
    ConnectionLoss,

    /// The session has expired (or the server ended it); its ephemeral nodes are gone and
    /// every later request fails the same way. Start a new [`crate::Client`].
    #[error("session expired")]
    SessionExpired,

    /// The client was closed, by [`crate::Client::close`] or because every handle was dropped.
    #[error("client closed")]
    Closed,

    /// No server could be reached or none completed the handshake. The cause is the
    /// error's `source()`.
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },

    /// The address string could not be parsed.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },

    /// The call was refused before anything was sent (too large a request, an option that
    /// the chosen transport does not support, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The server broke the protocol (an unexpected reply); the connection was dropped.
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// A persistent watcher was not read fast enough and its bounded queue filled up. The
    /// events queued before are still delivered; then the watcher ends with this error and
    /// is removed. Re-read the state and watch again.
    #[error("watcher fell behind and was removed; re-read and watch again")]
    WatchOverflow,
}

fn fmt_reply(code: ErrorCode, message: &str) -> String {
    if message.is_empty() { code.to_string() } else { format!("{code}: {message}") }
}

impl Error {
    /// The wire error code this error corresponds to, if any. Local conditions that have no
    /// code (a closed client, a bad address, a protocol violation) return `None`.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } | Error::MultiFailed { code, .. } => Some(*code),
            Error::ConnectionLoss | Error::Connect { .. } => Some(ErrorCode::ConnectionLoss),
            Error::SessionExpired => Some(ErrorCode::SessionExpired),
            Error::InvalidArgument(_) => Some(ErrorCode::InvalidArgument),
            Error::Closed | Error::InvalidAddress { .. } | Error::Protocol(_) | Error::WatchOverflow => None,
        }
    }

    /// Whether retrying the same call later may succeed. `ConnectionLoss` is retryable, but
    /// a non-idempotent write may already have taken effect: check before repeating it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ConnectionLoss | Error::Connect { .. } => true,
            Error::Server { code, .. } => code.is_retryable(),
            _ => false,
        }
    }

    /// Whether the node did not exist (`NoNode`).
    pub fn is_no_node(&self) -> bool {
        self.code() == Some(ErrorCode::NoNode)
    }

    /// Whether the node already existed (`NodeExists`).
    pub fn is_node_exists(&self) -> bool {
        self.code() == Some(ErrorCode::NodeExists)
    }

    /// Whether the expected version did not match (`BadVersion`).
    pub fn is_bad_version(&self) -> bool {
        self.code() == Some(ErrorCode::BadVersion)
    }

    /// The error for a reply the server refused. `SessionExpired` becomes
    /// [`Error::SessionExpired`] so callers need to match only one form.
    pub(crate) fn from_reply(reply: ErrorReply) -> Self {
        match reply.code {
            ErrorCode::SessionExpired => Error::SessionExpired,
            code => Error::Server { code, message: reply.message },
        }
    }

    /// The error for the results of a `multi` that contain a failure, if they do. The failing
    /// op is the one whose code is neither `RolledBack` nor `Skipped`.
    pub(crate) fn from_multi(results: Vec<OpResult>) -> Result<Vec<OpResult>> {
        let codes: Vec<(usize, ErrorCode)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                OpResult::Error(code) => Some((i, *code)),
                _ => None,
            })
            .collect();
        let Some(&first) = codes.first() else {
            return Ok(results);
        };
        let (index, code) = codes
            .iter()
            .copied()
            .find(|(_, c)| !matches!(c, ErrorCode::RolledBack | ErrorCode::Skipped))
            .unwrap_or(first);
        Err(Error::MultiFailed { index, code, results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_failure_names_the_failing_op() {
        let results = vec![
            OpResult::Error(ErrorCode::RolledBack),
            OpResult::Error(ErrorCode::BadVersion),
            OpResult::Error(ErrorCode::Skipped),
        ];
        let err = Error::from_multi(results.clone()).unwrap_err();
        match err {
            Error::MultiFailed { index, code, results: r } => {
                assert_eq!((index, code), (1, ErrorCode::BadVersion));
                assert_eq!(r, results);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn multi_success_passes_results_through() {
        let results = vec![OpResult::Checked, OpResult::Deleted];
        assert_eq!(Error::from_multi(results.clone()).unwrap(), results);
    }

    #[test]
    fn classifies_codes_and_retryability() {
        let no_node = Error::from_reply(ErrorReply::new(ErrorCode::NoNode, "/a"));
        assert!(no_node.is_no_node());
        assert!(!no_node.is_retryable());
        assert_eq!(no_node.to_string(), "no such node: /a");
        assert!(Error::ConnectionLoss.is_retryable());
        assert!(matches!(Error::from_reply(ErrorReply::new(ErrorCode::SessionExpired, "")), Error::SessionExpired));
        assert_eq!(Error::Closed.code(), None);
        assert!(Error::Server { code: ErrorCode::NotPrimary, message: String::new() }.is_retryable());
    }
}
