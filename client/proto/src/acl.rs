//! Access control lists: who may do what to a node.
//!
//! A node's ACL is a list of entries, each granting a set of [`Perms`] to a [`Principal`].
//! A caller may do something if any entry naming one of its principals grants it. The
//! permissions mean what ZooKeeper's do: `read` (data, children, ACL), `write` (set data),
//! `create` and `delete` (of *children*: checked on the parent), `admin` (change the ACL; on
//! the root, also the admin operations: status, backup, promote).
//!
//! Text form, as the CLI and the configuration write it: `PRINCIPAL:PERMS`, e.g.
//! `anyone:r`, `uid:1000:rwcda`, `gid:100:rw`, `token:deploy:rwcd`, `cert:web-1:r`,
//! `creator:all` (`all` is `rwcda`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A set of permissions, as ZooKeeper numbers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Perms(pub u8);

impl Perms {
    pub const NONE: Perms = Perms(0);
    pub const READ: Perms = Perms(1);
    pub const WRITE: Perms = Perms(2);
    pub const CREATE: Perms = Perms(4);
    pub const DELETE: Perms = Perms(8);
    pub const ADMIN: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);

    const LETTERS: [(char, Perms); 5] =
        [('r', Perms::READ), ('w', Perms::WRITE), ('c', Perms::CREATE), ('d', Perms::DELETE), ('a', Perms::ADMIN)];

    pub fn contains(self, wanted: Perms) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    #[must_use]
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    /// The name of a single permission, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Perms::READ => "read",
            Perms::WRITE => "write",
            Perms::CREATE => "create",
            Perms::DELETE => "delete",
            Perms::ADMIN => "admin",
            _ => "these",
        }
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        for (letter, perm) in Perms::LETTERS {
            if self.contains(perm) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Perms {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Perms::ALL);
        }
        if s.is_empty() {
            return Err("no permissions given (use letters of rwcda, or all)".into());
        }
        let mut perms = Perms::NONE;
        for c in s.chars() {
            let (_, perm) = Perms::LETTERS
                .iter()
                .find(|(letter, _)| *letter == c)
                .ok_or_else(|| format!("unknown permission {c:?} (use letters of rwcda, or all)"))?;
            perms = perms.union(*perm);
        }
        Ok(perms)
    }
}

/// Who an ACL entry is for. Append-only (stored and sent by variant index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    /// Everyone, authenticated or not.
    Anyone,
    /// A Unix client whose SO_PEERCRED uid is this.
    Uid(u32),
    /// A Unix client whose SO_PEERCRED (primary) gid is this.
    Gid(u32),
    /// A TCP client that authenticated with the token of this name.
    Token(String),
    /// A TLS client whose certificate has this name.
    Cert(String),
    /// Whoever creates the node (or sets the ACL): replaced by that caller's own identity
    /// before it is stored. Never part of a stored ACL.
    Creator,
    /// A ZooKeeper client that authenticated with the `digest` scheme: `user:HASH`, HASH
    /// being base64(SHA-1("user:password")), as ZooKeeper writes digest ids.
    Digest(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anyone => f.write_str("anyone"),
            Principal::Uid(uid) => write!(f, "uid:{uid}"),
            Principal::Gid(gid) => write!(f, "gid:{gid}"),
            Principal::Token(name) => write!(f, "token:{name}"),
            Principal::Cert(name) => write!(f, "cert:{name}"),
            Principal::Creator => f.write_str("creator"),
            Principal::Digest(id) => write!(f, "digest:{id}"),
        }
    }
}

impl FromStr for Principal {
    type Err = String;

    /// `anyone`, `creator`, `uid:N`, `gid:N`, `token:NAME`, `cert:NAME`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |n: &str, what: &str| n.parse::<u32>().map_err(|_| format!("{what} {n:?} is not a number"));
        let named = |n: &str, what: &str| {
            if n.is_empty() { Err(format!("{what} needs a name")) } else { Ok(n.to_owned()) }
        };
        match s.split_once(':') {
            None if s == "anyone" => Ok(Principal::Anyone),
            None if s == "creator" => Ok(Principal::Creator),
            Some(("uid", n)) => number(n, "uid").map(Principal::Uid),
            Some(("gid", n)) => number(n, "gid").map(Principal::Gid),
            Some(("token", n)) => named(n, "token").map(Principal::Token),
            Some(("cert", n)) => named(n, "cert").map(Principal::Cert),
            Some(("digest", n)) => named(n, "digest").map(Principal::Digest),
            _ => Err(format!(
                "unknown principal {s:?} (anyone, creator, uid:N, gid:N, token:NAME, cert:NAME, digest:USER:HASH)"
            )),
        }
    }
}

/// One grant: `perms` to `principal`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    pub principal: Principal,
    pub perms: Perms,
}

impl AclEntry {
    pub fn new(principal: Principal, perms: Perms) -> Self {
        AclEntry { principal, perms }
    }
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal, self.perms)
    }
}

impl FromStr for AclEntry {
    type Err = String;

    /// `PRINCIPAL:PERMS`: the permissions follow the last colon.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (principal, perms) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("ACL entry {s:?} is not PRINCIPAL:PERMS (e.g. uid:1000:rwcda)"))?;
        Ok(AclEntry { principal: principal.parse()?, perms: perms.parse()? })
    }
}

/// Parses a principal as people write it: as [`Principal::from_str`], and `uid:` and `gid:`
/// also take a user or group name, looked up on this host.
pub fn parse_principal_named(text: &str) -> Result<Principal, String> {
    let lookup = |name: &str, user: bool| {
        let found = if user {
            nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
        } else {
            nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
        };
        found.ok_or_else(|| format!("no {} named {name:?}", if user { "user" } else { "group" }))
    };
    match text.split_once(':') {
        Some(("uid", name)) if name.parse::<u32>().is_err() => lookup(name, true).map(Principal::Uid),
        Some(("gid", name)) if name.parse::<u32>().is_err() => lookup(name, false).map(Principal::Gid),
        _ => text.parse(),
    }
}

/// Parses one entry as [`AclEntry::from_str`], with user and group names as
/// [`parse_principal_named`] takes them.
pub fn parse_entry_named(text: &str) -> Result<AclEntry, String> {
    let (principal, perms) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("ACL entry {text:?} is not PRINCIPAL:PERMS (e.g. uid:1000:rwcda)"))?;
    Ok(AclEntry { principal: parse_principal_named(principal)?, perms: perms.parse()? })
}

/// Parses a comma-separated list of entries (`anyone:r,uid:0:all`).
pub fn parse_list(s: &str) -> Result<Vec<AclEntry>, String> {
    s.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::parse).collect()
}

/// The permissions `acl` grants to a caller with `principals` (which need not list `Anyone`).
pub fn granted(acl: &[AclEntry], principals: &[Principal]) -> Perms {
    acl.iter()
        .filter(|entry| entry.principal == Principal::Anyone || principals.contains(&entry.principal))
        .fold(Perms::NONE, |perms, entry| perms.union(entry.perms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_text() {
        for text in ["anyone:r", "uid:1000:rwcda", "gid:7:wd", "token:deploy:rc", "cert:web:1:a", "creator:rwcda"] {
            let entry: AclEntry = text.parse().unwrap();
            assert_eq!(entry.to_string(), text);
        }
        assert_eq!("creator:all".parse::<AclEntry>().unwrap().perms, Perms::ALL);
        assert_eq!("cert:web:1:a".parse::<AclEntry>().unwrap().principal, Principal::Cert("web:1".into()));
    }

    #[test]
    fn bad_entries_say_why() {
        for (text, why) in [
            ("uid:x:r", "not a number"),
            ("anyone:rq", "unknown permission"),
            ("anyone", "not PRINCIPAL:PERMS"),
            ("who:r", "unknown principal"),
            ("token::r", "needs a name"),
            ("anyone:", "no permissions"),
        ] {
            let err = text.parse::<AclEntry>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn grants_are_the_union_of_matching_entries() {
        let acl = parse_list("anyone:r, uid:5:w, gid:9:cd, token:t:a").unwrap();
        assert_eq!(granted(&acl, &[]), Perms::READ);
        assert_eq!(granted(&acl, &[Principal::Uid(5), Principal::Gid(9)]).to_string(), "rwcd");
        assert_eq!(granted(&acl, &[Principal::Token("t".into())]).to_string(), "ra");
        assert_eq!(granted(&acl, &[Principal::Uid(6)]), Perms::READ);
    }
}
