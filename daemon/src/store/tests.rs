use super::*;
use crate::state::{Limits, StateMachine};
use baton_proto::Zxid;

fn keep(txns: u64) -> Retention {
    Retention { txns, bytes: u64::MAX }
}
use baton_proto::message::{CreateKind, CreateRequest, Op};

fn write_some(sm: &mut StateMachine, store: &mut Store, n: usize) {
    write_from(sm, store, 0, n);
}

fn write_from(sm: &mut StateMachine, store: &mut Store, first: usize, n: usize) {
    let session_txn = sm.prepare_create_session(5000, false, 7, 1);
    let mut batch = Batch::default();
    let applied = sm.apply(&session_txn);
    batch.push(&session_txn, applied.delta, sm.epoch());
    for i in first..first + n {
        let kind = if i % 2 == 0 { CreateKind::Persistent } else { CreateKind::Ephemeral };
        let op = Op::Create(CreateRequest {
            path: format!("/n{i}"),
            data: Some(vec![i as u8]),
            kind,
            sequential: false,
            acl: Vec::new(),
        });
        let txn = sm.prepare_write(session_txn.session_id, &op, 1).unwrap();
        let applied = sm.apply(&txn);
        batch.push(&txn, applied.delta, sm.epoch());
    }
    store.commit(&batch).unwrap();
}

#[test]
fn reopened_store_restores_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, restored) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.last_zxid, Zxid::ZERO);
    write_some(&mut sm, &mut store, 10);
    drop(store);
    let (_store, restored) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.recent_txns.len(), 11);
    let back = StateMachine::restore(Limits::default(), restored).unwrap();
    assert_eq!(back.digest(), sm.digest());
}

#[test]
fn log_is_trimmed_to_its_retention_and_the_floor_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(4), HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 9);
    drop(store);
    let (store, restored) = Store::open(dir.path(), keep(4), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.recent_txns.len(), 4);
    assert_eq!(restored.history_floor.0 + 1, restored.recent_txns[0].zxid.0);
    drop(store);
    let (_store, restored) = Store::open(dir.path(), keep(4), HistoryBound::txns(2)).unwrap();
    assert_eq!(restored.recent_txns.len(), 2, "history loads only what it keeps");
    assert_eq!(restored.history_floor.0 + 1, restored.recent_txns[0].zxid.0);
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), keep(4), HistoryBound::txns(4)).unwrap();
    assert!(Store::open(dir.path(), keep(4), HistoryBound::txns(4)).is_err(), "two daemons must never share a store");
}

#[test]
fn log_is_also_trimmed_by_bytes_and_its_window_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let retention = Retention { txns: 1000, bytes: 200 };
    let (mut store, _) = Store::open(dir.path(), retention, HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 20);
    let window = store.log_window();
    assert!(window.bytes <= 200 && window.txns >= 1, "{window:?}");
    assert!(window.txns < 21, "trimmed by bytes, not count: {window:?}");
    drop(store);
    let (store, restored) = Store::open(dir.path(), retention, HistoryBound::txns(100)).unwrap();
    assert_eq!(store.log_window(), window);
    assert_eq!(restored.recent_txns.len() as u64, window.txns);
    assert_eq!(restored.history_floor, window.floor);
}

#[test]
fn log_is_trimmed_in_chunks_never_past_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(64), HistoryBound::txns(100)).unwrap();
    for round in 0..10 {
        write_from(&mut sm, &mut store, round * 9, 9);
        let (window, written) = (store.log_window(), (round as u64 + 1) * 10);
        assert!(window.txns <= 64, "never past the retention: {window:?}");
        assert!(window.txns >= 62.min(written), "at least 31/32 of it once full: {window:?}");
    }
    drop(store);
    let (store, restored) = Store::open(dir.path(), keep(64), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.history_floor.0 + 1, restored.recent_txns[0].zxid.0);
    assert_eq!(restored.recent_txns.len() as u64, store.log_window().txns);
}

#[test]
fn the_newest_zxid_comes_from_the_log_not_from_a_meta_write_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 3);
    let window = store.log_window();
    let db = store.db().unwrap();
    let read = redb::ReadableDatabase::begin_read(&*db).unwrap();
    let meta = read.open_table(META).unwrap();
    assert!(meta.get("last_zxid").unwrap().is_none(), "ordinary commits leave meta alone");
    drop((meta, read, db, store));
    let (store, restored) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.last_zxid, sm.last_zxid());
    assert_eq!(store.log_window(), window, "the log's bytes are counted at open");
}

#[test]
fn a_store_that_kept_last_zxid_and_log_bytes_in_meta_opens_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 3);
    let window = store.log_window();
    // What builds before 2026-11-25 wrote on every commit.
    let write = store.db().unwrap().begin_write().unwrap();
    {
        let mut meta = write.open_table(META).unwrap();
        meta.insert("last_zxid", sm.last_zxid().0).unwrap();
        meta.insert("log_bytes", window.bytes).unwrap();
    }
    write.commit().unwrap();
    drop(store);
    let (store, restored) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    assert_eq!(restored.last_zxid, sm.last_zxid());
    assert_eq!(store.log_window(), window);
    let back = StateMachine::restore(Limits::default(), restored).unwrap();
    assert_eq!(back.digest(), sm.digest());
}

#[test]
fn a_store_of_another_format_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), keep(10), HistoryBound::txns(10)).unwrap());
    {
        let db = Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
        let write = db.begin_write().unwrap();
        write.open_table(META).unwrap().insert("format", STORE_FORMAT - 1).unwrap();
        write.commit().unwrap();
    }
    let refused = Store::open(dir.path(), keep(10), HistoryBound::txns(10)).err().expect("an older format is refused");
    assert!(matches!(refused, StoreError::Format { found } if found == STORE_FORMAT - 1), "{refused}");
}

#[test]
fn a_damaged_key_is_refused_not_served_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 30);
    store.close().unwrap();
    drop(store);
    // "/n21" becomes "/n20" wherever it is stored: the key of /n21 now repeats /n20's, and
    // the node's value (which does not hold its path) still checks out.
    let path = dir.path().join(DB_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut flipped = 0;
    for at in 0..bytes.len() - 3 {
        if &bytes[at..at + 4] == b"/n21" {
            bytes[at + 3] ^= 0x01;
            flipped += 1;
        }
    }
    assert!(flipped > 0, "the key is in the file");
    std::fs::write(&path, &bytes).unwrap();
    let refused = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).err().expect("a damaged key is refused");
    assert!(refused.to_string().contains("out of order"), "{refused}");
}

#[test]
fn a_probe_after_a_reopen_keeps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), keep(10), HistoryBound::txns(10)).unwrap();
    // A store whose epoch is not the first one (a promoted standby's).
    store.install(&Snapshot { epoch: 3, last_zxid: Zxid(3 << 32), ..Snapshot::default() }).unwrap();
    store.reopen().unwrap();
    store.probe().unwrap();
    drop(store);
    let (_store, restored) = Store::open(dir.path(), keep(10), HistoryBound::txns(10)).unwrap();
    assert_eq!(restored.epoch, 3);
}

#[test]
fn log_entries_are_read_up_to_a_count_and_a_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::new(Limits::default());
    let (mut store, _) = Store::open(dir.path(), keep(100), HistoryBound::txns(100)).unwrap();
    write_some(&mut sm, &mut store, 10);
    let reader = store.reader();
    let entries = |max, bytes_max| match reader.log_after(Zxid::ZERO, max, bytes_max).unwrap() {
        LogRange::Entries(entries) => entries,
        LogRange::Compacted => panic!("nothing was compacted"),
    };
    let all = entries(100, usize::MAX);
    assert_eq!(all.len(), 11, "the session and the ten creates");
    assert_eq!(entries(4, usize::MAX), all[..4], "the count bounds it");
    let three: usize = all[..3].iter().map(|(_, record)| record.len()).sum();
    assert_eq!(entries(100, three), all[..3], "as many as fit the budget, whole");
    assert_eq!(entries(100, three + all[3].1.len() - 1), all[..3], "none cut in half");
    assert_eq!(entries(100, 1), all[..1], "at least one, however large");
}
