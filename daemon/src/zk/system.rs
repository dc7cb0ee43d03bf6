//! ZooKeeper's system nodes as a standalone ZooKeeper 3.8 presents them (ZK-PROTOCOL.md
//! §2.10): `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, with empty data and
//! zeroed Stats, and `zookeeper` among the root's children. Pure.
//!
//! They are not nodes of Baton's tree (native clients never see them): the listener answers
//! requests on them itself, and adds the `zookeeper` child to what it says of the root.
//! Writes to them, or to anything under `/zookeeper`, are refused: creating one that exists
//! is `NodeExists`, anything else `NoAuth` (Baton keeps no quotas). Their watches never fire,
//! as theirs never change.

use super::jute::{Acl, Request, Stat, Writer};
use super::translate::{Shape, code};
use baton_proto::Response;

/// The system subtree's root and its children, in the order `getChildren` lists them.
const ROOT: &str = "/zookeeper";
const CHILDREN: [&str; 2] = ["config", "quota"];
/// `perms` of `world:anyone` on each: all on `/zookeeper` and its quota, read on the config.
const ALL: i32 = 31;
const READ: i32 = 1;

/// Whether `path` is `/zookeeper` or under it.
pub fn is_system(path: &str) -> bool {
    path == ROOT || path.strip_prefix(ROOT).is_some_and(|rest| rest.starts_with('/'))
}

/// The system node at `path`: its Stat and its ACL's perms for `world:anyone`.
fn node(path: &str) -> Option<(Stat, i32)> {
    match path {
        ROOT => Some((Stat { num_children: CHILDREN.len() as i32, ..Stat::default() }, ALL)),
        "/zookeeper/quota" => Some((Stat::default(), ALL)),
        // Observed on 3.8: all zeros but aversion -1.
        "/zookeeper/config" => Some((Stat { aversion: -1, ..Stat::default() }, READ)),
        _ => None,
    }
}

/// The answer to a request on the system subtree, or `None` when the request is not about
/// it (and goes to the engine as usual).
pub fn answer(request: &Request) -> Option<Shape> {
    let reply = |err: i32, body: Vec<u8>| Some(Shape::Local { err, body, zxid: None, close: false });
    let mut w = Writer::new();
    match request {
        Request::Exists { path, .. } | Request::GetData { path, .. } | Request::GetAcl { path } if is_system(path) => {
            let Some((stat, perms)) = node(path) else { return reply(code::NO_NODE, Vec::new()) };
            match request {
                Request::GetData { .. } => {
                    w.bytes(&[]);
                }
                Request::GetAcl { .. } => {
                    w.acls(&[Acl { perms, scheme: "world".into(), id: "anyone".into() }]);
                }
                _ => {}
            }
            stat.write(&mut w);
            reply(code::OK, w.into_bytes())
        }
        Request::GetChildren { path, two, .. } if is_system(path) => {
            let Some((stat, _)) = node(path) else { return reply(code::NO_NODE, Vec::new()) };
            if path == ROOT {
                w.strings(&CHILDREN);
            } else {
                w.strings::<&str>(&[]);
            }
            if *two {
                stat.write(&mut w);
            }
            reply(code::OK, w.into_bytes())
        }
        Request::GetAllChildrenNumber { path } if is_system(path) => match node(path) {
            Some((stat, _)) => {
                w.int(stat.num_children);
                reply(code::OK, w.into_bytes())
            }
            None => reply(code::NO_NODE, Vec::new()),
        },
        Request::Create { create, .. } if is_system(&create.path) => {
            reply(if node(&create.path).is_some() { code::NODE_EXISTS } else { code::NO_AUTH }, Vec::new())
        }
        Request::Delete { path, .. } | Request::SetData { path, .. } | Request::SetAcl { path, .. }
            if is_system(path) =>
        {
            reply(code::NO_AUTH, Vec::new())
        }
        _ => None,
    }
}

/// Whether the reply to `request` speaks of the root, whose children include `zookeeper`.
pub fn about_root(request: &Request) -> bool {
    match request {
        Request::Exists { path, .. }
        | Request::GetData { path, .. }
        | Request::SetData { path, .. }
        | Request::GetAcl { path }
        | Request::SetAcl { path, .. }
        | Request::GetChildren { path, .. }
        | Request::GetAllChildrenNumber { path } => path == "/",
        _ => false,
    }
}

/// A reply about the root, with the system subtree added: `zookeeper` among the children,
/// counted in `numChildren` (and its three nodes among the descendants).
pub fn with_system_nodes(response: Response) -> Response {
    let bump = |mut stat: baton_proto::Stat| {
        stat.num_children += 1;
        stat
    };
    match response {
        Response::Children { mut children, stat } => {
            children.push("zookeeper".to_owned());
            Response::Children { children, stat: bump(stat) }
        }
        Response::Exists(stat) => Response::Exists(stat.map(bump)),
        Response::Data { data, stat } => Response::Data { data, stat: bump(stat) },
        Response::Set(stat) => Response::Set(bump(stat)),
        Response::AclSet(stat) => Response::AclSet(bump(stat)),
        Response::Acl { acl, stat } => Response::Acl { acl, stat: bump(stat) },
        Response::Descendants(n) => Response::Descendants(n + 1 + CHILDREN.len() as u64),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::jute::Reader;

    fn local(request: &Request) -> (i32, Vec<u8>) {
        match answer(request) {
            Some(Shape::Local { err, body, .. }) => (err, body),
            other => panic!("not answered locally: {other:?}"),
        }
    }

    #[test]
    fn the_system_subtree_is_recognised_by_whole_segments() {
        assert!(is_system("/zookeeper") && is_system("/zookeeper/config") && is_system("/zookeeper/x/y"));
        assert!(!is_system("/zookeeperx") && !is_system("/") && !is_system("/a/zookeeper"));
        assert_eq!(answer(&Request::Exists { path: "/zookeeperx".into(), watch: false }), None);
    }

    #[test]
    fn config_has_empty_data_and_a_zero_stat_but_aversion() {
        let (err, body) = local(&Request::GetData { path: "/zookeeper/config".into(), watch: true });
        assert_eq!(err, 0);
        let mut r = Reader::new(&body);
        assert_eq!(r.buffer("data").unwrap(), Vec::<u8>::new());
        let stat = Stat::read(&mut r).unwrap();
        assert_eq!(stat, Stat { aversion: -1, ..Stat::default() });
        let (err, body) = local(&Request::GetAcl { path: "/zookeeper/config".into() });
        assert_eq!(err, 0);
        let mut r = Reader::new(&body);
        assert_eq!(r.acls().unwrap(), vec![Acl { perms: 1, scheme: "world".into(), id: "anyone".into() }]);
    }

    #[test]
    fn zookeeper_lists_config_and_quota_and_writes_are_refused() {
        let (err, body) = local(&Request::GetChildren { path: "/zookeeper".into(), watch: false, two: true });
        assert_eq!(err, 0);
        let mut r = Reader::new(&body);
        assert_eq!(r.strings("children").unwrap(), vec!["config".to_owned(), "quota".to_owned()]);
        assert_eq!(Stat::read(&mut r).unwrap().num_children, 2);
        assert_eq!(local(&Request::Exists { path: "/zookeeper/nope".into(), watch: false }).0, code::NO_NODE);
        assert_eq!(local(&Request::Delete { path: "/zookeeper".into(), version: -1 }).0, code::NO_AUTH);
        assert_eq!(
            local(&Request::SetData { path: "/zookeeper/quota".into(), data: Some(vec![]), version: -1 }).0,
            code::NO_AUTH
        );
    }

    #[test]
    fn the_root_counts_and_lists_zookeeper() {
        assert!(about_root(&Request::GetChildren { path: "/".into(), watch: false, two: true }));
        assert!(!about_root(&Request::GetChildren { path: "/a".into(), watch: false, two: true }));
        let stat = baton_proto::Stat { num_children: 1, ..baton_proto::Stat::default() };
        let Response::Children { children, stat } =
            with_system_nodes(Response::Children { children: vec!["a".into()], stat })
        else {
            panic!()
        };
        assert_eq!((children, stat.num_children), (vec!["a".to_owned(), "zookeeper".to_owned()], 2));
        assert!(matches!(with_system_nodes(Response::Descendants(4)), Response::Descendants(7)));
    }
}
