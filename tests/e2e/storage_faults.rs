//! T2 (power loss, torn writes) and T3 (I/O errors on write and fsync) against the daemon's
//! own store — the code `batond` commits with — on simulated disks (one for the database, one
//! for the write-ahead journal) under redb's storage backend interface. Checkpoints come every
//! few commits (chosen at random at each open), so both ways a commit becomes durable — the
//! journal, and a durable database commit — meet every fault. A write counts as acknowledged once `Store::commit` returned Ok, which
//! is when the engine releases its reply. After every fault the store is reopened from what
//! the disk kept, and the durability checker demands: acknowledged ⊆ recovered ⊆ attempted,
//! and a group commit is all or nothing. The negative control commits without fsync and must
//! be caught losing acknowledged writes.
//!
//! `TORTURE_SCALE` (default 1) multiplies the rounds.

use baton_proto::SessionId;
use baton_proto::message::{CreateKind, CreateRequest, Op};
use baton_tests::disk::SimDisk;
use batond::state::{HistoryBound, Limits, StateMachine};
use batond::store::{Batch, Checkpoints, Retention, Store};
use std::collections::BTreeSet;
use std::io::ErrorKind;

fn scale() -> u64 {
    std::env::var("TORTURE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

/// xorshift64*: seeded, so a failure names the seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const RETENTION: Retention = Retention { txns: 64, bytes: u64::MAX };

/// The daemon's store and state machine on a simulated disk, and what the test has written.
struct World {
    disk: SimDisk,
    journal: SimDisk,
    /// A checkpoint after this many journaled commits (1 to 8, chosen at each open).
    checkpoint_every: u64,
    /// `None` between a crash and the recovery: the process that had it open is gone.
    store: Option<Store>,
    sm: StateMachine,
    session: SessionId,
    next_key: u64,
    attempted: BTreeSet<String>,
    acknowledged: BTreeSet<String>,
    /// The keys of the last commit that failed: recovered all together or not at all.
    in_doubt: BTreeSet<String>,
}

impl World {
    fn new() -> World {
        let (disk, journal) = (SimDisk::new(), SimDisk::new());
        let (store, _) =
            Store::open_on(disk.backend(), journal.backend(), RETENTION, HistoryBound::txns(0)).expect("a fresh store");
        let mut world = World {
            disk,
            journal,
            checkpoint_every: 3,
            store: Some(store),
            sm: StateMachine::new(Limits::default()),
            session: SessionId::NONE,
            next_key: 0,
            attempted: BTreeSet::new(),
            acknowledged: BTreeSet::new(),
            in_doubt: BTreeSet::new(),
        };
        let txn = world.sm.prepare_create_session(60_000, false, 1, 1);
        world.session = txn.session_id;
        let mut batch = Batch::default();
        let applied = world.sm.apply(&txn);
        batch.push(&txn, applied.delta, world.sm.epoch());
        world.store().commit(&batch).expect("the first commit is on a healthy disk");
        world
    }

    /// One group commit of `n` creates; true if acknowledged.
    fn write(&mut self, n: u64, rng: &mut Rng) -> bool {
        let mut batch = Batch::default();
        let mut keys = BTreeSet::new();
        for _ in 0..n {
            let key = format!("/k{}", self.next_key);
            self.next_key += 1;
            let data = vec![b'x'; rng.below(300) as usize];
            let op = Op::Create(CreateRequest {
                path: key.clone(),
                data: Some(data),
                kind: CreateKind::Persistent,
                sequential: false,
                acl: Vec::new(),
            });
            let txn = self.sm.prepare_write(self.session, &op, 1).expect("a valid create");
            // Applied in memory first, then the round's records committed, as the engine does.
            let applied = self.sm.apply(&txn);
            batch.push(&txn, applied.delta, self.sm.epoch());
            keys.insert(key);
        }
        self.attempted.extend(keys.iter().cloned());
        let acknowledged = self.store().commit(&batch).is_ok();
        if acknowledged {
            self.acknowledged.extend(keys);
        } else {
            self.in_doubt = keys;
        }
        acknowledged
    }

    fn store(&mut self) -> &mut Store {
        self.store.as_mut().expect("a store is open between recoveries")
    }

    /// The process dies: its open database goes without another write reaching the disk
    /// (drop it while the disk still refuses, as the dead process would not write again).
    fn crash(&mut self) {
        drop(self.store.take());
    }

    /// Both disks lose power at once: see [`SimDisk::power_cut`].
    fn power_cut(&self, rng: &mut Rng, keep_percent: u64, keep_sector_percent: u64) {
        for disk in [&self.disk, &self.journal] {
            let mut keep_rng = Rng(rng.next() | 1);
            let mut sector_rng = Rng(rng.next() | 1);
            disk.power_cut(|_| keep_rng.chance(keep_percent), || sector_rng.chance(keep_sector_percent));
        }
    }

    fn unsynced_writes(&self) -> usize {
        self.disk.unsynced_writes() + self.journal.unsynced_writes()
    }

    /// (writes, syncs, refused) on both disks together.
    fn counts(&self) -> (u64, u64, u64) {
        let (a, b) = (self.disk.counts(), self.journal.counts());
        (a.0 + b.0, a.1 + b.1, a.2 + b.2)
    }

    /// What the engine does after a failed commit or a restart: reopen the store from what
    /// the disk holds and rebuild the state from it; then check it.
    fn recover(&mut self, what: &str) -> Result<usize, String> {
        let (mut store, restored) =
            Store::open_on(self.disk.backend(), self.journal.backend(), RETENTION, HistoryBound::txns(0))
                .map_err(|e| format!("{what}: the store does not reopen: {e}"))?;
        self.checkpoint_every = self.checkpoint_every % 8 + 1;
        store.set_checkpoints(Checkpoints { commits: self.checkpoint_every, bytes: 64 * 1024 });
        self.store = Some(store);
        self.sm = StateMachine::restore(Limits::default(), restored).map_err(|e| format!("{what}: {e}"))?;
        let recovered: BTreeSet<String> =
            self.sm.tree().iter().map(|(p, _)| p.to_owned()).filter(|p| p.starts_with("/k")).collect();
        let lost: Vec<&String> = self.acknowledged.difference(&recovered).collect();
        if !lost.is_empty() {
            return Err(format!("{what}: {} acknowledged writes lost, e.g. {}", lost.len(), lost[0]));
        }
        let phantom: Vec<&String> = recovered.difference(&self.attempted).collect();
        if !phantom.is_empty() {
            return Err(format!("{what}: {} writes recovered that were never attempted", phantom.len()));
        }
        let extra: BTreeSet<String> = recovered.difference(&self.acknowledged).cloned().collect();
        if !extra.is_empty() && extra != self.in_doubt {
            return Err(format!("{what}: a group commit half recovered: {} of {}", extra.len(), self.in_doubt.len()));
        }
        // What came back is durable now, acknowledged or not.
        self.acknowledged = recovered;
        self.in_doubt.clear();
        if self.sm.sessions().get(self.session).is_none() {
            return Err(format!("{what}: the session's record was lost"));
        }
        Ok(extra.len())
    }
}

#[test]
fn t2_power_cuts_and_torn_writes_lose_no_acknowledged_write() {
    let seed = 0x5eed_0002;
    let mut rng = Rng(seed);
    let mut world = World::new();
    let (mut cuts, mut mid_commit, mut torn_kept, mut in_doubt_recovered) = (0, 0, 0, 0);
    for round in 0..200 * scale() {
        if rng.chance(70) {
            world.write(1 + rng.below(8), &mut rng);
            continue;
        }
        // The power goes off after a few more writes, possibly in the middle of a commit.
        world.disk.power_off_after(rng.below(30));
        world.journal.power_off_after(rng.below(3));
        if !world.write(1 + rng.below(8), &mut rng) {
            mid_commit += 1;
        }
        world.disk.power_off_after(0);
        world.journal.power_off_after(0);
        world.crash();
        let unsynced = world.unsynced_writes();
        let keep_percent = rng.below(101);
        world.power_cut(&mut rng, keep_percent, 80);
        torn_kept += unsynced;
        cuts += 1;
        match world.recover(&format!("seed {seed:#x} round {round}")) {
            Ok(extra) => in_doubt_recovered += u64::from(extra > 0),
            Err(violation) => panic!("{violation}"),
        }
    }
    let (writes, syncs, faults) = world.counts();
    println!(
        "FIGURE T2 acked lost: 0 of {} acknowledged creates; {cuts} power cuts ({mid_commit} in the middle of a commit, \
         {in_doubt_recovered} of those recovered whole, the rest not at all); {torn_kept} unsynced writes torn \
         at random; disks: {writes} writes, {syncs} syncs, {faults} refused while off",
        world.acknowledged.len()
    );
    assert!(
        cuts >= 40 * scale() && mid_commit >= 20 * scale(),
        "the faults fired: {cuts} cuts, {mid_commit} mid-commit"
    );
    assert!(world.acknowledged.len() as u64 >= 300 * scale(), "enough writes were checked");
}

#[test]
fn t3_write_and_fsync_errors_acknowledge_nothing_and_lose_nothing() {
    let seed = 0x5eed_0003;
    let mut rng = Rng(seed);
    let mut world = World::new();
    let (mut write_errors, mut sync_errors, mut refused) = (0, 0, 0);
    for round in 0..200 * scale() {
        if rng.chance(60) {
            assert!(world.write(1 + rng.below(8), &mut rng), "a healthy disk acknowledges");
            continue;
        }
        let kind = if rng.chance(50) { ErrorKind::StorageFull } else { ErrorKind::Other };
        // The database's disk, the journal's, or both.
        let which = rng.below(3);
        let disks: Vec<&SimDisk> = [&world.disk, &world.journal]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| which == 2 || *i as u64 == which)
            .map(|(_, d)| d)
            .collect();
        let syncs = rng.chance(50);
        for disk in &disks {
            if syncs { disk.fail_syncs(kind) } else { disk.fail_writes(kind) }
        }
        let faults_before = world.counts().2;
        let acknowledged = world.write(1 + rng.below(8), &mut rng);
        let fired = world.counts().2 > faults_before;
        // A commit that met an error is refused; one that never touched the failing disk (a
        // journaled commit's non-durable database write may not reach it) goes through.
        assert_eq!(
            acknowledged, !fired,
            "seed {seed:#x} round {round}: acknowledged {acknowledged}, fault fired {fired}"
        );
        if fired {
            if syncs {
                sync_errors += 1;
            } else {
                write_errors += 1;
            }
            refused += 1;
        }
        // The engine drops the failed database and opens it again (redb refuses every call
        // after an I/O error).
        world.crash();
        world.disk.heal();
        world.journal.heal();
        // After a failed fsync the kernel may have dropped the dirty pages: keep any subset.
        let keep_percent = rng.below(101);
        world.power_cut(&mut rng, keep_percent, 100);
        if let Err(violation) = world.recover(&format!("seed {seed:#x} round {round}")) {
            panic!("{violation}");
        }
    }
    let (_, _, faults) = world.counts();
    println!(
        "FIGURE T3 acked lost: 0 of {} acknowledged creates; {write_errors} injected write errors and {sync_errors} \
         fsync errors (ENOSPC and EIO): {refused} commits refused, none acknowledged; {faults} I/O calls failed",
        world.acknowledged.len()
    );
    assert!(refused >= 40 * scale() && faults >= refused, "the faults fired");
}

#[test]
fn negative_control_acknowledging_before_fsync_is_caught() {
    let mut rng = Rng(0x5eed_00ff);
    let mut world = World::new();
    world.store().skip_fsync();
    for _ in 0..20 {
        assert!(world.write(1 + rng.below(4), &mut rng));
    }
    world.disk.power_off_after(0);
    world.journal.power_off_after(0);
    world.crash();
    world.power_cut(&mut rng, 0, 0);
    let caught = world.recover("no fsync").expect_err("commits acknowledged without fsync are lost to a power cut");
    println!("FIGURE T2 negative control (ack before fsync) caught: {caught}");
    assert!(caught.contains("acknowledged writes lost"), "{caught}");
}
