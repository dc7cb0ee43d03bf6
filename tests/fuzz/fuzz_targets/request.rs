//! What a client can send the daemon: a hello, a token proof, a request. Decoding never
//! panics, and whatever decodes survives encoding and decoding again unchanged.
#![no_main]

use baton_proto::frame;
use baton_proto::message::{Hello, Request};
use baton_proto::token::TokenProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        let again = Request::decode(&postcard::to_allocvec(&request).expect("encodes")).expect("decodes");
        assert_eq!(again, request, "a request round-trips");
    }
    if let Ok(hello) = frame::decode::<Hello>(data) {
        let again: Hello = frame::decode(&postcard::to_allocvec(&hello).expect("encodes")).expect("decodes");
        assert_eq!(again, hello, "a hello round-trips");
    }
    let _ = frame::decode::<TokenProof>(data);
    if let Some(header) = data.first_chunk::<4>() {
        let _ = frame::payload_len(*header, frame::FRAME_LEN_MAX_DEFAULT);
    }
});
