//! The transaction log record: what the primary commits, what a standby applies and what
//! recovery replays. A `Txn` is fully determined: every non-deterministic choice (zxid, time,
//! sequential suffix, session id and secret) was fixed when it was prepared, so applying it can
//! neither fail nor differ between machines.
//!
//! Stored as one format-version byte followed by the postcard encoding of [`Txn`].

use crate::acl::AclEntry;
use crate::ids::{SessionId, Zxid};
use crate::message::EventKind;
use crate::path;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The format version byte that starts every stored log record.
pub const TXN_FORMAT_VERSION: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub zxid: Zxid,
    /// Wall-clock ms since the Unix epoch on the primary when prepared (ctime / mtime).
    pub time_ms: u64,
    /// The session on whose behalf the txn runs (`NONE` for server-initiated reaping).
    pub session_id: SessionId,
    pub body: TxnBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnBody {
    /// Opens `session_id` (which equals the txn's zxid).
    CreateSession { timeout_ms: u32, secret: u64, connection_bound: bool },
    /// Ends `session_id` (closed, expired or its connection gone); `deletes` lists its
    /// ephemerals and any container emptied by their removal, children before parents.
    CloseSession { deletes: Vec<String> },
    /// Tree changes, applied in order, all at this zxid (one op for a plain write; a multi's
    /// ops; or server-side reaping of TTL and container nodes).
    Write(Vec<TxnOp>),
    /// A standby was promoted: epoch `epoch` begins with this txn (its zxid is
    /// `(epoch, 1)`). Every session gets a fresh timeout from here.
    NewEpoch { epoch: u32 },
}

/// What a stored node is (how it is reaped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    Persistent,
    Ephemeral,
    Container,
    Ttl { ttl_ms: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// `path` is final (any sequential suffix already added); an ephemeral's owner is the
    /// txn's session.
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        kind: NodeKind,
        /// Final: `creator` entries already replaced by the creator's identity.
        acl: Vec<AclEntry>,
    },
    Delete {
        path: String,
    },
    Set {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
    },
    /// A `multi`'s version check: changes nothing, recorded so the op's result is kept.
    Check {
        path: String,
        version: i32,
    },
    /// Replaces a node's ACL (final, as for `Create`) and bumps its `aversion`.
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
    },
}

/// One change a txn makes, as watchers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    pub path: &'a str,
    pub kind: EventKind,
}

impl Txn {
    /// The node changes this txn makes, in order. Session open/close bookkeeping is not a
    /// change; the deletes of a closing session are.
    pub fn changes(&self) -> Vec<Change<'_>> {
        fn removed<'a>(changes: &mut Vec<Change<'a>>, p: &'a str) {
            changes.push(Change { path: p, kind: EventKind::Deleted });
            parent_changed(changes, p);
        }
        fn parent_changed<'a>(changes: &mut Vec<Change<'a>>, p: &'a str) {
            if let Some(parent) = path::parent(p) {
                changes.push(Change { path: parent, kind: EventKind::ChildrenChanged });
            }
        }
        let mut changes = Vec::new();
        match &self.body {
            TxnBody::CreateSession { .. } | TxnBody::NewEpoch { .. } => {}
            TxnBody::CloseSession { deletes } => {
                for p in deletes {
                    removed(&mut changes, p);
                }
            }
            TxnBody::Write(ops) => {
                for op in ops {
                    match op {
                        TxnOp::Create { path: p, .. } => {
                            changes.push(Change { path: p, kind: EventKind::Created });
                            parent_changed(&mut changes, p);
                        }
                        TxnOp::Delete { path: p } => removed(&mut changes, p),
                        TxnOp::Set { path: p, .. } => {
                            changes.push(Change { path: p, kind: EventKind::DataChanged });
                        }
                        // ZooKeeper fires no watch for an ACL change either.
                        TxnOp::Check { .. } | TxnOp::SetAcl { .. } => {}
                    }
                }
            }
        }
        changes
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("empty log record")]
    Empty,
    #[error("log record format version {found}, this build reads {TXN_FORMAT_VERSION}")]
    UnknownVersion { found: u8 },
    #[error("corrupt log record: {0}")]
    Corrupt(String),
}

/// A txn as stored: the format version byte, then postcard.
pub fn encode_record(txn: &Txn) -> Vec<u8> {
    // Sized exactly (postcard's counting pass): grown by doubling, a record was reallocated
    // five or six times, and the engine's heap kept the outgrown blocks between the tree's
    // nodes (docs/BENCHMARKS.md, "Records encoded at their exact size").
    let size = postcard::experimental::serialized_size(txn).unwrap_or(0);
    let mut out = Vec::with_capacity(1 + size);
    out.push(TXN_FORMAT_VERSION);
    // Encoding into a Vec cannot fail for these types (no maps with non-string keys, no
    // sequences of unknown length); a failure would be a bug worth stopping for.
    match postcard::to_extend(txn, out) {
        Ok(buf) => out = buf,
        Err(e) => panic!("encoding a txn cannot fail: {e}"),
    }
    out
}

/// Reads a stored txn, checking its version and that nothing trails it.
pub fn decode_record(bytes: &[u8]) -> Result<Txn, RecordError> {
    let (&version, payload) = bytes.split_first().ok_or(RecordError::Empty)?;
    if version != TXN_FORMAT_VERSION {
        return Err(RecordError::UnknownVersion { found: version });
    }
    let (txn, rest) = postcard::take_from_bytes::<Txn>(payload).map_err(|e| RecordError::Corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RecordError::Corrupt(format!("{} trailing bytes", rest.len())));
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(ops: Vec<TxnOp>) -> Txn {
        Txn { zxid: Zxid(5), time_ms: 1, session_id: SessionId(2), body: TxnBody::Write(ops) }
    }

    #[test]
    fn changes_name_the_node_and_its_parent() {
        let txn = write(vec![
            TxnOp::Create { path: "/a".into(), data: Some(vec![]), kind: NodeKind::Persistent, acl: Vec::new() },
            TxnOp::Set { path: "/a".into(), data: Some(vec![1]) },
            TxnOp::Delete { path: "/a".into() },
        ]);
        let kinds: Vec<_> = txn.changes().iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("/a", EventKind::Created),
                ("/", EventKind::ChildrenChanged),
                ("/a", EventKind::DataChanged),
                ("/a", EventKind::Deleted),
                ("/", EventKind::ChildrenChanged),
            ]
        );
    }

    #[test]
    fn record_round_trips_and_rejects_damage() {
        let txn = write(vec![TxnOp::Set { path: "/x".into(), data: Some(b"hi".to_vec()) }]);
        let bytes = encode_record(&txn);
        assert_eq!(decode_record(&bytes).unwrap(), txn);
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(matches!(decode_record(&wrong_version), Err(RecordError::UnknownVersion { found: 9 })));
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(decode_record(&trailing).is_err());
        assert!(matches!(decode_record(&[]), Err(RecordError::Empty)));
    }

    /// A record's allocation is exactly its length: outgrown blocks of records grown by
    /// doubling fragmented the daemon's heap (docs/BENCHMARKS.md).
    #[test]
    fn a_record_is_allocated_at_its_exact_size() {
        let data = Some(vec![7; 100]);
        let create =
            TxnOp::Create { path: "/bench/fill/n0000001".into(), data, kind: NodeKind::Persistent, acl: Vec::new() };
        for txn in [write(vec![create]), write(vec![TxnOp::Delete { path: "/a".into() }])] {
            let bytes = encode_record(&txn);
            assert_eq!(bytes.capacity(), bytes.len());
        }
    }
}
