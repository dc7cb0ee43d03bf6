//! A scripted fake server for the client's tests: the test accepts connections and reads
//! and answers frames itself, so it controls exactly what the client sees and when.
#![allow(dead_code)]

use baton::proto::frame;
use baton::proto::{
    ErrorReply, Hello, HelloReply, Op, PROTOCOL_VERSION, Request, Response, Role, ServerHello, ServerMessage,
    SessionRequest,
};
use baton::{SessionId, Zxid};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// How long any single step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn step<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut).await.expect("test step timed out")
}

pub struct FakeServer {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    listener: UnixListener,
}

impl FakeServer {
    pub fn start() -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton.sock");
        let listener = UnixListener::bind(&path).unwrap();
        FakeServer { dir, path, listener }
    }

    pub fn addr(&self) -> String {
        self.path.display().to_string()
    }

    /// Accepts a connection and reads its hello.
    pub async fn accept(&self) -> (FakeConn, Hello) {
        let (stream, _) = step(self.listener.accept()).await.unwrap();
        let mut conn = FakeConn { stream };
        let hello: Hello = conn.read().await;
        (conn, hello)
    }

    /// Accepts a connection and grants a new session with `timeout_ms`.
    pub async fn accept_new(&self, session: u64, timeout_ms: u32) -> FakeConn {
        let (mut conn, hello) = self.accept().await;
        assert!(matches!(hello.session, SessionRequest::New { .. }), "{hello:?}");
        conn.accept_hello(session, timeout_ms, false).await;
        conn
    }
}

pub struct FakeConn {
    stream: UnixStream,
}

pub fn server_hello(session: u64, timeout_ms: u32, resumed: bool) -> ServerHello {
    ServerHello {
        protocol_version: PROTOCOL_VERSION,
        server_name: "fake".into(),
        role: Role::Primary,
        epoch: 1,
        last_zxid: Zxid(0x1_0000_0001),
        session_id: SessionId(session),
        secret: 0xfeed,
        timeout_ms,
        resumed,
    }
}

impl FakeConn {
    pub async fn accept_hello(&mut self, session: u64, timeout_ms: u32, resumed: bool) {
        self.write(&HelloReply::Accepted(server_hello(session, timeout_ms, resumed))).await;
    }

    /// Accepts a resume, claiming to be exactly as far as the client has seen.
    pub async fn accept_resume(&mut self, hello: &Hello, timeout_ms: u32) {
        let SessionRequest::Resume { session_id, .. } = hello.session else {
            panic!("not a resume: {hello:?}");
        };
        let mut reply = server_hello(session_id.0, timeout_ms, true);
        reply.last_zxid = hello.last_zxid_seen;
        self.write(&HelloReply::Accepted(reply)).await;
    }

    pub async fn refuse_hello(&mut self, reply: ErrorReply) {
        self.write(&HelloReply::Refused(reply)).await;
    }

    pub async fn read<T: serde::de::DeserializeOwned>(&mut self) -> T {
        let mut header = [0; 4];
        step(self.stream.read_exact(&mut header)).await.unwrap();
        let len = frame::payload_len(header, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
        let mut payload = vec![0; len];
        step(self.stream.read_exact(&mut payload)).await.unwrap();
        frame::decode(&payload).unwrap()
    }

    /// The next request that is not a ping (pings are answered).
    pub async fn request(&mut self) -> Request {
        loop {
            let request: Request = self.read().await;
            if request.op == Op::Ping {
                self.reply(request.id, Ok(Response::Pong)).await;
                continue;
            }
            return request;
        }
    }

    pub async fn write<T: serde::Serialize>(&mut self, message: &T) {
        let bytes = frame::to_frame(message, frame::FRAME_LEN_MAX_DEFAULT).unwrap();
        step(self.stream.write_all(&bytes)).await.unwrap();
    }

    pub async fn reply(&mut self, id: u64, result: Result<Response, ErrorReply>) {
        self.write(&ServerMessage::Reply { id, zxid: baton_proto::Zxid::ZERO, result }).await;
    }

    /// Waits until the client closes the connection (reading and dropping any frames).
    pub async fn expect_eof(&mut self) {
        let mut buf = [0; 256];
        loop {
            match step(self.stream.read(&mut buf)).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}
