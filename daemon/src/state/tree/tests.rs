use super::*;
use crate::state::acl;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn names<'a>(tree: &'a Tree, p: &str) -> Vec<&'a str> {
    tree.children(p).map(|(name, _)| name).collect()
}

#[test]
fn create_and_delete_keep_parent_bookkeeping() {
    let mut tree = Tree::new();
    let open = acl::open();
    tree.create("/a", Some(b"x"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 10);
    tree.create("/a/b", Some(&[]), NodeKind::Ephemeral, &open, SessionId(7), Zxid(2), 11);
    let a = tree.get("/a").unwrap().stat();
    assert_eq!((a.cversion, a.num_children, a.pzxid), (1, 1, Zxid(2)));
    assert_eq!(names(&tree, "/a"), ["b"]);
    assert_eq!(tree.get("/a/b").unwrap().stat().ephemeral_owner, SessionId(7));
    tree.delete("/a/b", Zxid(3));
    let a = tree.get("/a").unwrap().stat();
    assert_eq!((a.cversion, a.num_children, a.pzxid), (2, 0, Zxid(3)));
    assert_eq!(a.mzxid, Zxid(1), "child changes leave the data zxid alone");
    assert_eq!(tree.get("/a").unwrap().data(), Some(&b"x"[..]));
}

#[test]
fn set_replaces_data_and_counts_the_version() {
    let mut tree = Tree::new();
    tree.create("/a", Some(b"x"), NodeKind::Persistent, &acl::open(), SessionId::NONE, Zxid(1), 10);
    let stat = tree.set("/a", Some(b"longer data"), Zxid(2), 20);
    assert_eq!((stat.version, stat.mzxid, stat.mtime_ms, stat.data_length), (1, Zxid(2), 20, 11));
    assert_eq!(tree.get("/a").unwrap().stat(), stat);
    tree.set("/a", None, Zxid(3), 30);
    assert_eq!(tree.get("/a").unwrap().data(), None, "null data stays null");
    assert_eq!(tree.get("/a").unwrap().stat().data_length, 0);
}

#[test]
fn set_acl_shares_and_releases_interned_acls() {
    let mut tree = Tree::new();
    let open = acl::open();
    tree.create("/a", Some(b""), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 0);
    assert_eq!(tree.acls.len(), 1, "the root and /a share one ACL");
    let stat = tree.set_acl("/a", &[]);
    assert_eq!(stat.aversion, 1);
    assert!(tree.get("/a").unwrap().acl().is_empty());
    assert_eq!(tree.acls.len(), 2);
    tree.delete("/a", Zxid(2));
    assert_eq!(tree.acls.len(), 1, "an ACL no node uses is dropped");
}

#[test]
fn descendants_count_every_depth_and_not_siblings_sharing_a_prefix() {
    let mut tree = Tree::new();
    let open = acl::open();
    for (i, p) in ["/a", "/a/b", "/a/b/c", "/ab", "/a-"].into_iter().enumerate() {
        tree.create(p, Some(&[]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(i as u64 + 1), 0);
    }
    assert_eq!(tree.descendants("/a"), 2, "/ab and /a- are not under /a");
    assert_eq!(tree.descendants("/a/b/c"), 0);
    assert_eq!(tree.descendants("/"), 5);
}

#[test]
fn children_skip_grandchildren_and_keep_name_order() {
    let mut tree = Tree::new();
    let open = acl::open();
    for (i, p) in ["/a", "/a/x", "/a/x/y", "/a-", "/a0", "/b", "/b/c"].into_iter().enumerate() {
        tree.create(p, Some(&[]), NodeKind::Persistent, &open, SessionId::NONE, Zxid(i as u64 + 1), 0);
    }
    assert_eq!(names(&tree, "/"), ["a", "a-", "a0", "b"]);
    assert_eq!(names(&tree, "/a"), ["x"]);
    assert!(names(&tree, "/a/x/y").is_empty());
}

#[test]
fn rebuilds_from_records_and_reports_orphans() {
    let mut tree = Tree::new();
    let open = acl::open();
    tree.create("/a", Some(b"1"), NodeKind::Persistent, &open, SessionId::NONE, Zxid(1), 0);
    tree.create("/a/b", Some(b"2"), NodeKind::Ttl { ttl_ms: 5 }, &open, SessionId::NONE, Zxid(2), 0);
    let mut records: Vec<_> = tree.iter().map(|(p, _)| (p.to_owned(), tree.record(p).unwrap())).collect();
    records.push(("/x/y".into(), tree.record("/a").unwrap()));
    let (rebuilt, orphans) = Tree::from_records(records);
    assert_eq!(names(&rebuilt, "/a"), ["b"]);
    assert_eq!(rebuilt.get("/a/b"), tree.get("/a/b"));
    assert_eq!(rebuilt.ttl_nodes().map(|(p, _)| p).collect::<Vec<_>>(), ["/a/b"]);
    assert_eq!(orphans, ["/x/y"]);
}

/// A step of a random run: create or delete a path built from a few short names.
#[derive(Clone, Debug)]
enum Step {
    Create(Vec<u8>, Option<Vec<u8>>),
    Delete(Vec<u8>),
    Set(Vec<u8>, Option<Vec<u8>>),
}

fn path_of(segments: &[u8]) -> String {
    const NAMES: [&str; 5] = ["a", "a-", "a0", "b", "ab"];
    let mut p = String::new();
    for &s in segments {
        p.push('/');
        p.push_str(NAMES[usize::from(s) % NAMES.len()]);
    }
    p
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let segments = proptest::collection::vec(0u8..5, 1..4);
    let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4));
    let step = prop_oneof![
        (segments.clone(), data.clone()).prop_map(|(s, d)| Step::Create(s, d)),
        segments.clone().prop_map(Step::Delete),
        (segments, data).prop_map(|(s, d)| Step::Set(s, d)),
    ];
    proptest::collection::vec(step, 0..60)
}

proptest! {
    /// The tree against a map from path to data: same nodes, same children (derived from the
    /// model by parent), same counts, after every step.
    #[test]
    fn agrees_with_a_map_of_paths(steps in steps()) {
        let mut tree = Tree::new();
        let mut model: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::from([("/".to_owned(), Some(vec![]))]);
        let open = acl::open();
        for (i, step) in steps.into_iter().enumerate() {
            let zxid = Zxid(i as u64 + 1);
            match step {
                Step::Create(s, data) => {
                    let p = path_of(&s);
                    let parent = path::parent(&p).unwrap();
                    if model.contains_key(parent) && !model.contains_key(&p) {
                        tree.create(&p, data.as_deref(), NodeKind::Persistent, &open, SessionId::NONE, zxid, 0);
                        model.insert(p, data);
                    }
                }
                Step::Delete(s) => {
                    let p = path_of(&s);
                    let has_children = model.keys().any(|k| path::parent(k) == Some(p.as_str()));
                    if model.contains_key(&p) && !has_children {
                        tree.delete(&p, zxid);
                        model.remove(&p);
                    }
                }
                Step::Set(s, data) => {
                    let p = path_of(&s);
                    if model.contains_key(&p) {
                        tree.set(&p, data.as_deref(), zxid, 0);
                        model.insert(p, data);
                    }
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            for (p, data) in &model {
                let node = tree.get(p).unwrap();
                prop_assert_eq!(node.data(), data.as_deref());
                let children: Vec<&str> =
                    model.keys().filter(|k| path::parent(k) == Some(p.as_str())).map(|k| path::name(k)).collect();
                prop_assert_eq!(names(&tree, p), children.clone());
                prop_assert_eq!(node.stat().num_children as usize, children.len());
                let under = if p == "/" { "/".to_owned() } else { format!("{p}/") };
                let descendants = model.keys().filter(|k| k.starts_with(&under) && *k != "/").count();
                prop_assert_eq!(tree.descendants(p), descendants);
            }
        }
    }
}
