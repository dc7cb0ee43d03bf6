//! One node packed into one exact-size allocation: its path, stat, kind, ACL id and data.
//!
//! With many small nodes the per-node overhead is what costs memory: a map entry holding a
//! 150-byte struct (half-empty B-tree leaves double it), a path string, a data vector with
//! spare capacity and a set of child names each cost an allocation or more. Packed, a node with
//! a 19-byte path and 100 bytes of data takes 192 bytes of heap (docs/BENCHMARKS.md,
//! "Optimisations"); fields most nodes lack (an owner, a TTL) take no room.
//!
//! Layout (integers little-endian): path length (u16), path, a flags byte (kind tag in bits
//! 0–1, data present in bit 2, owner present in bit 3), the stat's fields that every node has
//! at fixed offsets, the ACL id (u32), then the owner (u64) only for an ephemeral and `ttl_ms`
//! (u64) only for a TTL node, then the data. `data_length` is the data's own length.

use baton_proto::{NodeKind, SessionId, Stat, Zxid};
use std::borrow::Borrow;
use std::cmp::Ordering;

const FLAGS_AT: usize = 0;
/// czxid, mzxid, pzxid, ctime, mtime (u64 each); version, cversion, aversion, num_children
/// (32 bits each).
const STAT_AT: usize = 1;
const STAT_LEN: usize = 5 * 8 + 4 * 4;
const ACL_AT: usize = STAT_AT + STAT_LEN;
const FIXED_LEN: usize = ACL_AT + 4;

const KIND_MASK: u8 = 0b11;
const HAS_DATA: u8 = 1 << 2;
const HAS_OWNER: u8 = 1 << 3;
const TTL_TAG: u8 = 3;

/// A node, ordered (and borrowed as `[u8]`) by its path alone, so a set of them is a map
/// from path to node without storing the path twice.
#[derive(Clone, Debug)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// # Panics
    /// If the path is longer than 65,535 bytes (paths are limited to far less).
    pub fn new(path: &str, stat: &Stat, kind: NodeKind, acl_id: u32, data: Option<&[u8]>) -> Self {
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
        let optional_len = 8 * (usize::from(owner.is_some()) + usize::from(ttl_ms.is_some()));
        let data_len = data.map_or(0, <[u8]>::len);
        // Exact: shrinking a larger allocation may leave it in its bigger malloc chunk.
        let mut bytes = Vec::with_capacity(2 + path.len() + FIXED_LEN + optional_len + data_len);
        bytes.extend_from_slice(&path_len.to_le_bytes());
        bytes.extend_from_slice(path.as_bytes());
        bytes.push(flags);
        bytes.resize(bytes.len() + FIXED_LEN - 1, 0);
        for optional in [owner, ttl_ms].into_iter().flatten() {
            bytes.extend_from_slice(&optional.to_le_bytes());
        }
        if let Some(data) = data {
            bytes.extend_from_slice(data);
        }
        let mut packed = Packed(bytes.into_boxed_slice());
        packed.set_stat(stat);
        packed.set_acl_id(acl_id);
        packed
    }

    /// The same node with other data (a new allocation: the size changes).
    pub fn with_data(&self, data: Option<&[u8]>) -> Self {
        Packed::new(self.path(), &self.stat(), self.kind(), self.acl_id(), data)
    }

    fn path_bytes(&self) -> &[u8] {
        let len = usize::from(u16::from_le_bytes([self.0[0], self.0[1]]));
        &self.0[2..2 + len]
    }

    pub fn path(&self) -> &str {
        std::str::from_utf8(self.path_bytes()).expect("a packed path was a str")
    }

    /// Where the metadata starts: right after the path.
    fn meta_at(&self) -> usize {
        2 + self.path_bytes().len()
    }

    fn flags(&self) -> u8 {
        self.0[self.meta_at() + FLAGS_AT]
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }

    /// The optional fields present, in order: (owner, ttl_ms) offsets, and where data starts.
    fn optional_at(&self) -> (Option<usize>, Option<usize>, usize) {
        let flags = self.flags();
        let mut at = self.meta_at() + FIXED_LEN;
        let owner = (flags & HAS_OWNER != 0).then(|| {
            at += 8;
            at - 8
        });
        let ttl = (flags & KIND_MASK == TTL_TAG).then(|| {
            at += 8;
            at - 8
        });
        (owner, ttl, at)
    }

    pub fn data(&self) -> Option<&[u8]> {
        let (_, _, data_at) = self.optional_at();
        (self.flags() & HAS_DATA != 0).then(|| &self.0[data_at..])
    }

    pub fn stat(&self) -> Stat {
        let at = self.meta_at() + STAT_AT;
        let (owner_at, _, _) = self.optional_at();
        Stat {
            czxid: Zxid(self.u64_at(at)),
            mzxid: Zxid(self.u64_at(at + 8)),
            pzxid: Zxid(self.u64_at(at + 16)),
            ctime_ms: self.u64_at(at + 24),
            mtime_ms: self.u64_at(at + 32),
            version: self.u32_at(at + 40) as i32,
            cversion: self.u32_at(at + 44) as i32,
            aversion: self.u32_at(at + 48) as i32,
            num_children: self.u32_at(at + 52),
            ephemeral_owner: SessionId(owner_at.map_or(0, |o| self.u64_at(o))),
            data_length: self.data().map_or(0, |d| d.len() as u32),
        }
    }

    /// Stores every field of `stat` but `data_length` (always the data's length) and
    /// `ephemeral_owner` (fixed at creation).
    ///
    /// # Panics
    /// If `stat` names another owner than the node's.
    pub fn set_stat(&mut self, stat: &Stat) {
        let (owner_at, _, _) = self.optional_at();
        let owner = SessionId(owner_at.map_or(0, |o| self.u64_at(o)));
        let at = self.meta_at() + STAT_AT;
        let words = [stat.czxid.0, stat.mzxid.0, stat.pzxid.0, stat.ctime_ms, stat.mtime_ms];
        let halves = [stat.version as u32, stat.cversion as u32, stat.aversion as u32, stat.num_children];
        let m = &mut self.0[at..at + STAT_LEN];
        for (i, w) in words.into_iter().enumerate() {
            m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        for (i, h) in halves.into_iter().enumerate() {
            m[40 + i * 4..44 + i * 4].copy_from_slice(&h.to_le_bytes());
        }
        assert!(stat.ephemeral_owner == owner, "a node's owner is fixed at its creation");
    }

    pub fn kind(&self) -> NodeKind {
        match self.flags() & KIND_MASK {
            0 => NodeKind::Persistent,
            1 => NodeKind::Ephemeral,
            2 => NodeKind::Container,
            _ => {
                let (_, ttl_at, _) = self.optional_at();
                NodeKind::Ttl { ttl_ms: self.u64_at(ttl_at.expect("a TTL node stores its TTL")) }
            }
        }
    }

    pub fn acl_id(&self) -> u32 {
        self.u32_at(self.meta_at() + ACL_AT)
    }

    pub fn set_acl_id(&mut self, id: u32) {
        let at = self.meta_at() + ACL_AT;
        self.0[at..at + 4].copy_from_slice(&id.to_le_bytes());
    }
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
            prop_assert_eq!(packed.kind(), kind);
            prop_assert_eq!(packed.acl_id(), acl_id);
            prop_assert_eq!(packed.data(), data.as_deref());
            let changed = packed.with_data(new_data.as_deref());
            prop_assert_eq!(changed.data(), new_data.as_deref());
            prop_assert_eq!(changed.stat().data_length, new_data.as_ref().map_or(0, |d| d.len() as u32));
            prop_assert_eq!((changed.path(), changed.kind(), changed.acl_id()), (path.as_str(), kind, acl_id));
        }
    }

    #[test]
    fn null_and_empty_data_differ() {
        let stat = Stat::default();
        let null = Packed::new("/a", &stat, NodeKind::Persistent, 0, None);
        let empty = Packed::new("/a", &stat, NodeKind::Persistent, 0, Some(&[]));
        assert_eq!((null.data(), empty.data()), (None, Some(&[][..])));
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
