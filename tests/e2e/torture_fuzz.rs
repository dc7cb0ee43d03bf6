//! T11 (RELIABILITY.md), the part that needs no nightly toolchain: the wire decoders and the
//! stored-record decoder fed arbitrary and mutated bytes must fail cleanly, never panic; and
//! the real daemon fed mutated requests on live sessions answers or hangs up, never dies.
//! (cargo-fuzz with sanitizers would go further; CI must not depend on nightly.)

use baton::proto::frame::{self, FRAME_LEN_MAX_DEFAULT};
use baton::proto::message::{
    CreateKind, CreateRequest, Hello, HelloReply, MultiOp, Op, PersistentWatchMode, Request, ServerMessage,
};
use baton::proto::{Txn, Zxid};
use baton::{Client, CreateOptions};
use baton_tests::raw::Raw;
use baton_tests::torture::{self, Rng};
use baton_tests::{Daemon, raw};
use proptest::prelude::*;

/// A valid request chosen by `rng`.
fn request(rng: &mut Rng, id: u64) -> Request {
    let path = format!("/t11/n{}", rng.below(8));
    let version = if rng.chance(50) { Some(rng.below(3) as i32) } else { None };
    let op = match rng.below(9) {
        0 => Op::Create(CreateRequest {
            path,
            data: Some(vec![b'd'; rng.below(40) as usize]),
            kind: CreateKind::Persistent,
            sequential: rng.chance(30),
            acl: Vec::new(),
        }),
        1 => Op::Set { path, data: Some(b"value".to_vec()), version },
        2 => Op::Get { path, watch: rng.chance(50) },
        3 => Op::Delete { path, version },
        4 => Op::Exists { path, watch: rng.chance(50) },
        5 => Op::Children { path: "/t11".into(), watch: false, with_stats: rng.chance(50) },
        6 => Op::Multi(vec![
            MultiOp::Check { path: path.clone(), version: 0 },
            MultiOp::Set { path, data: Some(b"m".to_vec()), version },
        ]),
        7 => Op::AddWatch { path, mode: PersistentWatchMode::Recursive },
        _ => Op::Sync { path },
    };
    Request { id, op }
}

/// The payload of `message` (no length prefix), with 1–4 random mutations: flipped bits,
/// bytes inserted or removed, or a cut tail.
fn mutated<T: serde::Serialize>(message: &T, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = frame::to_frame(message, FRAME_LEN_MAX_DEFAULT).unwrap().split_off(frame::HEADER_LEN);
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(4) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.insert(at, rng.next_u64() as u8),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = frame::decode::<Request>(&bytes);
        let _ = frame::decode::<Hello>(&bytes);
        let _ = frame::decode::<HelloReply>(&bytes);
        let _ = frame::decode::<ServerMessage>(&bytes);
        let _ = frame::decode::<Txn>(&bytes);
        let _ = baton::proto::txn::decode_record(&bytes);
        // The replication link's messages and the token exchange.
        let _ = frame::decode::<baton::proto::replication::ToPrimary>(&bytes);
        let _ = frame::decode::<baton::proto::replication::ToStandby>(&bytes);
        let _ = frame::decode::<baton::proto::token::TokenProof>(&bytes);
        let _ = frame::decode::<baton::proto::token::TokenChallenge>(&bytes);
        // The daemon's stored records (sealed with their checksum).
        let _ = batond::store::decode_stored::<batond::state::NodeRecord>(&bytes);
        let _ = batond::store::decode_stored::<batond::state::SessionRecord>(&bytes);
        if let Some(header) = bytes.first_chunk::<4>() {
            let _ = frame::payload_len(*header, FRAME_LEN_MAX_DEFAULT);
        }
    }

    #[test]
    fn mutated_messages_decode_or_fail_cleanly(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let payload = mutated(&request(&mut rng, seed), &mut rng);
        if let Ok(decoded) = frame::decode::<Request>(&payload) {
            // Whatever decodes must encode again.
            prop_assert!(frame::to_frame(&decoded, u32::MAX).is_ok());
        }
        let hello = mutated(&raw::hello(5000), &mut rng);
        let _ = frame::decode::<Hello>(&hello);
    }
}

#[test]
fn t11_mutated_requests_on_live_sessions_never_take_the_daemon_down() {
    let (seed, scale) = (torture::seed(11), torture::scale());
    let daemon = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        client.create("/t11", b"", CreateOptions::persistent()).await.unwrap();
    });
    let mut rng = Rng::new(seed);
    let (mut sent, mut replies, mut closed, mut skipped) = (0, 0, 0, 0);
    let mut raw = Raw::session(&daemon.socket(), 5000).0;
    for id in 1..=500 * scale {
        let payload = mutated(&request(&mut rng, id), &mut rng);
        // Never let a mutation turn into an admin op with effects outside the test (a backup
        // writes a file wherever its path says, an ACL could lock the test out); the daemon
        // decodes exactly as we do.
        if let Ok(Request { op: Op::Backup { .. } | Op::Promote | Op::CloseSession | Op::SetAcl { .. }, .. }) =
            frame::decode(&payload)
        {
            skipped += 1;
            continue;
        }
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        sent += 1;
        let answered = raw.send_bytes(&bytes).is_ok()
            && loop {
                match raw.receive::<ServerMessage>() {
                    Some(ServerMessage::Event(_)) => {}
                    Some(ServerMessage::Reply { .. }) => break true,
                    Some(ServerMessage::Closing(_)) | None => break false,
                }
            };
        if answered {
            replies += 1;
        } else {
            closed += 1;
            raw = Raw::session(&daemon.socket(), 5000).0;
        }
    }
    let healthy = rt.block_on(async {
        let client = Client::connect(&daemon.addr()).await.unwrap();
        client.sync("/").await.unwrap() > Zxid::ZERO && client.exists("/t11").await.unwrap().is_some()
    });
    let panicked = daemon.log().contains("panicked");
    torture::figure(&format!(
        "T11 mutated requests: {sent} sent on live sessions: {replies} answered, {closed} hung up on; {skipped} skipped (admin ops); daemon panics {}; healthy after: {healthy}; seed {seed}",
        u8::from(panicked)
    ));
    assert!(!panicked, "batond panicked; log:\n{}", daemon.log());
    assert!(healthy);
    assert!(replies > 0 && closed > 0, "the mutations never reached both the decoder's error path and the ops");
}
