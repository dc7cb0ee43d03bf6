//! Prometheus metrics: their definitions ([`registry`]) and the HTTP endpoint that serves
//! them with a health check ([`http`]), on the optional `metrics_listen` address.
//!
//! The engine records into [`Metrics`] with atomics and `prometheus-client`'s thread-safe
//! types shared through an `Arc`; it never waits on the endpoint, which only reads. This
//! module imports no other part of the daemon except `engine::EngineInput`, to ask the engine
//! whether it answers.

pub mod http;
pub mod registry;

pub use registry::{Gauges, Metrics};
