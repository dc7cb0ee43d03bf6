//! One node packed into one exact-size allocation: its path, stat, kind, ACL id and data.
//!
//! With many small nodes the per-node overhead is what costs memory: a map entry holding a
//! 150-byte struct (half-empty B-tree leaves double it), a path string, a data vector with
//! spare capacity and a set of child names each cost an allocation or more. Packed, a node of
//! 100 bytes of data takes about 200 bytes in all (docs/BENCHMARKS.md, "Optimisations").
//!
//! Layout (integers little-endian): path length (u16), path, the stat's fields at fixed
//! offsets ([`STAT_LEN`] bytes; `data_length` is the data's own length), kind tag (u8),
//! `ttl_ms` (u64), ACL id (u32), data present (u8), data.

use baton_proto::{NodeKind, SessionId, Stat, Zxid};
use std::borrow::Borrow;
use std::cmp::Ordering;

const STAT_LEN: usize = 64;
const KIND_AT: usize = STAT_LEN;
const TTL_AT: usize = KIND_AT + 1;
const ACL_AT: usize = TTL_AT + 8;
const HAS_DATA_AT: usize = ACL_AT + 4;
const META_LEN: usize = HAS_DATA_AT + 1;

/// A node, ordered (and borrowed as `[u8]`) by its path alone, so a set of them is a map
/// from path to node without storing the path twice.
#[derive(Clone, Debug)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// # Panics
    /// If the path is longer than 65,535 bytes (paths are limited to far less).
    pub fn new(path: &str, stat: &Stat, kind: NodeKind, acl_id: u32, data: Option<&[u8]>) -> Self {
        let path_len = u16::try_from(path.len()).expect("a path fits a u16 length");
        let data_len = data.map_or(0, <[u8]>::len);
        let mut bytes = Vec::with_capacity(2 + path.len() + META_LEN + data_len);
        bytes.extend_from_slice(&path_len.to_le_bytes());
        bytes.extend_from_slice(path.as_bytes());
        bytes.resize(bytes.len() + META_LEN, 0);
        if let Some(data) = data {
            bytes.extend_from_slice(data);
        }
        let mut packed = Packed(bytes.into_boxed_slice());
        packed.set_stat(stat);
        let (tag, ttl_ms) = match kind {
            NodeKind::Persistent => (0, 0),
            NodeKind::Ephemeral => (1, 0),
            NodeKind::Container => (2, 0),
            NodeKind::Ttl { ttl_ms } => (3, ttl_ms),
        };
        let meta = packed.meta_mut();
        meta[KIND_AT] = tag;
        meta[TTL_AT..ACL_AT].copy_from_slice(&ttl_ms.to_le_bytes());
        meta[HAS_DATA_AT] = u8::from(data.is_some());
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

    fn meta_at(&self) -> usize {
        2 + self.path_bytes().len()
    }

    fn meta(&self) -> &[u8] {
        let at = self.meta_at();
        &self.0[at..at + META_LEN]
    }

    fn meta_mut(&mut self) -> &mut [u8] {
        let at = self.meta_at();
        &mut self.0[at..at + META_LEN]
    }

    pub fn data(&self) -> Option<&[u8]> {
        let at = self.meta_at() + META_LEN;
        (self.meta()[HAS_DATA_AT] != 0).then(|| &self.0[at..])
    }

    pub fn stat(&self) -> Stat {
        let m = self.meta();
        let u64_at = |i: usize| u64::from_le_bytes(m[i..i + 8].try_into().expect("8 bytes"));
        let i32_at = |i: usize| i32::from_le_bytes(m[i..i + 4].try_into().expect("4 bytes"));
        Stat {
            czxid: Zxid(u64_at(0)),
            mzxid: Zxid(u64_at(8)),
            pzxid: Zxid(u64_at(16)),
            ctime_ms: u64_at(24),
            mtime_ms: u64_at(32),
            ephemeral_owner: SessionId(u64_at(40)),
            version: i32_at(48),
            cversion: i32_at(52),
            aversion: i32_at(56),
            num_children: i32_at(60) as u32,
            data_length: self.data().map_or(0, |d| d.len() as u32),
        }
    }

    /// Stores every field of `stat` but `data_length`, which is always the data's length.
    pub fn set_stat(&mut self, stat: &Stat) {
        let m = self.meta_mut();
        let words = [stat.czxid.0, stat.mzxid.0, stat.pzxid.0, stat.ctime_ms, stat.mtime_ms, stat.ephemeral_owner.0];
        for (i, w) in words.into_iter().enumerate() {
            m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        let halves = [stat.version, stat.cversion, stat.aversion, stat.num_children as i32];
        for (i, h) in halves.into_iter().enumerate() {
            m[48 + i * 4..52 + i * 4].copy_from_slice(&h.to_le_bytes());
        }
    }

    pub fn kind(&self) -> NodeKind {
        let m = self.meta();
        match m[KIND_AT] {
            0 => NodeKind::Persistent,
            1 => NodeKind::Ephemeral,
            2 => NodeKind::Container,
            3 => NodeKind::Ttl { ttl_ms: u64::from_le_bytes(m[TTL_AT..ACL_AT].try_into().expect("8 bytes")) },
            tag => unreachable!("kind tag {tag} was never packed"),
        }
    }

    pub fn acl_id(&self) -> u32 {
        u32::from_le_bytes(self.meta()[ACL_AT..HAS_DATA_AT].try_into().expect("4 bytes"))
    }

    pub fn set_acl_id(&mut self, id: u32) {
        self.meta_mut()[ACL_AT..HAS_DATA_AT].copy_from_slice(&id.to_le_bytes());
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
