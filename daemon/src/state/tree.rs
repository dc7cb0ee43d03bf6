//! The node tree: every node by path, each with its data, stat, kind and ACL.
//!
//! Nodes are [`Packed`], one allocation each, in one ordered set keyed by path. Children are
//! not stored: a node's children are the paths right under it in that order, found by a
//! range scan that skips each child's own subtree.

use super::acl::Acl;
use super::acl_table::AclTable;
use super::packed::{Packed, Unpacked};
use baton_proto::path;
use baton_proto::{AclEntry, NodeKind, SessionId, Stat, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;

mod before;
pub use before::TreeView;

/// A node as the tree holds it, decoded once, borrowed from the tree.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    fields: Unpacked<'a>,
    acl: &'a Acl,
}

impl<'a> Node<'a> {
    pub fn stat(&self) -> Stat {
        self.fields.stat
    }

    pub fn kind(&self) -> NodeKind {
        self.fields.kind
    }

    /// `None`: null data, distinct from empty data.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.fields.data
    }

    pub fn acl(&self) -> &'a Acl {
        self.acl
    }
}

impl PartialEq for Node<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.stat(), self.kind(), self.data(), self.acl) == (other.stat(), other.kind(), other.data(), other.acl)
    }
}

/// A node as it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub stat: Stat,
    pub kind: NodeKind,
    /// `None`: ZooKeeper's null data (read as empty by native clients).
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    pub acl: Vec<AclEntry>,
}

/// What is left of a deleted node.
pub struct Removed {
    pub stat: Stat,
    pub acl: Acl,
    /// The parent is a container that this delete left without children.
    pub emptied_container: bool,
}

#[derive(Clone, Debug)]
pub struct Tree {
    nodes: BTreeSet<Packed>,
    /// Paths of TTL nodes, so reaping does not scan the whole tree.
    ttl_paths: BTreeSet<String>,
    acls: AclTable,
    /// What the current round changed, as it was (see `before`).
    before: before::Before,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root.
    pub fn new() -> Self {
        let mut tree = Tree {
            nodes: BTreeSet::new(),
            ttl_paths: BTreeSet::new(),
            acls: AclTable::default(),
            before: before::Before::default(),
        };
        tree.insert_root();
        tree
    }

    fn insert_root(&mut self) {
        let acl = self.acls.acquire(&super::acl::open());
        self.nodes.insert(Packed::new("/", &Stat::default(), NodeKind::Persistent, acl, Some(&[])));
    }

    /// Rebuilds a tree from stored records (any order; a missing root is the default one).
    /// Records whose parent is missing are returned as orphans: a consistent store has none.
    pub fn from_records(records: impl IntoIterator<Item = (String, NodeRecord)>) -> (Self, Vec<String>) {
        let (mut acls, mut ttl_paths) = (AclTable::default(), BTreeSet::new());
        let mut packed = Vec::new();
        for (p, record) in records {
            if matches!(record.kind, NodeKind::Ttl { .. }) {
                ttl_paths.insert(p.clone());
            }
            let acl = acls.acquire(&record.acl);
            packed.push(Packed::new(&p, &record.stat, record.kind, acl, record.data.as_deref()));
        }
        // Built from a sorted sequence, the set's nodes are full (inserts leave them half so).
        let mut tree = Tree { nodes: packed.into_iter().collect(), ttl_paths, acls, before: before::Before::default() };
        if !tree.contains("/") {
            tree.insert_root();
        }
        let orphans = tree
            .nodes
            .iter()
            .map(Packed::path)
            .filter(|p| path::parent(p).is_some_and(|parent| !tree.contains(parent)))
            .map(str::to_owned)
            .collect();
        (tree, orphans)
    }

    fn view<'a>(&'a self, packed: &'a Packed) -> Node<'a> {
        let fields = packed.unpack();
        Node { fields, acl: self.acls.get(fields.acl_id) }
    }

    pub fn get(&self, p: &str) -> Option<Node<'_>> {
        self.nodes.get(p.as_bytes()).map(|packed| self.view(packed))
    }

    /// The ACL of the node at `p`, without decoding the rest of it.
    pub fn acl(&self, p: &str) -> Option<&Acl> {
        self.nodes.get(p.as_bytes()).map(|packed| self.acls.get(packed.acl_id()))
    }

    pub fn contains(&self, p: &str) -> bool {
        self.nodes.contains(p.as_bytes())
    }

    /// How many nodes lie under `p` (not counting `p`): one range scan, no recursion.
    pub fn descendants(&self, p: &str) -> usize {
        let prefix = subtree_prefix(p);
        let after = (Bound::Excluded(prefix.as_bytes()), Bound::Unbounded);
        self.nodes.range::<[u8], _>(after).take_while(|n| n.path().starts_with(prefix.as_str())).count()
    }

    /// The children of `p` by name, in name order: a scan of the paths after `p/` that
    /// jumps over each child's own subtree with one ordered look-up, so listing costs the
    /// children, not the descendants.
    pub fn children<'a>(&'a self, p: &str) -> impl Iterator<Item = (&'a str, Node<'a>)> + 'a {
        let prefix = subtree_prefix(p);
        let mut scan = self.nodes.range::<[u8], _>((Bound::Excluded(prefix.as_bytes()), Bound::Unbounded));
        let mut skip_to = Vec::new();
        std::iter::from_fn(move || {
            loop {
                let packed = scan.next()?;
                let name = packed.path().strip_prefix(prefix.as_str())?;
                let Some((child, _)) = name.split_once('/') else {
                    return Some((name, self.view(packed)));
                };
                // A grandchild: every path under `child/` sorts before `child0` ('0' follows
                // '/'), so the next sibling is at or after it.
                skip_to.clear();
                skip_to.extend_from_slice(prefix.as_bytes());
                skip_to.extend_from_slice(child.as_bytes());
                skip_to.push(b'0');
                scan = self.nodes.range::<[u8], _>((Bound::Included(&skip_to[..]), Bound::Unbounded));
            }
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Node<'_>)> {
        self.nodes.iter().map(|packed| (packed.path(), self.view(packed)))
    }

    /// The TTL nodes, by path.
    pub fn ttl_nodes(&self) -> impl Iterator<Item = (&str, Node<'_>)> {
        self.ttl_paths.iter().filter_map(|p| self.get(p).map(|n| (p.as_str(), n)))
    }

    /// The stored form of the node at `p`, if any.
    pub fn record(&self, p: &str) -> Option<NodeRecord> {
        self.get(p).map(|n| NodeRecord {
            stat: n.stat(),
            kind: n.kind(),
            data: n.data().map(<[u8]>::to_vec),
            acl: n.acl().to_vec(),
        })
    }

    /// Changes the node at `p` in place (out of the set and back: its path stays).
    fn modify<T>(&mut self, p: &str, change: impl FnOnce(&mut Packed) -> T) -> T {
        self.remember_copy(p);
        let mut packed = self.nodes.take(p.as_bytes()).expect("a prepared txn changes only existing nodes");
        let out = change(&mut packed);
        self.nodes.insert(packed);
        out
    }

    /// Inserts a new node under an existing parent, updating the parent's stat.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        p: &str,
        data: Option<&[u8]>,
        kind: NodeKind,
        acl: &[AclEntry],
        owner: SessionId,
        zxid: Zxid,
        time_ms: u64,
    ) {
        let parent = path::parent(p).expect("create is never applied to the root");
        self.modify(parent, |n| {
            touch_children(n, zxid, 1);
        });
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime_ms: time_ms,
            mtime_ms: time_ms,
            ephemeral_owner: owner,
            ..Stat::default()
        };
        if matches!(kind, NodeKind::Ttl { .. }) {
            self.ttl_paths.insert(p.to_owned());
        }
        let acl = self.acls.acquire(acl);
        self.remember_absent(p);
        let created = self.nodes.insert(Packed::new(p, &stat, kind, acl, data));
        assert!(created, "create of an existing node {p} in a prepared txn");
    }

    /// Removes a childless node, returning what callers still need of it.
    pub fn delete(&mut self, p: &str, zxid: Zxid) -> Removed {
        let packed = self.nodes.take(p.as_bytes()).expect("delete of a missing node in a prepared txn");
        let stat = packed.stat();
        assert!(stat.num_children == 0, "delete of {p} with children in a prepared txn");
        self.ttl_paths.remove(p);
        let acl = self.acls.get(packed.acl_id()).clone();
        let acl_id = packed.acl_id();
        self.remember_taken(packed);
        self.acls.release(acl_id);
        let parent = path::parent(p).expect("delete is never applied to the root");
        let emptied_container = self.modify(parent, |n| {
            touch_children(n, zxid, -1).num_children == 0 && n.unpack().kind == NodeKind::Container
        });
        Removed { stat, acl, emptied_container }
    }

    /// Replaces a node's data.
    pub fn set(&mut self, p: &str, data: Option<&[u8]>, zxid: Zxid, time_ms: u64) -> Stat {
        let old = self.nodes.take(p.as_bytes()).expect("set of a missing node in a prepared txn");
        let mut stat = old.stat();
        stat.version = stat.version.wrapping_add(1);
        stat.mzxid = zxid;
        stat.mtime_ms = time_ms;
        stat.data_length = data.map_or(0, |d| d.len() as u32);
        let packed = old.with_stat_and_data(&stat, data);
        self.nodes.insert(packed);
        self.remember_taken(old);
        stat
    }

    /// Replaces a node's ACL, counting the change in its `aversion`.
    pub fn set_acl(&mut self, p: &str, acl: &[AclEntry]) -> Stat {
        let id = self.acls.acquire(acl);
        let (old, stat) = self.modify(p, |n| {
            let old = n.acl_id();
            n.set_acl_id(id);
            let mut stat = n.stat();
            stat.aversion = stat.aversion.wrapping_add(1);
            n.set_stat(&stat);
            (old, stat)
        });
        self.acls.release(old);
        stat
    }
}

/// The prefix every path under `p` starts with.
fn subtree_prefix(p: &str) -> String {
    if p == "/" { "/".to_owned() } else { format!("{p}/") }
}

/// A child was created (`delta` 1) or deleted (-1): ZooKeeper counts both in `cversion`.
/// Counts a child created or deleted in `node`'s stat; returns the new stat.
fn touch_children(node: &mut Packed, zxid: Zxid, delta: i32) -> Stat {
    let mut stat = node.stat();
    stat.cversion = stat.cversion.wrapping_add(1);
    stat.pzxid = zxid;
    stat.num_children = stat.num_children.wrapping_add_signed(delta);
    node.set_stat(&stat);
    stat
}

#[cfg(test)]
mod tests;
