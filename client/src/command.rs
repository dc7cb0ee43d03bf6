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

/// Why the session task sent a request.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// A caller's request.
    Caller(Command),
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
            Purpose::Caller(Command {
                watch: Some(w), ..
            }) => Some(w.path()),
            _ => None,
        }
    }

    /// Fails a caller's request with `error()`; internal requests are dropped silently.
    pub fn fail(self, error: impl FnOnce() -> Error) {
        if let Purpose::Caller(command) = self.purpose {
            let _ = command.reply.send(Err(error()));
        }
    }
}

/// The newest zxid a response proves the server had reached.
pub(crate) fn response_zxid(response: &Response) -> Zxid {
    let stat_zxid = |s: &Stat| s.czxid.max(s.mzxid).max(s.pzxid);
    match response {
        Response::Created { stat, .. }
        | Response::Set(stat)
        | Response::Data { stat, .. }
        | Response::Exists(Some(stat))
        | Response::Children { stat, .. } => stat_zxid(stat),
        Response::ChildrenWithStats { children, stat } => children
            .iter()
            .map(|(_, s)| stat_zxid(s))
            .fold(stat_zxid(stat), Zxid::max),
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
        let stat = |c, m, p| Stat {
            czxid: Zxid(c),
            mzxid: Zxid(m),
            pzxid: Zxid(p),
            ..Stat::default()
        };
        assert_eq!(
            response_zxid(&Response::Data {
                data: vec![],
                stat: stat(1, 5, 3)
            }),
            Zxid(5)
        );
        assert_eq!(
            response_zxid(&Response::ChildrenWithStats {
                children: vec![("a".into(), stat(9, 9, 9))],
                stat: stat(1, 1, 2),
            }),
            Zxid(9)
        );
        assert_eq!(
            response_zxid(&Response::Multi(vec![
                OpResult::Checked,
                OpResult::Set(stat(2, 7, 2))
            ])),
            Zxid(7)
        );
        assert_eq!(response_zxid(&Response::Synced { zxid: Zxid(11) }), Zxid(11));
        assert_eq!(response_zxid(&Response::Exists(None)), Zxid::ZERO);
    }
}
