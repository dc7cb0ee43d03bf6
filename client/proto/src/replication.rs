//! The replication link: a warm standby connects to its primary, both prove they hold the
//! shared replication token (without sending it), the standby says how far it got, and the
//! primary streams the transaction log from there — or a full snapshot when the standby is
//! older than the retained log or diverged from it — and then every new commit.
//!
//! Frames as on the client link (u32 length + postcard). All enums are append-only.

use crate::error::ErrorReply;
use crate::ids::{SessionId, Zxid};
use serde::{Deserialize, Serialize};

/// The first four bytes of a standby's hello: "BARP".
pub const PEER_MAGIC: u32 = 0x4241_5250;
/// The replication protocol version this crate speaks.
pub const PEER_PROTOCOL_VERSION: u16 = 2;
/// Bytes in an authentication nonce.
pub const NONCE_LEN: usize = 16;

/// How the primary acknowledges writes with respect to its standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationMode {
    /// A write is acknowledged once durable on the primary; the standby may lag.
    Async,
    /// A write is acknowledged once durable on the primary and on the standby.
    Sync,
}

/// What the standby sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToPrimary {
    Hello {
        magic: u32,
        protocol_version: u16,
        /// The standby's epoch and newest applied zxid: where streaming resumes.
        epoch: u32,
        last_zxid: Zxid,
        nonce: [u8; NONCE_LEN],
    },
    /// HMAC-SHA256 over both nonces with the shared token, answering the primary's challenge.
    Proof { mac: [u8; 32] },
    /// Everything up to `durable_zxid` is on the standby's disk.
    Ack { durable_zxid: Zxid },
}

/// What the primary sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToStandby {
    /// The primary's nonce, and its own proof that it holds the token.
    Challenge { nonce: [u8; NONCE_LEN], mac: [u8; 32] },
    /// Authenticated: streaming starts. `diverged_after` is set when the standby holds
    /// transactions the primary never had (an old primary rejoining): everything after that
    /// zxid on the standby must be set aside, and a snapshot follows.
    Welcome { epoch: u32, last_zxid: Zxid, mode: ReplicationMode, diverged_after: Option<Zxid> },
    /// Log records (`txn::encode_record`), in zxid order, continuing the stream.
    Txns(#[serde(with = "crate::byte_fields::list")] Vec<Vec<u8>>),
    /// A full copy of the state at `last_zxid` follows, replacing the standby's.
    SnapshotBegin { epoch: u32, last_zxid: Zxid },
    /// Stored node records (path, record bytes) of the snapshot.
    SnapshotNodes(#[serde(with = "crate::byte_fields::keyed")] Vec<(String, Vec<u8>)>),
    /// Stored session records of the snapshot.
    SnapshotSessions(#[serde(with = "crate::byte_fields::keyed")] Vec<(SessionId, Vec<u8>)>),
    /// The snapshot is complete; the log stream continues after its `last_zxid`.
    SnapshotEnd,
    /// Nothing new: the primary is alive at `last_zxid` (lets the standby measure its lag).
    Heartbeat { last_zxid: Zxid, time_ms: u64 },
    /// The primary will not serve this standby, and says why.
    Refused(ErrorReply),
}
