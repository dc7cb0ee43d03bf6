//! A raw-frame client for tests that must control every byte: hostile input, a client that
//! stops talking, exact protocol behaviour.

use baton_proto::frame;
use baton_proto::message::{
    Hello, HelloReply, MAGIC, PROTOCOL_VERSION, Request, ServerHello, ServerMessage, SessionRequest,
};
use baton_proto::{ErrorReply, Op, Response, Zxid};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A hello asking for a new session with `timeout_ms`.
pub fn hello(timeout_ms: u32) -> Hello {
    Hello {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        client_name: "raw-test-client".into(),
        session: SessionRequest::New { timeout_ms, connection_bound: false },
        last_zxid_seen: Zxid::ZERO,
        token: None,
    }
}

/// A blocking connection speaking frames.
pub struct Raw {
    pub stream: UnixStream,
}

impl Raw {
    pub fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        Raw { stream }
    }

    /// Connects and opens a new session; panics if refused.
    pub fn session(socket: &Path, timeout_ms: u32) -> (Raw, ServerHello) {
        let mut raw = Raw::connect(socket);
        raw.send(&hello(timeout_ms));
        match raw.receive::<HelloReply>() {
            Some(HelloReply::Accepted(server)) => (raw, server),
            other => panic!("hello refused: {other:?}"),
        }
    }

    pub fn send<T: serde::Serialize>(&mut self, message: &T) {
        let bytes = frame::to_frame(message, frame::FRAME_LEN_MAX_DEFAULT).expect("encode");
        self.stream.write_all(&bytes).expect("write");
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame, or `None` once the server closed the connection.
    pub fn receive<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).ok()?;
        let len = frame::payload_len(header, frame::FRAME_LEN_MAX_DEFAULT).expect("frame length");
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload).ok()?;
        Some(frame::decode(&payload).expect("decode"))
    }

    /// Sends a request and returns its reply, skipping events.
    pub fn call(&mut self, id: u64, op: Op) -> Result<Response, ErrorReply> {
        self.send(&Request { id, op });
        self.reply(id)
    }

    /// The next reply (id and result), skipping events; panics on a goodbye.
    pub fn reply_any(&mut self) -> (u64, Result<Response, ErrorReply>) {
        loop {
            match self.receive::<ServerMessage>().expect("connection closed") {
                ServerMessage::Reply { id, result, .. } => return (id, result),
                ServerMessage::Event(_) => {}
                ServerMessage::Closing(reason) => panic!("server closed the connection: {reason}"),
            }
        }
    }

    /// The reply to `id`, skipping events; panics on a goodbye or a different id.
    pub fn reply(&mut self, id: u64) -> Result<Response, ErrorReply> {
        loop {
            match self.receive::<ServerMessage>().expect("connection closed") {
                ServerMessage::Reply { id: got, result, .. } => {
                    assert_eq!(got, id, "replies come in request order");
                    return result;
                }
                ServerMessage::Event(_) => {}
                ServerMessage::Closing(reason) => panic!("server closed the connection: {reason}"),
            }
        }
    }
}
