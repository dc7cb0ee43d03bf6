//! The generated steps: sessions opened, closed, touched and expired, writes and multis over a
//! tiny path alphabet, bursts of sequential creates, and time advancing — with the proptest
//! strategies that generate them.

use super::{FIXED, NAMES};
use baton_proto::message::CreateKind;
use batond::state::Limits;
use proptest::prelude::*;

/// A path, chosen when the step runs so that existing nodes are hit often.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Fixed(usize),
    /// The n-th existing node (modulo the count), root and sequential nodes included.
    Existing(usize),
    /// A child name under the n-th existing node.
    Under(usize, usize),
}

#[derive(Clone, Debug)]
pub(crate) enum Version {
    Any,
    Current,
    Wrong(i32),
}

/// A write op. `Check` is generated only inside a multi; there `Any` checks the current version.
#[derive(Clone, Debug)]
pub(crate) enum WriteSel {
    Create { target: Target, kind: CreateKind, sequential: bool, data: Vec<u8> },
    Set { target: Target, data: Vec<u8>, version: Version },
    Delete { target: Target, version: Version },
    Check { target: Target, version: Version },
}

/// One step of a run. `who` picks an opened session (closed ones included) modulo their count,
/// or, at 7, a session never opened. `Burst` is a multi of `count` sequential creates of one
/// kind under one prefix, to run into limits within a multi.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    OpenSession { timeout_ms: u32, secret: u64 },
    CloseSession { who: usize },
    Write { who: usize, write: WriteSel },
    Multi { who: usize, ops: Vec<WriteSel> },
    Burst { who: usize, target: Target, kind: CreateKind, count: usize },
    Advance { ms: u64 },
    ReapTtl,
    Touch { who: usize },
    Tick,
}

/// Creates go mostly to fixed paths and under existing nodes; other ops mostly to existing ones.
fn target(for_create: bool) -> impl Strategy<Value = Target> {
    let (fixed, existing, under) = if for_create { (4, 1, 4) } else { (3, 5, 1) };
    prop_oneof![
        fixed => (0..FIXED.len()).prop_map(Target::Fixed),
        existing => (0..64usize).prop_map(Target::Existing),
        under => (0..64usize, 0..NAMES.len()).prop_map(|(i, n)| Target::Under(i, n)),
    ]
}

/// Either the defaults or limits small enough to be hit often.
pub(crate) fn limits() -> impl Strategy<Value = Limits> {
    let small = Limits {
        node_data_max: 2,
        children_per_node_max: 3,
        ephemerals_per_session_max: 2,
        ttl_max_ms: 1000,
        ..Limits::default()
    };
    prop_oneof![Just(Limits::default()), Just(small)]
}

fn create_kind() -> impl Strategy<Value = CreateKind> {
    let ttl_max = Limits::default().ttl_max_ms;
    prop_oneof![
        4 => Just(CreateKind::Persistent),
        3 => Just(CreateKind::Ephemeral),
        3 => Just(CreateKind::Container),
        2 => prop_oneof![3 => Just(300u64), 3 => Just(1000), 1 => Just(0), 1 => Just(1001), 1 => Just(ttl_max), 1 => Just(ttl_max + 1)]
            .prop_map(|ttl_ms| CreateKind::Ttl { ttl_ms }),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        3 => Just(Version::Any),
        3 => Just(Version::Current),
        1 => prop_oneof![Just(1), Just(-1), Just(5)].prop_map(Version::Wrong),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4)
}

fn plain_write() -> impl Strategy<Value = WriteSel> {
    prop_oneof![
        5 => (target(true), create_kind(), prop::bool::weighted(0.3), data())
            .prop_map(|(target, kind, sequential, data)| WriteSel::Create { target, kind, sequential, data }),
        2 => (target(false), data(), version()).prop_map(|(target, data, version)| WriteSel::Set { target, data, version }),
        3 => (target(false), version()).prop_map(|(target, version)| WriteSel::Delete { target, version }),
    ]
}

fn multi_op() -> impl Strategy<Value = WriteSel> {
    prop_oneof![
        4 => plain_write(),
        1 => (target(false), version()).prop_map(|(target, version)| WriteSel::Check { target, version }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..8usize;
    prop_oneof![
        2 => (prop_oneof![Just(1000u32), Just(5000)], any::<u64>())
            .prop_map(|(timeout_ms, secret)| Step::OpenSession { timeout_ms, secret }),
        1 => who.clone().prop_map(|who| Step::CloseSession { who }),
        12 => (who.clone(), plain_write()).prop_map(|(who, write)| Step::Write { who, write }),
        4 => (who.clone(), prop::collection::vec(multi_op(), 0..5)).prop_map(|(who, ops)| Step::Multi { who, ops }),
        1 => (who.clone(), target(true), create_kind(), 2..5usize)
            .prop_map(|(who, target, kind, count)| Step::Burst { who, target, kind, count }),
        2 => (0..1500u64).prop_map(|ms| Step::Advance { ms }),
        2 => Just(Step::ReapTtl),
        1 => who.prop_map(|who| Step::Touch { who }),
        1 => Just(Step::Tick),
    ]
}

/// Two sessions to start with, then up to 60 random steps.
pub(crate) fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 0..60).prop_map(|mut steps| {
        let open = Step::OpenSession { timeout_ms: 5000, secret: 7 };
        steps.splice(0..0, [open.clone(), open]);
        steps
    })
}
