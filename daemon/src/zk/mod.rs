//! The ZooKeeper-compatible listener (off unless `zk_listen` is set): ZooKeeper's client
//! protocol (3.5–3.9, jute encoding) served over the same engine, sessions, watches and store
//! as the native protocol, so that existing ZooKeeper clients and tools can use Baton.
//!
//! * `four_letter`: the four-letter words (`ruok`, `srvr`, `mntr`, ...) answered on the port.
//! * `jute`: the encoding and the protocol's records (pure, no I/O).
//! * `system`: the `/zookeeper` system nodes, answered here (pure).
//! * `translate`: ZooKeeper requests to native ops, native replies and events back (pure).
//! * `listener`: the TCP listener and one task per connection (handshake, ordering, framing).
//!
//! Imports the engine's input types and the server's limits; nothing here touches the state
//! or the store directly. See `ZK-PROTOCOL.md` for the wire facts it follows.

pub mod four_letter;
pub mod jute;
pub mod listener;
pub mod system;
pub mod translate;

pub use listener::serve;
