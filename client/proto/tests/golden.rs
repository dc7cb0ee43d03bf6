//! Golden bytes: the exact encoding of every message that crosses the wire and every record
//! that reaches the disk, one representative value per type and per enum variant.
//!
//! postcard encodes an enum's variant *index* (and struct fields in declaration order, with no
//! names), so these formats are append-only: a new variant goes at the end of its enum, and
//! nothing is reordered, removed or retyped. A failing golden test therefore means the format
//! changed. If that was not meant, undo it; if it was, it is a protocol change that needs
//! `PROTOCOL_VERSION` (wire) or `TXN_FORMAT_VERSION` (log records) bumped and old peers and
//! old stores thought about — and only then the expected bytes below updated.
//!
//! Each `*_has_n_variants` check fails when a variant is appended, to have it pinned here too.

use baton_proto::frame;
use baton_proto::message::{
    CreateKind, CreateRequest, EventKind, Hello, HelloReply, MAGIC, MultiOp, Op, OpResult, PROTOCOL_VERSION,
    PersistentWatchMode, Request, Response, Role, ServerHello, ServerMessage, SessionRequest, WatchEvent, WatchSet,
    WatchType,
};
use baton_proto::message::{PeerStatus, StatusReport};
use baton_proto::replication::ReplicationMode;
use baton_proto::token::{TokenChallenge, TokenHello, TokenProof};
use baton_proto::txn::{TXN_FORMAT_VERSION, decode_record, encode_record};
use baton_proto::{
    AclEntry, ErrorCode, ErrorReply, NodeKind, Perms, Principal, SessionId, Stat, Txn, TxnBody, TxnOp, Zxid,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[track_caller]
fn assert_hex(bytes: &[u8], expected: &str, what: &dyn Debug) {
    assert_eq!(hex(bytes), expected, "encoding of {what:?}");
}

/// `value` encodes to exactly `expected` (hex) and decodes back to itself.
#[track_caller]
fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T, expected: &str) {
    let bytes = postcard::to_allocvec(value).expect("encodes");
    assert_hex(&bytes, expected, value);
    let decoded: T = frame::decode(&bytes).expect("decodes");
    assert_eq!(&decoded, value, "round trip");
}

/// `T` has exactly `n` variants: the last index decodes (from a payload of zeros, which every
/// field type here reads as zero, empty, false or its first variant) and the next does not.
#[track_caller]
fn has_n_variants<T: DeserializeOwned + Debug>(n: u8) {
    assert!(n < 128, "one-byte variant index");
    let mut probe = [0u8; 64];
    probe[0] = n - 1;
    assert!(postcard::take_from_bytes::<T>(&probe).is_ok(), "variant {} should exist", n - 1);
    probe[0] = n;
    let unknown = postcard::take_from_bytes::<T>(&probe);
    assert!(unknown.is_err(), "variant {n} exists: pin it with a golden value, then raise the count: {unknown:?}");
}

fn stat() -> Stat {
    Stat {
        czxid: Zxid(0x1_0000_0002),
        mzxid: Zxid(0x1_0000_0003),
        pzxid: Zxid(0x1_0000_0004),
        ctime_ms: 1_700_000_000_000,
        mtime_ms: 1_700_000_000_500,
        version: 3,
        cversion: -1,
        aversion: 0,
        ephemeral_owner: SessionId(0x1_0000_0001),
        data_length: 2,
        num_children: 300,
    }
}

fn create_request(kind: CreateKind, sequential: bool) -> CreateRequest {
    CreateRequest { path: "/q/n-".into(), data: Some(vec![0xca, 0xfe]), kind, sequential, acl: Vec::new() }
}

fn error_reply() -> ErrorReply {
    ErrorReply::new(ErrorCode::NoNode, "/a")
}

#[test]
fn versions_and_magic() {
    assert_eq!(MAGIC, 0x4241_544e, "\"BATN\"");
    assert_eq!(PROTOCOL_VERSION, 2, "bumping it: update the goldens here in the same change");
    assert_eq!(TXN_FORMAT_VERSION, 3, "bumping it: update the goldens here in the same change");
}

#[test]
fn ids_and_stat() {
    golden(&Zxid(0x1_0000_0002), "8280808010");
    golden(&SessionId(0), "00");
    golden(&SessionId(0x1_0000_0001), "8180808010");
    golden(&stat(), "82808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02");
    golden(&Stat::default(), "0000000000000000000000");
}

#[test]
fn hello_with_each_session_request() {
    let new = SessionRequest::New { timeout_ms: 10_000, connection_bound: true };
    golden(&new, "00904e01");
    let resume = SessionRequest::Resume { session_id: SessionId(0x1_0000_0001), secret: 0xdead_beef_0000_0001 };
    golden(&resume, "01818080801081808080f0ddefd6de01");
    has_n_variants::<SessionRequest>(2);
    let hellos = [
        (new, "cea8859204020b6261746f6e20302e312e3000904e01878080801000"),
        (resume, "cea8859204020b6261746f6e20302e312e3001818080801081808080f0ddefd6de01878080801000"),
    ];
    for (session, expected) in hellos {
        let hello = Hello {
            magic: MAGIC,
            protocol_version: PROTOCOL_VERSION,
            client_name: "baton 0.1.0".into(),
            session,
            last_zxid_seen: Zxid(0x1_0000_0007),
            token: None,
        };
        golden(&hello, expected);
    }
    let token = TokenHello { name: "t".into(), client_nonce: [7; 32] };
    golden(&token, "01740707070707070707070707070707070707070707070707070707070707070707");
    let challenge = TokenChallenge { salt: [1; 16], server_nonce: [2; 32] };
    golden(
        &challenge,
        "010101010101010101010101010101010202020202020202020202020202020202020202020202020202020202020202",
    );
    golden(
        &HelloReply::Challenge(challenge),
        "02010101010101010101010101010101010202020202020202020202020202020202020202020202020202020202020202",
    );
    golden(&TokenProof { proof: [3; 32] }, "0303030303030303030303030303030303030303030303030303030303030303");
}

#[test]
fn acl_entries_with_each_principal() {
    golden(&Perms::ALL, "1f");
    let principals = [
        (Principal::Anyone, "00"),
        (Principal::Uid(1000), "01e807"),
        (Principal::Gid(100), "0264"),
        (Principal::Token("t".into()), "030174"),
        (Principal::Cert("c".into()), "040163"),
        (Principal::Creator, "05"),
        (Principal::Digest("d".into()), "060164"),
    ];
    for (principal, expected) in principals {
        golden(&principal, expected);
    }
    has_n_variants::<Principal>(7);
    golden(&AclEntry::new(Principal::Uid(1000), Perms::READ), "01e80701");
}

#[test]
fn hello_reply_and_server_hello() {
    let primary = ServerHello {
        protocol_version: PROTOCOL_VERSION,
        server_name: "batond 0.1.0".into(),
        role: Role::Primary,
        epoch: 1,
        last_zxid: Zxid(0x1_0000_0009),
        session_id: SessionId(0x1_0000_0008),
        secret: 0x0123_4567_89ab_cdef,
        timeout_ms: 10_000,
        resumed: false,
    };
    let standby = ServerHello { role: Role::Standby, epoch: 2, resumed: true, ..primary.clone() };
    golden(&Role::Primary, "00");
    golden(&Role::Standby, "01");
    has_n_variants::<Role>(2);
    golden(&primary, "020c6261746f6e6420302e312e30000189808080108880808010ef9bafcdf8acd19101904e00");
    golden(&standby, "020c6261746f6e6420302e312e30010289808080108880808010ef9bafcdf8acd19101904e01");
    golden(
        &HelloReply::Accepted(primary),
        "00020c6261746f6e6420302e312e30000189808080108880808010ef9bafcdf8acd19101904e00",
    );
    golden(
        &HelloReply::Accepted(standby),
        "00020c6261746f6e6420302e312e30010289808080108880808010ef9bafcdf8acd19101904e01",
    );
    golden(
        &HelloReply::Refused(ErrorReply::new(ErrorCode::ProtocolMismatch, "protocol 9")),
        "01140a70726f746f636f6c2039",
    );
    has_n_variants::<HelloReply>(3);
}

#[test]
fn create_kind_each() {
    golden(&CreateKind::Persistent, "00");
    golden(&CreateKind::Ephemeral, "01");
    golden(&CreateKind::Container, "02");
    golden(&CreateKind::Ttl { ttl_ms: 60_000 }, "03e0d403");
    has_n_variants::<CreateKind>(4);
    golden(&create_request(CreateKind::Ephemeral, true), "052f712f6e2d0102cafe010100");
}

#[test]
fn multi_op_each_and_watch_set() {
    golden(&MultiOp::Check { path: "/a".into(), version: 2 }, "00022f6104");
    golden(&MultiOp::Create(create_request(CreateKind::Persistent, false)), "01052f712f6e2d0102cafe000000");
    golden(&MultiOp::Set { path: "/a".into(), data: Some(vec![1, 2, 3]), version: Some(-1) }, "02022f6101030102030101");
    golden(&MultiOp::Set { path: "/a".into(), data: Some(vec![]), version: None }, "02022f61010000");
    golden(&MultiOp::Set { path: "/a".into(), data: None, version: None }, "02022f610000");
    golden(&MultiOp::Delete { path: "/a".into(), version: Some(7) }, "03022f61010e");
    golden(&MultiOp::Delete { path: "/a".into(), version: None }, "03022f6100");
    golden(&MultiOp::HoldsLock { lock: "/l".into(), token: 0x1_0000_0002 }, "04022f6c8280808010");
    has_n_variants::<MultiOp>(5);
    golden(&PersistentWatchMode::Persistent, "00");
    golden(&PersistentWatchMode::Recursive, "01");
    has_n_variants::<PersistentWatchMode>(2);
    golden(&WatchSet::default(), "0000000000");
    golden(&watch_set(), "01022f6402022f65032f653201022f6301022f7001012f");
}

fn watch_set() -> WatchSet {
    WatchSet {
        data: vec!["/d".into()],
        exists: vec!["/e".into(), "/e2".into()],
        children: vec!["/c".into()],
        persistent: vec!["/p".into()],
        recursive: vec!["/".into()],
    }
}

/// A request per op (both sides of every `Option`), and the ops' variant count.
#[test]
fn request_with_each_op() {
    let ops: [(Op, &str); 31] = [
        (Op::Ping, "ac0200"),
        (Op::Create(create_request(CreateKind::Ttl { ttl_ms: 1000 }, true)), "ad0201052f712f6e2d0102cafe03e8070100"),
        (Op::Delete { path: "/a".into(), version: Some(0) }, "ae0202022f610100"),
        (Op::Delete { path: "/a".into(), version: None }, "af0202022f6100"),
        (Op::Set { path: "/a".into(), data: Some(b"hi".to_vec()), version: Some(4) }, "b00203022f61010268690108"),
        (Op::Set { path: "/a".into(), data: Some(vec![]), version: None }, "b10203022f61010000"),
        (Op::Get { path: "/a".into(), watch: true }, "b20204022f6101"),
        (Op::Exists { path: "/a".into(), watch: false }, "b30205022f6100"),
        (Op::Children { path: "/".into(), watch: true, with_stats: true }, "b40206012f0101"),
        (
            Op::Multi(vec![
                MultiOp::Check { path: "/a".into(), version: 1 },
                MultiOp::Create(create_request(CreateKind::Container, false)),
                MultiOp::Set { path: "/a".into(), data: Some(vec![9]), version: None },
                MultiOp::Delete { path: "/b".into(), version: Some(2) },
            ]),
            "b502070400022f610201052f712f6e2d0102cafe02000002022f610101090003022f620104",
        ),
        (Op::Multi(vec![]), "b6020700"),
        (Op::Sync { path: "/".into() }, "b70208012f"),
        (Op::Ephemerals { session_id: Some(SessionId(0x1_0000_0001)) }, "b80209018180808010"),
        (Op::Ephemerals { session_id: None }, "b9020900"),
        (Op::AddWatch { path: "/a".into(), mode: PersistentWatchMode::Persistent }, "ba020a022f6100"),
        (Op::AddWatch { path: "/".into(), mode: PersistentWatchMode::Recursive }, "bb020a012f01"),
        (Op::RemoveWatches { path: "/a".into() }, "bc020b022f61"),
        (
            Op::RestoreWatches { last_zxid: Zxid(0x1_0000_0005), watches: watch_set() },
            "bd020c858080801001022f6402022f65032f653201022f6301022f7001012f",
        ),
        (Op::RestoreWatches { last_zxid: Zxid::ZERO, watches: WatchSet::default() }, "be020c000000000000"),
        (Op::CloseSession, "bf020d"),
        (Op::Status, "c0020e"),
        (Op::Promote, "c1020f"),
        (Op::Backup { path: "/b".into() }, "c20210022f62"),
        (Op::GetAcl { path: "/b".into() }, "c30211022f62"),
        (
            Op::SetAcl {
                path: "/b".into(),
                acl: vec![AclEntry::new(Principal::Anyone, Perms::READ)],
                version: Some(2),
            },
            "c40212022f620100010104",
        ),
        (Op::WhoAmI, "c50213"),
        (
            Op::MatchWatches { path: "/a".into(), kinds: vec![WatchType::Data, WatchType::Exists], remove: true },
            "c60214022f6102000101",
        ),
        (Op::CountDescendants { path: "/a".into() }, "c70215022f61"),
        (Op::MultiRead(vec![Op::Get { path: "/a".into(), watch: false }]), "c802160104022f6100"),
        (Op::Turn { path: "/a".into() }, "c90217022f61"),
        (Op::CreateInLine(create_request(CreateKind::Ephemeral, true)), "ca0218052f712f6e2d0102cafe010100"),
    ];
    for (i, (op, expected)) in ops.into_iter().enumerate() {
        let request = Request { id: 300 + i as u64, op };
        golden(&request, expected);
        let bytes = postcard::to_allocvec(&request).unwrap();
        assert_eq!(Request::decode(&bytes), Ok(request), "the server's decoder agrees");
    }
    has_n_variants::<Op>(25);
    assert_eq!(Op::VARIANTS, 25);
}

#[test]
fn watch_type_each() {
    for (kind, expected) in [
        (WatchType::Data, "00"),
        (WatchType::Exists, "01"),
        (WatchType::Children, "02"),
        (WatchType::Persistent, "03"),
        (WatchType::Recursive, "04"),
        (WatchType::Turn, "05"),
    ] {
        golden(&kind, expected);
    }
    has_n_variants::<WatchType>(6);
}

#[test]
fn op_result_each() {
    golden(&OpResult::Checked, "00");
    golden(
        &OpResult::Created { path: "/q/n-0000000001".into(), stat: stat() },
        "010f2f712f6e2d3030303030303030303182808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
    );
    golden(&OpResult::Set(stat()), "0282808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02");
    golden(&OpResult::Deleted, "03");
    golden(&OpResult::Error(ErrorCode::RolledBack), "0411");
    has_n_variants::<OpResult>(5);
}

#[test]
fn response_each() {
    let responses: [(Response, &str); 26] = [
        (Response::Pong, "00"),
        (
            Response::Created { path: "/a".into(), stat: stat() },
            "01022f6182808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
        ),
        (Response::Deleted, "02"),
        (Response::Set(stat()), "0382808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02"),
        (
            Response::Data { data: Some(vec![0xca, 0xfe]), stat: stat() },
            "040102cafe82808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
        ),
        (
            Response::Exists(Some(stat())),
            "050182808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
        ),
        (Response::Exists(None), "0500"),
        (
            Response::Children { children: vec!["a".into(), "b".into()], stat: stat() },
            "06020161016282808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
        ),
        (
            Response::ChildrenWithStats { children: vec![("a".into(), Stat::default())], stat: stat() },
            "07010161000000000000000000000082808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
        ),
        (
            Response::Multi(vec![
                OpResult::Checked,
                OpResult::Deleted,
                OpResult::Error(ErrorCode::BadVersion),
                OpResult::Error(ErrorCode::Skipped),
            ]),
            "0804000304020412",
        ),
        (Response::Multi(vec![]), "0800"),
        (Response::Synced { zxid: Zxid(0x1_0000_0005) }, "098580808010"),
        (Response::Ephemerals(vec!["/e".into()]), "0a01022f65"),
        (Response::WatchAdded, "0b"),
        (Response::WatchesRemoved, "0c"),
        (Response::WatchesRestored { reset: true }, "0d01"),
        (Response::WatchesRestored { reset: false }, "0d00"),
        (Response::SessionClosed, "0e"),
        (
            Response::Status(StatusReport {
                role: Role::Standby,
                epoch: 2,
                last_zxid: Zxid(0x2_0000_0003),
                mode: Some(ReplicationMode::Sync),
                peer: Some(PeerStatus {
                    addr: "h:1".into(),
                    connected: true,
                    peer_zxid: Zxid(0x2_0000_0004),
                    lag_txns: 1,
                    lag_ms: 5,
                }),
                sessions: 1,
                nodes: 2,
                watches: 3,
                connections: 4,
                uptime_ms: 5,
                store_bytes: 6,
                digest: 7,
                fenced: false,
                sync_degraded: true,
                log_floor: Zxid(0x2_0000_0001),
                log_txns: 2,
                log_bytes: 300,
            }),
            "0f0102838080802001010103683a310184808080200105010203040506070001818080802002ac02",
        ),
        (
            Response::Promoted {
                epoch: 3,
                last_zxid: Zxid(0x2_0000_0003),
                primary_zxid: Some(Zxid(0x2_0000_0004)),
                behind_txns: Some(1),
            },
            "100383808080200184808080200101",
        ),
        (Response::BackedUp { last_zxid: Zxid(0x1_0000_0009), nodes: 3, bytes: 4096 }, "118980808010038020"),
        (
            Response::Acl { acl: vec![AclEntry::new(Principal::Gid(5), Perms::ALL)], stat: Stat::default() },
            "120102051f0000000000000000000000",
        ),
        (Response::AclSet(Stat::default()), "130000000000000000000000"),
        (
            Response::Identity { principals: vec![Principal::Uid(0), Principal::Gid(0)], superuser: true },
            "14020100020001",
        ),
        (Response::Descendants(300), "15ac02"),
        (
            Response::MultiRead(vec![Ok(Response::Pong), Err(ErrorReply::new(ErrorCode::NoNode, "/a"))]),
            "160200000100022f61",
        ),
    ];
    for (response, expected) in &responses {
        golden(response, expected);
    }
    has_n_variants::<Response>(25);
}

#[test]
fn response_of_a_turn() {
    golden(&Response::Turn { stat: None, first: false }, "170000");
    golden(&Response::Turn { stat: Some(Stat::default()), first: true }, "1701000000000000000000000001");
}

#[test]
fn response_of_a_create_in_line() {
    let response = Response::CreatedInLine { path: "/q/n-0000000001".into(), stat: Stat::default(), first: false };
    golden(&response, "180f2f712f6e2d30303030303030303031000000000000000000000000");
}

#[test]
fn watch_event_with_each_event_kind() {
    let kinds: [(EventKind, &str, &str); 6] = [
        (EventKind::Created, "00", "8680808010042f612f6200"),
        (EventKind::Deleted, "01", "8680808010042f612f6201"),
        (EventKind::DataChanged, "02", "8680808010042f612f6202"),
        (EventKind::ChildrenChanged, "03", "8680808010042f612f6203"),
        (EventKind::WatchReset, "04", "8680808010042f612f6204"),
        (EventKind::Turn, "05", "8680808010042f612f6205"),
    ];
    for (kind, kind_hex, event_hex) in kinds {
        golden(&kind, kind_hex);
        golden(&WatchEvent { zxid: Zxid(0x1_0000_0006), path: "/a/b".into(), kind }, event_hex);
    }
    has_n_variants::<EventKind>(6);
}

#[test]
fn server_message_each() {
    let reply = |result| ServerMessage::Reply { id: 300, zxid: Zxid(0x1_0000_0006), result };
    golden(&reply(Ok(Response::Pong)), "00ac0286808080100000");
    golden(
        &reply(Ok(Response::Exists(Some(stat())))),
        "00ac02868080801000050182808080108380808010848080801080d095ffbc31f4d395ffbc31060100818080801002ac02",
    );
    golden(&reply(Err(error_reply())), "00ac0286808080100100022f61");
    let event = WatchEvent { zxid: Zxid(0x1_0000_0006), path: "/a".into(), kind: EventKind::DataChanged };
    golden(&ServerMessage::Event(event), "018680808010022f6102");
    golden(&ServerMessage::Closing(ErrorReply::new(ErrorCode::SlowConsumer, "")), "021300");
    has_n_variants::<ServerMessage>(3);
}

#[test]
fn error_reply_and_every_error_code() {
    golden(&error_reply(), "00022f61");
    golden(&ErrorReply::new(ErrorCode::Internal, ""), "1000");
    let codes = [
        (ErrorCode::NoNode, "00"),
        (ErrorCode::NodeExists, "01"),
        (ErrorCode::BadVersion, "02"),
        (ErrorCode::NotEmpty, "03"),
        (ErrorCode::NoChildrenForEphemerals, "04"),
        (ErrorCode::InvalidPath, "05"),
        (ErrorCode::InvalidArgument, "06"),
        (ErrorCode::TooLarge, "07"),
        (ErrorCode::SessionExpired, "08"),
        (ErrorCode::ConnectionLoss, "09"),
        (ErrorCode::NotPrimary, "0a"),
        (ErrorCode::Unimplemented, "0b"),
        (ErrorCode::BadRequest, "0c"),
        (ErrorCode::LimitExceeded, "0d"),
        (ErrorCode::ServerBehind, "0e"),
        (ErrorCode::ShuttingDown, "0f"),
        (ErrorCode::Internal, "10"),
        (ErrorCode::RolledBack, "11"),
        (ErrorCode::Skipped, "12"),
        (ErrorCode::SlowConsumer, "13"),
        (ErrorCode::ProtocolMismatch, "14"),
        (ErrorCode::NoAuth, "15"),
        (ErrorCode::Fenced, "16"),
        (ErrorCode::SessionMoved, "17"),
        (ErrorCode::LockLost, "18"),
        (ErrorCode::DiskFull, "19"),
        (ErrorCode::AuthFailed, "1a"),
        (ErrorCode::NoWatcher, "1b"),
    ];
    for (code, expected) in codes {
        golden(&code, expected);
    }
    has_n_variants::<ErrorCode>(28);
}

/// A log record is `TXN_FORMAT_VERSION` then the postcard txn.
#[track_caller]
fn golden_record(txn: &Txn, expected: &str) {
    let bytes = encode_record(txn);
    assert_hex(&bytes, expected, txn);
    assert_eq!(&decode_record(&bytes).expect("decodes"), txn, "round trip");
}

fn txn(body: TxnBody) -> Txn {
    Txn { zxid: Zxid(0x1_0000_0002), time_ms: 1_700_000_000_000, session_id: SessionId(0x1_0000_0001), body }
}

#[test]
fn txn_record_with_each_body_op_and_node_kind() {
    golden(&NodeKind::Persistent, "00");
    golden(&NodeKind::Ephemeral, "01");
    golden(&NodeKind::Container, "02");
    golden(&NodeKind::Ttl { ttl_ms: 60_000 }, "03e0d403");
    has_n_variants::<NodeKind>(4);

    let create =
        |path: &str, kind| TxnOp::Create { path: path.into(), data: Some(vec![0xca, 0xfe]), kind, acl: Vec::new() };
    golden(&create("/p", NodeKind::Persistent), "00022f700102cafe0000");
    golden(&TxnOp::Delete { path: "/p".into() }, "01022f70");
    golden(&TxnOp::Set { path: "/p".into(), data: Some(vec![1]) }, "02022f70010101");
    golden(&TxnOp::Check { path: "/p".into(), version: 1 }, "03022f7002");
    golden(
        &TxnOp::SetAcl { path: "/p".into(), acl: vec![AclEntry::new(Principal::Uid(7), Perms::ALL)] },
        "04022f700101071f",
    );
    has_n_variants::<TxnOp>(5);

    let session = TxnBody::CreateSession { timeout_ms: 10_000, secret: 0x0123_4567_89ab_cdef, connection_bound: true };
    golden_record(&txn(session), "03828080801080d095ffbc31818080801000904eef9bafcdf8acd1910101");
    golden_record(
        &txn(TxnBody::CloseSession { deletes: vec!["/c/e".into(), "/c".into()] }),
        "03828080801080d095ffbc3181808080100102042f632f65022f63",
    );
    golden_record(&txn(TxnBody::CloseSession { deletes: vec![] }), "03828080801080d095ffbc3181808080100100");
    let write = TxnBody::Write(vec![
        create("/p", NodeKind::Persistent),
        create("/e", NodeKind::Ephemeral),
        create("/c", NodeKind::Container),
        create("/t", NodeKind::Ttl { ttl_ms: 60_000 }),
        TxnOp::Set { path: "/p".into(), data: Some(vec![]) },
        TxnOp::Check { path: "/p".into(), version: 1 },
        TxnOp::Delete { path: "/p".into() },
    ]);
    golden_record(
        &txn(write),
        "03828080801080d095ffbc318180808010020700022f700102cafe000000022f650102cafe010000022f630102cafe020000022f740102cafe03e0d4030002022f70010003022f700201022f70",
    );
    let reap = Txn { session_id: SessionId::NONE, ..txn(TxnBody::Write(vec![TxnOp::Delete { path: "/t".into() }])) };
    golden_record(&reap, "03828080801080d095ffbc3100020101022f74");
    golden_record(&txn(TxnBody::NewEpoch { epoch: 2 }), "03828080801080d095ffbc3181808080100302");
    has_n_variants::<TxnBody>(4);
}

#[test]
fn full_frames() {
    let request = Request { id: 1, op: Op::Get { path: "/a".into(), watch: true } };
    let frame = frame::to_frame(&request, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
    assert_hex(&frame, "060000000104022f6101", &request);
    let len = frame::payload_len(frame[..frame::HEADER_LEN].try_into().unwrap(), frame::FRAME_LEN_MAX_DEFAULT);
    assert_eq!(len.unwrap(), frame.len() - frame::HEADER_LEN);
    assert_eq!(Request::decode(&frame[frame::HEADER_LEN..]), Ok(request));

    let reply = ServerMessage::Reply { id: 1, zxid: Zxid(0x1_0000_0002), result: Ok(Response::Deleted) };
    let frame = frame::to_frame(&reply, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
    assert_hex(&frame, "09000000000182808080100002", &reply);
    assert_eq!(frame::decode::<ServerMessage>(&frame[frame::HEADER_LEN..]).unwrap(), reply);

    let hello = HelloReply::Refused(ErrorReply::new(ErrorCode::ProtocolMismatch, ""));
    let frame = frame::to_frame(&hello, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
    assert_hex(&frame, "03000000011400", &hello);
}

#[test]
fn replication_link_messages() {
    use baton_proto::replication::{PEER_MAGIC, PEER_PROTOCOL_VERSION, ToPrimary, ToStandby};
    assert_eq!(PEER_MAGIC, 0x4241_5250);
    assert_eq!(PEER_PROTOCOL_VERSION, 2);
    let nonce = [7u8; 16];
    let to_primary: [(ToPrimary, &str); 3] = [
        (
            ToPrimary::Hello {
                magic: PEER_MAGIC,
                protocol_version: 1,
                epoch: 2,
                last_zxid: Zxid(0x2_0000_0001),
                nonce,
            },
            "00d0a48592040102818080802007070707070707070707070707070707",
        ),
        (ToPrimary::Proof { mac: [9u8; 32] }, "010909090909090909090909090909090909090909090909090909090909090909"),
        (ToPrimary::Ack { durable_zxid: Zxid(0x1_0000_0003) }, "028380808010"),
    ];
    for (message, expected) in &to_primary {
        golden(message, expected);
    }
    has_n_variants::<ToPrimary>(3);
    let to_standby: [(ToStandby, &str); 11] = [
        (
            ToStandby::Challenge { nonce, mac: [9u8; 32] },
            "00070707070707070707070707070707070909090909090909090909090909090909090909090909090909090909090909",
        ),
        (
            ToStandby::Welcome {
                epoch: 2,
                last_zxid: Zxid(0x2_0000_0001),
                mode: ReplicationMode::Async,
                diverged_after: None,
            },
            "010281808080200000",
        ),
        (
            ToStandby::Welcome {
                epoch: 2,
                last_zxid: Zxid(0x2_0000_0001),
                mode: ReplicationMode::Sync,
                diverged_after: Some(Zxid(0x1_0000_0005)),
            },
            "0102818080802001018580808010",
        ),
        (ToStandby::Txns(vec![vec![1, 2], vec![]]), "020202010200"),
        (ToStandby::SnapshotBegin { epoch: 1, last_zxid: Zxid(0x1_0000_0009) }, "03018980808010"),
        (ToStandby::SnapshotNodes(vec![("/a".into(), vec![1])]), "0401022f610101"),
        (ToStandby::SnapshotSessions(vec![(SessionId(0x1_0000_0001), vec![2])]), "050181808080100102"),
        (ToStandby::SnapshotEnd, "06"),
        (
            ToStandby::Heartbeat { last_zxid: Zxid(0x1_0000_0009), time_ms: 1_700_000_000_000 },
            "07898080801080d095ffbc31",
        ),
        (ToStandby::Refused(ErrorReply::new(ErrorCode::NoAuth, "no")), "0815026e6f"),
        (ToStandby::Refused(ErrorReply::new(ErrorCode::Fenced, "")), "081600"),
    ];
    for (message, expected) in &to_standby {
        golden(message, expected);
    }
    has_n_variants::<ToStandby>(9);
    has_n_variants::<ReplicationMode>(2);
}
