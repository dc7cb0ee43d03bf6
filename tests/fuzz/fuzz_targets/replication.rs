//! The replication link's messages, both ways, and what a server says to a client.
#![no_main]

use baton_proto::frame;
use baton_proto::message::{HelloReply, ServerMessage};
use baton_proto::replication::{ToPrimary, ToStandby};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode::<ToPrimary>(data);
    let _ = frame::decode::<ToStandby>(data);
    let _ = frame::decode::<HelloReply>(data);
    let _ = frame::decode::<ServerMessage>(data);
});
