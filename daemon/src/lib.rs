//! `batond`: the Baton daemon as a library, so tests and tools can embed its parts.
//!
//! ```text
//!  clients ──► server (Unix / TCP listeners, one task per connection)
//!                 │  EngineInput (bounded channel)            ▲ ServerMessage (bounded, per
//!                 ▼                                           │ connection; slow ones are cut)
//!              engine (one thread: the single writer)
//!                 │ prepare ─► apply (speculative) ─► one redb commit per batch ─► release
//!                 ▼                                            replies and events
//!              state (pure: tree, sessions, watches, history)   store (redb: nodes,
//!                                                               sessions, log, meta)
//! ```
//!
//! Dependency direction: `state` imports only `baton_proto` and std; `store` adds redb;
//! `engine` joins them; `server` feeds the engine; `main.rs` wires config, signals and logs.
//! Invariant violations (a prepared txn that does not fit the state) panic with a message:
//! serving from a state that broke an invariant would be worse than stopping.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod daemon;
pub mod engine;
pub mod replication;
pub mod server;
pub mod signals;
pub mod state;
pub mod store;
pub mod wire;
