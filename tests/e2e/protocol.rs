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

/// A client that pipelines reads through the engine (each leaves a watch) and does not read
/// its socket until far more than the socket holds is queued: the replies the engine wrote to
/// the idle socket itself, any it could write only in part, and those queued behind them all
/// arrive whole and in request order.
fn replies_behind_a_full_socket_arrive_whole_and_in_order(mut stream: impl std::io::Read + std::io::Write) {
    use baton_proto::frame;
    fn send(stream: &mut impl std::io::Write, message: &impl serde::Serialize) {
        stream.write_all(&frame::to_frame(message, frame::FRAME_LEN_MAX_DEFAULT).unwrap()).unwrap();
    }
    fn receive<T: serde::de::DeserializeOwned>(stream: &mut impl std::io::Read) -> T {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).unwrap();
        let mut payload = vec![0; frame::payload_len(header, frame::FRAME_LEN_MAX_DEFAULT).unwrap()];
        stream.read_exact(&mut payload).unwrap();
        frame::decode(&payload).unwrap()
    }
    send(&mut stream, &hello(5000));
    assert!(matches!(receive::<HelloReply>(&mut stream), HelloReply::Accepted(_)));
    let value: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let op = Op::Create(CreateRequest {
        path: "/big".into(),
        data: Some(value.clone()),
        kind: CreateKind::Persistent,
        sequential: false,
        // Readable by the anonymous TCP client too.
        acl: vec![baton_proto::AclEntry::new(baton_proto::Principal::Anyone, baton_proto::Perms::ALL)],
    });
    send(&mut stream, &Request { id: 1, op });
    let created = receive::<ServerMessage>(&mut stream);
    assert!(matches!(created, ServerMessage::Reply { id: 1, result: Ok(_), .. }), "{created:?}");
    // Bursts of reads answered faster than the client takes them (about 9 MB in all, many
    // times what a socket buffers), so the socket fills, drains and fills again while replies
    // wait in the outbox.
    let check = |stream: &mut _, expected: u64| match receive::<ServerMessage>(stream) {
        ServerMessage::Reply { id, result: Ok(Response::Data { data, .. }), .. } => {
            assert_eq!(id, expected, "replies come in request order");
            assert!(data.as_deref() == Some(value.as_slice()), "reply {id} arrived whole");
        }
        other => panic!("reply {expected}: {other:?}"),
    };
    let (mut sent, mut received) = (1u64, 1u64);
    for _ in 0..10 {
        // One write per burst: this client does not read meanwhile, and the daemon reads no
        // more requests while its writes to the client wait, so many small writes would block.
        let mut burst = Vec::new();
        for _ in 0..300 {
            sent += 1;
            let request = Request { id: sent, op: Op::Get { path: "/big".into(), watch: true } };
            burst.extend(frame::to_frame(&request, frame::FRAME_LEN_MAX_DEFAULT).unwrap());
        }
        stream.write_all(&burst).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        for _ in 0..150 {
            received += 1;
            check(&mut stream, received);
        }
    }
    while received < sent {
        received += 1;
        check(&mut stream, received);
    }
}

/// A reply the engine may write to the socket itself (a small one) must not overtake one
/// queued before it for the connection's writer (one over the engine's 4 KiB, which always goes
/// through the outbox): pipelined reads of a large and a small node, alternated, come back in
/// request order.
#[test]
fn a_small_reply_never_overtakes_a_large_one_queued_before_it() {
    use baton_proto::frame;
    let daemon = Daemon::start();
    let mut raw = open_session(&daemon.socket());
    let length = |id: u64| if id % 2 == 1 { 6000 } else { 10 };
    let path = |id: u64| if id % 2 == 1 { "/large" } else { "/small" };
    for id in [1, 2] {
        let op = Op::Create(CreateRequest {
            path: path(id).into(),
            data: Some(vec![7; length(id)]),
            kind: CreateKind::Persistent,
            sequential: false,
            acl: Vec::new(),
        });
        raw.call(id, op).unwrap();
    }
    // Each `get` leaves a watch, so the engine answers it, not the connection.
    let ids = 3..403u64;
    let mut burst = Vec::new();
    for id in ids.clone() {
        let request = Request { id, op: Op::Get { path: path(id).into(), watch: true } };
        burst.extend(frame::to_frame(&request, frame::FRAME_LEN_MAX_DEFAULT).unwrap());
    }
    raw.send_bytes(&burst).unwrap();
    for expected in ids {
        let (id, result) = raw.reply_any();
        assert_eq!(id, expected, "replies come in request order");
        let whole = matches!(&result, Ok(Response::Data { data: Some(data), .. }) if data.len() == length(id));
        assert!(whole, "reply {id}: {result:?}");
    }
}

#[test]
fn replies_behind_a_full_unix_socket_arrive_whole_and_in_order() {
    let daemon = Daemon::start();
    let stream = std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    replies_behind_a_full_socket_arrive_whole_and_in_order(stream);
}

#[test]
fn replies_behind_a_full_tcp_socket_arrive_whole_and_in_order() {
    let tcp = baton_tests::free_tcp_addr();
    let daemon = Daemon::start_with_config(&format!("listen = \"{tcp}\"\ntcp_allow_anonymous = true\n"));
    let stream = std::net::TcpStream::connect(tcp).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    replies_behind_a_full_socket_arrive_whole_and_in_order(stream);
    drop(daemon);
}
