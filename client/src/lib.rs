//! `baton`: the async client of the Baton coordination service, and the `baton` CLI.
//!
//! A [`Client`] is a cheap, cloneable handle to one session on a `batond` server. A
//! background task owns the connection: it pipelines requests, pings when idle, dispatches
//! watch events to the right watchers, and, when the connection drops, suspends the session,
//! reconnects, resumes it and restores its watches (missed changes are replayed, or a
//! `WatchReset` event says they could not be).
//!
//! ```no_run
//! # async fn demo() -> baton::Result<()> {
//! use baton::{Client, CreateOptions};
//! let client = Client::connect("/run/baton/baton.sock").await?;
//! client.create("/config", b"v1", CreateOptions::persistent()).await?;
//! let (data, stat, watcher) = client.get_and_watch("/config").await?;
//! assert_eq!((data.as_slice(), stat.version), (&b"v1"[..], 0));
//! client.set("/config", b"v2", Some(stat.version)).await?;
//! let event = watcher.changed().await?;
//! assert_eq!(event.kind, baton::EventKind::DataChanged);
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`addr`] parses addresses; `connection` frames bytes on one socket; `session` is
//! the background task; `watch` is the local watch registry and its dispatch rules; `client`
//! is the public handle. The crate depends on `baton-proto` for the wire types and never on
//! the daemon.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod addr;
mod client;
mod command;
mod connection;
mod error;
mod options;
pub mod recipes;
mod session;
mod state;
mod tls;
mod watch;
mod watcher;

pub use baton_proto as proto;
pub use baton_proto::token::Token;
pub use baton_proto::{
    AclEntry, CreateKind, CreateRequest, ErrorCode, EventKind, MultiOp, OpResult, Perms, Principal, SessionId, Stat,
    WatchEvent, Zxid,
};
pub use client::{Client, Promotion, Turn};
pub use error::{Error, Result};
pub use options::{
    CONNECT_TIMEOUT_DEFAULT, ClientBuilder, CreateOptions, REQUESTS_IN_FLIGHT_MAX_DEFAULT, SESSION_TIMEOUT_DEFAULT,
    WATCH_QUEUE_LEN_DEFAULT,
};
pub use state::SessionState;
pub use tls::TlsClient;
pub use watcher::{OneshotWatcher, PersistentWatcher};
