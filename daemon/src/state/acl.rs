//! Who a session is, and what a node's ACL lets it do.
//!
//! A session's identity comes from the connection it is attached to (SO_PEERCRED for the Unix
//! socket, the token or certificate for TCP); it is not replicated or stored, because a session
//! resumed on another connection is whoever that connection proves to be.

use baton_proto::{AclEntry, ErrorCode, ErrorReply, Perms, Principal, acl};
use std::sync::Arc;

/// A node's ACL, shared between nodes that have the same one.
pub type Acl = Arc<[AclEntry]>;

/// The principals a connection proved, and whether one of them is a configured superuser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Besides `anyone`, which everybody is.
    pub principals: Vec<Principal>,
    /// Passes every ACL check (root's uid by default; configurable).
    pub superuser: bool,
}

impl Identity {
    /// What `creator` entries become: the caller's own principals (its uid, token or
    /// certificate name), not the groups it happens to be in.
    fn creator(&self) -> impl Iterator<Item = &Principal> {
        self.principals.iter().filter(|p| !matches!(p, Principal::Gid(_) | Principal::Anyone | Principal::Creator))
    }

    pub fn may(&self, acl: &[AclEntry], wanted: Perms) -> bool {
        self.superuser || acl::granted(acl, &self.principals).contains(wanted)
    }

    /// Ok if the ACL grants `wanted`; else `NoAuth` naming the node and the permission.
    pub fn check(&self, acl: &[AclEntry], wanted: Perms, p: &str) -> Result<(), ErrorReply> {
        if self.may(acl, wanted) {
            Ok(())
        } else {
            Err(ErrorReply::new(ErrorCode::NoAuth, format!("{p}: {} permission needed", wanted.name())))
        }
    }

    /// An ACL as it is stored: `creator` entries replaced by this caller's own principals,
    /// entries for the same principal merged, sorted. Empty, or `creator` for a caller with
    /// no identity of its own, is an error.
    pub fn resolve(&self, requested: &[AclEntry]) -> Result<Vec<AclEntry>, ErrorReply> {
        let invalid = |message: &str| ErrorReply::new(ErrorCode::InvalidArgument, message);
        let mut resolved: Vec<AclEntry> = Vec::with_capacity(requested.len());
        for entry in requested {
            if entry.principal == Principal::Creator {
                let mut own = self.creator().peekable();
                if own.peek().is_none() {
                    return Err(invalid("a `creator` ACL entry needs an authenticated caller"));
                }
                resolved.extend(own.map(|p| AclEntry::new(p.clone(), entry.perms)));
            } else {
                resolved.push(entry.clone());
            }
        }
        resolved.sort();
        resolved.dedup_by(|later, kept| {
            let same = later.principal == kept.principal;
            if same {
                kept.perms = kept.perms.union(later.perms);
            }
            same
        });
        resolved.retain(|entry| entry.perms != Perms::NONE);
        if resolved.is_empty() {
            return Err(invalid("an ACL needs at least one entry granting something"));
        }
        Ok(resolved)
    }
}

/// The ACL of a machine that was given no policy: everyone may do everything.
pub fn open() -> Vec<AclEntry> {
    vec![AclEntry::new(Principal::Anyone, Perms::ALL)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32, gid: u32) -> Identity {
        Identity { principals: vec![Principal::Uid(uid), Principal::Gid(gid)], superuser: false }
    }

    #[test]
    fn creator_becomes_the_callers_own_principal_not_its_group() {
        let acl = baton_proto::acl::parse_list("creator:all,anyone:r,uid:7:w").unwrap();
        let resolved = unix(7, 100).resolve(&acl).unwrap();
        let text: Vec<String> = resolved.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["anyone:r", "uid:7:rwcda"]);
    }

    #[test]
    fn creator_without_an_identity_and_empty_acls_are_refused() {
        let creator = baton_proto::acl::parse_list("creator:all").unwrap();
        assert_eq!(Identity::default().resolve(&creator).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(unix(1, 1).resolve(&[]).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn checks_grant_by_uid_gid_or_anyone_and_superusers_pass() {
        let acl = baton_proto::acl::parse_list("uid:7:rw,gid:100:r").unwrap();
        assert!(unix(7, 1).may(&acl, Perms::WRITE));
        assert!(unix(8, 100).may(&acl, Perms::READ));
        assert!(!unix(8, 100).may(&acl, Perms::WRITE));
        let err = unix(9, 9).check(&acl, Perms::READ, "/x").unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (ErrorCode::NoAuth, "/x: read permission needed"));
        assert!(Identity { principals: vec![], superuser: true }.may(&acl, Perms::ADMIN));
    }
}
