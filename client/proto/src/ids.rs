//! Identifier newtypes, shown in hex as ZooKeeper shows them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A transaction id: `(epoch << 32) | counter`, strictly increasing and never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Zxid(pub u64);

impl Zxid {
    pub const ZERO: Zxid = Zxid(0);

    /// The zxid made of an epoch and a counter within it.
    pub fn new(epoch: u32, counter: u32) -> Self {
        Zxid((u64::from(epoch) << 32) | u64::from(counter))
    }

    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A session id. Sessions are numbered by the zxid of the transaction that created them, so an
/// id is unique across restarts. `SessionId(0)` means "no session" (a persistent node's owner).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl SessionId {
    pub const NONE: SessionId = SessionId(0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_splits_into_epoch_and_counter() {
        let zxid = Zxid::new(3, 7);
        assert_eq!(zxid.0, 0x3_0000_0007);
        assert_eq!((zxid.epoch(), zxid.counter()), (3, 7));
        assert_eq!(zxid.to_string(), "0x300000007");
    }
}
