//! Error codes carried in replies. Domain outcomes (`NoNode`, `BadVersion`, ...) are values,
//! never daemon failures.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a request (or a whole connection) failed. Append-only: postcard encodes the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The node does not exist.
    NoNode,
    /// The node already exists.
    NodeExists,
    /// The expected version did not match.
    BadVersion,
    /// The node has children.
    NotEmpty,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals,
    /// The path is not a valid node path.
    InvalidPath,
    /// An argument is out of its allowed range (a TTL of zero, a sequential container, ...).
    InvalidArgument,
    /// Data, a frame or a reply exceeds its configured limit.
    TooLarge,
    /// The session has expired or was closed; its ephemerals are gone.
    SessionExpired,
    /// The connection was lost before the reply arrived: the request may or may not have
    /// taken effect. Produced by clients, never sent by the server.
    ConnectionLoss,
    /// This node is a standby and does not accept writes.
    NotPrimary,
    /// The request's operation is not known to this server.
    Unimplemented,
    /// The request could not be decoded, or broke the protocol.
    BadRequest,
    /// A configured resource limit was reached (watches, connections, children, ...).
    LimitExceeded,
    /// The client has seen a newer zxid than this server has: it would go back in time.
    ServerBehind,
    /// The server is shutting down.
    ShuttingDown,
    /// The server failed internally (a storage error); the request did not take effect.
    Internal,
    /// In a failed `multi`: this op was valid but rolled back with the rest.
    RolledBack,
    /// In a failed `multi`: this op was not evaluated because an earlier one failed.
    Skipped,
    /// The client was too slow reading its replies and events, and was disconnected.
    SlowConsumer,
    /// The hello carried a wrong magic or an unsupported protocol version.
    ProtocolMismatch,
    /// The caller lacks the permission for this operation.
    NoAuth,
    /// A write was refused because this primary has been deposed by a higher epoch.
    Fenced,
    /// The session was resumed on another connection; this one is closed.
    SessionMoved,
    /// A write guarded by a fencing token was refused: the token no longer holds the lock.
    LockLost,
    /// The server's disk is full (or its storage failed): writes are refused until it takes
    /// them again; reads and watches go on.
    DiskFull,
    /// The connection did not authenticate: a TCP client without a token or certificate, or
    /// a token that did not prove itself.
    AuthFailed,
    /// The session has no watch of the kind asked for on the path.
    NoWatcher,
}

impl ErrorCode {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ConnectionLoss
                | ErrorCode::ShuttingDown
                | ErrorCode::NotPrimary
                | ErrorCode::ServerBehind
                | ErrorCode::LimitExceeded
                | ErrorCode::DiskFull
        )
    }

    /// A short, stable, human-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoNode => "no such node",
            ErrorCode::NodeExists => "node exists",
            ErrorCode::BadVersion => "version conflict",
            ErrorCode::NotEmpty => "node has children",
            ErrorCode::NoChildrenForEphemerals => "ephemeral nodes cannot have children",
            ErrorCode::InvalidPath => "invalid path",
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::TooLarge => "too large",
            ErrorCode::SessionExpired => "session expired",
            ErrorCode::ConnectionLoss => "connection lost",
            ErrorCode::NotPrimary => "not the primary",
            ErrorCode::Unimplemented => "unimplemented operation",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::ServerBehind => "server is behind the client",
            ErrorCode::ShuttingDown => "server shutting down",
            ErrorCode::Internal => "internal server error",
            ErrorCode::RolledBack => "rolled back",
            ErrorCode::Skipped => "skipped",
            ErrorCode::SlowConsumer => "slow consumer",
            ErrorCode::ProtocolMismatch => "protocol mismatch",
            ErrorCode::NoAuth => "not authorized",
            ErrorCode::Fenced => "fenced by a newer epoch",
            ErrorCode::SessionMoved => "session moved to another connection",
            ErrorCode::LockLost => "the fencing token no longer holds the lock",
            ErrorCode::DiskFull => "the server's storage is full or failing",
            ErrorCode::AuthFailed => "authentication failed",
            ErrorCode::NoWatcher => "no such watch",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed reply: the code clients branch on, and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply { code, message: message.into() }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() { write!(f, "{}", self.code) } else { write!(f, "{}: {}", self.code, self.message) }
    }
}

impl std::error::Error for ErrorReply {}
