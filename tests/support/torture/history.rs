//! What the recorder writes down: operations on node paths with invoke and completion times
//! and their result (or *indeterminate*), and the events each watcher received.

use baton::{EventKind, Zxid};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A node's data in the model: a number, written as decimal bytes; empty data is 0.
pub type Value = u64;

/// The bytes a [`Value`] is stored as.
pub fn value_bytes(value: Value) -> Vec<u8> {
    if value == 0 { Vec::new() } else { value.to_string().into_bytes() }
}

/// The [`Value`] read back from bytes, or `None` for bytes no test wrote.
pub fn value_of(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(bytes).ok()?.parse().ok().filter(|&v| v != 0)
}

/// An operation on one node path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create the node (persistent) with this data.
    Create(Value),
    /// Set the data, only at `version` if given.
    Set { value: Value, version: Option<i32> },
    /// Read data and version.
    Get,
    /// Delete the node, only at `version` if given.
    Delete { version: Option<i32> },
}

/// What an operation returned, when it returned definitely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    Created,
    /// `NodeExists`.
    Exists,
    /// The set took effect; the node's new version.
    Set(i32),
    /// The node's data and version, or `None` for `NoNode`.
    Got(Option<(Value, i32)>),
    Deleted,
    /// `NoNode` for a set or a delete.
    NoNode,
    BadVersion,
}

/// One operation as recorded.
#[derive(Clone, Debug)]
pub struct Record {
    /// Which client (session) ran it; one operation at a time per client.
    pub client: usize,
    pub path: String,
    pub op: Op,
    /// Nanoseconds since the recorder started, on the monotonic clock.
    pub invoke_ns: u64,
    /// When the reply arrived; `None` for an indeterminate operation.
    pub complete_ns: Option<u64>,
    /// The result; `None` when indeterminate (timeout, connection loss, any error that does
    /// not say whether the write took effect): it may or may not have taken effect.
    pub ret: Option<Ret>,
    /// The zxid the reply names: `czxid` of a create, `mzxid` of a set or a get.
    pub zxid: Option<Zxid>,
}

impl Record {
    pub fn is_write(&self) -> bool {
        !matches!(self.op, Op::Get)
    }
}

/// A shared log of operations with one monotonic clock.
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    records: Arc<Mutex<Vec<Record>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { start: Instant::now(), records: Arc::default() }
    }

    /// Now, in nanoseconds since the recorder started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn push(&self, record: Record) {
        self.records.lock().expect("records").push(record);
    }

    /// Every record so far, in the order they were pushed.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("records").clone()
    }
}

/// One event as a watcher received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEvent {
    pub zxid: Zxid,
    pub path: String,
    pub kind: EventKind,
}

/// What one persistent recursive watcher saw during its life (one session's).
#[derive(Clone, Debug, Default)]
pub struct WatchLog {
    pub client: usize,
    /// The newest zxid the client had seen when the watch was in place: every write after it
    /// under the watched root must be delivered.
    pub from: Zxid,
    /// Events in the order received.
    pub events: Vec<SeenEvent>,
    /// Reads that revealed a change (path, mzxid) and whether its event had already arrived.
    pub reveals: Vec<(String, Zxid, bool)>,
}
