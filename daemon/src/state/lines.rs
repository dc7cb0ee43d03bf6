//! The lines that turn watches wait in: for each directory where a turn watch waits, its
//! waiters in queue order (`first_in_line`'s: the 10-digit suffix, then the name), kept in
//! step with the tree by `apply`. Finding whom a departure made first is then a lookup; a scan
//! of the directory cost a delete 394 µs with 10,000 waiters (docs/BENCHMARKS.md).
//!
//! A directory is followed from the first `Turn` asked about it and forgotten once no turn
//! watch waits in it (or it is deleted), so only lines someone waits in cost memory.

use baton_proto::path;
use std::collections::{BTreeSet, HashMap};

#[derive(Clone, Debug, Default)]
pub struct Lines {
    by_dir: HashMap<String, BTreeSet<(i32, String)>>,
}

impl Lines {
    /// Follows `dir`, whose children are `names` now; nothing if it is followed already.
    pub fn follow<'a>(&mut self, dir: &str, names: impl IntoIterator<Item = &'a str>) {
        if !self.by_dir.contains_key(dir) {
            let line = names.into_iter().filter_map(|name| Some((path::sequence_of(name)?, name.to_owned()))).collect();
            self.by_dir.insert(dir.to_owned(), line);
        }
    }

    pub fn forget(&mut self, dir: &str) {
        self.by_dir.remove(dir);
    }

    pub fn follows(&self, dir: &str) -> bool {
        self.by_dir.contains_key(dir)
    }

    /// The first waiter of a followed `dir` (`None` for an empty line, or one not followed).
    pub fn first(&self, dir: &str) -> Option<&str> {
        self.by_dir.get(dir)?.first().map(|(_, name)| name.as_str())
    }

    /// A node was created at `p`.
    pub fn created(&mut self, p: &str) {
        let (Some(dir), name) = (path::parent(p), path::name(p)) else { return };
        if let Some(line) = self.by_dir.get_mut(dir)
            && let Some(sequence) = path::sequence_of(name)
        {
            line.insert((sequence, name.to_owned()));
        }
    }

    /// The node at `p` was deleted (and with it the line it may have been the directory of).
    pub fn deleted(&mut self, p: &str) {
        let (Some(dir), name) = (path::parent(p), path::name(p)) else { return };
        if let Some(line) = self.by_dir.get_mut(dir)
            && let Some(sequence) = path::sequence_of(name)
        {
            line.remove(&(sequence, name.to_owned()));
        }
        self.by_dir.remove(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Creates and deletes in one directory, by index into a pool of names with and without
    /// suffixes (suffixes out of name order, as the recipes' session-prefixed names are).
    #[derive(Clone, Debug)]
    enum Change {
        Create(usize),
        Delete(usize),
    }

    fn name(i: usize) -> String {
        match i % 3 {
            0 => format!("{:02}-lock-{:010}", 99 - i, i),
            1 => format!("plain-{i}"),
            _ => format!("{:02}-read-{:010}", i, 1000 - i),
        }
    }

    proptest! {
        #[test]
        fn the_first_of_a_followed_line_is_the_first_a_scan_finds(
            before in proptest::collection::btree_set(0usize..40, 0..10),
            changes in proptest::collection::vec(prop_oneof![(0usize..40).prop_map(Change::Create), (0usize..40).prop_map(Change::Delete)], 0..60),
        ) {
            let mut children: BTreeSet<String> = before.iter().map(|i| name(*i)).collect();
            let mut lines = Lines::default();
            lines.follow("/q", children.iter().map(String::as_str));
            for change in changes {
                match change {
                    Change::Create(i) if children.insert(name(i)) => lines.created(&format!("/q/{}", name(i))),
                    Change::Delete(i) if children.remove(&name(i)) => lines.deleted(&format!("/q/{}", name(i))),
                    _ => {}
                }
                let scanned = crate::state::first_in_line(children.iter().map(String::as_str));
                prop_assert_eq!(lines.first("/q"), scanned);
            }
        }
    }

    #[test]
    fn only_followed_directories_are_kept_and_a_deleted_one_is_forgotten() {
        let mut lines = Lines::default();
        lines.created("/q/w-0000000001");
        assert!(!lines.follows("/q"));
        lines.follow("/q", ["w-0000000002", "x"]);
        lines.created("/q/w-0000000001");
        lines.created("/other/w-0000000000");
        assert!(!lines.follows("/other"), "a create does not start following");
        assert_eq!(lines.first("/q"), Some("w-0000000001"));
        lines.deleted("/q");
        assert!(!lines.follows("/q"), "the directory itself went");
        lines.follow("/q", []);
        assert!(lines.follows("/q"));
        assert_eq!(lines.first("/q"), None, "an empty line");
        lines.forget("/q");
        assert!(!lines.follows("/q"));
    }
}
