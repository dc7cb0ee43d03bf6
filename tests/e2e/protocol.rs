//! The real `batond` binary spoken to with raw frames: the handshake, pipelining, error
//! replies, and hostile input that must not take the daemon down.

use baton_proto::message::{CreateKind, CreateRequest, HelloReply, Op, Request, Response, ServerMessage};
use baton_proto::{ErrorCode, Zxid};
use baton_tests::Daemon;
use baton_tests::raw::{Raw, hello};
use std::path::Path;

fn open_session(socket: &Path) -> Raw {
    Raw::session(socket, 5000).0
}

fn create(path: &str) -> Op {
    Op::Create(CreateRequest {
        path: path.into(),
        data: Some(b"v".to_vec()),
        kind: CreateKind::Persistent,
        sequential: false,
        acl: Vec::new(),
    })
}

/// The daemon still serves a fresh client normally.
fn assert_healthy(socket: &Path) {
    let mut raw = open_session(socket);
    assert!(matches!(raw.call(1, Op::Exists { path: "/".into(), watch: false }), Ok(Response::Exists(Some(_)))));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    for id in 1..=50 {
        raw.send(&Request { id, op: create(&format!("/n{id}")) });
    }
    raw.send(&Request { id: 51, op: Op::Children { path: "/".into(), watch: false, with_stats: false } });
    for expected in 1..=50 {
        let (id, result) = raw.reply_any();
        assert_eq!(id, expected);
        assert!(matches!(result, Ok(Response::Created { .. })), "{result:?}");
    }
    match raw.reply_any() {
        (51, Ok(Response::Children { children, .. })) => assert_eq!(children.len(), 50),
        other => panic!("{other:?}"),
    }
}

#[test]
fn domain_errors_are_typed_replies() {
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    raw.send(&Request { id: 1, op: Op::Get { path: "/missing".into(), watch: false } });
    raw.send(&Request { id: 2, op: create("no-slash") });
    raw.send(&Request { id: 3, op: create("/a") });
    raw.send(&Request { id: 4, op: create("/a") });
    let codes: Vec<_> = (0..4).map(|_| raw.reply_any().1.err().map(|e| e.code)).collect();
    assert_eq!(codes, [Some(ErrorCode::NoNode), Some(ErrorCode::InvalidPath), None, Some(ErrorCode::NodeExists)]);
}

#[test]
fn unknown_op_gets_unimplemented_and_the_connection_carries_on() {
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    // id 9, then an op variant index no build knows.
    let payload = [9u8, 120, 0, 0];
    raw.send_bytes(&(payload.len() as u32).to_le_bytes()).unwrap();
    raw.send_bytes(&payload).unwrap();
    let (id, result) = raw.reply_any();
    assert_eq!((id, result.unwrap_err().code), (9, ErrorCode::Unimplemented));
    raw.send(&Request { id: 10, op: Op::Ping });
    assert_eq!(raw.reply_any(), (10, Ok(Response::Pong)));
}

#[test]
fn huge_length_prefix_closes_only_that_connection() {
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    raw.send_bytes(&u32::MAX.to_le_bytes()).unwrap();
    match raw.receive::<ServerMessage>() {
        Some(ServerMessage::Closing(reason)) => assert_eq!(reason.code, ErrorCode::TooLarge),
        other => panic!("expected Closing, got {other:?}"),
    }
    assert!(raw.receive::<ServerMessage>().is_none(), "connection closed after the goodbye");
    assert_healthy(&daemon.socket());
}

#[test]
fn garbage_instead_of_a_hello_is_refused() {
    let daemon = Daemon::start();
    for garbage in [vec![3, 0, 0, 0, 0xff, 0xfe, 0xfd], b"GET / HTTP/1.1\r\n\r\n".to_vec()] {
        let mut raw = Raw::connect(&daemon.socket());
        raw.send_bytes(&garbage).unwrap();
        match raw.receive::<HelloReply>() {
            Some(HelloReply::Refused(e)) => assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::TooLarge)),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let mut wrong_magic = hello(5000);
    wrong_magic.magic = 1;
    let mut raw = Raw::connect(&daemon.socket());
    raw.send(&wrong_magic);
    assert!(matches!(raw.receive(), Some(HelloReply::Refused(e)) if e.code == ErrorCode::ProtocolMismatch));
    assert_healthy(&daemon.socket());
}

#[test]
fn random_bytes_never_take_the_daemon_down() {
    let daemon = Daemon::start();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..40 {
        let mut raw = if round % 2 == 0 { open_session(&daemon.socket()) } else { Raw::connect(&daemon.socket()) };
        let len = 1 + (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = raw.send_bytes(&bytes);
        drop(raw);
    }
    assert_healthy(&daemon.socket());
}

#[test]
fn a_client_ahead_of_the_server_is_refused() {
    let daemon = Daemon::start();
    let mut raw = Raw::connect(&daemon.socket());
    let mut ahead = hello(5000);
    ahead.last_zxid_seen = Zxid::new(99, 1);
    raw.send(&ahead);
    assert!(matches!(raw.receive(), Some(HelloReply::Refused(e)) if e.code == ErrorCode::ServerBehind));
}

#[test]
fn a_multi_that_empties_a_container_answers_one_result_per_op() {
    use baton_proto::message::{MultiOp, OpResult};
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    let container = CreateRequest {
        path: "/c".into(),
        data: Some(vec![]),
        kind: CreateKind::Container,
        sequential: false,
        acl: Vec::new(),
    };
    raw.call(1, Op::Create(container)).unwrap();
    raw.call(2, create("/c/x")).unwrap();
    let reply = raw.call(3, Op::Multi(vec![MultiOp::Delete { path: "/c/x".into(), version: None }]));
    assert_eq!(reply, Ok(Response::Multi(vec![OpResult::Deleted])), "the reaped container is not the client's op");
    assert_eq!(raw.call(4, Op::Exists { path: "/c".into(), watch: false }), Ok(Response::Exists(None)));
}
