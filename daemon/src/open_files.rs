//! The open-files limit: raised at start to what the hard limit allows, and compared with the
//! connections the configuration admits.
//!
//! A shell commonly starts processes with a soft limit of 1,024 descriptors under a much
//! higher hard limit. A connection takes one, so that soft limit would stop accepting near
//! 1,000 connections while `connections_max` says 4,096. Raising the soft limit up to the hard
//! one is what the pair is for. Under the systemd unit both are `LimitNOFILE` and nothing
//! changes.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors one client connection holds: its socket, which the engine shares
/// (`engine::PlainStream`).
pub const PER_CONNECTION: u64 = 1;
/// Descriptors a ZooKeeper client's connection holds.
pub const PER_ZK_CONNECTION: u64 = 1;
/// Descriptors kept for everything else: the store's files, the listeners, the runtime, a
/// backup being written, the replication link, and some to spare.
pub const RESERVED: u64 = 64;
/// The most a soft limit is raised to: the kernel's default `fs.nr_open`, which a hard limit of
/// "unlimited" would pass (and `setrlimit` refuse).
const RAISE_MAX: u64 = 1 << 20;

/// The limit found at start and the one in force after `raise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft open-files limit to the hard limit (at most `RAISE_MAX`).
///
/// # Errors
/// The limit cannot be read, or the kernel refuses the new one.
pub fn raise() -> nix::Result<Raised> {
    // `rlim_t` is a u64 on Linux.
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    match raised_soft_limit(before, hard) {
        Some(now) => {
            setrlimit(Resource::RLIMIT_NOFILE, now, hard)?;
            Ok(Raised { before, now })
        }
        None => Ok(Raised { before, now: before }),
    }
}

/// The soft limit to set, if the current one is below what the hard limit allows.
fn raised_soft_limit(soft: u64, hard: u64) -> Option<u64> {
    let target = hard.min(RAISE_MAX);
    (soft < target).then_some(target)
}

/// Descriptors the configured connection limits may hold at once, with the reserve.
pub fn needed(connections_max: usize, zk_listener: bool) -> u64 {
    let connections = connections_max as u64;
    let zk = if zk_listener { connections * PER_ZK_CONNECTION } else { 0 };
    connections * PER_CONNECTION + zk + RESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_rises_to_the_hard_one_and_no_further_than_the_kernel_allows() {
        assert_eq!(raised_soft_limit(1_024, 524_288), Some(524_288));
        assert_eq!(raised_soft_limit(65_536, 65_536), None, "already there");
        assert_eq!(raised_soft_limit(1_024, u64::MAX), Some(RAISE_MAX), "an unlimited hard limit");
        assert_eq!(raised_soft_limit(2_000_000, u64::MAX), None, "never lowered");
    }

    #[test]
    fn the_need_counts_one_descriptor_a_connection_and_as_many_again_with_the_zookeeper_listener() {
        assert_eq!(needed(4_096, false), 4_096 + RESERVED);
        assert_eq!(needed(4_096, true), 8_192 + RESERVED, "its connections have a cap of their own");
        assert_eq!(needed(0, false), RESERVED);
    }
}
