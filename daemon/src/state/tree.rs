//! The node tree: every node by path, each with its data, stat, kind and child names.

use super::acl::{self, Acl};
use baton_proto::path;
use baton_proto::{AclEntry, NodeKind, SessionId, Stat, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `None`: ZooKeeper's null data (read as empty by native clients).
    pub data: Option<Vec<u8>>,
    pub stat: Stat,
    pub kind: NodeKind,
    /// Names (not paths) of the children, sorted.
    pub children: BTreeSet<String>,
    pub acl: Acl,
}

/// A node as it is stored: everything but the child names, which are rebuilt on load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub stat: Stat,
    pub kind: NodeKind,
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    pub acl: Vec<AclEntry>,
}

#[derive(Clone, Debug)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Paths of TTL nodes, so reaping does not scan the whole tree.
    ttl_paths: BTreeSet<String>,
    /// Every distinct ACL once: most nodes share a handful.
    acls: AclTable,
}

/// Interned ACLs, pruned of ones no node uses once it has grown.
#[derive(Clone, Debug, Default)]
struct AclTable {
    interned: BTreeSet<Acl>,
    prune_at: usize,
}

impl AclTable {
    fn intern(&mut self, entries: &[AclEntry]) -> Acl {
        if let Some(acl) = self.interned.get(entries) {
            return acl.clone();
        }
        if self.interned.len() >= self.prune_at {
            // Only this table holds the unused ones.
            self.interned.retain(|acl| std::sync::Arc::strong_count(acl) > 1);
            self.prune_at = self.interned.len() * 2 + 64;
        }
        let acl: Acl = entries.into();
        self.interned.insert(acl.clone());
        acl
    }
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root.
    pub fn new() -> Self {
        let mut acls = AclTable::default();
        let root = Node {
            data: Some(Vec::new()),
            stat: Stat::default(),
            kind: NodeKind::Persistent,
            children: BTreeSet::new(),
            acl: acls.intern(&acl::open()),
        };
        Tree { nodes: BTreeMap::from([("/".to_owned(), root)]), ttl_paths: BTreeSet::new(), acls }
    }

    /// Rebuilds a tree from stored records (any order). Records whose parent is missing are
    /// returned as orphans: a consistent store has none.
    pub fn from_records(records: impl IntoIterator<Item = (String, NodeRecord)>) -> (Self, Vec<String>) {
        let mut tree = Tree::new();
        for (p, record) in records {
            if matches!(record.kind, NodeKind::Ttl { .. }) {
                tree.ttl_paths.insert(p.clone());
            }
            let acl = tree.acls.intern(&record.acl);
            let node = Node { data: record.data, stat: record.stat, kind: record.kind, children: BTreeSet::new(), acl };
            tree.nodes.insert(p, node);
        }
        let paths: Vec<String> = tree.nodes.keys().filter(|p| *p != "/").cloned().collect();
        let mut orphans = Vec::new();
        for p in paths {
            let parent = path::parent(&p).unwrap_or("/");
            match tree.nodes.get_mut(parent) {
                Some(parent_node) => {
                    parent_node.children.insert(path::name(&p).to_owned());
                }
                None => orphans.push(p),
            }
        }
        (tree, orphans)
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn contains(&self, p: &str) -> bool {
        self.nodes.contains_key(p)
    }

    /// How many nodes lie under `p` (not counting `p`): one range scan, no recursion.
    pub fn descendants(&self, p: &str) -> usize {
        let prefix = if p == "/" { "/".to_owned() } else { format!("{p}/") };
        let after = (std::ops::Bound::Excluded(prefix.as_str()), std::ops::Bound::Unbounded);
        self.nodes.range::<str, _>(after).take_while(|(k, _)| k.starts_with(prefix.as_str())).count()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// The TTL nodes, by path.
    pub fn ttl_nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.ttl_paths.iter().filter_map(|p| self.nodes.get_key_value(p))
    }

    /// The stored form of the node at `p`, if any.
    pub fn record(&self, p: &str) -> Option<NodeRecord> {
        self.nodes.get(p).map(|n| NodeRecord { stat: n.stat, kind: n.kind, data: n.data.clone(), acl: n.acl.to_vec() })
    }

    /// Inserts a new node under an existing parent, updating the parent's child bookkeeping.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        kind: NodeKind,
        acl: &[AclEntry],
        owner: SessionId,
        zxid: Zxid,
        time_ms: u64,
    ) {
        let parent = path::parent(p).expect("create is never applied to the root");
        let parent_node = self.nodes.get_mut(parent).expect("create's parent exists in a prepared txn");
        parent_node.children.insert(path::name(p).to_owned());
        touch_children(&mut parent_node.stat, zxid, 1);
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime_ms: time_ms,
            mtime_ms: time_ms,
            ephemeral_owner: owner,
            data_length: data_length(data.as_deref()),
            ..Stat::default()
        };
        if matches!(kind, NodeKind::Ttl { .. }) {
            self.ttl_paths.insert(p.to_owned());
        }
        let acl = self.acls.intern(acl);
        let previous = self.nodes.insert(p.to_owned(), Node { data, stat, kind, children: BTreeSet::new(), acl });
        assert!(previous.is_none(), "create of an existing node {p} in a prepared txn");
    }

    /// Removes a childless node, returning it.
    pub fn delete(&mut self, p: &str, zxid: Zxid) -> Node {
        let node = self.nodes.remove(p).expect("delete of a missing node in a prepared txn");
        self.ttl_paths.remove(p);
        assert!(node.children.is_empty(), "delete of {p} with children in a prepared txn");
        let parent = path::parent(p).expect("delete is never applied to the root");
        let parent_node = self.nodes.get_mut(parent).expect("a node's parent exists");
        parent_node.children.remove(path::name(p));
        touch_children(&mut parent_node.stat, zxid, -1);
        node
    }

    /// Replaces a node's data.
    pub fn set(&mut self, p: &str, data: Option<Vec<u8>>, zxid: Zxid, time_ms: u64) -> Stat {
        let node = self.nodes.get_mut(p).expect("set of a missing node in a prepared txn");
        node.stat.version = node.stat.version.wrapping_add(1);
        node.stat.mzxid = zxid;
        node.stat.mtime_ms = time_ms;
        node.stat.data_length = data_length(data.as_deref());
        node.data = data;
        node.stat
    }
}

impl Tree {
    /// Replaces a node's ACL, counting the change in its `aversion`.
    pub fn set_acl(&mut self, p: &str, acl: &[AclEntry]) -> Stat {
        let acl = self.acls.intern(acl);
        let node = self.nodes.get_mut(p).expect("set_acl of a missing node in a prepared txn");
        node.acl = acl;
        node.stat.aversion = node.stat.aversion.wrapping_add(1);
        node.stat
    }
}

/// Null data has length 0, as in ZooKeeper.
fn data_length(data: Option<&[u8]>) -> u32 {
    data.map_or(0, |d| d.len() as u32)
}

/// A child was created (`delta` 1) or deleted (-1): ZooKeeper counts both in `cversion`.
fn touch_children(stat: &mut Stat, zxid: Zxid, delta: i32) {
    stat.cversion = stat.cversion.wrapping_add(1);
    stat.pzxid = zxid;
    stat.num_children = stat.num_children.wrapping_add_signed(delta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_delete_keep_parent_bookkeeping() {
        let mut tree = Tree::new();
        let open = acl::open();
        tree.create("/a", Some(b"x".to_vec()), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 10);
        tree.create("/a/b", Some(vec![]), NodeKind::Ephemeral, &open, SessionId(7), Zxid(2), 11);
        let a = tree.get("/a").unwrap();
        assert_eq!((a.stat.cversion, a.stat.num_children, a.stat.pzxid), (1, 1, Zxid(2)));
        assert_eq!(a.children.iter().collect::<Vec<_>>(), ["b"]);
        tree.delete("/a/b", Zxid(3));
        let a = tree.get("/a").unwrap();
        assert_eq!((a.stat.cversion, a.stat.num_children, a.stat.pzxid), (2, 0, Zxid(3)));
        assert_eq!(a.stat.mzxid, Zxid(1), "child changes leave the data zxid alone");
    }

    #[test]
    fn descendants_count_every_depth_and_not_siblings_sharing_a_prefix() {
        let mut tree = Tree::new();
        let open = acl::open();
        for (i, p) in ["/a", "/a/b", "/a/b/c", "/ab", "/a-"].into_iter().enumerate() {
            tree.create(p, Some(vec![]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(i as u64 + 1), 0);
        }
        assert_eq!(tree.descendants("/a"), 2, "/ab and /a- are not under /a");
        assert_eq!(tree.descendants("/a/b/c"), 0);
        assert_eq!(tree.descendants("/"), 5);
    }

    #[test]
    fn rebuilds_children_from_records_and_reports_orphans() {
        let mut tree = Tree::new();
        let open = acl::open();
        tree.create("/a", Some(vec![]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 0);
        tree.create("/a/b", Some(vec![]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(2), 0);
        let mut records: Vec<_> = tree.iter().map(|(p, _)| (p.clone(), tree.record(p).unwrap())).collect();
        records.push(("/x/y".into(), tree.record("/a").unwrap()));
        let (rebuilt, orphans) = Tree::from_records(records);
        assert_eq!(rebuilt.get("/a").unwrap().children, tree.get("/a").unwrap().children);
        assert_eq!(orphans, ["/x/y"]);
    }
}
