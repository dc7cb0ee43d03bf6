//! A node's metadata, field for field what ZooKeeper's `Stat` means.

use crate::ids::{SessionId, Zxid};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Zxid of the transaction that created the node.
    pub czxid: Zxid,
    /// Zxid of the last change to the node's data.
    pub mzxid: Zxid,
    /// Zxid of the last change to the node's children (create or delete of a child).
    pub pzxid: Zxid,
    /// Creation time, ms since the Unix epoch, from the primary's clock.
    pub ctime_ms: u64,
    /// Last data change time, ms since the Unix epoch.
    pub mtime_ms: u64,
    /// Number of data changes.
    pub version: i32,
    /// Number of child creates and deletes; the sequential suffix of the next child.
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session of an ephemeral node, or `SessionId::NONE`.
    pub ephemeral_owner: SessionId,
    pub data_length: u32,
    pub num_children: u32,
}
