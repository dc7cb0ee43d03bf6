//! Who may connect: at most `connections_max` connections in all, and at most
//! `connections_per_peer_max` from one Unix user (uid) or one TCP address.

use crate::engine::Peer;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a per-peer limit counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(IpAddr),
}

impl From<Peer> for PeerKey {
    fn from(peer: Peer) -> Self {
        match peer {
            Peer::Unix { uid, .. } => PeerKey::Uid(uid),
            Peer::Tcp(addr) => PeerKey::Ip(addr.ip()),
        }
    }
}

pub struct Admission {
    total: Arc<Semaphore>,
    total_max: usize,
    per_peer: Arc<Mutex<HashMap<PeerKey, usize>>>,
    per_peer_max: usize,
}

/// A place taken by an admitted connection; given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    _total: OwnedSemaphorePermit,
    per_peer: Arc<Mutex<HashMap<PeerKey, usize>>>,
    key: PeerKey,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.per_peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Admission {
    pub fn new(total_max: usize, per_peer_max: usize) -> Admission {
        Admission { total: Arc::new(Semaphore::new(total_max)), total_max, per_peer: Arc::default(), per_peer_max }
    }

    /// Admits a connection from `peer`, or says why not.
    pub fn admit(&self, peer: Peer) -> Result<Admitted, String> {
        let Ok(total) = self.total.clone().try_acquire_owned() else {
            return Err(format!("too many connections (the limit is {})", self.total_max));
        };
        let key = PeerKey::from(peer);
        let mut counts = self.per_peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(key).or_default();
        if *count >= self.per_peer_max {
            let who = match key {
                PeerKey::Uid(uid) => format!("uid {uid}"),
                PeerKey::Ip(ip) => ip.to_string(),
            };
            return Err(format!("too many connections from {who} (the limit is {})", self.per_peer_max));
        }
        *count += 1;
        Ok(Admitted { _total: total, per_peer: self.per_peer.clone(), key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_peer_and_in_all_and_gives_places_back() {
        let admission = Admission::new(3, 2);
        let alice = Peer::Unix { uid: 1000, gid: 1000, pid: None };
        let bob = Peer::Unix { uid: 1001, gid: 1001, pid: None };
        let a1 = admission.admit(alice).unwrap();
        let _a2 = admission.admit(alice).unwrap();
        assert!(admission.admit(alice).unwrap_err().contains("uid 1000"));
        let _b1 = admission.admit(bob).unwrap();
        assert!(admission.admit(bob).unwrap_err().contains("too many connections (the limit is 3)"));
        drop(a1);
        assert!(admission.admit(bob).is_ok(), "a closed connection frees its places");
    }
}
