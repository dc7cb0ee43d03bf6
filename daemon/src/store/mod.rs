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
//! - `meta` also holds `journal_generation`: the journal generation that follows redb's last
//!   durable commit.
//!
//! A group commit writes a batch of txns and the node and session records they changed to the
//! write-ahead journal (`baton.journal`, see the `journal` module) and syncs it, then applies them to
//! redb in a non-durable commit that readers see at once: when [`Store::commit`] returns, all
//! of the batch is on disk, or none of it is. Every [`Checkpoints::commits`] commits (or
//! [`Checkpoints::bytes`] of journal) a commit goes to redb durably instead, and the journal
//! starts over. Opening the store applies the journal's batches to redb again.

mod batch;
mod direct;
mod journal;
mod reader;
mod records;

pub use batch::Batch;
pub use journal::JournalIo;
pub use reader::LogRange;
pub use reader::{Snapshot, StoreReader};
pub use records::{decode as decode_stored, encode as encode_stored};

use crate::state::{HistoryBound, Restored};
use baton_proto::Zxid;
use journal::{Entry, Journal};
use redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// The write-ahead journal, beside it.
pub const JOURNAL_FILE_NAME: &str = "baton.journal";

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
    #[error("journal: {0}")]
    Journal(String),
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
    journal: Journal,
    checkpoints: Checkpoints,
    /// A redb call failed: redb refuses every call until the database is reopened.
    redb_failed: bool,
    /// Journal entries redb could not take yet (see [`Store::catch_up`]), oldest first.
    pending: Vec<Entry>,
    /// Whether `pending` is not empty, for readers on other threads.
    behind: Arc<AtomicBool>,
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

/// A batch made durable by the journal that redb has not taken yet ([`Store::commit_durably`]).
#[derive(Debug)]
#[must_use = "redb must take the batch: pass it to Store::apply_journaled"]
pub struct Unapplied(Option<Entry>);

/// When the journal is folded into a durable redb commit: after `commits` journaled commits,
/// or before the journal would pass `bytes`. Each checkpoint costs one durable redb commit,
/// and its sync writes every page the commits since the last one changed; the journal is what
/// a restart reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoints {
    pub commits: u64,
    pub bytes: u64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints { commits: 128, bytes: 1024 * 1024 }
    }
}

/// The retained log: every txn after `floor`, `txns` of them, `bytes` of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogWindow {
    pub floor: Zxid,
    pub txns: u64,
    pub bytes: u64,
}

impl LogWindow {
    /// Whether the window keeps to `txns` and `bytes` (one txn is kept whatever its size).
    fn within(&self, txns: u64, bytes: u64) -> bool {
        self.txns <= txns && (self.bytes <= bytes || self.txns <= 1)
    }
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and reads back everything needed to rebuild
    /// the state machine, including the log entries the watch history keeps.
    pub fn open(data_dir: &Path, retention: Retention, history: HistoryBound) -> Result<(Store, Restored), StoreError> {
        Store::open_with(data_dir, retention, history, JournalIo::Direct)
    }

    /// As [`Store::open`], with the journal's records written as `io` says.
    pub fn open_with(
        data_dir: &Path,
        retention: Retention,
        history: HistoryBound,
        io: JournalIo,
    ) -> Result<(Store, Restored), StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let db = open_database(&path)?;
        let journal = journal::JournalFile::open(&data_dir.join(JOURNAL_FILE_NAME), io)?;
        Store::from_database(db, Box::new(journal), path, retention, history)
    }

    /// As [`Store::open`], on storage backends of the caller's for the database and the
    /// journal (simulated disks that fail or lose power, for tests).
    pub fn open_on(
        backend: impl StorageBackend,
        journal: impl StorageBackend,
        retention: Retention,
        history: HistoryBound,
    ) -> Result<(Store, Restored), StoreError> {
        let db = Database::builder().create_with_backend(backend).map_err(engine)?;
        Store::from_database(db, Box::new(journal), PathBuf::new(), retention, history)
    }

    fn from_database(
        db: Database,
        journal: Box<dyn StorageBackend>,
        path: PathBuf,
        retention: Retention,
        history: HistoryBound,
    ) -> Result<(Store, Restored), StoreError> {
        initialize(&db)?;
        let generation = journal_generation(&db)?;
        let (journal, entries) = Journal::open(journal, generation)?;
        let slot: DbSlot = Arc::new(std::sync::RwLock::new(Some(Arc::new(db))));
        let retention = Retention { txns: retention.txns.max(1), bytes: retention.bytes };
        let mut store = Store {
            slot,
            path,
            retention,
            window: LogWindow::default(),
            epoch: None,
            journal,
            checkpoints: Checkpoints::default(),
            redb_failed: false,
            pending: Vec::new(),
            behind: Arc::new(AtomicBool::new(false)),
            #[cfg(feature = "negative-controls")]
            skip_fsync: false,
        };
        store.catch_up(entries)?;
        let (restored, window) = store.reader().restore(history, &store.pending)?;
        store.window = window;
        store.epoch = Some(restored.epoch);
        Ok((store, restored))
    }

    /// Sets when the journal is checkpointed.
    pub fn set_checkpoints(&mut self, checkpoints: Checkpoints) {
        self.checkpoints = Checkpoints { commits: checkpoints.commits.max(1), bytes: checkpoints.bytes };
    }

    /// Applies the journal's entries that redb does not have yet, in a non-durable commit:
    /// the journal keeps them durable until the next checkpoint. If redb cannot take them (a
    /// full disk), they stay pending: laid over what redb holds for [`Store::restored`], and
    /// written by the next checkpoint, which [`Store::probe`] retries; until then readers
    /// are refused, since redb is older than what was acknowledged.
    fn catch_up(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let (_, last) = self.reader().last_even_behind()?;
        let mut newer = Vec::new();
        for entry in entries {
            let (Some(first), Some(newest)) = (entry.txns.first(), entry.txns.last()) else { continue };
            if first.0 > last.0 {
                newer.push(entry);
            } else if newest.0 > last.0 {
                let reason = format!("an entry straddles the store's last zxid {last}");
                return Err(corrupt("journal", Zxid(first.0), reason));
            }
        }
        self.pending.clear();
        self.behind.store(false, Ordering::Release);
        if newer.is_empty() {
            return Ok(());
        }
        tracing::info!(entries = newer.len(), "applying the journal's entries to the store");
        // The write trims the log: it needs the log's window as redb has it.
        self.window = self.reader().window()?;
        let entries: Vec<&Entry> = newer.iter().collect();
        if let Err(e) = self.write(&entries, false, None) {
            tracing::warn!(error = %e, entries = newer.len(), "the store cannot take the journal's entries yet: they stay in the journal");
            self.reopen_database()?;
            self.epoch = None;
            self.pending = newer;
            self.behind.store(true, Ordering::Release);
        }
        Ok(())
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
        StoreReader::new(self.slot.clone(), self.behind.clone())
    }

    /// Replaces everything with `snapshot` (a standby catching up from scratch), in one
    /// durable transaction; the log restarts empty after the snapshot's zxid.
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let generation = next_generation(self.journal.generation());
        if let Err(e) = self.write_snapshot(snapshot, generation) {
            // Whichever call failed, redb refuses every call until it is reopened.
            self.redb_failed = true;
            return Err(e);
        }
        self.journal.restart(generation);
        self.window = LogWindow { floor: snapshot.last_zxid, txns: 0, bytes: 0 };
        self.epoch = Some(snapshot.epoch);
        Ok(())
    }

    /// Replaces every table's contents with `snapshot` in one durable commit.
    fn write_snapshot(&self, snapshot: &Snapshot, generation: u64) -> Result<(), StoreError> {
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
            meta.insert("journal_generation", generation).map_err(engine)?;
        }
        write.commit().map_err(engine)
    }

    /// Reads back the state as [`Store::open`] does (after [`Store::install`]).
    pub fn restored(&self, history: HistoryBound) -> Result<Restored, StoreError> {
        Ok(self.reader().restore(history, &self.pending)?.0)
    }

    /// Makes a batch durable — in the journal, or at a checkpoint in redb — and applies it to
    /// redb, trimming the log to its retention.
    ///
    /// # Errors
    /// Any failure: nothing of the batch may be acknowledged, the in-memory state is ahead
    /// of the disk, and the store must be reopened ([`Store::reopen`]) before it is used
    /// again.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let unapplied = self.commit_durably(batch)?;
        self.apply_journaled(unapplied)
    }

    /// The first half of [`Store::commit`]: when it returns, the batch is durable, and may be
    /// acknowledged. What redb still has to take comes back, for [`Store::apply_journaled`],
    /// which must follow before anything else is done with the store.
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub fn commit_durably(&mut self, batch: &Batch) -> Result<Unapplied, StoreError> {
        let entry = Entry::from(batch);
        #[cfg(feature = "negative-controls")]
        if self.skip_fsync {
            return Ok(Unapplied(Some(entry)));
        }
        let size = self.journal.encode(&entry);
        if !self.pending.is_empty()
            || self.journal.records() >= self.checkpoints.commits
            || self.journal.bytes() + size > self.checkpoints.bytes
        {
            self.checkpoint(&[&entry])?;
            return Ok(Unapplied(None));
        }
        self.journal.append_encoded()?;
        Ok(Unapplied(Some(entry)))
    }

    /// The second half of [`Store::commit`]: a journaled batch goes to redb, in a non-durable
    /// commit that readers see at once.
    ///
    /// # Errors
    /// As [`Store::commit`]; the batch stays durable in the journal.
    pub fn apply_journaled(&mut self, unapplied: Unapplied) -> Result<(), StoreError> {
        match unapplied.0 {
            Some(entry) => self.write(&[&entry], false, None),
            None => Ok(()),
        }
    }

    /// One durable redb commit of the pending entries and `entries`, after which the journal
    /// starts a new generation.
    fn checkpoint(&mut self, entries: &[&Entry]) -> Result<(), StoreError> {
        let generation = next_generation(self.journal.generation());
        let pending = std::mem::take(&mut self.pending);
        let all: Vec<&Entry> = pending.iter().chain(entries.iter().copied()).collect();
        let written = self.write(&all, true, Some(generation));
        drop(all);
        if let Err(e) = written {
            self.pending = pending;
            return Err(e);
        }
        self.behind.store(false, Ordering::Release);
        self.journal.restart(generation);
        Ok(())
    }

    /// Applies `entries` to redb in one write transaction, durable or not; `generation` is
    /// recorded as the journal's next.
    fn write(&mut self, entries: &[&Entry], durable: bool, generation: Option<u64>) -> Result<(), StoreError> {
        let mut write = self.db()?.begin_write().map_err(|e| self.redb_error(e))?;
        #[cfg(feature = "negative-controls")]
        let durable = durable && !self.skip_fsync;
        if !durable {
            write.set_durability(redb::Durability::None).map_err(|e| self.redb_error(e))?;
        }
        let mut window = self.window;
        // A checkpoint of nothing (a probe, a clean stop) leaves the epoch as it is.
        let epoch = entries.last().map(|e| e.epoch);
        let applied = self.apply(&write, entries, &mut window, epoch, generation);
        let committed = applied.and_then(|()| write.commit().map_err(engine));
        if let Err(e) = committed {
            self.redb_failed = true;
            return Err(e);
        }
        self.window = window;
        if epoch.is_some() {
            self.epoch = epoch;
        }
        Ok(())
    }

    fn apply(
        &self,
        write: &redb::WriteTransaction,
        entries: &[&Entry],
        window: &mut LogWindow,
        epoch: Option<u32>,
        generation: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut log = write.open_table(LOG).map_err(engine)?;
        let mut sealed = Vec::new();
        for (zxid, record) in entries.iter().flat_map(|e| &e.txns) {
            records::seal_into(&mut sealed, record);
            log.insert(*zxid, sealed.as_slice()).map_err(engine)?;
            window.txns += 1;
            window.bytes += sealed.len() as u64;
        }
        let trimmed = self.trim(&mut log, window)?;
        // Each table a transaction touches costs a root update and a copied page: `meta`
        // is written only when something in it changes (a trim, a new epoch, a checkpoint);
        // the newest zxid is the log's last key.
        let new_epoch = epoch.filter(|e| self.epoch != Some(*e));
        if trimmed || new_epoch.is_some() || generation.is_some() {
            let mut meta = write.open_table(META).map_err(engine)?;
            if trimmed {
                meta.insert("log_floor", window.floor.0).map_err(engine)?;
            }
            if let Some(epoch) = new_epoch {
                meta.insert("epoch", u64::from(epoch)).map_err(engine)?;
            }
            if let Some(generation) = generation {
                meta.insert("journal_generation", generation).map_err(engine)?;
            }
        }
        let nodes = entries.iter().flat_map(|e| &e.nodes).map(|(p, record)| (p.as_str(), record));
        put_records(write, NODES, nodes)?;
        let sessions = entries.iter().flat_map(|e| &e.sessions).map(|(id, record)| (*id, record));
        put_records(write, SESSIONS, sessions)?;
        Ok(())
    }

    fn redb_error<E: Into<redb::Error>>(&mut self, e: E) -> StoreError {
        self.redb_failed = true;
        engine(e)
    }

    /// On a clean stop: a checkpoint, so that the next start has no journal to read.
    ///
    /// # Errors
    /// The checkpoint failed; the journal still holds what it must.
    pub fn close(&mut self) -> Result<(), StoreError> {
        if self.journal.records() == 0 || self.redb_failed {
            return Ok(());
        }
        self.checkpoint(&[])
    }

    /// Trims the log to its retention, in chunks: once it is over, down to a 32nd below, so
    /// the far end of the log is touched once per chunk rather than on every commit. Returns
    /// whether anything was trimmed (`window.floor` moved).
    ///
    /// The chunk's end is found by reading, and the chunk removed as one range, which redb
    /// does a leaf at a time; popping the entries one by one rewrote the tree's path for each
    /// (7 % of the engine thread's time under a steady write load).
    fn trim(&self, log: &mut redb::Table<u64, &[u8]>, window: &mut LogWindow) -> Result<bool, StoreError> {
        let Retention { txns, bytes } = self.retention;
        if window.within(txns, bytes) {
            return Ok(false);
        }
        let (txns_goal, bytes_goal) = (txns - txns / TRIM_CHUNK_DIVISOR, bytes - bytes / TRIM_CHUNK_DIVISOR);
        let mut kept = *window;
        let mut last_dropped = None;
        for entry in log.range::<u64>(..).map_err(engine)? {
            if kept.within(txns_goal, bytes_goal) {
                break;
            }
            let (zxid, record) = entry.map_err(engine)?;
            last_dropped = Some(zxid.value());
            kept.txns -= 1;
            kept.bytes = kept.bytes.saturating_sub(record.value().len() as u64);
        }
        let Some(last_dropped) = last_dropped else { return Ok(false) };
        log.retain_in(..=last_dropped, |_, _| false).map_err(engine)?;
        *window = LogWindow { floor: Zxid(last_dropped), ..kept };
        Ok(true)
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        slot_db(&self.slot)
    }

    /// After a storage failure: closes and reopens the database if a redb call failed (redb
    /// refuses every call after an I/O error until then), reads the journal back from the disk
    /// and applies what redb lacks, and re-reads the log's window.
    ///
    /// # Errors
    /// The database cannot be opened again, or the journal not applied to it.
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        if self.redb_failed {
            self.reopen_database()?;
        }
        let generation = journal_generation(&*self.db()?)?;
        let entries = self.journal.reload(generation, journal::ReadBack::AfterFailedWrite)?;
        self.epoch = None;
        self.catch_up(entries)?;
        self.window = self.reader().window()?;
        Ok(())
    }

    /// Closes the database and opens it again from the disk.
    fn reopen_database(&mut self) -> Result<(), StoreError> {
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
        self.redb_failed = false;
        Ok(())
    }

    /// A tiny durable write (a checkpoint), to learn whether the storage takes writes again.
    ///
    /// # Errors
    /// It still does not.
    pub fn probe(&mut self) -> Result<(), StoreError> {
        self.checkpoint(&[])
    }

    /// What the retained log holds now.
    pub fn log_window(&self) -> LogWindow {
        self.window
    }

    /// The stored size of the database file and the journal in bytes.
    pub fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len()) + self.journal.file_len()
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
            meta.insert("journal_generation", next_generation(0)).map_err(engine)?;
        }
        write.open_table(NODES).map_err(engine)?;
        write.open_table(SESSIONS).map_err(engine)?;
        write.open_table(LOG).map_err(engine)?;
    }
    write.commit().map_err(engine)?;
    Ok(())
}

/// Writes stored records into `table` (`None` removes the key); the table is opened only if
/// there is something to write, since each table a transaction touches costs a root update.
fn put_records<'a, K: redb::Key + 'static>(
    write: &redb::WriteTransaction,
    table: TableDefinition<K, &[u8]>,
    records: impl Iterator<Item = (K::SelfType<'a>, &'a Option<Vec<u8>>)>,
) -> Result<(), StoreError> {
    let mut records = records.peekable();
    if records.peek().is_none() {
        return Ok(());
    }
    let mut table = write.open_table(table).map_err(engine)?;
    for (key, record) in records {
        match record {
            Some(record) => table.insert(key, record.as_slice()).map_err(engine)?,
            None => table.remove(key).map_err(engine)?,
        };
    }
    Ok(())
}

/// The journal generation that follows the last durable commit (0 in a store written before
/// the journal, which has none).
fn journal_generation(db: &Database) -> Result<u64, StoreError> {
    use redb::ReadableDatabase;
    let read = db.begin_read().map_err(engine)?;
    let meta = read.open_table(META).map_err(engine)?;
    Ok(meta.get("journal_generation").map_err(engine)?.map_or(0, |v| v.value()))
}

/// A fresh random generation, never `previous` nor 0: a journal left beside a store it does
/// not belong to (one restored from a backup, say) is never read as its own.
fn next_generation(previous: u64) -> u64 {
    loop {
        let generation = getrandom::u64().unwrap_or_else(|_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_nanos() as u64 ^ previous.rotate_left(17)
        });
        if generation != previous && generation != 0 {
            return generation;
        }
    }
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
