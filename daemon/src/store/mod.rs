//! Durable storage in redb: the only module that names redb.
//!
//! Tables (one file, `baton.redb`, in the data directory):
//! - `nodes`: path → node record (format version byte, then postcard [`NodeRecord`])
//! - `sessions`: session id → session record (format version byte, then postcard
//!   [`SessionRecord`])
//! - `log`: zxid → txn record ([`baton_proto::txn::encode_record`]); the newest
//!   `log_retention` transactions are kept, for watch replay and for a standby to catch up
//! - `meta`: name → u64: `format`, `epoch`, `last_zxid`, `log_floor` (every txn after it is
//!   in `log`)
//!
//! A group commit writes a batch of txns, the node and session records they changed and the
//! new `last_zxid` in one redb write transaction with immediate durability: when
//! [`Store::commit`] returns, all of it is on disk, or none of it is.

mod batch;
mod records;

pub use batch::Batch;

use crate::state::{NodeRecord, Restored, SessionRecord};
use baton_proto::txn::{RecordError, decode_record};
use baton_proto::{SessionId, Zxid};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use thiserror::Error;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version of this store; bumped when tables change meaning.
const STORE_FORMAT: u64 = 1;
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
}

fn engine<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Redb(e.into())
}

pub struct Store {
    db: Database,
    path: PathBuf,
    log_retention: u64,
    log_len: u64,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and reads back everything needed to rebuild
    /// the state machine, including the newest `history_txns` log entries.
    pub fn open(data_dir: &Path, log_retention: u64, history_txns: usize) -> Result<(Store, Restored), StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let db = Database::create(&path).map_err(engine)?;
        initialize(&db)?;
        let read = db.begin_read().map_err(engine)?;
        let meta = read.open_table(META).map_err(engine)?;
        let get =
            |name: &str| -> Result<u64, StoreError> { Ok(meta.get(name).map_err(engine)?.map_or(0, |v| v.value())) };
        let format = get("format")?;
        if format != STORE_FORMAT {
            return Err(StoreError::Format { found: format });
        }
        let epoch = get("epoch")? as u32;
        let last_zxid = Zxid(get("last_zxid")?);
        let log_floor = Zxid(get("log_floor")?);

        let mut nodes = Vec::new();
        for entry in read.open_table(NODES).map_err(engine)?.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            let record: NodeRecord =
                records::decode(value.value()).map_err(|reason| corrupt("nodes", key.value(), reason))?;
            nodes.push((key.value().to_owned(), record));
        }
        let mut sessions = Vec::new();
        for entry in read.open_table(SESSIONS).map_err(engine)?.iter().map_err(engine)? {
            let (key, value) = entry.map_err(engine)?;
            let record: SessionRecord =
                records::decode(value.value()).map_err(|reason| corrupt("sessions", SessionId(key.value()), reason))?;
            sessions.push((SessionId(key.value()), record));
        }
        let log = read.open_table(LOG).map_err(engine)?;
        let log_len = log.len().map_err(engine)?;
        let mut recent_txns = Vec::new();
        for entry in log.iter().map_err(engine)?.rev().take(history_txns) {
            let (key, value) = entry.map_err(engine)?;
            let txn = decode_record(value.value()).map_err(|e: RecordError| corrupt("log", Zxid(key.value()), e))?;
            recent_txns.push(txn);
        }
        recent_txns.reverse();
        let history_floor = match recent_txns.first() {
            Some(first) if (recent_txns.len() as u64) < log_len => {
                // The entry before the oldest one loaded: everything after it is loaded.
                let before = log.range(..first.zxid.0).map_err(engine)?.next_back();
                before.transpose().map_err(engine)?.map_or(log_floor, |(k, _)| Zxid(k.value()))
            }
            _ => log_floor,
        };
        if let Some(last) = recent_txns.last()
            && last.zxid != last_zxid
        {
            let reason = format!("newest log entry {} differs from last_zxid {last_zxid}", last.zxid);
            return Err(StoreError::Corrupt { table: "log", key: last.zxid.to_string(), reason });
        }
        drop((meta, log));
        let store = Store { db, path, log_retention: log_retention.max(1), log_len };
        Ok((store, Restored { epoch, last_zxid, history_floor, nodes, sessions, recent_txns }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a batch in one durable transaction, trimming the log to its retention.
    ///
    /// # Errors
    /// Any failure: the caller must treat it as fatal (nothing of the batch may be
    /// acknowledged, and the in-memory state is ahead of the disk).
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(engine)?;
        let mut log_len = self.log_len;
        {
            let mut log = write.open_table(LOG).map_err(engine)?;
            for (zxid, record) in &batch.txns {
                log.insert(zxid.0, record.as_slice()).map_err(engine)?;
                log_len += 1;
            }
            let mut floor = None;
            while log_len > self.log_retention {
                let Some((zxid, _)) = log.pop_first().map_err(engine)? else { break };
                floor = Some(zxid.value());
                log_len -= 1;
            }
            let mut meta = write.open_table(META).map_err(engine)?;
            if let Some(floor) = floor {
                meta.insert("log_floor", floor).map_err(engine)?;
            }
            meta.insert("last_zxid", batch.last_zxid.0).map_err(engine)?;
            meta.insert("epoch", u64::from(batch.epoch)).map_err(engine)?;

            let mut nodes = write.open_table(NODES).map_err(engine)?;
            for (p, record) in &batch.nodes {
                match record {
                    Some(record) => nodes.insert(p.as_str(), records::encode(record).as_slice()).map_err(engine)?,
                    None => nodes.remove(p.as_str()).map_err(engine)?,
                };
            }
            let mut sessions = write.open_table(SESSIONS).map_err(engine)?;
            for (id, record) in &batch.sessions {
                match record {
                    Some(record) => sessions.insert(id.0, records::encode(record).as_slice()).map_err(engine)?,
                    None => sessions.remove(id.0).map_err(engine)?,
                };
            }
        }
        write.commit().map_err(engine)?;
        self.log_len = log_len;
        Ok(())
    }

    /// The stored size of the database file in bytes.
    pub fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

fn corrupt(table: &'static str, key: impl ToString, reason: impl ToString) -> StoreError {
    StoreError::Corrupt { table, key: key.to_string(), reason: reason.to_string() }
}

/// Creates the tables and the format marker of a new store.
fn initialize(db: &Database) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests;
