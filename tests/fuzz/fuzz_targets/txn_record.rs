//! A transaction log record, as stored and as shipped to a standby.
#![no_main]

use baton_proto::txn::{decode_record, encode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(txn) = decode_record(data) {
        let again = decode_record(&encode_record(&txn)).expect("a re-encoded record decodes");
        assert_eq!(again, txn);
    }
});
