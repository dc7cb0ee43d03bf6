//! Shared by the ZooKeeper-listener tests beyond `zk.rs`: a daemon with the listener, and a
//! raw jute connection that sends requests and reads replies frame by frame.

#![allow(dead_code, reason = "each test file uses its own part")]

use baton_tests::Daemon;
use batond::zk::jute::{Reader, Writer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

/// A daemon with the ZooKeeper listener on a port the kernel picks (read back from its log).
pub fn start() -> (Daemon, SocketAddr) {
    start_with(&[])
}

/// As [`start`], with `extra` arguments for the daemon.
pub fn start_with(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--zk-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let daemon = Daemon::start_with(&args);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = daemon.log();
        let addr = log
            .lines()
            .filter(|line| line.contains("listening for ZooKeeper clients"))
            .find_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("addr=")))
            .and_then(|addr| addr.parse().ok());
        if let Some(addr) = addr {
            return (daemon, addr);
        }
        assert!(std::time::Instant::now() < deadline, "no ZooKeeper listener in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a four-letter word and reads the answer to the end.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(word.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// One reply: the header's fields and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

/// A ZooKeeper session over a raw socket: requests are built by hand with jute's `Writer`.
pub struct Raw {
    stream: TcpStream,
    next_xid: i32,
    pub session_id: i64,
}

impl Raw {
    /// Connects and opens a new session (the 45-byte ConnectRequest, a 30 s timeout).
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut raw = Raw { stream, next_xid: 1, session_id: 0 };
        let mut w = Writer::new();
        w.int(0).long(0).int(30_000).long(0).bytes(&[0; 16]).boolean(false);
        raw.send(&w.into_bytes());
        let answer = raw.recv().expect("a ConnectResponse");
        let mut r = Reader::new(&answer);
        let (_, _) = (r.int("protocolVersion").unwrap(), r.int("timeOut").unwrap());
        raw.session_id = r.long("sessionId").unwrap();
        raw
    }

    pub fn send(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    /// A frame's payload, or `None` once the server closed the connection.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    /// Sends request `op` with `body` under the next xid, and returns its reply; watch
    /// notifications (xid -1) that come first are returned in `events` order as replies too.
    pub fn call(&mut self, op: i32, body: &[u8]) -> (Reply, Vec<Reply>) {
        self.try_call(op, body).expect("a reply")
    }

    /// As [`Raw::call`]; `None` if the server closed the connection instead of replying.
    pub fn try_call(&mut self, op: i32, body: &[u8]) -> Option<(Reply, Vec<Reply>)> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut w = Writer::new();
        w.int(xid).int(op);
        self.send(&[w.into_bytes(), body.to_vec()].concat());
        let mut events = Vec::new();
        loop {
            let frame = self.recv()?;
            let mut r = Reader::new(&frame);
            let reply = Reply {
                xid: r.int("xid").unwrap(),
                zxid: r.long("zxid").unwrap(),
                err: r.int("err").unwrap(),
                body: frame[16..].to_vec(),
            };
            if reply.xid == -1 {
                events.push(reply);
                continue;
            }
            assert_eq!(reply.xid, xid, "replies in request order");
            return Some((reply, events));
        }
    }
}
