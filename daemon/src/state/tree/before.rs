//! The tree as it was before the round being committed.
//!
//! While the engine syncs a round, the in-memory tree already holds the round's changes, which
//! no one may see before they are durable. Rather than make every reader wait for the sync,
//! the tree keeps the first earlier state of each node the round changes, and readers answer
//! from the tree as it was before the round: everything in it is durable, and every write
//! acknowledged so far is in it, so such a read is linearizable (it takes effect before the
//! round's writes, none of which has been acknowledged yet).

use super::{Node, Packed, Tree, subtree_prefix};
use crate::state::acl::Acl;
use std::collections::BTreeMap;
use std::ops::Bound;

/// The first earlier state of each node the round changed (`None`: it did not exist).
#[derive(Clone, Debug, Default)]
pub(super) struct Before {
    keeping: bool,
    nodes: BTreeMap<String, Option<(Packed, Acl)>>,
}

impl Tree {
    /// Starts (`keep`) or stops keeping the earlier state of what changes from now on, and
    /// forgets what was kept: called at each round's start and end.
    pub fn keep_before(&mut self, keep: bool) {
        self.before.keeping = keep;
        self.before.nodes.clear();
    }

    /// Whether the tree keeps what the round changed (and so can be read as before it).
    pub fn keeps_before(&self) -> bool {
        self.before.keeping
    }

    /// Called before the node at `p` changes (or is created).
    pub(super) fn remember(&mut self, p: &str) {
        if !self.before.keeping || self.before.nodes.contains_key(p) {
            return;
        }
        let earlier =
            self.nodes.get(p.as_bytes()).map(|packed| (packed.clone(), self.acls.get(packed.acl_id()).clone()));
        self.before.nodes.insert(p.to_owned(), earlier);
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
            && let Some(earlier) = self.tree.before.nodes.get(p)
        {
            return earlier.as_ref().map(earlier_node);
        }
        self.tree.get(p)
    }

    /// `p`'s children in name order.
    pub fn children(self, p: &str) -> Vec<(&'a str, Node<'a>)> {
        let now = self.tree.children(p);
        if !self.before_round {
            return now.collect();
        }
        // The children the round changed, as they were.
        let prefix = subtree_prefix(p);
        let changed: BTreeMap<&'a str, Option<Node<'a>>> = self
            .tree
            .before
            .nodes
            .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
            .take_while(|(changed, _)| changed.starts_with(prefix.as_str()))
            .filter_map(|(changed, earlier)| {
                let name = &changed[prefix.len()..];
                (!name.contains('/')).then(|| (name, earlier.as_ref().map(earlier_node)))
            })
            .collect();
        if changed.is_empty() {
            return now.collect();
        }
        let mut children: Vec<_> = now.filter(|(name, _)| !changed.contains_key(name)).collect();
        children.extend(changed.into_iter().filter_map(|(name, node)| node.map(|n| (name, n))));
        children.sort_unstable_by(|a, b| a.0.cmp(b.0));
        children
    }
}

fn earlier_node((packed, acl): &(Packed, Acl)) -> Node<'_> {
    Node { fields: packed.unpack(), acl }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::acl;
    use baton_proto::{NodeKind, SessionId, Zxid};

    fn names(view: TreeView<'_>, p: &str) -> Vec<String> {
        view.children(p).into_iter().map(|(name, _)| name.to_owned()).collect()
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
