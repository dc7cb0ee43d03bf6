//! The session states a client reports, and the facts about the session that every handle
//! can read without asking the background task.

use baton_proto::{SessionId, Zxid};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Where the session stands, as seen from this client. Observe it with
/// [`crate::Client::session_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Connected to a server; requests flow.
    Connected,
    /// The connection was lost and the client is reconnecting. The session may still be
    /// alive, but the server may expire it as soon as `expires_at`: a lock holder must assume
    /// it loses its locks then (Chubby's "jeopardy"). Requests issued now wait for the
    /// reconnection; those that were in flight failed with [`crate::Error::ConnectionLoss`].
    Suspended {
        /// The earliest moment the server may expire the session.
        expires_at: Instant,
    },
    /// The session is gone: its ephemerals were deleted and its watches ended. Final.
    Expired,
    /// The client was closed. Final.
    Closed,
}

impl SessionState {
    /// Whether no further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }

    /// While suspended, the time left before the session may expire.
    pub fn time_left(self) -> Option<Duration> {
        match self {
            SessionState::Suspended { expires_at } => Some(expires_at.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Connected => f.write_str("connected"),
            SessionState::Suspended { .. } => match self.time_left() {
                Some(left) => write!(f, "suspended ({} ms left)", left.as_millis()),
                None => f.write_str("suspended"),
            },
            SessionState::Expired => f.write_str("expired"),
            SessionState::Closed => f.write_str("closed"),
        }
    }
}

/// Session facts shared between the background task (the only writer) and the handles.
#[derive(Debug)]
pub(crate) struct SessionInfo {
    session_id: SessionId,
    timeout_ms: AtomicU64,
    last_zxid: AtomicU64,
}

impl SessionInfo {
    pub fn new(session_id: SessionId, timeout: Duration, last_zxid: Zxid) -> Self {
        SessionInfo {
            session_id,
            timeout_ms: AtomicU64::new(timeout.as_millis() as u64),
            last_zxid: AtomicU64::new(last_zxid.0),
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn last_zxid(&self) -> Zxid {
        Zxid(self.last_zxid.load(Ordering::Relaxed))
    }

    /// Raises the last zxid seen to `zxid` if it is newer.
    pub fn observe_zxid(&self, zxid: Zxid) {
        self.last_zxid.fetch_max(zxid.0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_only_moves_forward() {
        let info = SessionInfo::new(SessionId(1), Duration::from_secs(1), Zxid(5));
        info.observe_zxid(Zxid(3));
        assert_eq!(info.last_zxid(), Zxid(5));
        info.observe_zxid(Zxid(9));
        assert_eq!(info.last_zxid(), Zxid(9));
    }

    #[tokio::test(start_paused = true)]
    async fn suspended_reports_time_left() {
        let state = SessionState::Suspended { expires_at: Instant::now() + Duration::from_secs(2) };
        assert_eq!(state.time_left(), Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(state.time_left(), Some(Duration::ZERO));
        assert!(!state.is_terminal());
        assert!(SessionState::Expired.is_terminal());
    }
}
