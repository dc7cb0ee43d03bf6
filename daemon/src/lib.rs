//! `batond`: the Baton daemon as a library, so tests and tools can embed its parts.
//!
//! ```text
//!  clients ──► server (Unix / TCP listeners, one task per connection)
//!  ZooKeeper clients ──► zk (jute ⇄ native ops, one task per connection; optional)
//!                 │  EngineInput (bounded channel)            ▲ ServerMessage (bounded, per
//!                 │                                           │ connection; slow ones are cut;
//!                 ▼                                           │ to an idle plain socket the engine writes)
//!              engine (one thread: the single writer)
//!                 │ prepare ─► apply (speculative) ─► one durable commit per batch ─► release
//!                 ▼                                            replies and events (after the
//!              state (pure: tree, sessions, watches, history)  standby's ack in sync mode)
//!              store (journal, then redb: nodes, sessions, log, meta)
//!                 │ committed records (feed)  ▲ Replicate / InstallSnapshot
//!                 ▼                           │
//!              replication::primary ══TCP══ replication::standby  (on the peer host)
//! ```
//!
//! Dependency direction: `state` imports only `baton_proto` and std; `store` adds redb;
//! `engine` joins them; `server` and `replication` feed the engine; `daemon` wires config,
//! listeners, replication, ticks and signals; `zk` translates ZooKeeper's protocol at the edge; `main.rs` parses flags and sets up logs.
//! A standby applies the primary's txns with the same `StateMachine::apply` and store commit
//! as the primary itself and as recovery.
//! Invariant violations (a prepared txn that does not fit the state) panic with a message:
//! serving from a state that broke an invariant would be worse than stopping.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod daemon;
pub mod engine;
pub mod metrics;
pub mod negative;
pub mod open_files;
pub mod placement;
pub mod replication;
pub mod sd_notify;
pub mod server;
pub mod signals;
pub mod state;
pub mod store;
pub mod wire;
pub mod zk;
