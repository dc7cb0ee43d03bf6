//! A group commit's worth of changes, coalesced: each record is written once per batch with
//! its newest value.

use crate::state::{NodeRecord, SessionRecord, StoreDelta};
use baton_proto::txn::encode_record;
use baton_proto::{SessionId, Txn, Zxid};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Batch {
    pub txns: Vec<(Zxid, Vec<u8>)>,
    pub nodes: BTreeMap<String, Option<NodeRecord>>,
    pub sessions: BTreeMap<SessionId, Option<SessionRecord>>,
    pub last_zxid: Zxid,
    pub epoch: u32,
    /// The txn records' bytes.
    bytes: usize,
}

impl Batch {
    /// Adds an applied txn and the records it changed.
    pub fn push(&mut self, txn: &Txn, delta: StoreDelta, epoch: u32) {
        let record = encode_record(txn);
        self.bytes += record.len();
        self.txns.push((txn.zxid, record));
        self.nodes.extend(delta.nodes);
        self.sessions.extend(delta.sessions);
        self.last_zxid = txn.zxid;
        self.epoch = epoch;
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// The bytes of its txn records.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl From<&Batch> for super::Entry {
    /// The batch as the records the store writes.
    fn from(batch: &Batch) -> Self {
        let encode = |record: &Option<_>| record.as_ref().map(super::encode_stored);
        super::Entry {
            epoch: batch.epoch,
            txns: batch.txns.iter().map(|(zxid, record)| (zxid.0, record.clone())).collect(),
            nodes: batch.nodes.iter().map(|(p, record)| (p.clone(), encode(record))).collect(),
            sessions: batch
                .sessions
                .iter()
                .map(|(id, record)| (id.0, record.as_ref().map(super::encode_stored)))
                .collect(),
        }
    }
}
