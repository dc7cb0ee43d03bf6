//! Every distinct ACL in the tree once, by a small id: most nodes share a handful, and a
//! packed node holds 4 bytes instead of a pointer to its ACL.

use super::acl::Acl;
use baton_proto::AclEntry;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct AclTable {
    ids: BTreeMap<Acl, u32>,
    /// By id: the ACL and how many nodes use it; `None` once unused (its id is free).
    slots: Vec<Option<(Acl, usize)>>,
    free: Vec<u32>,
}

impl AclTable {
    /// The id of `entries`, counting one more node using it.
    pub fn acquire(&mut self, entries: &[AclEntry]) -> u32 {
        if let Some(&id) = self.ids.get(entries) {
            self.slot(id).1 += 1;
            return id;
        }
        let acl: Acl = entries.into();
        let id = if let Some(id) = self.free.pop() {
            self.slots[id as usize] = Some((acl.clone(), 1));
            id
        } else {
            let id = u32::try_from(self.slots.len()).expect("fewer than 2^32 distinct ACLs");
            self.slots.push(Some((acl.clone(), 1)));
            id
        };
        self.ids.insert(acl, id);
        id
    }

    /// One node fewer uses `id`; the last one frees it.
    pub fn release(&mut self, id: u32) {
        let slot = self.slot(id);
        slot.1 -= 1;
        if slot.1 == 0 {
            let (acl, _) = self.slots[id as usize].take().expect("a used slot");
            self.ids.remove(&acl);
            self.free.push(id);
        }
    }

    pub fn get(&self, id: u32) -> &Acl {
        &self.slots.get(id as usize).and_then(Option::as_ref).expect("a node's ACL id is in use").0
    }

    /// How many distinct ACLs are in use.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    fn slot(&mut self, id: u32) -> &mut (Acl, usize) {
        self.slots.get_mut(id as usize).and_then(Option::as_mut).expect("a node's ACL id is in use")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::acl;

    #[test]
    fn shares_equal_acls_and_frees_an_unused_one_for_reuse() {
        let mut table = AclTable::default();
        let open = acl::open();
        let a = table.acquire(&open);
        assert_eq!(table.acquire(&open), a, "an equal ACL gets the same id");
        let b = table.acquire(&[]);
        assert_ne!(a, b);
        assert_eq!(table.len(), 2);
        table.release(a);
        assert_eq!(&**table.get(a), &open[..], "still used once");
        table.release(a);
        assert_eq!(table.len(), 1);
        assert_eq!(table.acquire(&open), a, "the freed id is reused");
        assert_eq!(&**table.get(b), &[][..]);
    }
}
