//! `baton-proto`: the contract both `batond` and the `baton` client compile against.
//!
//! It owns the wire messages ([`message`]), how they are framed ([`frame`]), the error codes
//! ([`error`]), node paths ([`path`]), the stat and id types, and the transaction log record
//! ([`txn`]) that the primary commits, a standby applies and recovery replays.
//!
//! No tokio, no I/O: bytes in, messages out. postcard encodes an enum's variant *index*, so every
//! enum here that crosses the wire or reaches the disk is append-only: add variants at the end.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod base64;
pub mod byte_fields;
pub mod defaults;
pub mod error;
pub mod frame;
pub mod ids;
pub mod message;
pub mod path;
pub mod replication;
pub mod stat;
pub mod token;
pub mod txn;

pub use acl::{AclEntry, Perms, Principal};
pub use error::{ErrorCode, ErrorReply};
pub use ids::{SessionId, Zxid};
pub use message::*;
pub use stat::Stat;
pub use txn::{Change, NodeKind, Txn, TxnBody, TxnOp};
