//! Reading committed state, from any thread: recovery, and the replication stream's log
//! ranges and snapshots. Each call reads one redb read transaction, so what it returns is
//! consistent as of one commit, while the engine keeps writing.

use super::journal::Entry;
use super::{LOG, META, NODES, SESSIONS, StoreError, corrupt, engine, records};
use crate::state::{History, HistoryBound, NodeRecord, Restored, SessionRecord, Tree};
use baton_proto::txn::decode_record;
use baton_proto::{SessionId, Txn, Zxid};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A consistent copy of the state, as stored records, for a standby.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub epoch: u32,
    pub last_zxid: Zxid,
    pub nodes: Vec<(String, Vec<u8>)>,
    pub sessions: Vec<(SessionId, Vec<u8>)>,
}

/// Log entries after a zxid, or word that they are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRange {
    /// Encoded txn records in zxid order (possibly empty: nothing newer yet).
    Entries(Vec<(Zxid, Vec<u8>)>),
    /// Entries after the zxid were compacted away: only a snapshot can help.
    Compacted,
}

#[derive(Clone)]
pub struct StoreReader {
    slot: super::DbSlot,
    /// Set while the database lacks journal entries it could not take (a full disk): what it
    /// holds is then older than what was acknowledged, and is not handed out.
    behind: Arc<AtomicBool>,
}

struct Position {
    epoch: u32,
    last_zxid: Zxid,
    log_floor: Zxid,
}

impl StoreReader {
    pub(crate) fn new(slot: super::DbSlot, behind: Arc<AtomicBool>) -> Self {
        StoreReader { slot, behind }
    }

    fn begin(&self) -> Result<ReadTransaction, StoreError> {
        if self.behind.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.begin_even_behind()
    }

    fn begin_even_behind(&self) -> Result<ReadTransaction, StoreError> {
        super::slot_db(&self.slot)?.begin_read().map_err(engine)
    }

    /// Where the store stands. The newest zxid is the log's last key, or `meta`'s `last_zxid`
    /// if larger (an installed snapshot's, with the log empty after it).
    fn position(read: &ReadTransaction) -> Result<Position, StoreError> {
        let meta = read.open_table(META).map_err(engine)?;
        let get =
            |name: &str| -> Result<u64, StoreError> { Ok(meta.get(name).map_err(engine)?.map_or(0, |v| v.value())) };
        let log = read.open_table(LOG).map_err(engine)?;
        let newest = log.last().map_err(engine)?.map_or(0, |(k, _)| k.value());
        Ok(Position {
            epoch: get("epoch")? as u32,
            last_zxid: Zxid(get("last_zxid")?.max(newest)),
            log_floor: Zxid(get("log_floor")?),
        })
    }

    /// The stored epoch and newest zxid.
    pub fn last(&self) -> Result<(u32, Zxid), StoreError> {
        let position = Self::position(&self.begin()?)?;
        Ok((position.epoch, position.last_zxid))
    }

    /// As [`StoreReader::last`], while the store is behind its journal too.
    pub(crate) fn last_even_behind(&self) -> Result<(u32, Zxid), StoreError> {
        let position = Self::position(&self.begin_even_behind()?)?;
        Ok((position.epoch, position.last_zxid))
    }

    /// What the retained log holds.
    pub(crate) fn window(&self) -> Result<super::LogWindow, StoreError> {
        let read = self.begin_even_behind()?;
        let position = Self::position(&read)?;
        let log = read.open_table(LOG).map_err(engine)?;
        let mut bytes = 0;
        for entry in log.iter().map_err(engine)? {
            bytes += entry.map_err(engine)?.1.value().len() as u64;
        }
        Ok(super::LogWindow { floor: position.log_floor, txns: log.len().map_err(engine)?, bytes })
    }

    /// The newest log entry before `zxid`, if retained: where an epoch that began at `zxid`
    /// branched off.
    pub fn last_before(&self, zxid: Zxid) -> Result<Option<Zxid>, StoreError> {
        let read = self.begin()?;
        let log = read.open_table(LOG).map_err(engine)?;
        let before = log.range(..zxid.0).map_err(engine)?.next_back();
        Ok(before.transpose().map_err(engine)?.map(|(k, _)| Zxid(k.value())))
    }

    /// Everything needed to rebuild the state machine, with the newest log entries the
    /// watch history keeps (`history`); and the log table's window (redb's own, without
    /// `pending`). `pending` are journal entries the database does not hold yet, newer than
    /// all it holds: they are laid over it.
    pub(crate) fn restore(
        &self,
        history: HistoryBound,
        pending: &[Entry],
    ) -> Result<(Restored, super::LogWindow), StoreError> {
        let read = self.begin_even_behind()?;
        let Position { mut epoch, mut last_zxid, log_floor } = Self::position(&read)?;
        if let Some(newest) = pending.last() {
            epoch = newest.epoch;
            last_zxid = last_zxid.max(Zxid(newest.last_zxid().unwrap_or(0)));
        }
        // Streamed into the tree: the first bad record ends the stream and fails the restore.
        let mut failure = None;
        let mut nodes_read = 0u64;
        let mut previous = String::new();
        let nodes = read.open_table(NODES).map_err(engine)?;
        let stored = nodes.iter().map_err(engine)?.map_while(|entry| {
            nodes_read += 1;
            let decoded = entry.map_err(engine).and_then(|(key, value)| {
                let path = key.value();
                // Keys are not checksummed: a damaged one shows as a key out of order (a
                // bit flip cannot keep it between its neighbours and unique).
                if nodes_read > 1 && path <= previous.as_str() {
                    return Err(corrupt("nodes", path, format!("out of order after {previous}: a damaged key")));
                }
                previous.clear();
                previous.push_str(path);
                let record: NodeRecord =
                    records::decode(value.value()).map_err(|reason| corrupt("nodes", path, reason))?;
                Ok((path.to_owned(), record))
            });
            decoded.map_err(|e| failure = Some(e)).ok()
        });
        let newer: Overlay<String, NodeRecord> =
            overlay(pending.iter().flat_map(|e| &e.nodes), "nodes", |p: &String| p.clone())?;
        let (tree, orphans) = Tree::from_records(merge(stored, newer));
        if let Some(e) = failure {
            return Err(e);
        }
        all_read("nodes", nodes_read, &nodes)?;
        let mut sessions = Vec::new();
        let sessions_table = read.open_table(SESSIONS).map_err(engine)?;
        for entry in sessions_table.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            in_order("sessions", sessions.last().map(|(id, _): &(SessionId, _)| id.0), key.value())?;
            let record: SessionRecord =
                records::decode(value.value()).map_err(|reason| corrupt("sessions", SessionId(key.value()), reason))?;
            sessions.push((SessionId(key.value()), record));
        }
        all_read("sessions", sessions.len() as u64, &sessions_table)?;
        let newer: Overlay<SessionId, SessionRecord> =
            overlay(pending.iter().flat_map(|e| &e.sessions), "sessions", |id: &u64| SessionId(*id))?;
        let sessions = merge(sessions.into_iter(), newer).collect();
        let log = read.open_table(LOG).map_err(engine)?;
        let pending_txns: Vec<&(u64, Vec<u8>)> = pending.iter().flat_map(|e| &e.txns).collect();
        // The window is the log table's own: pending entries are counted when a checkpoint
        // writes them.
        let log_len = log.len().map_err(engine)?;
        let mut log_bytes = 0;
        let mut log_read = 0;
        let mut previous_zxid = None;
        for entry in log.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            in_order("log", previous_zxid, key.value())?;
            previous_zxid = Some(key.value());
            log_bytes += value.value().len() as u64;
            log_read += 1;
        }
        all_read("log", log_read, &log)?;
        // Newest first, only as many as the history keeps: the rest would be decoded (with
        // their data) only to be dropped. The entry after the last one kept tells where the
        // kept history begins.
        let stored = log.iter().map_err(engine)?.rev().map(|entry| -> Result<(Zxid, Txn), StoreError> {
            let (key, value) = entry.map_err(engine)?;
            let record = records::unseal(value.value()).map_err(|e| corrupt("log", Zxid(key.value()), e))?;
            Ok((Zxid(key.value()), decode_record(record).map_err(|e| corrupt("log", Zxid(key.value()), e))?))
        });
        let journaled = pending_txns.iter().rev().map(|(zxid, record)| -> Result<(Zxid, Txn), StoreError> {
            Ok((Zxid(*zxid), decode_record(record).map_err(|e| corrupt("journal", Zxid(*zxid), e))?))
        });
        let mut newest_first = journaled.chain(stored);
        let mut recent_txns = Vec::new();
        let mut history_bytes = 0usize;
        let mut history_floor = log_floor;
        for entry in newest_first.by_ref() {
            let (zxid, txn) = entry?;
            history_bytes = history_bytes.saturating_add(History::cost(&txn));
            if recent_txns.len() >= history.txns || (history_bytes > history.bytes && !recent_txns.is_empty()) {
                // Everything after this one is kept.
                history_floor = zxid;
                break;
            }
            recent_txns.push(txn);
        }
        recent_txns.reverse();
        if let Some(last) = recent_txns.last()
            && last.zxid != last_zxid
        {
            let reason = format!("newest log entry {} differs from last_zxid {last_zxid}", last.zxid);
            return Err(StoreError::Corrupt { table: "log", key: last.zxid.to_string(), reason });
        }
        let window = super::LogWindow { floor: log_floor, txns: log_len, bytes: log_bytes };
        Ok((Restored { epoch, last_zxid, history_floor, tree, orphans, sessions, recent_txns }, window))
    }

    /// Log entries after `zxid`: up to `max` of them, and no more once their records add up to
    /// `bytes_max` (at least one, however large).
    pub fn log_after(&self, zxid: Zxid, max: usize, bytes_max: usize) -> Result<LogRange, StoreError> {
        let read = self.begin()?;
        let position = Self::position(&read)?;
        if zxid < position.log_floor || zxid > position.last_zxid {
            return Ok(LogRange::Compacted);
        }
        let log = read.open_table(LOG).map_err(engine)?;
        if zxid > position.log_floor && log.get(zxid.0).map_err(engine)?.is_none() {
            // Not a zxid of ours (a diverged history): streaming cannot continue from it.
            return Ok(LogRange::Compacted);
        }
        let (mut entries, mut bytes) = (Vec::new(), 0);
        for entry in log.range(zxid.0 + 1..).map_err(engine)?.take(max) {
            let (key, value) = entry.map_err(engine)?;
            let record = records::unseal(value.value()).map_err(|e| corrupt("log", Zxid(key.value()), e))?;
            if !entries.is_empty() && bytes + record.len() > bytes_max {
                break;
            }
            bytes += record.len();
            entries.push((Zxid(key.value()), record.to_vec()));
        }
        Ok(LogRange::Entries(entries))
    }

    /// The whole committed state as stored records.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let read = self.begin()?;
        let Position { epoch, last_zxid, .. } = Self::position(&read)?;
        let mut snapshot = Snapshot { epoch, last_zxid, ..Snapshot::default() };
        for entry in read.open_table(NODES).map_err(engine)?.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            snapshot.nodes.push((key.value().to_owned(), value.value().to_vec()));
        }
        for entry in read.open_table(SESSIONS).map_err(engine)?.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            snapshot.sessions.push((SessionId(key.value()), value.value().to_vec()));
        }
        Ok(snapshot)
    }

    /// Log entries after `zxid` that a rejoining old primary must set aside.
    pub fn entries_after(&self, zxid: Zxid) -> Result<Vec<(Zxid, Vec<u8>)>, StoreError> {
        let read = self.begin()?;
        let log = read.open_table(LOG).map_err(engine)?;
        let mut entries = Vec::new();
        for entry in log.range(zxid.0 + 1..).map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            let record = records::unseal(value.value()).map_err(|e| corrupt("log", Zxid(key.value()), e))?;
            entries.push((Zxid(key.value()), record.to_vec()));
        }
        Ok(entries)
    }

    /// Writes a consistent copy of the committed state to `path` (which must not exist): a
    /// store file a fresh data directory can start from, its log empty after the copy's zxid.
    /// Reads one snapshot, so commits go on meanwhile. Written to a temporary name, made
    /// durable, then renamed, so `path` is either absent or complete.
    pub fn backup_to(&self, path: &std::path::Path) -> Result<(Zxid, u64), StoreError> {
        if path.exists() {
            let reason = format!("{} exists; a backup never overwrites", path.display());
            return Err(StoreError::Backup(reason));
        }
        let snapshot = self.snapshot()?;
        let temporary = path.with_extension("partial");
        let io = |e: std::io::Error| StoreError::Backup(format!("{}: {e}", temporary.display()));
        {
            let db = Database::create(&temporary).map_err(engine)?;
            let write = db.begin_write().map_err(engine)?;
            {
                let mut meta = write.open_table(META).map_err(engine)?;
                meta.insert("format", super::STORE_FORMAT).map_err(engine)?;
                meta.insert("epoch", u64::from(snapshot.epoch)).map_err(engine)?;
                meta.insert("last_zxid", snapshot.last_zxid.0).map_err(engine)?;
                meta.insert("log_floor", snapshot.last_zxid.0).map_err(engine)?;
                let mut nodes = write.open_table(NODES).map_err(engine)?;
                for (p, record) in &snapshot.nodes {
                    nodes.insert(p.as_str(), record.as_slice()).map_err(engine)?;
                }
                let mut sessions = write.open_table(SESSIONS).map_err(engine)?;
                for (id, record) in &snapshot.sessions {
                    sessions.insert(id.0, record.as_slice()).map_err(engine)?;
                }
                write.open_table(LOG).map_err(engine)?;
            }
            write.commit().map_err(engine)?;
        }
        std::fs::rename(&temporary, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok((snapshot.last_zxid, snapshot.nodes.len() as u64))
    }
}

/// Whether `key` follows `previous` (keys are not checksummed: a damaged one shows as a key
/// out of order).
fn in_order(table: &'static str, previous: Option<u64>, key: u64) -> Result<(), StoreError> {
    match previous {
        Some(previous) if key <= previous => {
            Err(corrupt(table, format!("{key:#x}"), format!("out of order after {previous:#x}: a damaged key")))
        }
        _ => Ok(()),
    }
}

/// Whether reading `table` through gave as many records as its header counts: a damaged
/// index page can make a scan skip records without any value failing its checksum.
fn all_read(name: &'static str, read: u64, table: &impl ReadableTableMetadata) -> Result<(), StoreError> {
    let stored = table.len().map_err(engine)?;
    if read == stored {
        return Ok(());
    }
    let reason = format!("{read} records could be read of the {stored} it holds: a damaged index page");
    Err(StoreError::Corrupt { table: name, key: "(whole table)".to_owned(), reason })
}

/// Journaled records laid over stored ones, in key order (`None`: removed).
type Overlay<K, T> = Vec<(K, Option<T>)>;

/// The newest of each journaled record, decoded, in key order.
fn overlay<'a, K: Ord + 'a, Key, T: serde::de::DeserializeOwned>(
    records: impl Iterator<Item = &'a (K, Option<Vec<u8>>)>,
    table: &'static str,
    key: impl Fn(&K) -> Key,
) -> Result<Overlay<Key, T>, StoreError> {
    let mut newest: BTreeMap<&K, &Option<Vec<u8>>> = BTreeMap::new();
    for (k, record) in records {
        newest.insert(k, record);
    }
    let mut decoded = Vec::with_capacity(newest.len());
    for (k, record) in newest {
        let record = match record {
            Some(bytes) => Some(records::decode(bytes).map_err(|reason| corrupt(table, "journal", reason))?),
            None => None,
        };
        decoded.push((key(k), record));
    }
    Ok(decoded)
}

/// `base` (in key order) with `newer` (in key order) laid over it: a newer record replaces
/// the base's, a newer `None` removes it.
fn merge<K: Ord, T>(base: impl Iterator<Item = (K, T)>, newer: Overlay<K, T>) -> impl Iterator<Item = (K, T)> {
    let mut base = base.peekable();
    let mut newer = newer.into_iter().peekable();
    std::iter::from_fn(move || {
        loop {
            let order = match (base.peek(), newer.peek()) {
                (None, None) => return None,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((b, _)), Some((n, _))) => b.cmp(n),
            };
            if order == std::cmp::Ordering::Equal {
                base.next();
            }
            let take_newer = order != std::cmp::Ordering::Less;
            if take_newer {
                let (key, record) = newer.next()?;
                if let Some(record) = record {
                    return Some((key, record));
                }
            } else {
                return base.next();
            }
        }
    })
}
