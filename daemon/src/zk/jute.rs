//! Jute, ZooKeeper's binary encoding, and the records of the client protocol this listener
//! speaks. Pure: bytes in, records out, and back. Written from the format as documented in
//! `ZK-PROTOCOL.md` (§2.1–2.6): big-endian `int`/`long`, one-byte `boolean`, `buffer` and
//! `ustring` as an `int` length (-1: null) then the bytes, `vector` as an `int` count (-1:
//! null) then the elements, records as their fields in order with no tags.
//!
//! Every length read is checked against the bytes left before anything is allocated, so a
//! hostile frame gets a [`JuteError`], never a panic or a large allocation.

use std::fmt;

/// ZooKeeper's opcodes (`ZooDefs.OpCode`) that this listener knows.
pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
    /// The type of a multi's terminating header, and of a failed op's result.
    pub const ERROR: i32 = -1;
}

/// Special xids (`ClientCnxn`).
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Why bytes could not be read as the record expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JuteError {
    /// The frame ended `needed` bytes short while reading `what`.
    Short { what: &'static str, needed: usize },
    /// A length or count that is negative (other than -1 for null) or larger than what is left.
    BadLength { what: &'static str, len: i64 },
    /// A field that must not be null was.
    Null(&'static str),
    /// A string that is neither UTF-8 nor Java's modified (CESU-8) form.
    BadString(&'static str),
    /// Bytes left after the record.
    Trailing(usize),
    /// A field whose value is not allowed (a multi's sub-op type, say).
    BadValue { what: &'static str, value: i64 },
}

impl fmt::Display for JuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JuteError::Short { what, needed } => write!(f, "frame ends {needed} bytes short in {what}"),
            JuteError::BadLength { what, len } => write!(f, "bad length {len} for {what}"),
            JuteError::Null(what) => write!(f, "{what} is null"),
            JuteError::BadString(what) => write!(f, "{what} is not valid UTF-8"),
            JuteError::Trailing(n) => write!(f, "{n} trailing bytes after the record"),
            JuteError::BadValue { what, value } => write!(f, "bad {what} {value}"),
        }
    }
}

impl std::error::Error for JuteError {}

pub type Result<T> = std::result::Result<T, JuteError>;

/// Reads jute values from a frame's payload.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Ok if every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() { Ok(()) } else { Err(JuteError::Trailing(self.buf.len())) }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(JuteError::Short { what, needed: n - self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn int(&mut self, what: &'static str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn long(&mut self, what: &'static str) -> Result<i64> {
        let b = self.take(8, what)?;
        Ok(i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    pub fn boolean(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// A length or count: -1 is null; otherwise at most what is left (each element takes
    /// at least `min_size` bytes).
    fn length(&mut self, what: &'static str, min_size: usize) -> Result<Option<usize>> {
        let len = self.int(what)?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(n) = usize::try_from(len) else { return Err(JuteError::BadLength { what, len: i64::from(len) }) };
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(JuteError::BadLength { what, len: i64::from(len) });
        }
        Ok(Some(n))
    }

    /// A `buffer`; null reads as empty (for passwords and auth data, where ZooKeeper does too).
    pub fn buffer(&mut self, what: &'static str) -> Result<Vec<u8>> {
        Ok(self.opt_buffer(what)?.unwrap_or_default())
    }

    /// A `buffer` that may be null: node data, which ZooKeeper keeps null apart from empty.
    pub fn opt_buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>> {
        match self.length(what, 1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n, what)?.to_vec())),
        }
    }

    /// A `ustring` that may be null.
    pub fn opt_string(&mut self, what: &'static str) -> Result<Option<String>> {
        match self.length(what, 1)? {
            None => Ok(None),
            Some(n) => decode_string(self.take(n, what)?).map(Some).ok_or(JuteError::BadString(what)),
        }
    }

    /// A `ustring` that must not be null.
    pub fn string(&mut self, what: &'static str) -> Result<String> {
        self.opt_string(what)?.ok_or(JuteError::Null(what))
    }

    /// A `vector<ustring>`; null reads as empty.
    pub fn strings(&mut self, what: &'static str) -> Result<Vec<String>> {
        let n = self.length(what, 4)?.unwrap_or(0);
        (0..n).map(|_| self.string(what)).collect()
    }

    /// A `vector<ACL>`; null reads as empty.
    pub fn acls(&mut self) -> Result<Vec<Acl>> {
        let n = self.length("acl", 12)?.unwrap_or(0);
        (0..n).map(|_| Acl::read(self)).collect()
    }
}

/// Standard UTF-8, or Java's CESU-8 form where a character outside the BMP is two encoded
/// surrogates of three bytes each.
fn decode_string(bytes: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Some(s.to_owned());
    }
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (unit, len) = match b {
            0x00..=0x7f => (u16::from(b), 1),
            0xc0..=0xdf if i + 1 < bytes.len() => {
                (u16::from(b & 0x1f) << 6 | u16::from(continuation(bytes[i + 1])?), 2)
            }
            0xe0..=0xef if i + 2 < bytes.len() => (
                u16::from(b & 0x0f) << 12
                    | u16::from(continuation(bytes[i + 1])?) << 6
                    | u16::from(continuation(bytes[i + 2])?),
                3,
            ),
            0xf0..=0xf7 => {
                // A standard four-byte sequence amid surrogates: decode it on its own.
                let end = bytes.len().min(i + 4);
                let c = std::str::from_utf8(&bytes[i..end]).ok()?.chars().next()?;
                let mut pair = [0u16; 2];
                units.extend_from_slice(c.encode_utf16(&mut pair));
                i += 4;
                continue;
            }
            _ => return None,
        };
        units.push(unit);
        i += len;
    }
    String::from_utf16(&units).ok()
}

fn continuation(b: u8) -> Option<u8> {
    (b & 0xc0 == 0x80).then_some(b & 0x3f)
}

/// Writes jute values.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    /// A `buffer` that may be null (length -1).
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(v) => self.bytes(v),
            None => self.int(-1),
        }
    }

    /// A `buffer` or `ustring`. Lengths past `i32::MAX` cannot occur: frames are bounded far
    /// below it before anything is encoded.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.int(i32::try_from(v.len()).unwrap_or(i32::MAX));
        self.buf.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.int(i32::try_from(v.len()).unwrap_or(i32::MAX));
        for s in v {
            self.string(s.as_ref());
        }
        self
    }

    pub fn acls(&mut self, v: &[Acl]) -> &mut Self {
        self.int(i32::try_from(v.len()).unwrap_or(i32::MAX));
        for acl in v {
            acl.write(self);
        }
        self
    }
}

/// The first client frame, with no request header. `read_only` is `None` for the 44-byte
/// form (pre-3.4 clients, go-zookeeper), which must be answered without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let request = ConnectRequest {
            protocol_version: r.int("protocolVersion")?,
            last_zxid_seen: r.long("lastZxidSeen")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            passwd: r.buffer("passwd")?,
            read_only: if r.remaining() == 0 { None } else { Some(r.boolean("readOnly")?) },
        };
        r.finish()?;
        Ok(request)
    }
}

/// The server's answer to a [`ConnectRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// What a client whose session is gone (or whose password is wrong) is told.
    pub fn expired(read_only: Option<bool>) -> Self {
        ConnectResponse { protocol_version: 0, timeout_ms: 0, session_id: 0, passwd: vec![0; 16], read_only }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.int(self.protocol_version).int(self.timeout_ms).long(self.session_id).bytes(&self.passwd);
        if let Some(read_only) = self.read_only {
            w.boolean(read_only);
        }
        w.into_bytes()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl RequestHeader {
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(RequestHeader { xid: r.int("xid")?, op: r.int("type")? })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn write(&self, w: &mut Writer) {
        w.int(self.xid).long(self.zxid).int(self.err);
    }
}

/// ZooKeeper's `Stat`: 68 bytes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    /// Reads a Stat (a reply's, in tests and the differential checks).
    ///
    /// # Errors
    /// When the bytes end before its 68.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Stat {
            czxid: r.long("czxid")?,
            mzxid: r.long("mzxid")?,
            ctime: r.long("ctime")?,
            mtime: r.long("mtime")?,
            version: r.int("version")?,
            cversion: r.int("cversion")?,
            aversion: r.int("aversion")?,
            ephemeral_owner: r.long("ephemeralOwner")?,
            data_length: r.int("dataLength")?,
            num_children: r.int("numChildren")?,
            pzxid: r.long("pzxid")?,
        })
    }

    pub fn write(&self, w: &mut Writer) {
        w.long(self.czxid).long(self.mzxid).long(self.ctime).long(self.mtime);
        w.int(self.version).int(self.cversion).int(self.aversion);
        w.long(self.ephemeral_owner).int(self.data_length).int(self.num_children).long(self.pzxid);
    }
}

/// One ACL entry: `perms` for `scheme:id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        // kazoo sends `auth` entries with a null id.
        let (perms, scheme) = (r.int("acl perms")?, r.string("acl scheme")?);
        Ok(Acl { perms, scheme, id: r.opt_string("acl id")?.unwrap_or_default() })
    }

    fn write(&self, w: &mut Writer) {
        w.int(self.perms).string(&self.scheme).string(&self.id);
    }
}

/// A watch notification's body (its header has xid -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    pub kind: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn write(&self, w: &mut Writer) {
        w.int(self.kind).int(self.state).string(&self.path);
    }
}

/// A create's record: `CreateRequest`, or `CreateTTLRequest` (with `ttl`) for op 21.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: Option<i64>,
}

/// A client request's record, by opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Ping,
    CloseSession,
    /// Ops 1 (create), 15 (create2), 19 (createContainer), 21 (createTTL): `op` says which,
    /// and so which reply shape.
    Create {
        op: i32,
        create: Create,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Ops 8 and 12 (`two`: the reply carries the parent's Stat).
    GetChildren {
        path: String,
        watch: bool,
        two: bool,
    },
    Sync {
        path: String,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Request>),
    /// Op 22: getData and getChildren ops only.
    MultiRead(Vec<Request>),
    /// Ops 101 and 105 (the latter with the persistent lists).
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        recursive: Vec<String>,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    /// Ops 17 (checkWatches) and 18 (removeWatches, `remove`): `kind` is a `WatcherType`.
    MatchWatches {
        path: String,
        kind: i32,
        remove: bool,
    },
    GetAllChildrenNumber {
        path: String,
    },
    GetEphemerals {
        prefix: String,
    },
    WhoAmI,
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    /// An opcode this listener does not serve (answered `Unimplemented`, connection kept).
    Unknown(i32),
}

impl Request {
    /// Reads the record that follows a request header of type `op`; an unknown `op` reads
    /// as [`Request::Unknown`] whatever follows.
    pub fn decode(op: i32, r: &mut Reader<'_>) -> Result<Request> {
        let request = match op {
            op::MULTI | op::MULTI_READ => {
                let writes = op == op::MULTI;
                let mut ops = Vec::new();
                loop {
                    let (kind, done, _err) = (r.int("multi type")?, r.boolean("multi done")?, r.int("multi err")?);
                    if done {
                        break;
                    }
                    match kind {
                        op::CREATE
                        | op::CREATE2
                        | op::CREATE_CONTAINER
                        | op::CREATE_TTL
                        | op::DELETE
                        | op::SET_DATA
                        | op::CHECK
                            if writes =>
                        {
                            ops.push(Request::decode_one(kind, r)?);
                        }
                        op::GET_DATA | op::GET_CHILDREN if !writes => ops.push(Request::decode_one(kind, r)?),
                        other => return Err(JuteError::BadValue { what: "multi op type", value: i64::from(other) }),
                    }
                }
                if writes { Request::Multi(ops) } else { Request::MultiRead(ops) }
            }
            op => Request::decode_one(op, r)?,
        };
        Ok(request)
    }

    fn decode_one(kind: i32, r: &mut Reader<'_>) -> Result<Request> {
        Ok(match kind {
            op::PING => Request::Ping,
            op::CLOSE_SESSION => Request::CloseSession,
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let create = Create {
                    path: r.string("path")?,
                    data: r.opt_buffer("data")?,
                    acl: r.acls()?,
                    flags: r.int("flags")?,
                    ttl: if kind == op::CREATE_TTL { Some(r.long("ttl")?) } else { None },
                };
                Request::Create { op: kind, create }
            }
            op::DELETE => Request::Delete { path: r.string("path")?, version: r.int("version")? },
            op::EXISTS => Request::Exists { path: r.string("path")?, watch: r.boolean("watch")? },
            op::GET_DATA => Request::GetData { path: r.string("path")?, watch: r.boolean("watch")? },
            op::SET_DATA => {
                Request::SetData { path: r.string("path")?, data: r.opt_buffer("data")?, version: r.int("version")? }
            }
            op::GET_ACL => Request::GetAcl { path: r.string("path")? },
            op::SET_ACL => Request::SetAcl { path: r.string("path")?, acl: r.acls()?, version: r.int("aversion")? },
            op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
                path: r.string("path")?,
                watch: r.boolean("watch")?,
                two: kind == op::GET_CHILDREN2,
            },
            op::SYNC => Request::Sync { path: r.string("path")? },
            op::CHECK => Request::Check { path: r.string("path")?, version: r.int("version")? },
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let relative_zxid = r.long("relativeZxid")?;
                let (data, exist, child) =
                    (r.strings("dataWatches")?, r.strings("existWatches")?, r.strings("childWatches")?);
                let (persistent, recursive) = if kind == op::SET_WATCHES2 {
                    (r.strings("persistentWatches")?, r.strings("persistentRecursiveWatches")?)
                } else {
                    (Vec::new(), Vec::new())
                };
                Request::SetWatches { relative_zxid, data, exist, child, persistent, recursive }
            }
            op::ADD_WATCH => Request::AddWatch { path: r.string("path")?, mode: r.int("mode")? },
            op::CHECK_WATCHES | op::REMOVE_WATCHES => Request::MatchWatches {
                path: r.string("path")?,
                kind: r.int("type")?,
                remove: kind == op::REMOVE_WATCHES,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: r.string("path")? },
            op::GET_EPHEMERALS => Request::GetEphemerals { prefix: r.string("prefixPath")? },
            op::WHO_AM_I => Request::WhoAmI,
            op::AUTH => {
                let _type = r.int("auth type")?;
                Request::Auth { scheme: r.string("scheme")?, auth: r.buffer("auth")? }
            }
            other => {
                // Unknown: whatever follows is not ours to read.
                let rest = r.remaining();
                let _ = r.take(rest, "unknown record");
                Request::Unknown(other)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(char::is_ascii_hexdigit).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn connect_bytes(read_only: bool) -> Vec<u8> {
        let mut w = Writer::new();
        w.int(0).long(0x1234).int(30_000).long(0).bytes(&[0; 16]);
        if read_only {
            w.boolean(false);
        }
        w.into_bytes()
    }

    #[test]
    fn connect_request_reads_the_45_and_44_byte_forms() {
        let long = connect_bytes(true);
        assert_eq!(long.len(), 45);
        let request = ConnectRequest::decode(&long).unwrap();
        assert_eq!((request.last_zxid_seen, request.timeout_ms, request.read_only), (0x1234, 30_000, Some(false)));
        let short = connect_bytes(false);
        assert_eq!(short.len(), 44);
        assert_eq!(ConnectRequest::decode(&short).unwrap().read_only, None);
        assert!(matches!(ConnectRequest::decode(&long[..30]), Err(JuteError::BadLength { what: "passwd", .. })));
        assert!(matches!(ConnectRequest::decode(&long[..10]), Err(JuteError::Short { .. })));
    }

    #[test]
    fn expired_connect_response_matches_the_observed_bytes() {
        // ZK-PROTOCOL.md §2.2: 0000000000000000000000000000000000000010 + 16×00 + 00.
        let expected = hex(&format!("{}{}00", "0000000000000000000000000000000000000010", "00".repeat(16)));
        let bytes = ConnectResponse::expired(Some(false)).encode();
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 37);
        assert_eq!(ConnectResponse::expired(None).encode().len(), 36, "a 44-byte request gets 36 bytes back");
    }

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut w = Writer::new();
        stat.write(&mut w);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 68);
        assert_eq!(bytes[..8], 1i64.to_be_bytes());
        assert_eq!(bytes[32..36], 5i32.to_be_bytes());
        assert_eq!(bytes[44..52], 8i64.to_be_bytes());
        assert_eq!(bytes[60..], 11i64.to_be_bytes());
    }

    #[test]
    fn failed_multi_request_and_header_layouts_round_trip() {
        // [create /a, delete /missing, setData /a] as a client sends them.
        let mut w = Writer::new();
        w.int(op::CREATE).boolean(false).int(-1);
        w.string("/a").bytes(b"x").acls(&[Acl { perms: 31, scheme: "world".into(), id: "anyone".into() }]).int(0);
        w.int(op::DELETE).boolean(false).int(-1).string("/missing").int(-1);
        w.int(op::SET_DATA).boolean(false).int(-1).string("/a").bytes(b"y").int(-1);
        w.int(-1).boolean(true).int(-1);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let Request::Multi(ops) = Request::decode(op::MULTI, &mut r).unwrap() else { panic!("not a multi") };
        r.finish().unwrap();
        assert_eq!(ops.len(), 3);
        assert!(
            matches!(&ops[0], Request::Create { op: op::CREATE, create } if create.path == "/a" && create.acl[0].id == "anyone")
        );
        assert_eq!(ops[1], Request::Delete { path: "/missing".into(), version: -1 });
        let mut w = Writer::new();
        ReplyHeader { xid: 7, zxid: 0x1_0000_0002, err: -101 }.write(&mut w);
        assert_eq!(w.into_bytes(), hex("00000007 0000000100000002 ffffff9b"));
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        let mut w = Writer::new();
        w.int(i32::MAX);
        let bytes = w.into_bytes();
        assert!(matches!(Reader::new(&bytes).buffer("data"), Err(JuteError::BadLength { .. })));
        assert!(matches!(Reader::new(&bytes).strings("children"), Err(JuteError::BadLength { .. })));
        let minus_two = (-2i32).to_be_bytes();
        assert!(matches!(Reader::new(&minus_two).buffer("data"), Err(JuteError::BadLength { .. })));
        let null = (-1i32).to_be_bytes();
        assert_eq!(Reader::new(&null).string("path"), Err(JuteError::Null("path")));
        assert_eq!(Reader::new(&null).buffer("passwd"), Ok(Vec::new()));
        assert_eq!(Reader::new(&null).opt_buffer("data"), Ok(None));
        let mut w = Writer::new();
        w.opt_bytes(None).opt_bytes(Some(b""));
        assert_eq!(w.into_bytes(), hex("ffffffff 00000000"), "null and empty stay apart");
        // kazoo's `auth` ACL entries carry a null id (captured from make_acl("auth", "")).
        let auth_acl = hex("00000001 0000001f 00000004 61757468 ffffffff");
        assert_eq!(
            Reader::new(&auth_acl).acls().unwrap(),
            [Acl { perms: 31, scheme: "auth".into(), id: String::new() }]
        );
    }

    #[test]
    fn strings_read_as_utf8_or_cesu8() {
        // U+1F600 in UTF-8, and as Java writes it: two 3-byte surrogates.
        let utf8 = "/a\u{1F600}".as_bytes().to_vec();
        let cesu = [b"/a".as_slice(), &hex("eda0bd edb880")].concat();
        for bytes in [utf8, cesu] {
            let mut w = Writer::new();
            w.bytes(&bytes);
            let framed = w.into_bytes();
            assert_eq!(Reader::new(&framed).string("path").unwrap(), "/a\u{1F600}");
        }
        let mut w = Writer::new();
        w.bytes(&[0xff, 0xfe]);
        assert_eq!(Reader::new(&w.into_bytes()).string("path"), Err(JuteError::BadString("path")));
    }

    #[test]
    fn set_watches2_reads_the_persistent_lists_and_unknown_ops_read_as_unknown() {
        let mut w = Writer::new();
        w.long(9).strings(&["/d"]).strings::<&str>(&[]).strings(&["/c"]).strings(&["/p"]).strings(&["/r"]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let request = Request::decode(op::SET_WATCHES2, &mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(
            request,
            Request::SetWatches {
                relative_zxid: 9,
                data: vec!["/d".into()],
                exist: vec![],
                child: vec!["/c".into()],
                persistent: vec!["/p".into()],
                recursive: vec!["/r".into()],
            }
        );
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(Request::decode(999, &mut r).unwrap(), Request::Unknown(999));
        r.finish().unwrap();
    }

    proptest::proptest! {
        /// Whatever a client sends, decoding answers a record or an error: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(op in proptest::prelude::any::<i32>(), bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = ConnectRequest::decode(&bytes);
            for op in [op, op::MULTI, op::CREATE_TTL, op::SET_WATCHES2, op::SET_ACL] {
                let mut r = Reader::new(&bytes);
                let _ = Request::decode(op, &mut r);
            }
        }

        /// Every request a client could build reads back as itself.
        #[test]
        fn set_data_round_trips(path in "/[a-z]{1,8}", data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), version in -1i32..100) {
            let mut w = Writer::new();
            w.string(&path).bytes(&data).int(version);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            let request = Request::decode(op::SET_DATA, &mut r).unwrap();
            r.finish().unwrap();
            proptest::prop_assert_eq!(request, Request::SetData { path, data: Some(data), version });
        }
    }
}
