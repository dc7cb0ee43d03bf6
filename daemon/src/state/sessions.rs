//! The session table: who is alive, their ephemerals, and when each expires.
//!
//! Deadlines are monotonic milliseconds supplied by the caller, and are volatile: they are
//! not part of the replicated state. A session without a deadline (just created, restored
//! after a restart, or inherited by a promoted standby) gets a fresh full timeout at the next
//! tick, so no session ever expires because of time that passed while nobody was counting.

use baton_proto::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A session as stored and replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub timeout_ms: u32,
    pub secret: u64,
    pub connection_bound: bool,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub record: SessionRecord,
    /// Paths of the ephemeral nodes this session owns.
    pub ephemerals: BTreeSet<String>,
    /// Monotonic ms after which the session is expired; `None` until first counted.
    deadline_ms: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Sessions {
    sessions: BTreeMap<SessionId, Session>,
}

impl Sessions {
    pub fn insert(&mut self, id: SessionId, record: SessionRecord) {
        let session = Session { record, ephemerals: BTreeSet::new(), deadline_ms: None };
        let previous = self.sessions.insert(id, session);
        assert!(previous.is_none(), "session {id} created twice");
    }

    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        self.sessions.remove(&id)
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    pub fn contains(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }

    /// Traffic from the session's client: it lives a full timeout from `now_ms`.
    pub fn touch(&mut self, id: SessionId, now_ms: u64) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.deadline_ms = Some(now_ms + u64::from(session.record.timeout_ms));
        }
    }

    /// Forgets every deadline, so each session gets a fresh timeout at the next tick
    /// (after a restart or a promotion).
    pub fn reset_deadlines(&mut self) {
        for session in self.sessions.values_mut() {
            session.deadline_ms = None;
        }
    }

    /// Moves every deadline `by_ms` later: time the server did not run (it was stopped or
    /// stalled) counts against no client.
    pub fn postpone(&mut self, by_ms: u64) {
        for session in self.sessions.values_mut() {
            if let Some(deadline) = &mut session.deadline_ms {
                *deadline = deadline.saturating_add(by_ms);
            }
        }
    }

    /// Starts the clock for sessions that have none, and returns those whose deadline passed.
    pub fn expired(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut expired = Vec::new();
        for (id, session) in &mut self.sessions {
            match session.deadline_ms {
                None => session.deadline_ms = Some(now_ms + u64::from(session.record.timeout_ms)),
                Some(deadline) if deadline <= now_ms => expired.push(*id),
                Some(_) => {}
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timeout_ms: u32) -> SessionRecord {
        SessionRecord { timeout_ms, secret: 1, connection_bound: false }
    }

    #[test]
    fn a_session_expires_only_a_full_timeout_after_it_was_last_counted() {
        let mut sessions = Sessions::default();
        sessions.insert(SessionId(1), record(1000));
        assert!(sessions.expired(5_000).is_empty(), "first tick starts the clock");
        assert!(sessions.expired(5_999).is_empty());
        sessions.touch(SessionId(1), 5_500);
        assert!(sessions.expired(6_400).is_empty(), "touched: lives until 6500");
        assert_eq!(sessions.expired(6_500), [SessionId(1)]);
    }

    #[test]
    fn a_pause_of_the_server_is_not_counted() {
        let mut sessions = Sessions::default();
        sessions.insert(SessionId(1), record(1000));
        sessions.touch(SessionId(1), 0);
        sessions.postpone(30_000);
        assert!(sessions.expired(30_999).is_empty());
        assert_eq!(sessions.expired(31_000), [SessionId(1)]);
    }

    #[test]
    fn reset_gives_every_session_a_fresh_timeout() {
        let mut sessions = Sessions::default();
        sessions.insert(SessionId(1), record(1000));
        sessions.touch(SessionId(1), 0);
        sessions.reset_deadlines();
        assert!(sessions.expired(50_000).is_empty());
        assert_eq!(sessions.expired(51_000), [SessionId(1)]);
    }
}
