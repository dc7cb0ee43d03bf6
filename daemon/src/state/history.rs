//! The retained change history: the changes of the last N transactions, so a client that
//! resumes its session can be told what its watches missed while it was away.

use baton_proto::message::EventKind;
use baton_proto::{Txn, Zxid};
use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct History {
    entries: VecDeque<(Zxid, Vec<(String, EventKind)>)>,
    capacity: usize,
    /// Every txn after this zxid is in `entries`.
    floor: Zxid,
}

impl History {
    /// An empty history that knows every txn after `floor` (`Zxid::ZERO` for a new store).
    pub fn new(capacity: usize, floor: Zxid) -> Self {
        History { entries: VecDeque::new(), capacity: capacity.max(1), floor }
    }

    pub fn record(&mut self, txn: &Txn) {
        let changes: Vec<_> = txn.changes().into_iter().map(|c| (c.path.to_owned(), c.kind)).collect();
        if self.entries.len() == self.capacity
            && let Some((evicted, _)) = self.entries.pop_front()
        {
            self.floor = evicted;
        }
        self.entries.push_back((txn.zxid, changes));
    }

    /// The changes after `zxid` in order, or `None` if some of them were already forgotten.
    pub fn since(&self, zxid: Zxid) -> Option<impl Iterator<Item = (Zxid, &str, EventKind)>> {
        if zxid < self.floor {
            return None;
        }
        let start = self.entries.partition_point(|(z, _)| *z <= zxid);
        Some(
            self.entries.range(start..).flat_map(|(z, changes)| changes.iter().map(move |(p, k)| (*z, p.as_str(), *k))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{SessionId, TxnBody, TxnOp};

    fn set(zxid: u64) -> Txn {
        let op = TxnOp::Set { path: "/a".into(), data: Some(vec![]) };
        Txn { zxid: Zxid(zxid), time_ms: 0, session_id: SessionId(1), body: TxnBody::Write(vec![op]) }
    }

    #[test]
    fn replays_what_came_after_and_forgets_the_oldest() {
        let mut history = History::new(2, Zxid::ZERO);
        for z in 1..=3 {
            history.record(&set(z));
        }
        assert!(history.since(Zxid(0)).is_none(), "txn 1 was evicted: cannot replay from 0");
        assert_eq!(history.since(Zxid(1)).unwrap().count(), 2);
        let zxids: Vec<_> = history.since(Zxid(2)).unwrap().map(|(z, _, _)| z).collect();
        assert_eq!(zxids, [Zxid(3)]);
        assert_eq!(history.since(Zxid(3)).unwrap().count(), 0);
    }
}
