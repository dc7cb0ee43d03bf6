//! The write-ahead journal: how a group commit becomes durable with one in-place synchronous
//! write (direct I/O, see `direct`; or a buffered write and one `fdatasync`), instead of a
//! durable redb commit (a sync plus a handful of scattered page writes and their checksums:
//! about twice as long on this project's machines).
//!
//! A round's batch is written to the journal file and synced; then it goes to redb in a
//! non-durable commit, which readers see at once. Every so often (a number of commits, or the
//! journal's size) a *checkpoint* makes redb durable instead and starts a new journal
//! generation, so the journal holds exactly the batches since redb's last durable commit. On
//! open, the records of the current generation are applied to redb again.
//!
//! The file is reused from offset 0 at each generation and grown in zero-filled chunks, so
//! after the first chunks a record overwrites allocated blocks: the sync then writes data only,
//! not file metadata. The chunks start small and double up to 1 MiB: a fresh store's first
//! commit (its root's ACL) grows the file before the daemon answers anyone. Records of an
//! older generation beyond the tail are ignored by their generation number, which is random
//! per checkpoint (a store restored from a backup never matches a journal left behind).
//!
//! A record: `MAGIC` (u32 LE), payload length (u32 LE), generation (u64 LE), CRC-32C of the
//! length, generation and payload (u32 LE), then the payload: a postcard [`Entry`].
//!
//! Only the last record can be torn by a crash (rounds are written one after another, each
//! synced before the next), and it was never acknowledged: recovery stops at the first record
//! that does not check out. If a record of the current generation that checks out follows a
//! bad one, the damage is not a torn tail, and the store is refused as corrupt. A record
//! whose magic or generation bytes alone are damaged still checks out against its CRC (over
//! the length, the generation and the payload) and is read as written, with a warning: a torn
//! write leaves no such record, and without this, damage there to the last record would look
//! like the log's end and lose acknowledged writes without a word.

use super::StoreError;
use super::direct::DirectWriter;
use redb::StorageBackend;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const MAGIC: u32 = 0xBA70_4A52;
const HEADER_LEN: usize = 20;
/// The file grows by this much, zero-filled, when a record does not fit...
const GROWTH_CHUNK: u64 = 1024 * 1024;
/// ...once it has reached it, doubling from this. Growing a fresh journal by a whole megabyte
/// took about half of an empty daemon's start on this project's machines: the start's median
/// fell from 14.2 to 7.5 ms with this first chunk (docs/BENCHMARKS.md, "Optimisations").
const FIRST_CHUNK: u64 = 64 * 1024;

/// The file's length once grown to hold `end` bytes.
fn grown_len(end: u64) -> u64 {
    if end <= GROWTH_CHUNK {
        end.next_power_of_two().clamp(FIRST_CHUNK, GROWTH_CHUNK)
    } else {
        end.div_ceil(GROWTH_CHUNK) * GROWTH_CHUNK
    }
}

/// One group commit, as stored records: what redb gets, in the form redb gets it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub epoch: u32,
    /// (zxid, txn record) in zxid order.
    #[serde(with = "baton_proto::byte_fields::keyed")]
    pub txns: Vec<(u64, Vec<u8>)>,
    /// Path → sealed node record, or `None` for a deleted node.
    #[serde(with = "baton_proto::byte_fields::keyed_optional")]
    pub nodes: Vec<(String, Option<Vec<u8>>)>,
    /// Session id → sealed session record, or `None` for an ended session.
    #[serde(with = "baton_proto::byte_fields::keyed_optional")]
    pub sessions: Vec<(u64, Option<Vec<u8>>)>,
}

impl Entry {
    pub fn last_zxid(&self) -> Option<u64> {
        self.txns.last().map(|(zxid, _)| *zxid)
    }
}

/// The journal file and where the next record goes.
#[derive(Debug)]
pub struct Journal {
    file: Box<dyn StorageBackend>,
    generation: u64,
    /// Where the next record is written.
    tail: u64,
    /// The file's length (it only grows).
    len: u64,
    /// Records of this generation.
    records: u64,
    /// The record being written, reused.
    buffer: Vec<u8>,
}

impl Journal {
    /// Reads back the records of `generation` in `file`; the journal then appends after them.
    ///
    /// # Errors
    /// The file cannot be read, or a damaged record has good records of its generation after it.
    pub fn open(file: Box<dyn StorageBackend>, generation: u64) -> Result<(Journal, Vec<Entry>), StoreError> {
        let mut journal = Journal { file, generation, tail: 0, len: 0, records: 0, buffer: Vec::new() };
        let entries = journal.reload(generation, ReadBack::AtOpen)?;
        Ok((journal, entries))
    }

    /// Reads the records of `generation` back from the disk (after a failed write or sync,
    /// the disk is the only truth); the journal then appends after them. `why` decides what a
    /// record that does not check out at the end is taken for.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn reload(&mut self, generation: u64, why: ReadBack) -> Result<Vec<Entry>, StoreError> {
        self.len = self.file.len().map_err(io)?;
        let mut bytes = vec![0; usize::try_from(self.len).map_err(|_| corrupt(0, "larger than memory"))?];
        self.file.read(0, &mut bytes).map_err(io)?;
        if self.len != 0 && grown_len(self.len) != self.len {
            warn!(
                len = self.len,
                "the journal file was cut short (it grows by whole chunks of 64 KiB doubling to 1 MiB): writes past its \
                 end, if any, are lost"
            );
        }
        let Scanned { entries, tail, torn } = scan(&bytes, generation)?;
        if torn {
            match why {
                ReadBack::AtOpen => warn!(
                    offset = tail,
                    "the journal's last record does not check out and is dropped: a write a crash cut short, never \
                     acknowledged — or, if the machine did not crash, damage to the disk, and its writes are lost"
                ),
                ReadBack::AfterFailedWrite => info!(
                    offset = tail,
                    "the failed write's journal record is incomplete on the disk and is dropped (it was never \
                     acknowledged)"
                ),
            }
        }
        (self.generation, self.tail, self.records) = (generation, tail, entries.len() as u64);
        Ok(entries)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes written in this generation.
    pub fn bytes(&self) -> u64 {
        self.tail
    }

    /// Records written in this generation.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The size `entry` takes as a record.
    pub fn encode(&mut self, entry: &Entry) -> u64 {
        self.buffer.clear();
        self.buffer.resize(HEADER_LEN, 0);
        match postcard::to_extend(entry, std::mem::take(&mut self.buffer)) {
            Ok(bytes) => self.buffer = bytes,
            Err(e) => panic!("encoding a journal entry cannot fail: {e}"),
        }
        self.buffer.len() as u64
    }

    /// Writes the record [`Journal::encode`] made last and makes it durable.
    ///
    /// # Errors
    /// The write or the sync failed: the record may or may not be on disk; it is not counted,
    /// and the next one is written in its place.
    pub fn append_encoded(&mut self) -> Result<(), StoreError> {
        let payload_len = self.buffer.len() - HEADER_LEN;
        let payload_len = u32::try_from(payload_len).map_err(|_| corrupt(self.tail, "a batch over 4 GiB"))?;
        let header = header(payload_len, self.generation, &self.buffer[HEADER_LEN..]);
        self.buffer[..HEADER_LEN].copy_from_slice(&header);
        let end = self.tail + self.buffer.len() as u64;
        if end > self.len {
            // The file fills the new space with zeros (see `JournalFile`), so later records
            // overwrite allocated blocks.
            let grown = grown_len(end);
            self.file.set_len(grown).map_err(io)?;
            self.len = grown;
        }
        self.file.write(self.tail, &self.buffer).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.tail = end;
        self.records += 1;
        Ok(())
    }

    /// Starts `generation` from the file's beginning: the store is durable up to here.
    pub fn restart(&mut self, generation: u64) {
        self.generation = generation;
        self.tail = 0;
        self.records = 0;
    }
}

/// The header of a record.
fn header(payload_len: u32, generation: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&payload_len.to_le_bytes());
    header[8..16].copy_from_slice(&generation.to_le_bytes());
    let mut crc = crc32c::crc32c(&header[4..16]);
    crc = crc32c::crc32c_append(crc, payload);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Whether a record of `generation` begins at `at`: its magic and generation are there,
/// whatever the rest holds.
fn begins_record(bytes: &[u8], at: usize, generation: u64) -> bool {
    bytes
        .get(at..at.saturating_add(16))
        .is_some_and(|head| head[0..4] == MAGIC.to_le_bytes() && head[8..16] == generation.to_le_bytes())
}

/// The record at `at` if it is whole, of `generation`, and checks out: its payload.
fn record_at(bytes: &[u8], at: usize, generation: u64) -> Option<&[u8]> {
    if !begins_record(bytes, at, generation) {
        return None;
    }
    payload_checking_out(bytes, at, generation)
}

/// A whole record of `generation` at `at` whose magic or generation bytes (not both) are
/// damaged while its length and payload check out — its CRC covers the length, the generation
/// and the payload — and which of the two: its payload, read as written. With both damaged
/// nothing says the bytes are this generation's record.
fn repaired_record_at(bytes: &[u8], at: usize, generation: u64) -> Option<(&[u8], &'static str)> {
    let head = bytes.get(at..at.checked_add(HEADER_LEN)?)?;
    let magic_intact = head[0..4] == MAGIC.to_le_bytes();
    let generation_intact = head[8..16] == generation.to_le_bytes();
    if magic_intact == generation_intact {
        return None;
    }
    let payload = payload_checking_out(bytes, at, generation)?;
    Some((payload, if magic_intact { "generation" } else { "magic" }))
}

/// The payload of the record at `at` if it is whole and its CRC matches the one written for
/// `generation`: of the length, that generation and the payload (whatever the stored magic
/// and generation bytes hold).
fn payload_checking_out(bytes: &[u8], at: usize, generation: u64) -> Option<&[u8]> {
    let head = bytes.get(at..at.checked_add(HEADER_LEN)?)?;
    let payload_len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let payload = bytes.get(at + HEADER_LEN..(at + HEADER_LEN).checked_add(payload_len)?)?;
    let stored = u32::from_le_bytes(head[16..20].try_into().ok()?);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[4..8]), &generation.to_le_bytes());
    (crc32c::crc32c_append(crc, payload) == stored).then_some(payload)
}

/// What reading a generation's records back found.
#[derive(Debug)]
struct Scanned {
    entries: Vec<Entry>,
    /// Where the good records end: the next record goes here.
    tail: u64,
    /// A record of the generation begins at `tail` but does not check out: the write a crash
    /// interrupted, or damage to the last record (the two look alike).
    torn: bool,
}

/// The entries of `generation` from the file's start, where they end, and whether a damaged
/// record follows them.
fn scan(bytes: &[u8], generation: u64) -> Result<Scanned, StoreError> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let payload = if let Some(payload) = record_at(bytes, at, generation) {
            payload
        } else if let Some((payload, field)) = repaired_record_at(bytes, at, generation) {
            warn!(
                offset = at,
                "a journal record's {field} bytes are damaged, but its length, generation and contents check out \
                 against its CRC: it is read as written — the disk may be failing"
            );
            payload
        } else {
            break;
        };
        let entry: Entry = postcard::from_bytes(payload).map_err(|e| corrupt(at as u64, e))?;
        if let (Some(before), Some(first)) = (entries.last().and_then(Entry::last_zxid), entry.txns.first())
            && first.0 <= before
        {
            return Err(corrupt(at as u64, format!("zxid {:#x} after {before:#x}", first.0)));
        }
        entries.push(entry);
        at += HEADER_LEN + payload.len();
    }
    // A torn last record is expected; a good record after a bad one is not.
    let later = (at + 1..bytes.len().saturating_sub(HEADER_LEN - 1))
        .filter(|&i| begins_record(bytes, i, generation))
        .find(|&i| record_at(bytes, i, generation).is_some());
    if let Some(later) = later {
        return Err(corrupt(at as u64, format!("damaged, and a good record of its generation follows at {later}")));
    }
    // Past the tail lies a chunk's zeros or an older generation's records, unless a record of
    // this one begins there and did not check out.
    Ok(Scanned { entries, tail: at as u64, torn: begins_record(bytes, at, generation) })
}

/// Why the journal is read back from the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// At start: a record that does not check out at the end was cut short by a crash, or
    /// the disk is damaged.
    AtOpen,
    /// After a write or sync of it failed: the record at the end is that write's.
    AfterFailedWrite,
}

/// How the journal's records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalIo {
    /// Direct, synchronous writes where the file system takes them (see `direct`), else
    /// through the page cache.
    Direct,
    /// Through the page cache, then `fdatasync`.
    Buffered,
}

/// The journal's file in the data directory.
#[derive(Debug)]
pub struct JournalFile {
    file: std::fs::File,
    writes: std::sync::Mutex<Writes>,
}

#[derive(Debug)]
struct Writes {
    /// `None`: writes go through the page cache.
    direct: Option<DirectWriter>,
    /// Something the next `sync_data` must make durable: a length set, or a write through
    /// the page cache.
    unsynced: bool,
}

impl JournalFile {
    /// Opens (or creates, 0600) the file at `path`, for direct writes if `io` asks for them
    /// and the file system takes them.
    ///
    /// # Errors
    /// It cannot be opened.
    pub fn open(path: &std::path::Path, io: JournalIo) -> Result<JournalFile, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path);
        let file = file.map_err(|e| StoreError::Journal(format!("{}: {e}", path.display())))?;
        let direct = match io {
            JournalIo::Buffered => {
                info!("journal records go through the page cache and fdatasync (journal_direct_io = false)");
                None
            }
            JournalIo::Direct => match DirectWriter::open(path) {
                Ok(direct) => {
                    info!("journal records are written with direct I/O (O_DIRECT | O_DSYNC)");
                    Some(direct)
                }
                Err(e) => {
                    info!(error = %e, "the journal's file system refuses direct I/O: records go through the page cache");
                    None
                }
            },
        };
        Ok(JournalFile { file, writes: std::sync::Mutex::new(Writes { direct, unsynced: false }) })
    }

    fn writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        // Only the engine's thread writes: never contended, and a panic there ends the daemon.
        self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StorageBackend for JournalFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, out, offset)
    }

    /// Sets the length; space it adds is written with zeros (through the page cache, made
    /// durable by the sync that a new length needs anyway), so that later records overwrite
    /// allocated blocks and their syncs write data only. No buffer of the zeros' size is
    /// allocated: an idle daemon would keep its pages.
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        static ZEROS: [u8; 4096] = [0; 4096];
        let old = self.len()?;
        self.writes().unsynced = true;
        self.file.set_len(len)?;
        let mut at = old;
        while at < len {
            let n = usize::try_from(len - at).unwrap_or(usize::MAX).min(ZEROS.len());
            std::os::unix::fs::FileExt::write_all_at(&self.file, &ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut writes = self.writes();
        if writes.direct.is_some() && !writes.unsynced {
            // Each direct write was durable when it returned.
            return Ok(());
        }
        self.file.sync_data()?;
        writes.unsynced = false;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut writes = self.writes();
        if let Some(direct) = &mut writes.direct {
            match direct.write(offset, data, |at, out| self.read(at, out)) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    warn!(error = %e, "the journal's file system refused an aligned direct write: records go through the page cache from now on");
                    writes.direct = None;
                }
                done => return done,
            }
        }
        writes.unsynced = true;
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Journal(e.to_string())
}

fn corrupt(offset: u64, reason: impl ToString) -> StoreError {
    super::corrupt("journal", format!("offset {offset}"), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;
    use std::sync::Arc;

    /// A backend the test keeps a handle on.
    #[derive(Debug, Clone, Default)]
    struct Shared(Arc<InMemoryBackend>);

    impl StorageBackend for Shared {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.0.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
            self.0.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> Result<(), std::io::Error> {
            self.0.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.0.write(offset, data)
        }
    }

    fn entry(zxid: u64) -> Entry {
        Entry {
            epoch: 1,
            txns: vec![(zxid, vec![zxid as u8; 30])],
            nodes: vec![(format!("/n{zxid}"), Some(vec![1; 40])), ("/gone".into(), None)],
            sessions: vec![(7, None)],
        }
    }

    fn append(journal: &mut Journal, entry: &Entry) {
        journal.encode(entry);
        journal.append_encoded().unwrap();
    }

    fn contents(file: &Shared) -> Vec<u8> {
        let mut bytes = vec![0; file.len().unwrap() as usize];
        file.read(0, &mut bytes).unwrap();
        bytes
    }

    /// A journal of `generation` holding entries 1 to 3, and the file's bytes then.
    fn three_records(generation: u64) -> (Shared, Journal, Vec<u8>) {
        let file = Shared::default();
        let (mut journal, _) = Journal::open(Box::new(file.clone()), generation).unwrap();
        for zxid in 1..=3 {
            append(&mut journal, &entry(zxid));
        }
        let pristine = contents(&file);
        (file, journal, pristine)
    }

    #[test]
    fn the_file_grows_in_chunks_doubling_from_64_kib_to_1_mib_then_by_1_mib() {
        let kib = 1024;
        let lengths: Vec<u64> = [1, 64 * kib, 64 * kib + 1, 300 * kib, 1024 * kib, 1024 * kib + 1, 2500 * kib]
            .into_iter()
            .map(grown_len)
            .collect();
        assert_eq!(lengths, [64, 64, 128, 512, 1024, 2048, 3072].map(|n| n * kib));
        for len in [64 * kib, 256 * kib, 1024 * kib, 5 * 1024 * kib] {
            assert_eq!(grown_len(len), len, "{len} is a length the file grows to");
        }
        for cut in [4 * kib, 96 * kib, 1536 * kib] {
            assert_ne!(grown_len(cut), cut, "{cut} is a file cut short");
        }
    }

    #[test]
    fn records_come_back_in_order_and_the_journal_appends_after_them() {
        let file = Shared::default();
        let (mut journal, entries) = Journal::open(Box::new(file.clone()), 9).unwrap();
        assert!(entries.is_empty());
        append(&mut journal, &entry(1));
        append(&mut journal, &entry(2));
        assert_eq!(file.len().unwrap(), FIRST_CHUNK, "grown by one zero-filled chunk");
        let (mut journal, entries) = Journal::open(Box::new(file.clone()), 9).unwrap();
        assert_eq!(entries, vec![entry(1), entry(2)]);
        append(&mut journal, &entry(3));
        let (_, entries) = Journal::open(Box::new(file.clone()), 9).unwrap();
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn another_generation_is_not_read_and_a_restart_overwrites_from_the_start() {
        let file = Shared::default();
        let (mut journal, _) = Journal::open(Box::new(file.clone()), 1).unwrap();
        for zxid in 1..=5 {
            append(&mut journal, &entry(zxid));
        }
        journal.restart(2);
        append(&mut journal, &entry(6));
        let (_, entries) = Journal::open(Box::new(file.clone()), 2).unwrap();
        assert_eq!(entries, vec![entry(6)], "the older generation's records beyond the tail are ignored");
        let (_, entries) = Journal::open(Box::new(file.clone()), 3).unwrap();
        assert!(entries.is_empty());
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_damage_before_good_records_is_refused() {
        let (file, mut journal, pristine) = three_records(4);
        let record_len = journal.encode(&entry(3)) as usize;
        let last = journal.bytes() as usize - record_len;
        // Past the magic and the generation, which alone damaged are read as written (below).
        let bits = || {
            (0..record_len * 8).step_by(7).filter(|bit| !(0..4).contains(&(bit / 8)) && !(8..16).contains(&(bit / 8)))
        };
        for bit in bits() {
            let mut damaged = pristine.clone();
            damaged[last + bit / 8] ^= 1 << (bit % 8);
            file.write(0, &damaged).unwrap();
            let (_, entries) = Journal::open(Box::new(file.clone()), 4).unwrap();
            assert_eq!(entries, vec![entry(1), entry(2)], "bit {bit} of the last record");
        }
        for bit in bits() {
            let mut damaged = pristine.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            file.write(0, &damaged).unwrap();
            let err = Journal::open(Box::new(file.clone()), 4).unwrap_err().to_string();
            assert!(err.contains("journal") && err.contains("good record"), "bit {bit} of the first record: {err}");
        }
    }

    #[test]
    fn a_damaged_or_cut_last_record_is_told_apart_from_a_clean_end() {
        let (_, mut journal, pristine) = three_records(6);
        let end = journal.bytes() as usize;
        let last = end - journal.encode(&entry(3)) as usize;
        let clean = scan(&pristine, 6).unwrap();
        assert_eq!((clean.entries.len(), clean.tail, clean.torn), (3, end as u64, false));
        assert!(!scan(&pristine[..last], 6).unwrap().torn, "cut at a record's boundary: nothing to see");
        // Past the header's magic and generation, any flipped bit or cut is seen.
        for at in last + 16..end {
            let mut flipped = pristine.clone();
            flipped[at] ^= 0x10;
            let cut = &pristine[..at];
            for (what, bytes) in [("flipped", flipped.as_slice()), ("cut", cut)] {
                let scanned = scan(bytes, 6).unwrap();
                assert_eq!((scanned.entries.len(), scanned.tail), (2, last as u64), "{what} at {at}");
                assert!(scanned.torn, "{what} at {at}: not noticed");
            }
        }
        assert!(!scan(&pristine, 7).unwrap().torn, "another generation's records are not this one's");
    }

    #[test]
    fn a_record_whose_magic_or_generation_alone_is_damaged_is_read_as_written() {
        let (_, mut journal, pristine) = three_records(6);
        let end = journal.bytes() as usize;
        let second = journal.encode(&entry(1)) as usize;
        let last = end - journal.encode(&entry(3)) as usize;
        for record in [second, last] {
            for at in (record..record + 4).chain(record + 8..record + 16) {
                let mut flipped = pristine.clone();
                flipped[at] ^= 0x04;
                let scanned = scan(&flipped, 6).unwrap();
                assert_eq!(scanned.entries, scan(&pristine, 6).unwrap().entries, "a bit flipped at {at}");
                assert_eq!((scanned.tail, scanned.torn), (end as u64, false), "a bit flipped at {at}");
                let logged = logged(|| drop(scan(&flipped, 6)));
                assert!(logged.contains("WARN") && logged.contains("may be failing"), "{logged}");
            }
        }
        // Both damaged: nothing says the bytes are this generation's, and the log ends there.
        let mut both = pristine.clone();
        both[last] ^= 0x04;
        both[last + 8] ^= 0x04;
        let scanned = scan(&both, 6).unwrap();
        assert_eq!((scanned.entries.len(), scanned.tail, scanned.torn), (2, last as u64, false));
        // Its contents damaged too: not read, as before (here: a torn last record).
        let mut worse = pristine.clone();
        worse[last] ^= 0x04;
        worse[end - 1] ^= 0x04;
        assert_eq!(scan(&worse, 6).unwrap().entries.len(), 2);
    }

    /// What `f` logs, as plain text.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_torn_last_record_is_called_damage_at_open_and_the_failed_write_after_a_failure() {
        let file = Shared::default();
        let (mut journal, _) = Journal::open(Box::new(file.clone()), 8).unwrap();
        append(&mut journal, &entry(1));
        let first_end = journal.bytes();
        append(&mut journal, &entry(2));
        // The second record's header stays; the rest of it never reached the disk.
        let rest = journal.bytes() - first_end - HEADER_LEN as u64;
        file.write(first_end + HEADER_LEN as u64, &vec![0; rest as usize]).unwrap();

        let at_open = logged(|| assert_eq!(journal.reload(8, ReadBack::AtOpen).unwrap(), vec![entry(1)]));
        assert!(at_open.contains("WARN") && at_open.contains("crash cut short"), "{at_open}");
        let after = logged(|| assert_eq!(journal.reload(8, ReadBack::AfterFailedWrite).unwrap(), vec![entry(1)]));
        assert!(after.contains("the failed write's journal record") && !after.contains("WARN"), "{after}");
    }

    #[test]
    fn the_file_takes_records_written_directly_or_through_the_page_cache_alike() {
        let dir = tempfile::tempdir().unwrap();
        for (i, io) in [JournalIo::Direct, JournalIo::Buffered].into_iter().enumerate() {
            let path = dir.path().join(format!("journal{i}"));
            let (mut journal, _) = Journal::open(Box::new(JournalFile::open(&path, io).unwrap()), 3).unwrap();
            for zxid in 1..=40 {
                append(&mut journal, &entry(zxid));
            }
            // Written by the other way: both read and append the same file.
            let other = if io == JournalIo::Direct { JournalIo::Buffered } else { JournalIo::Direct };
            let (mut journal, entries) = Journal::open(Box::new(JournalFile::open(&path, other).unwrap()), 3).unwrap();
            assert_eq!(entries, (1..=40).map(entry).collect::<Vec<_>>(), "{io:?}");
            append(&mut journal, &entry(41));
            let (_, entries) = Journal::open(Box::new(JournalFile::open(&path, io).unwrap()), 3).unwrap();
            assert_eq!(entries.len(), 41, "{io:?} after {other:?}");
        }
    }

    #[test]
    fn a_growing_file_is_allocated_with_zeros_whichever_way_it_is_written() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        for (i, io) in [JournalIo::Direct, JournalIo::Buffered].into_iter().enumerate() {
            let path = dir.path().join(format!("journal{i}"));
            // A file left at a length that is not a whole block, as damage may leave it: cut
            // back, then grown.
            std::fs::write(&path, vec![9u8; 5000]).unwrap();
            let file = JournalFile::open(&path, io).unwrap();
            file.set_len(4096).unwrap();
            file.set_len(64 * 1024).unwrap();
            file.set_len(3 * 1024 * 1024).unwrap();
            file.sync_data().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), 3 * 1024 * 1024, "{io:?}");
            assert!(bytes[..4096].iter().all(|&b| b == 9), "{io:?}: what was there stays");
            assert!(bytes[4096..].iter().all(|&b| b == 0), "{io:?}: the new space is zeros");
            // Written, not a hole: a record written there later changes no file metadata.
            let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
            assert!(allocated >= 3 * 1024 * 1024, "{io:?}: {allocated} bytes allocated");
        }
    }

    #[test]
    fn zxids_that_go_backwards_are_refused() {
        let file = Shared::default();
        let (mut journal, _) = Journal::open(Box::new(file.clone()), 5).unwrap();
        append(&mut journal, &entry(4));
        append(&mut journal, &entry(3));
        let err = Journal::open(Box::new(file), 5).unwrap_err().to_string();
        assert!(err.contains("after"), "{err}");
    }
}
