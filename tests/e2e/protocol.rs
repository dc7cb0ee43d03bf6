//! The real `batond` binary spoken to with raw frames: the handshake, pipelining, error
//! replies, and hostile input that must not take the daemon down.

use baton_proto::frame;
use baton_proto::message::{
    CreateKind, CreateRequest, Hello, HelloReply, MAGIC, Op, PROTOCOL_VERSION, Request, Response, ServerMessage,
    SessionRequest,
};
use baton_proto::{ErrorCode, Zxid};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("baton.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_batond"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "batond did not start listening");
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon { child, socket, _dir: dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, message: &T) {
    stream.write_all(&frame::to_frame(message, frame::FRAME_LEN_MAX_DEFAULT).unwrap()).unwrap();
}

fn receive<T: serde::de::DeserializeOwned>(stream: &mut UnixStream) -> Option<T> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let len = frame::payload_len(header, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    Some(frame::decode(&payload).unwrap())
}

fn hello() -> Hello {
    Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        client_name: "protocol-test".into(),
        session: SessionRequest::New { timeout_ms: 5000, connection_bound: false },
        last_zxid_seen: Zxid::ZERO,
    }
}

fn open_session(socket: &Path) -> UnixStream {
    let mut stream = connect(socket);
    send(&mut stream, &hello());
    match receive::<HelloReply>(&mut stream) {
        Some(HelloReply::Accepted(server)) => assert_eq!(server.protocol_version, PROTOCOL_VERSION),
        other => panic!("hello refused: {other:?}"),
    }
    stream
}

fn reply(stream: &mut UnixStream) -> (u64, Result<Response, baton_proto::ErrorReply>) {
    loop {
        match receive::<ServerMessage>(stream).expect("connection closed") {
            ServerMessage::Reply { id, result } => return (id, result),
            ServerMessage::Event(_) => {}
            ServerMessage::Closing(reason) => panic!("closed: {reason}"),
        }
    }
}

fn create(path: &str) -> Op {
    Op::Create(CreateRequest {
        path: path.into(),
        data: b"v".to_vec(),
        kind: CreateKind::Persistent,
        sequential: false,
    })
}

/// The daemon still serves a fresh client normally.
fn assert_healthy(socket: &Path) {
    let mut stream = open_session(socket);
    send(&mut stream, &Request { id: 1, op: Op::Exists { path: "/".into(), watch: false } });
    assert!(matches!(reply(&mut stream), (1, Ok(Response::Exists(Some(_))))));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let daemon = Daemon::start();
    let mut stream = open_session(&daemon.socket);
    for id in 1..=50 {
        send(&mut stream, &Request { id, op: create(&format!("/n{id}")) });
    }
    send(&mut stream, &Request { id: 51, op: Op::Children { path: "/".into(), watch: false, with_stats: false } });
    for expected in 1..=50 {
        let (id, result) = reply(&mut stream);
        assert_eq!(id, expected);
        assert!(matches!(result, Ok(Response::Created { .. })), "{result:?}");
    }
    match reply(&mut stream) {
        (51, Ok(Response::Children { children, .. })) => assert_eq!(children.len(), 50),
        other => panic!("{other:?}"),
    }
}

#[test]
fn domain_errors_are_typed_replies() {
    let daemon = Daemon::start();
    let mut stream = open_session(&daemon.socket);
    send(&mut stream, &Request { id: 1, op: Op::Get { path: "/missing".into(), watch: false } });
    send(&mut stream, &Request { id: 2, op: create("no-slash") });
    send(&mut stream, &Request { id: 3, op: create("/a") });
    send(&mut stream, &Request { id: 4, op: create("/a") });
    let codes: Vec<_> = (0..4).map(|_| reply(&mut stream).1.err().map(|e| e.code)).collect();
    assert_eq!(codes, [Some(ErrorCode::NoNode), Some(ErrorCode::InvalidPath), None, Some(ErrorCode::NodeExists)]);
}

#[test]
fn unknown_op_gets_unimplemented_and_the_connection_carries_on() {
    let daemon = Daemon::start();
    let mut stream = open_session(&daemon.socket);
    // id 9, then an op variant index no build knows.
    let payload = [9u8, 120, 0, 0];
    stream.write_all(&(payload.len() as u32).to_le_bytes()).unwrap();
    stream.write_all(&payload).unwrap();
    let (id, result) = reply(&mut stream);
    assert_eq!((id, result.unwrap_err().code), (9, ErrorCode::Unimplemented));
    send(&mut stream, &Request { id: 10, op: Op::Ping });
    assert_eq!(reply(&mut stream), (10, Ok(Response::Pong)));
}

#[test]
fn huge_length_prefix_closes_only_that_connection() {
    let daemon = Daemon::start();
    let mut stream = open_session(&daemon.socket);
    stream.write_all(&u32::MAX.to_le_bytes()).unwrap();
    match receive::<ServerMessage>(&mut stream) {
        Some(ServerMessage::Closing(reason)) => assert_eq!(reason.code, ErrorCode::TooLarge),
        other => panic!("expected Closing, got {other:?}"),
    }
    assert!(receive::<ServerMessage>(&mut stream).is_none(), "connection closed after the goodbye");
    assert_healthy(&daemon.socket);
}

#[test]
fn garbage_instead_of_a_hello_is_refused() {
    let daemon = Daemon::start();
    for garbage in [vec![3, 0, 0, 0, 0xff, 0xfe, 0xfd], b"GET / HTTP/1.1\r\n\r\n".to_vec()] {
        let mut stream = connect(&daemon.socket);
        stream.write_all(&garbage).unwrap();
        match receive::<HelloReply>(&mut stream) {
            Some(HelloReply::Refused(e)) => assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::TooLarge)),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let mut wrong_magic = hello();
    wrong_magic.magic = 1;
    let mut stream = connect(&daemon.socket);
    send(&mut stream, &wrong_magic);
    assert!(matches!(receive(&mut stream), Some(HelloReply::Refused(e)) if e.code == ErrorCode::ProtocolMismatch));
    assert_healthy(&daemon.socket);
}

#[test]
fn random_bytes_never_take_the_daemon_down() {
    let daemon = Daemon::start();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..40 {
        let mut stream = if round % 2 == 0 { open_session(&daemon.socket) } else { connect(&daemon.socket) };
        let len = 1 + (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = stream.write_all(&bytes);
        drop(stream);
    }
    assert_healthy(&daemon.socket);
}

#[test]
fn a_client_ahead_of_the_server_is_refused() {
    let daemon = Daemon::start();
    let mut stream = connect(&daemon.socket);
    let mut ahead = hello();
    ahead.last_zxid_seen = Zxid::new(99, 1);
    send(&mut stream, &ahead);
    assert!(matches!(receive(&mut stream), Some(HelloReply::Refused(e)) if e.code == ErrorCode::ServerBehind));
}
