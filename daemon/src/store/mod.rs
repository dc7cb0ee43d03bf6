//! Durable storage in redb: the only module that names redb.
//!
//! Tables (one file, `baton.redb`, in the data directory):
//! - `nodes`: path → node record (format version byte, then postcard [`NodeRecord`](crate::state::NodeRecord))
//! - `sessions`: session id → session record (format version byte, then postcard
//!   [`SessionRecord`](crate::state::SessionRecord))
//! - `log`: zxid → txn record ([`baton_proto::txn::encode_record`]); the newest
//!   transactions within the retention (by count and by bytes) are kept, for watch replay and
//!   for a standby to catch up
//! - `meta`: name → u64: `format`, `epoch`, `last_zxid`, `log_floor` (every txn after it is
//!   in `log`). A commit writes `meta` only when the epoch changes or the log is trimmed: the
//!   newest zxid is the larger of `last_zxid` (the zxid of an installed snapshot) and the last
//!   key of `log`, and the log's bytes are counted when the store is opened. (Stores written
//!   before 2026-11-25 also keep `last_zxid` and `log_bytes` up to date; both are still read
//!   correctly.)
//!
//! A group commit writes a batch of txns and the node and session records they changed in one
//! redb write transaction with immediate durability: when
//! [`Store::commit`] returns, all of it is on disk, or none of it is.

mod batch;
mod reader;
mod records;

pub use batch::Batch;
pub use reader::LogRange;
pub use reader::{Snapshot, StoreReader};
pub use records::{decode as decode_stored, encode as encode_stored};

use crate::state::{HistoryBound, Restored};
use baton_proto::Zxid;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables, bumped when they change meaning. 3: every value sealed with a
/// CRC-32C, ACLs in node records, and the newest zxid read from the log rather than written to
/// `meta` at every commit. 4: node data and logged writes tell null data from empty.
pub(crate) const STORE_FORMAT: u64 = 4;
/// The log is trimmed in chunks of this fraction of its retention (see `Store::trim`).
const TRIM_CHUNK_DIVISOR: u64 = 32;
/// The file inside the data directory.
pub const DB_FILE_NAME: &str = "baton.redb";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Redb(#[from] redb::Error),
    #[error("corrupt {table} record at {key}: {reason}")]
    Corrupt { table: &'static str, key: String, reason: String },
    #[error("store format {found} is not {STORE_FORMAT}, the one this build reads")]
    Format { found: u64 },
    #[error("backup: {0}")]
    Backup(String),
    #[error("the store is being reopened after a storage failure")]
    Closed,
}

pub(crate) fn engine<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Redb(e.into())
}

/// The open database, shared with readers; emptied and refilled when the store is reopened
/// after a storage failure (redb refuses every call after an I/O error until reopened).
pub(crate) type DbSlot = Arc<std::sync::RwLock<Option<Arc<Database>>>>;

pub struct Store {
    slot: DbSlot,
    /// The database file; empty for a store on another backend (tests), which cannot be
    /// reopened.
    path: PathBuf,
    retention: Retention,
    window: LogWindow,
    /// The epoch in `meta` as of the last commit (`None`: not known, write it).
    epoch: Option<u32>,
    /// A negative control only: commit without fsync, acknowledging what a power cut loses.
    #[cfg(feature = "negative-controls")]
    skip_fsync: bool,
}

/// How much of the log is kept: at most `txns` entries and `bytes` of records (always at
/// least the newest entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub txns: u64,
    pub bytes: u64,
}

/// The retained log: every txn after `floor`, `txns` of them, `bytes` of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogWindow {
    pub floor: Zxid,
    pub txns: u64,
    pub bytes: u64,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and reads back everything needed to rebuild
    /// the state machine, including the log entries the watch history keeps.
    pub fn open(data_dir: &Path, retention: Retention, history: HistoryBound) -> Result<(Store, Restored), StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let db = open_database(&path)?;
        Store::from_database(db, path, retention, history)
    }

    /// As [`Store::open`], on a storage backend of the caller's (a simulated disk that fails
    /// or loses power, for tests).
    pub fn open_on(
        backend: impl redb::StorageBackend,
        retention: Retention,
        history: HistoryBound,
    ) -> Result<(Store, Restored), StoreError> {
        let db = Database::builder().create_with_backend(backend).map_err(engine)?;
        Store::from_database(db, PathBuf::new(), retention, history)
    }

    fn from_database(
        db: Database,
        path: PathBuf,
        retention: Retention,
        history: HistoryBound,
    ) -> Result<(Store, Restored), StoreError> {
        initialize(&db)?;
        let slot: DbSlot = Arc::new(std::sync::RwLock::new(Some(Arc::new(db))));
        let (restored, window) = StoreReader::new(slot.clone()).restore(history)?;
        let retention = Retention { txns: retention.txns.max(1), bytes: retention.bytes };
        let store = Store {
            slot,
            path,
            retention,
            window,
            epoch: Some(restored.epoch),
            #[cfg(feature = "negative-controls")]
            skip_fsync: false,
        };
        Ok((store, restored))
    }

    /// A negative control: from now on commits are not fsynced, so an acknowledged write
    /// can be lost to a power cut. Only for proving that the tests catch exactly that.
    #[cfg(feature = "negative-controls")]
    pub fn skip_fsync(&mut self) {
        self.skip_fsync = true;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for reading committed state from other threads (replication).
    pub fn reader(&self) -> StoreReader {
        StoreReader::new(self.slot.clone())
    }

    /// Replaces everything with `snapshot` (a standby catching up from scratch), in one
    /// durable transaction; the log restarts empty after the snapshot's zxid.
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let write = self.db()?.begin_write().map_err(engine)?;
        {
            let mut nodes = write.open_table(NODES).map_err(engine)?;
            nodes.retain(|_, _| false).map_err(engine)?;
            for (p, record) in &snapshot.nodes {
                nodes.insert(p.as_str(), record.as_slice()).map_err(engine)?;
            }
            let mut sessions = write.open_table(SESSIONS).map_err(engine)?;
            sessions.retain(|_, _| false).map_err(engine)?;
            for (id, record) in &snapshot.sessions {
                sessions.insert(id.0, record.as_slice()).map_err(engine)?;
            }
            write.open_table(LOG).map_err(engine)?.retain(|_, _| false).map_err(engine)?;
            let mut meta = write.open_table(META).map_err(engine)?;
            meta.insert("last_zxid", snapshot.last_zxid.0).map_err(engine)?;
            meta.insert("epoch", u64::from(snapshot.epoch)).map_err(engine)?;
            meta.insert("log_floor", snapshot.last_zxid.0).map_err(engine)?;
        }
        write.commit().map_err(engine)?;
        self.window = LogWindow { floor: snapshot.last_zxid, txns: 0, bytes: 0 };
        self.epoch = Some(snapshot.epoch);
        Ok(())
    }

    /// Reads back the state as [`Store::open`] does (after [`Store::install`]).
    pub fn restored(&self, history: HistoryBound) -> Result<Restored, StoreError> {
        Ok(self.reader().restore(history)?.0)
    }

    /// Writes a batch in one durable transaction, trimming the log to its retention.
    ///
    /// # Errors
    /// Any failure: nothing of the batch may be acknowledged, the in-memory state is ahead
    /// of the disk, and the database must be reopened ([`Store::reopen`]) before it is used
    /// again.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        #[allow(unused_mut)]
        let mut write = self.db()?.begin_write().map_err(engine)?;
        #[cfg(feature = "negative-controls")]
        if self.skip_fsync {
            write.set_durability(redb::Durability::None).map_err(engine)?;
        }
        let mut window = self.window;
        {
            let mut log = write.open_table(LOG).map_err(engine)?;
            let mut sealed = Vec::new();
            for (zxid, record) in &batch.txns {
                records::seal_into(&mut sealed, record);
                log.insert(zxid.0, sealed.as_slice()).map_err(engine)?;
                window.txns += 1;
                window.bytes += sealed.len() as u64;
            }
            let trimmed = self.trim(&mut log, &mut window)?;
            // Each table a transaction touches costs a root update and a copied page: `meta`
            // is written only when something in it changes (a trim, a new epoch); the newest
            // zxid is the log's last key.
            if trimmed || self.epoch != Some(batch.epoch) {
                let mut meta = write.open_table(META).map_err(engine)?;
                if trimmed {
                    meta.insert("log_floor", window.floor.0).map_err(engine)?;
                }
                if self.epoch != Some(batch.epoch) {
                    meta.insert("epoch", u64::from(batch.epoch)).map_err(engine)?;
                }
            }
            if !batch.nodes.is_empty() {
                let mut nodes = write.open_table(NODES).map_err(engine)?;
                for (p, record) in &batch.nodes {
                    match record {
                        Some(record) => nodes.insert(p.as_str(), records::encode(record).as_slice()).map_err(engine)?,
                        None => nodes.remove(p.as_str()).map_err(engine)?,
                    };
                }
            }
            if !batch.sessions.is_empty() {
                let mut sessions = write.open_table(SESSIONS).map_err(engine)?;
                for (id, record) in &batch.sessions {
                    match record {
                        Some(record) => sessions.insert(id.0, records::encode(record).as_slice()).map_err(engine)?,
                        None => sessions.remove(id.0).map_err(engine)?,
                    };
                }
            }
        }
        write.commit().map_err(engine)?;
        self.window = window;
        self.epoch = Some(batch.epoch);
        Ok(())
    }

    /// Trims the log to its retention, in chunks: once it is over, down to a 32nd below, so
    /// the far end of the log is touched once per chunk rather than on every commit. Returns
    /// whether anything was trimmed (`window.floor` moved).
    fn trim(&self, log: &mut redb::Table<u64, &[u8]>, window: &mut LogWindow) -> Result<bool, StoreError> {
        let Retention { txns, bytes } = self.retention;
        if window.txns <= txns && (window.bytes <= bytes || window.txns <= 1) {
            return Ok(false);
        }
        let (txns_goal, bytes_goal) = (txns - txns / TRIM_CHUNK_DIVISOR, bytes - bytes / TRIM_CHUNK_DIVISOR);
        let mut trimmed = false;
        while window.txns > txns_goal || (window.bytes > bytes_goal && window.txns > 1) {
            let Some((zxid, record)) = log.pop_first().map_err(engine)? else { break };
            window.floor = Zxid(zxid.value());
            window.txns -= 1;
            window.bytes = window.bytes.saturating_sub(record.value().len() as u64);
            trimmed = true;
        }
        Ok(trimmed)
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        slot_db(&self.slot)
    }

    /// Closes and reopens the database after a storage failure (redb refuses every call
    /// after an I/O error until then), and re-reads the log's window.
    ///
    /// # Errors
    /// The database cannot be opened again.
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        if self.path.as_os_str().is_empty() {
            return Err(StoreError::Closed);
        }
        write_slot(&self.slot).take();
        // A reader may still hold the old handle for a moment; its file lock goes with it.
        let mut attempts = 0;
        let db = loop {
            match Database::builder().set_cache_size(CACHE_BYTES).create(&self.path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(engine(e)),
            }
        };
        *write_slot(&self.slot) = Some(Arc::new(db));
        let (restored, window) = self.reader().restore(HistoryBound::txns(0))?;
        self.window = window;
        self.epoch = Some(restored.epoch);
        Ok(())
    }

    /// A tiny durable write, to learn whether the storage takes writes again.
    ///
    /// # Errors
    /// It still does not.
    pub fn probe(&mut self) -> Result<(), StoreError> {
        let write = self.db()?.begin_write().map_err(engine)?;
        {
            let mut meta = write.open_table(META).map_err(engine)?;
            let probes = meta.get("probes").map_err(engine)?.map_or(0, |v| v.value());
            meta.insert("probes", probes + 1).map_err(engine)?;
        }
        write.commit().map_err(engine)
    }

    /// What the retained log holds now.
    pub fn log_window(&self) -> LogWindow {
        self.window
    }

    /// The stored size of the database file in bytes.
    pub fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

pub(crate) fn slot_db(slot: &DbSlot) -> Result<Arc<Database>, StoreError> {
    slot.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone().ok_or(StoreError::Closed)
}

fn write_slot(slot: &DbSlot) -> std::sync::RwLockWriteGuard<'_, Option<Arc<Database>>> {
    slot.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn corrupt(table: &'static str, key: impl ToString, reason: impl ToString) -> StoreError {
    StoreError::Corrupt { table, key: key.to_string(), reason: reason.to_string() }
}

/// redb's page cache. The state lives in memory already (the tree, the sessions, the recent
/// history); the store is written, and read back only at start, for a standby's catch-up and
/// for backups. So a small cache: redb's default (up to 1 GiB) would hold a second copy of
/// everything. 1 MiB instead of 4 cost no extra reads or writes per commit on a store of
/// 100,000 nodes and saves 3 MiB of resident memory (docs/BENCHMARKS.md, "Optimisations").
pub const CACHE_BYTES: usize = 1024 * 1024;

fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(engine)
}

/// Creates the tables and the format marker of a new store. A store that has them already
/// is left alone: no write transaction, so no fsync on every start.
fn initialize(db: &Database) -> Result<(), StoreError> {
    if initialized(db)? {
        return Ok(());
    }
    let write = db.begin_write().map_err(engine)?;
    {
        let mut meta = write.open_table(META).map_err(engine)?;
        let existing = meta.get("format").map_err(engine)?.map(|v| v.value());
        if existing.is_none() {
            meta.insert("format", STORE_FORMAT).map_err(engine)?;
            meta.insert("epoch", 1).map_err(engine)?;
        }
        write.open_table(NODES).map_err(engine)?;
        write.open_table(SESSIONS).map_err(engine)?;
        write.open_table(LOG).map_err(engine)?;
    }
    write.commit().map_err(engine)?;
    Ok(())
}

/// Whether the format marker and every table exist.
fn initialized(db: &Database) -> Result<bool, StoreError> {
    use redb::{ReadableDatabase, TableError};
    let read = db.begin_read().map_err(engine)?;
    let meta = match read.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(engine(e)),
    };
    match meta.get("format").map_err(engine)?.map(|v| v.value()) {
        None => return Ok(false),
        // A store of another format (an older build's, or a newer one's) is refused, never
        // read as if it were ours.
        Some(found) if found != STORE_FORMAT => return Err(StoreError::Format { found }),
        Some(_) => {}
    }
    for exists in
        [read.open_table(NODES).map(|_| ()), read.open_table(SESSIONS).map(|_| ()), read.open_table(LOG).map(|_| ())]
    {
        match exists {
            Ok(()) => {}
            Err(TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(engine(e)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
