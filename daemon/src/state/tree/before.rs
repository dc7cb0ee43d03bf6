//! The tree as it was before the round being committed.
//!
//! While the engine syncs a round, the in-memory tree already holds the round's changes, which
//! no one may see before they are durable. Rather than make every reader wait for the sync,
//! the tree keeps the earlier state of each node the round changes, and readers answer
//! from the tree as it was before the round: everything in it is durable, and every write
//! acknowledged so far is in it, so such a read is linearizable (it takes effect before the
//! round's writes, none of which has been acknowledged yet).

use super::{Node, Packed, Tree};
use crate::state::acl::Acl;
use baton_proto::path;
use std::collections::BTreeMap;

/// A node's state before a change of the round.
#[derive(Clone, Debug)]
enum Earlier {
    /// It was this (a node a `set` or `delete` replaced is moved here rather than dropped, so
    /// keeping it costs no copy).
    Node(Packed, Acl),
    /// It did not exist.
    Absent(Box<str>),
}

impl Earlier {
    fn path(&self) -> &str {
        match self {
            Earlier::Node(packed, _) => packed.path(),
            Earlier::Absent(p) => p,
        }
    }

    fn node(&self) -> Option<Node<'_>> {
        match self {
            Earlier::Node(packed, acl) => Some(Node { fields: packed.unpack(), acl }),
            Earlier::Absent(_) => None,
        }
    }
}

/// Each change's earlier state, in the order of the changes: a node's first entry is its
/// state before the round. Looked up by a scan, which only readers during a sync do.
#[derive(Clone, Debug, Default)]
pub(super) struct Before {
    keeping: bool,
    changes: Vec<Earlier>,
}

impl Tree {
    /// Starts (`keep`) or stops keeping the earlier state of what changes from now on, and
    /// forgets what was kept: called at each round's start and end.
    pub fn keep_before(&mut self, keep: bool) {
        self.before.keeping = keep;
        self.before.changes.clear();
    }

    /// Whether the tree keeps what the round changed (and so can be read as before it).
    pub fn keeps_before(&self) -> bool {
        self.before.keeping
    }

    /// Keeps a copy of the node at `p`, about to change in place.
    pub(super) fn remember_copy(&mut self, p: &str) {
        if let Some(packed) = self.nodes.get(p.as_bytes()).filter(|_| self.before.keeping) {
            let acl = self.acls.get(packed.acl_id()).clone();
            self.before.changes.push(Earlier::Node(packed.clone(), acl));
        }
    }

    /// Keeps `packed`, just taken out of the tree, instead of dropping it.
    pub(super) fn remember_taken(&mut self, packed: Packed) {
        if self.before.keeping {
            let acl = self.acls.get(packed.acl_id()).clone();
            self.before.changes.push(Earlier::Node(packed, acl));
        }
    }

    /// Notes that the node at `p`, about to be created, did not exist.
    pub(super) fn remember_absent(&mut self, p: &str) {
        if self.before.keeping {
            self.before.changes.push(Earlier::Absent(p.into()));
        }
    }

    /// The tree as it is now.
    pub fn as_now(&self) -> TreeView<'_> {
        TreeView { tree: self, before_round: false }
    }

    /// The tree as it was before the current round (as it is now if nothing is kept).
    pub fn as_before_round(&self) -> TreeView<'_> {
        TreeView { tree: self, before_round: self.before.keeping }
    }
}

/// Node and children look-ups, now or as before the current round.
#[derive(Clone, Copy)]
pub struct TreeView<'a> {
    tree: &'a Tree,
    before_round: bool,
}

impl<'a> TreeView<'a> {
    pub fn get(self, p: &str) -> Option<Node<'a>> {
        if self.before_round
            && let Some(earlier) = self.tree.before.changes.iter().find(|e| e.path() == p)
        {
            return earlier.node();
        }
        self.tree.get(p)
    }

    /// `p`'s children in name order (collected only when read as before the round).
    pub fn children(self, p: &str) -> impl Iterator<Item = (&'a str, Node<'a>)> {
        let (now, before) = if self.before_round {
            (None, Some(self.children_before_round(p)))
        } else {
            (Some(self.tree.children(p)), None)
        };
        now.into_iter().flatten().chain(before.into_iter().flatten())
    }

    fn children_before_round(self, p: &str) -> Vec<(&'a str, Node<'a>)> {
        let now = self.tree.children(p);
        // The children the round changed, as they were (each one's first entry).
        let mut changed: BTreeMap<&'a str, Option<Node<'a>>> = BTreeMap::new();
        for earlier in &self.tree.before.changes {
            let changed_path = earlier.path();
            if path::parent(changed_path) == Some(p) {
                changed.entry(path::name(changed_path)).or_insert_with(|| earlier.node());
            }
        }
        if changed.is_empty() {
            return now.collect();
        }
        let mut children: Vec<_> = now.filter(|(name, _)| !changed.contains_key(name)).collect();
        children.extend(changed.into_iter().filter_map(|(name, node)| node.map(|n| (name, n))));
        children.sort_unstable_by(|a, b| a.0.cmp(b.0));
        children
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::acl;
    use baton_proto::path;
    use baton_proto::{NodeKind, SessionId, Zxid};

    fn names(view: TreeView<'_>, p: &str) -> Vec<String> {
        view.children(p).map(|(name, _)| name.to_owned()).collect()
    }

    fn data(view: TreeView<'_>, p: &str) -> Option<Vec<u8>> {
        view.get(p).map(|n| n.data().unwrap_or_default().to_vec())
    }

    #[test]
    fn a_round_is_invisible_as_before_it_and_visible_now() {
        let open = acl::open();
        let mut tree = Tree::new();
        for (i, p) in ["/l", "/l/a", "/l/c", "/l/c/x"].into_iter().enumerate() {
            tree.create(p, Some(b"0"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(i as u64 + 1), 0);
        }
        let earlier_parent = tree.get("/l").unwrap().stat();

        tree.keep_before(true);
        tree.create("/l/b", Some(b"new"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(10), 1);
        tree.delete("/l/a", Zxid(11));
        tree.set("/l/c", Some(b"1"), Zxid(12), 2);
        tree.set("/l/c", Some(b"2"), Zxid(13), 3);
        tree.set_acl("/l/c/x", &[]);

        let before = tree.as_before_round();
        assert_eq!(names(before, "/l"), ["a", "c"]);
        assert_eq!(before.get("/l").unwrap().stat(), earlier_parent);
        assert_eq!(data(before, "/l/c"), Some(b"0".to_vec()), "the first earlier state, not an intermediate one");
        assert!(before.get("/l/b").is_none());
        assert_eq!(&**before.get("/l/c/x").unwrap().acl(), open.as_slice());
        assert!(tree.as_now().get("/l/c/x").unwrap().acl().is_empty());
        assert_eq!(names(before, "/l/c"), ["x"], "a grandchild's change is not a child");

        let now = tree.as_now();
        assert_eq!(names(now, "/l"), ["b", "c"]);
        assert_eq!(data(now, "/l/c"), Some(b"2".to_vec()));
        assert_eq!(now.get("/l").unwrap().stat().num_children, 2);

        tree.keep_before(false);
        assert_eq!(names(tree.as_before_round(), "/l"), ["b", "c"], "nothing kept: as it is now");
    }

    proptest::proptest! {
        /// Whatever a round does, the tree read as before it is the tree as it was.
        #[test]
        fn as_before_round_is_the_tree_at_the_rounds_start(
            warmup in proptest::collection::vec((0u8..3, 0usize..7), 0..30),
            round in proptest::collection::vec((0u8..4, 0usize..7), 1..30),
        ) {
            const PATHS: [&str; 7] = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/z", "/c"];
            let open = acl::open();
            let mut tree = Tree::new();
            let mut zxid = 0;
            let mut step = |tree: &mut Tree, (op, at): (u8, usize)| {
                let p = PATHS[at];
                zxid += 1;
                let parent_exists = path::parent(p).is_some_and(|parent| tree.contains(parent));
                match (op, tree.get(p).map(|n| n.stat().num_children)) {
                    (0, None) if parent_exists => {
                        tree.create(p, Some(&[op]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(zxid), 0);
                    }
                    (1, Some(_)) => {
                        tree.set(p, Some(&zxid.to_le_bytes()), Zxid(zxid), 0);
                    }
                    (2, Some(0)) => {
                        tree.delete(p, Zxid(zxid));
                    }
                    (3, Some(_)) => {
                        tree.set_acl(p, &[]);
                    }
                    _ => {}
                }
            };
            for change in warmup {
                step(&mut tree, change);
            }
            let at_start = tree.clone();
            tree.keep_before(true);
            for change in round {
                step(&mut tree, change);
            }
            let before = tree.as_before_round();
            for p in std::iter::once("/").chain(PATHS) {
                proptest::prop_assert_eq!(before.get(p), at_start.get(p), "{}", p);
                let listed: Vec<_> = before.children(p).map(|(name, node)| (name, node.stat())).collect();
                let expected: Vec<_> = at_start.children(p).map(|(name, node)| (name, node.stat())).collect();
                proptest::prop_assert_eq!(listed, expected, "children of {}", p);
            }
        }
    }

    #[test]
    fn a_node_deleted_and_created_again_in_the_round_reads_as_it_was() {
        let open = acl::open();
        let mut tree = Tree::new();
        tree.create("/n", Some(b"old"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 0);
        tree.keep_before(true);
        tree.delete("/n", Zxid(2));
        tree.create("/n", Some(b"new"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(3), 0);
        assert_eq!(data(tree.as_before_round(), "/n"), Some(b"old".to_vec()));
        assert_eq!(names(tree.as_before_round(), "/"), ["n"]);
        tree.keep_before(true);
        assert_eq!(data(tree.as_before_round(), "/n"), Some(b"new".to_vec()), "a new round forgets the last");
    }
}
