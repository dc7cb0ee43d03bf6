//! A shadow of the tree for validating a write before it exists: the ops of a `multi` see the
//! effects of the ops before them without touching the real tree.

use super::tree::Tree;
use baton_proto::{AclEntry, NodeKind, SessionId, Zxid, path};
use std::collections::BTreeMap;

/// What validation needs to know of a node.
#[derive(Clone, Copy, Debug)]
pub struct Shadow {
    pub version: i32,
    pub cversion: i32,
    pub num_children: u32,
    pub kind: NodeKind,
    pub owner: SessionId,
    pub czxid: Zxid,
}

pub struct Overlay<'a> {
    tree: &'a Tree,
    /// The zxid the txn being prepared will get: the czxid of nodes it creates.
    zxid: Zxid,
    changed: BTreeMap<String, Option<Shadow>>,
    /// Ephemerals each session gains (or loses) through the changes so far.
    owned_delta: BTreeMap<SessionId, isize>,
    /// The ACLs of nodes created so far.
    created_acls: BTreeMap<String, Vec<AclEntry>>,
}

impl<'a> Overlay<'a> {
    pub fn new(tree: &'a Tree, zxid: Zxid) -> Self {
        Overlay { tree, zxid, changed: BTreeMap::new(), owned_delta: BTreeMap::new(), created_acls: BTreeMap::new() }
    }

    pub fn get(&self, p: &str) -> Option<Shadow> {
        match self.changed.get(p) {
            Some(shadow) => *shadow,
            None => self.tree.get(p).map(|n| {
                let stat = n.stat();
                Shadow {
                    version: stat.version,
                    cversion: stat.cversion,
                    num_children: stat.num_children,
                    kind: n.kind(),
                    owner: stat.ephemeral_owner,
                    czxid: stat.czxid,
                }
            }),
        }
    }

    /// The ACL of the node at `p` as the changes so far leave it.
    pub fn acl(&self, p: &str) -> Option<&[AclEntry]> {
        if let Some(None) = self.changed.get(p) {
            return None; // deleted by the changes so far
        }
        match self.created_acls.get(p) {
            Some(acl) => Some(acl),
            None => self.tree.acl(p).map(|acl| &**acl),
        }
    }

    /// How many ephemerals `session` gains (negative: loses) through the changes so far.
    pub fn owned_delta(&self, session: SessionId) -> isize {
        self.owned_delta.get(&session).copied().unwrap_or(0)
    }

    pub fn create(&mut self, p: &str, kind: NodeKind, owner: SessionId, acl: Vec<AclEntry>) {
        self.adjust_parent(p, 1);
        self.created_acls.insert(p.to_owned(), acl);
        if !owner.is_none() {
            *self.owned_delta.entry(owner).or_default() += 1;
        }
        let shadow = Shadow { version: 0, cversion: 0, num_children: 0, kind, owner, czxid: self.zxid };
        self.changed.insert(p.to_owned(), Some(shadow));
    }

    pub fn delete(&mut self, p: &str) {
        if let Some(owner) = self.get(p).map(|s| s.owner).filter(|o| !o.is_none()) {
            *self.owned_delta.entry(owner).or_default() -= 1;
        }
        self.adjust_parent(p, -1);
        self.changed.insert(p.to_owned(), None);
    }

    pub fn set(&mut self, p: &str) {
        if let Some(mut shadow) = self.get(p) {
            shadow.version = shadow.version.wrapping_add(1);
            self.changed.insert(p.to_owned(), Some(shadow));
        }
    }

    /// The names of `p`'s children as the changes so far leave them.
    pub fn children(&self, p: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .tree
            .children(p)
            .filter(|(c, _)| self.get(&path::join(p, c)).is_some())
            .map(|(c, _)| c.to_owned())
            .collect();
        for (changed, shadow) in &self.changed {
            let is_new_child = shadow.is_some() && path::parent(changed) == Some(p) && self.tree.get(changed).is_none();
            if is_new_child {
                names.push(path::name(changed).to_owned());
            }
        }
        names
    }

    fn adjust_parent(&mut self, p: &str, delta: i32) {
        let Some(parent) = path::parent(p) else { return };
        if let Some(mut shadow) = self.get(parent) {
            shadow.cversion = shadow.cversion.wrapping_add(1);
            shadow.num_children = shadow.num_children.wrapping_add_signed(delta);
            self.changed.insert(parent.to_owned(), Some(shadow));
        }
    }
}
