//! The retained change history: the changes of the most recent transactions, so a client that
//! resumes its session can be told what its watches missed while it was away. Bounded by
//! transactions and by bytes, whichever is reached first: a count alone lets long paths (or
//! a burst of creates) hold tens of megabytes.

use baton_proto::message::EventKind;
use baton_proto::{Txn, Zxid};
use std::collections::VecDeque;

/// How much history to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryBound {
    /// Transactions with changes.
    pub txns: usize,
    /// Memory for their changes, as [`History::cost`] counts it.
    pub bytes: usize,
}

impl HistoryBound {
    /// Bounded by transactions only.
    pub fn txns(txns: usize) -> Self {
        HistoryBound { txns, bytes: usize::MAX }
    }
}

/// One changed path. Flat (one entry per change, not a list per txn): one allocation fewer
/// for each txn.
#[derive(Clone, Debug)]
struct Change {
    zxid: Zxid,
    kind: EventKind,
    path: Box<str>,
}

/// What one change is charged: its entry and its path, plus the allocator's header and
/// rounding for the path.
const CHANGE_OVERHEAD: usize = std::mem::size_of::<Change>() + 16;

#[derive(Clone, Debug)]
pub struct History {
    changes: VecDeque<Change>,
    bound: HistoryBound,
    /// Distinct zxids in `changes`.
    txns: usize,
    /// `cost` of what is in `changes`.
    bytes: usize,
    /// Every txn after this zxid is in `changes`.
    floor: Zxid,
}

impl History {
    /// An empty history that knows every txn after `floor` (`Zxid::ZERO` for a new store).
    pub fn new(bound: HistoryBound, floor: Zxid) -> Self {
        History { changes: VecDeque::new(), bound, txns: 0, bytes: 0, floor }
    }

    /// The bytes `txn`'s changes are charged. A txn without changes costs nothing.
    pub fn cost(txn: &Txn) -> usize {
        txn.changes().iter().map(|c| CHANGE_OVERHEAD + c.path.len()).sum()
    }

    /// Keeps `txn`'s changes, forgetting the oldest txns beyond the bound (never the newest).
    pub fn record(&mut self, txn: &Txn) {
        let changes = txn.changes();
        if changes.is_empty() {
            return;
        }
        for c in changes {
            self.bytes += CHANGE_OVERHEAD + c.path.len();
            self.changes.push_back(Change { zxid: txn.zxid, kind: c.kind, path: c.path.into() });
        }
        self.txns += 1;
        while self.txns > 1 && (self.txns > self.bound.txns || self.bytes > self.bound.bytes) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some(oldest) = self.changes.front().map(|c| c.zxid) else { return };
        while self.changes.front().is_some_and(|c| c.zxid == oldest) {
            let c = self.changes.pop_front().expect("a front entry");
            self.bytes -= CHANGE_OVERHEAD + c.path.len();
        }
        self.txns -= 1;
        self.floor = oldest;
        // A burst grew the queue; hand back what the bound no longer needs.
        if self.changes.capacity() > 4 * self.changes.len().max(64) {
            self.changes.shrink_to(2 * self.changes.len());
        }
    }

    /// The changes after `zxid` in order, or `None` if some of them were already forgotten.
    pub fn since(&self, zxid: Zxid) -> Option<impl Iterator<Item = (Zxid, &str, EventKind)>> {
        if zxid < self.floor {
            return None;
        }
        let start = self.changes.partition_point(|c| c.zxid <= zxid);
        Some(self.changes.range(start..).map(|c| (c.zxid, &*c.path, c.kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{SessionId, TxnBody, TxnOp};

    fn set(zxid: u64, path: &str) -> Txn {
        let op = TxnOp::Set { path: path.into(), data: Some(vec![]) };
        Txn { zxid: Zxid(zxid), time_ms: 0, session_id: SessionId(1), body: TxnBody::Write(vec![op]) }
    }

    #[test]
    fn replays_what_came_after_and_forgets_the_oldest() {
        let mut history = History::new(HistoryBound::txns(2), Zxid::ZERO);
        for z in 1..=3 {
            history.record(&set(z, "/a"));
        }
        assert!(history.since(Zxid(0)).is_none(), "txn 1 was evicted: cannot replay from 0");
        assert_eq!(history.since(Zxid(1)).unwrap().count(), 2);
        let zxids: Vec<_> = history.since(Zxid(2)).unwrap().map(|(z, _, _)| z).collect();
        assert_eq!(zxids, [Zxid(3)]);
        assert_eq!(history.since(Zxid(3)).unwrap().count(), 0);
    }

    #[test]
    fn the_byte_bound_forgets_whole_txns_but_keeps_the_newest() {
        let cost = History::cost(&set(1, "/a"));
        let mut history = History::new(HistoryBound { txns: 100, bytes: 2 * cost }, Zxid::ZERO);
        for z in 1..=3 {
            history.record(&set(z, "/a"));
        }
        assert!(history.since(Zxid(0)).is_none());
        assert_eq!(history.since(Zxid(1)).unwrap().count(), 2, "two txns fit");
        history.record(&set(4, &format!("/{}", "x".repeat(4 * cost))));
        assert!(history.since(Zxid(2)).is_none(), "a txn over the bound alone forgets all before it");
        assert_eq!(history.since(Zxid(3)).unwrap().map(|(z, _, _)| z).collect::<Vec<_>>(), [Zxid(4)]);
    }

    #[test]
    fn a_txn_without_changes_is_not_counted() {
        let mut history = History::new(HistoryBound::txns(1), Zxid::ZERO);
        history.record(&set(1, "/a"));
        let session = Txn {
            zxid: Zxid(2),
            time_ms: 0,
            session_id: SessionId(2),
            body: TxnBody::CreateSession { timeout_ms: 1, secret: 0, connection_bound: false },
        };
        history.record(&session);
        assert_eq!(history.since(Zxid(0)).unwrap().count(), 1, "the create-session txn changed no path");
    }
}
