//! What a [`crate::Client`] handle sends its session task, and what the task keeps about each
//! request until the reply comes.

use crate::error::{Error, Result};
use crate::watch::WatchRequest;
use baton_proto::{Op, OpResult, Response, Stat, Zxid};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A request from a handle: the op, the watcher to register if it succeeds, and where to
/// send the outcome.
#[derive(Debug)]
pub(crate) struct Command {
    pub op: Op,
    pub watch: Option<WatchRequest>,
    pub reply: oneshot::Sender<Result<Response>>,
}

/// What the session task keeps of a caller's request once it is sent (not the op: its data
/// need not stay in memory until the reply).
#[derive(Debug)]
pub(crate) struct Pending {
    pub watch: Option<WatchRequest>,
    pub reply: oneshot::Sender<Result<Response>>,
    /// The op was `CloseSession`: its reply ends the session.
    pub closes_session: bool,
}

/// Why the session task sent a request.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// A caller's request.
    Caller(Pending),
    /// A keep-alive.
    Ping,
    /// Re-registering watches after a resume.
    Restore,
    /// Dropping the server's watches on a path no local watcher uses any more.
    RemoveWatches,
    /// Closing the session because every handle was dropped.
    CloseOnDrop,
}

/// A request sent and not yet answered.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub id: u64,
    pub sent_at: Instant,
    pub purpose: Purpose,
}

impl InFlight {
    /// The path of the watch this request sets, if it sets one.
    pub fn watch_path(&self) -> Option<&str> {
        match &self.purpose {
            Purpose::Caller(Pending { watch: Some(w), .. }) => w.path(),
            _ => None,
        }
    }

    /// Fails a caller's request with `error()`; internal requests are dropped silently.
    pub fn fail(self, error: impl FnOnce() -> Error) {
        if let Purpose::Caller(pending) = self.purpose {
            let _ = pending.reply.send(Err(error()));
        }
    }
}

/// A response's variant name, for errors and logs (never its data).
pub(crate) fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Pong => "Pong",
        Response::Created { .. } => "Created",
        Response::Deleted => "Deleted",
        Response::Set(_) => "Set",
        Response::Data { .. } => "Data",
        Response::Exists(_) => "Exists",
        Response::Children { .. } => "Children",
        Response::ChildrenWithStats { .. } => "ChildrenWithStats",
        Response::Multi(_) => "Multi",
        Response::Synced { .. } => "Synced",
        Response::Ephemerals(_) => "Ephemerals",
        Response::WatchAdded => "WatchAdded",
        Response::WatchesRemoved => "WatchesRemoved",
        Response::WatchesRestored { .. } => "WatchesRestored",
        Response::SessionClosed => "SessionClosed",
        Response::Status(_) => "Status",
        Response::Promoted { .. } => "Promoted",
        Response::BackedUp { .. } => "BackedUp",
        Response::Acl { .. } => "Acl",
        Response::AclSet(_) => "AclSet",
        Response::Identity { .. } => "Identity",
        Response::Descendants(_) => "Descendants",
        Response::MultiRead(_) => "MultiRead",
        Response::Turn { .. } => "Turn",
        Response::CreatedInLine { .. } => "CreatedInLine",
    }
}

/// The error for a reply of the wrong kind.
pub(crate) fn unexpected(response: &Response) -> Error {
    Error::Protocol(format!("unexpected reply {} to this request", response_name(response)))
}

/// The newest zxid a response proves the server had reached.
pub(crate) fn response_zxid(response: &Response) -> Zxid {
    let stat_zxid = |s: &Stat| s.czxid.max(s.mzxid).max(s.pzxid);
    match response {
        Response::Created { stat, .. }
        | Response::CreatedInLine { stat, .. }
        | Response::Set(stat)
        | Response::AclSet(stat)
        | Response::Acl { stat, .. }
        | Response::Data { stat, .. }
        | Response::Exists(Some(stat))
        | Response::Turn { stat: Some(stat), .. }
        | Response::Children { stat, .. } => stat_zxid(stat),
        Response::ChildrenWithStats { children, stat } => {
            children.iter().map(|(_, s)| stat_zxid(s)).fold(stat_zxid(stat), Zxid::max)
        }
        Response::Multi(results) => results
            .iter()
            .filter_map(|r| match r {
                OpResult::Created { stat, .. } | OpResult::Set(stat) => Some(stat_zxid(stat)),
                _ => None,
            })
            .fold(Zxid::ZERO, Zxid::max),
        Response::Synced { zxid } => *zxid,
        _ => Zxid::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_is_the_newest_in_any_stat() {
        let stat = |c, m, p| Stat { czxid: Zxid(c), mzxid: Zxid(m), pzxid: Zxid(p), ..Stat::default() };
        assert_eq!(response_zxid(&Response::Data { data: Some(vec![]), stat: stat(1, 5, 3) }), Zxid(5));
        assert_eq!(
            response_zxid(&Response::ChildrenWithStats {
                children: vec![("a".into(), stat(9, 9, 9))],
                stat: stat(1, 1, 2),
            }),
            Zxid(9)
        );
        assert_eq!(response_zxid(&Response::Multi(vec![OpResult::Checked, OpResult::Set(stat(2, 7, 2))])), Zxid(7));
        assert_eq!(response_zxid(&Response::Synced { zxid: Zxid(11) }), Zxid(11));
        assert_eq!(response_zxid(&Response::Exists(None)), Zxid::ZERO);
    }
}
