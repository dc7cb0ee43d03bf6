//! Coordination recipes built only on the [`crate::Client`]'s public API, one file each, so
//! they double as examples of the client:
//!
//! - [`lock`]: a fair (FIFO) lock without herd effect, with fencing tokens
//! - [`rwlock`]: a fair read-write lock
//! - [`semaphore`]: up to N holders at once
//! - [`election`]: leader election with observation of the current leader
//! - [`barrier`] and [`double_barrier`]: wait for a signal; enter and leave together
//! - [`queue`]: a FIFO queue whose items are each taken exactly once
//! - [`counter`]: an atomic counter
//! - [`cache`]: a local mirror of a subtree, kept current by a recursive watch
//! - [`registry`]: service registration and discovery
//! - `waiting` (crate-private): the waiter queue that lock, rwlock, semaphore and election share
//!
//! Sequential children are ordered by their 10-digit suffix ([`sequence_of`]), the order the
//! server uses for fencing checks too.

pub mod barrier;
pub mod cache;
pub mod counter;
pub mod double_barrier;
pub mod election;
pub mod lock;
pub mod queue;
pub mod registry;
pub mod rwlock;
pub mod semaphore;
mod waiting;

pub use baton_proto::path::sequence_of;
