//! A digest of the replicated state, equal on two machines exactly when they hold the same
//! tree, sessions and last zxid. FNV-1a: stable across builds and platforms, unlike std's
//! hasher; this is a consistency check, not a defence against forgery.

use super::StateMachine;

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.bytes(bytes);
    }
}

impl StateMachine {
    /// The digest of the tree, the sessions and the last zxid.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.u64(self.last_zxid.0);
        h.u64(u64::from(self.epoch));
        for (p, node) in self.tree.iter() {
            let s = node.stat();
            h.field(p.as_bytes());
            match node.data() {
                Some(data) => h.field(data),
                None => h.u64(u64::MAX),
            }
            h.field(format!("{:?}", node.kind()).as_bytes());
            for v in [s.czxid.0, s.mzxid.0, s.pzxid.0, s.ctime_ms, s.mtime_ms, s.ephemeral_owner.0] {
                h.u64(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                h.u64(u64::from(v as u32));
            }
            h.u64(u64::from(s.data_length));
            h.u64(u64::from(s.num_children));
        }
        for (id, session) in self.sessions.iter() {
            let r = &session.record;
            h.u64(id.0);
            h.u64(u64::from(r.timeout_ms));
            h.u64(r.secret);
            h.u64(u64::from(r.connection_bound));
            h.u64(session.ephemerals.len() as u64);
        }
        h.0
    }
}
