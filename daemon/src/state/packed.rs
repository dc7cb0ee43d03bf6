//! One node packed into one exact-size allocation: its path, stat, kind, ACL id and data.
//!
//! With many small nodes the per-node overhead is what costs memory: a map entry holding a
//! 150-byte struct (half-empty B-tree leaves double it), a path string, a data vector with
//! spare capacity and a set of child names each cost an allocation or more. Packed, a node with
//! a 20-byte path and 100 bytes of data takes 160 bytes of heap (docs/BENCHMARKS.md,
//! "Optimisations"); fields most nodes lack (an owner, a TTL) take no room.
//!
//! Layout: path length (u16, little-endian), path, a flags byte (kind tag in bits 0–1, data
//! present in bit 2, owner present in bit 3), then the metadata as LEB128 varints — ACL id,
//! czxid, mzxid − czxid, pzxid − czxid, ctime, mtime − ctime (differences wrapping), version,
//! cversion, aversion, num_children — then the owner (u64 LE) only for an ephemeral and
//! `ttl_ms` (u64 LE) only for a TTL node, then the data. Most of the stat is small or equal to
//! another field, so the varints take about 20 bytes where fixed fields took 60: for the
//! 100-byte node above that is the step from a 192-byte to a 160-byte malloc chunk.
//! `data_length` is the data's own length. A stat change re-encodes the node.

use baton_proto::{NodeKind, SessionId, Stat, Zxid};
use std::borrow::Borrow;
use std::cmp::Ordering;

const KIND_MASK: u8 = 0b11;
const HAS_DATA: u8 = 1 << 2;
const HAS_OWNER: u8 = 1 << 3;
const TTL_TAG: u8 = 3;
/// The most bytes the varint metadata can take: ten fields of at most ten bytes.
const META_MAX: usize = 10 * 10;

/// A node, ordered (and borrowed as `[u8]`) by its path alone, so a set of them is a map
/// from path to node without storing the path twice.
#[derive(Clone, Debug)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// # Panics
    /// If the path is longer than 65,535 bytes (paths are limited to far less).
    pub fn new(path: &str, stat: &Stat, kind: NodeKind, acl_id: u32, data: Option<&[u8]>) -> Self {
        Packed::from_path_bytes(path.as_bytes(), stat, kind, acl_id, data)
    }

    /// As [`Packed::new`], from a path already known to be a `str` (another node's): not
    /// checked as UTF-8 again.
    fn from_path_bytes(path: &[u8], stat: &Stat, kind: NodeKind, acl_id: u32, data: Option<&[u8]>) -> Self {
        let path_len = u16::try_from(path.len()).expect("a path fits a u16 length");
        let (tag, ttl_ms) = match kind {
            NodeKind::Persistent => (0, None),
            NodeKind::Ephemeral => (1, None),
            NodeKind::Container => (2, None),
            NodeKind::Ttl { ttl_ms } => (TTL_TAG, Some(ttl_ms)),
        };
        let owner = (!stat.ephemeral_owner.is_none()).then_some(stat.ephemeral_owner.0);
        let mut flags = tag;
        if data.is_some() {
            flags |= HAS_DATA;
        }
        if owner.is_some() {
            flags |= HAS_OWNER;
        }
        let mut meta = [0u8; META_MAX];
        let mut meta_len = 0;
        let fields = [
            u64::from(acl_id),
            stat.czxid.0,
            stat.mzxid.0.wrapping_sub(stat.czxid.0),
            stat.pzxid.0.wrapping_sub(stat.czxid.0),
            stat.ctime_ms,
            stat.mtime_ms.wrapping_sub(stat.ctime_ms),
            u64::from(stat.version as u32),
            u64::from(stat.cversion as u32),
            u64::from(stat.aversion as u32),
            u64::from(stat.num_children),
        ];
        for field in fields {
            meta_len += put_varint(&mut meta[meta_len..], field);
        }
        let optional_len = 8 * (usize::from(owner.is_some()) + usize::from(ttl_ms.is_some()));
        let data_len = data.map_or(0, <[u8]>::len);
        // Exact: shrinking a larger allocation may leave it in its bigger malloc chunk.
        let mut bytes = Vec::with_capacity(2 + path.len() + 1 + meta_len + optional_len + data_len);
        bytes.extend_from_slice(&path_len.to_le_bytes());
        bytes.extend_from_slice(path);
        bytes.push(flags);
        bytes.extend_from_slice(&meta[..meta_len]);
        for optional in [owner, ttl_ms].into_iter().flatten() {
            bytes.extend_from_slice(&optional.to_le_bytes());
        }
        if let Some(data) = data {
            bytes.extend_from_slice(data);
        }
        Packed(bytes.into_boxed_slice())
    }

    /// The same node with another stat and data: one decode, one allocation.
    ///
    /// # Panics
    /// If `stat` names another owner than the node's.
    pub fn with_stat_and_data(&self, stat: &Stat, data: Option<&[u8]>) -> Self {
        self.rebuilt(&self.unpack(), stat, data)
    }

    /// This node, `node` being its unpacked fields, with another stat and data.
    fn rebuilt(&self, node: &Unpacked<'_>, stat: &Stat, data: Option<&[u8]>) -> Self {
        assert!(stat.ephemeral_owner == node.stat.ephemeral_owner, "a node's owner is fixed at its creation");
        Packed::from_path_bytes(self.path_bytes(), stat, node.kind, node.acl_id, data)
    }

    fn path_bytes(&self) -> &[u8] {
        &self.0[2..self.flags_at()]
    }

    /// Where the flags byte is: right after the path and its length.
    fn flags_at(&self) -> usize {
        2 + usize::from(u16::from_le_bytes([self.0[0], self.0[1]]))
    }

    pub fn path(&self) -> &str {
        std::str::from_utf8(self.path_bytes()).expect("a packed path was a str")
    }

    /// Every field but the path, decoded in one pass (what a read needs).
    pub fn unpack(&self) -> Unpacked<'_> {
        let mut at = self.flags_at();
        let flags = self.0[at];
        at += 1;
        let mut next = || {
            let (value, len) = get_varint(&self.0[at..]);
            at += len;
            value
        };
        let acl_id = next() as u32;
        let czxid = next();
        let mzxid = czxid.wrapping_add(next());
        let pzxid = czxid.wrapping_add(next());
        let ctime_ms = next();
        let mtime_ms = ctime_ms.wrapping_add(next());
        let (version, cversion, aversion) = (next() as u32 as i32, next() as u32 as i32, next() as u32 as i32);
        let num_children = next() as u32;
        let mut fixed = |present: bool| {
            present.then(|| {
                at += 8;
                u64::from_le_bytes(self.0[at - 8..at].try_into().expect("8 bytes"))
            })
        };
        let owner = fixed(flags & HAS_OWNER != 0);
        let ttl_ms = fixed(flags & KIND_MASK == TTL_TAG);
        let data = (flags & HAS_DATA != 0).then(|| &self.0[at..]);
        let stat = Stat {
            czxid: Zxid(czxid),
            mzxid: Zxid(mzxid),
            pzxid: Zxid(pzxid),
            ctime_ms,
            mtime_ms,
            version,
            cversion,
            aversion,
            num_children,
            ephemeral_owner: SessionId(owner.unwrap_or(0)),
            data_length: data.map_or(0, |d| d.len() as u32),
        };
        Unpacked { stat, kind: kind_of(flags, ttl_ms), acl_id, data }
    }

    pub fn stat(&self) -> Stat {
        self.unpack().stat
    }

    /// Stores every field of `stat` but `data_length` (always the data's length) and
    /// `ephemeral_owner` (fixed at creation).
    ///
    /// # Panics
    /// If `stat` names another owner than the node's.
    pub fn set_stat(&mut self, stat: &Stat) {
        let node = self.unpack();
        *self = self.rebuilt(&node, stat, node.data);
    }

    /// The first field after the flags: read without decoding the rest (every watch event
    /// and permission check asks for it).
    pub fn acl_id(&self) -> u32 {
        get_varint(&self.0[self.flags_at() + 1..]).0 as u32
    }

    pub fn set_acl_id(&mut self, id: u32) {
        let node = self.unpack();
        *self = Packed::from_path_bytes(self.path_bytes(), &node.stat, node.kind, id, node.data);
    }
}

/// A packed node's fields but its path, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct Unpacked<'a> {
    pub stat: Stat,
    pub kind: NodeKind,
    pub acl_id: u32,
    /// `None`: null data, distinct from empty data.
    pub data: Option<&'a [u8]>,
}

fn kind_of(flags: u8, ttl_ms: Option<u64>) -> NodeKind {
    match flags & KIND_MASK {
        0 => NodeKind::Persistent,
        1 => NodeKind::Ephemeral,
        2 => NodeKind::Container,
        _ => NodeKind::Ttl { ttl_ms: ttl_ms.expect("a TTL node stores its TTL") },
    }
}

/// Writes `value` as LEB128 (seven bits a byte, low first) into `out`; returns its length.
fn put_varint(out: &mut [u8], mut value: u64) -> usize {
    let mut len = 0;
    while value >= 0x80 {
        out[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    out[len] = value as u8;
    len + 1
}

/// Reads a LEB128 value written by [`put_varint`]: the value and its length.
fn get_varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    unreachable!("a packed varint ends inside the node")
}

// Equality and order are the path's: byte order, the same as `str`'s.
impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.path_bytes() == other.path_bytes()
    }
}

impl Eq for Packed {}

impl PartialOrd for Packed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Packed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path_bytes().cmp(other.path_bytes())
    }
}

impl Borrow<[u8]> for Packed {
    fn borrow(&self) -> &[u8] {
        self.path_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds() -> impl Strategy<Value = NodeKind> {
        prop_oneof![
            Just(NodeKind::Persistent),
            Just(NodeKind::Ephemeral),
            Just(NodeKind::Container),
            any::<u64>().prop_map(|ttl_ms| NodeKind::Ttl { ttl_ms }),
        ]
    }

    proptest! {
        #[test]
        fn every_field_reads_back_as_written(
            path in "/[a-z0-9/]{0,40}",
            words in any::<[u64; 6]>(),
            halves in any::<[i32; 4]>(),
            kind in kinds(),
            acl_id in any::<u32>(),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            new_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        ) {
            let stat = Stat {
                czxid: Zxid(words[0]),
                mzxid: Zxid(words[1]),
                pzxid: Zxid(words[2]),
                ctime_ms: words[3],
                mtime_ms: words[4],
                ephemeral_owner: SessionId(words[5]),
                version: halves[0],
                cversion: halves[1],
                aversion: halves[2],
                num_children: halves[3] as u32,
                data_length: data.as_ref().map_or(0, |d| d.len() as u32),
            };
            let packed = Packed::new(&path, &stat, kind, acl_id, data.as_deref());
            prop_assert_eq!(packed.path(), path.as_str());
            prop_assert_eq!(packed.stat(), stat);
            prop_assert_eq!(packed.acl_id(), acl_id);
            let unpacked = packed.unpack();
            prop_assert_eq!((unpacked.stat, unpacked.kind, unpacked.acl_id, unpacked.data), (stat, kind, acl_id, data.as_deref()));
            let mut changed_stat = stat;
            changed_stat.version = changed_stat.version.wrapping_add(1);
            changed_stat.data_length = new_data.as_ref().map_or(0, |d| d.len() as u32);
            let changed = packed.with_stat_and_data(&changed_stat, new_data.as_deref());
            let unpacked = changed.unpack();
            prop_assert_eq!((unpacked.stat, unpacked.data), (changed_stat, new_data.as_deref()));
            prop_assert_eq!((changed.path(), unpacked.kind, unpacked.acl_id), (path.as_str(), kind, acl_id));
            let mut restated = changed.clone();
            let mut other = stat;
            other.czxid = Zxid(words[1]);
            other.mzxid = Zxid(words[0]);
            other.mtime_ms = words[3];
            other.version = halves[3];
            other.data_length = changed.stat().data_length;
            restated.set_stat(&other);
            restated.set_acl_id(acl_id.wrapping_add(1));
            prop_assert_eq!(restated.stat(), other);
            prop_assert_eq!(restated.acl_id(), acl_id.wrapping_add(1));
            let unpacked = restated.unpack();
            prop_assert_eq!((restated.path(), unpacked.kind, unpacked.data), (path.as_str(), kind, new_data.as_deref()));
        }
    }

    /// The size docs/BENCHMARKS.md and the module docs give: a 100-byte node under a 20-byte
    /// path, as the benchmark's fill creates them, fits a 160-byte malloc chunk (glibc adds 8
    /// bytes and rounds up to 16, so at most 152 bytes).
    #[test]
    fn a_filled_node_fits_a_160_byte_chunk() {
        let zxid = Zxid((7 << 32) | 0x1_e240);
        let now = 1_764_120_000_000;
        let stat = Stat { czxid: zxid, mzxid: zxid, pzxid: zxid, ctime_ms: now, mtime_ms: now, ..Stat::default() };
        let packed = Packed::new("/bench/fill/n0123456", &stat, NodeKind::Persistent, 1, Some(&[7; 100]));
        assert_eq!(packed.0.len(), 142);
        assert_eq!(packed.stat().data_length, 100);
    }

    #[test]
    fn null_and_empty_data_differ() {
        let stat = Stat::default();
        let null = Packed::new("/a", &stat, NodeKind::Persistent, 0, None);
        let empty = Packed::new("/a", &stat, NodeKind::Persistent, 0, Some(&[]));
        assert_eq!((null.unpack().data, empty.unpack().data), (None, Some(&[][..])));
    }

    #[test]
    fn orders_by_path_bytes_like_str() {
        let stat = Stat::default();
        let mut paths = ["/a/b", "/a-", "/a", "/ab", "/", "/a0"];
        let mut packed: Vec<_> = paths.iter().map(|p| Packed::new(p, &stat, NodeKind::Persistent, 0, None)).collect();
        packed.sort();
        paths.sort_unstable();
        assert_eq!(packed.iter().map(Packed::path).collect::<Vec<_>>(), paths);
    }
}
