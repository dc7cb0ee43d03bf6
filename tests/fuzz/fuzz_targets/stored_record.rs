//! The daemon's stored node and session records (format byte, postcard, CRC-32C).
#![no_main]

use batond::state::{NodeRecord, SessionRecord};
use batond::store::decode_stored;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_stored::<NodeRecord>(data);
    let _ = decode_stored::<SessionRecord>(data);
});
