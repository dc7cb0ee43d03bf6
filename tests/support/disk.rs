//! A simulated disk under redb's storage backend interface, for the power-loss and I/O-error
//! tests: it keeps what an fsync made durable apart from what was only written, can lose
//! power (keeping the durable image plus any subset of the unsynced writes, torn at sector
//! granularity), and can fail writes or syncs with a chosen error.

use redb::StorageBackend;
use std::io::Error as BackendIoError;
use std::sync::{Arc, Mutex};

/// Bytes a disk writes atomically; a torn write keeps some sectors and not others.
pub const SECTOR: usize = 512;

#[derive(Debug, Default)]
struct State {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a power cut for sure: the image at the last sync.
    durable: Vec<u8>,
    /// Writes (offset, bytes) and length changes (offset = the new length, no bytes) since
    /// the last sync, in order.
    unsynced: Vec<(u64, Option<Vec<u8>>)>,
    /// Fail the next write (and every one after, until healed) with this error.
    fail_writes: Option<std::io::ErrorKind>,
    /// Fail the next sync (and every one after, until healed) with this error.
    fail_syncs: Option<std::io::ErrorKind>,
    /// After this many more writes, the power is off: every write and sync fails.
    writes_left: Option<u64>,
    writes: u64,
    syncs: u64,
    faults: u64,
}

/// The disk; clone it to keep a handle while redb owns a backend.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

/// The view of a [`SimDisk`] that redb gets.
#[derive(Debug)]
pub struct SimBackend(SimDisk);

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// A backend on this disk, for `Store::open_on`.
    pub fn backend(&self) -> SimBackend {
        SimBackend(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes fail with `kind` (e.g. `StorageFull`, ENOSPC) until [`SimDisk::heal`].
    pub fn fail_writes(&self, kind: std::io::ErrorKind) {
        self.lock().fail_writes = Some(kind);
    }

    /// Syncs fail with `kind` until [`SimDisk::heal`].
    pub fn fail_syncs(&self, kind: std::io::ErrorKind) {
        self.lock().fail_syncs = Some(kind);
    }

    /// The power goes off after `writes` more writes: the rest fail.
    pub fn power_off_after(&self, writes: u64) {
        self.lock().writes_left = Some(writes);
    }

    pub fn heal(&self) {
        let mut state = self.lock();
        state.fail_writes = None;
        state.fail_syncs = None;
    }

    /// Loses power: what remains is the durable image plus the unsynced writes `keep` picks
    /// (by index), each torn to the sectors `keep_sector` picks. The disk then works again.
    pub fn power_cut(&self, mut keep: impl FnMut(usize) -> bool, mut keep_sector: impl FnMut() -> bool) {
        let mut state = self.lock();
        let mut image = state.durable.clone();
        for (i, (offset, bytes)) in std::mem::take(&mut state.unsynced).into_iter().enumerate() {
            let Some(bytes) = bytes else {
                // A length change is file metadata: kept or not, like the writes.
                if keep(i) {
                    image.resize(offset as usize, 0);
                }
                continue;
            };
            if !keep(i) {
                continue;
            }
            for (n, sector) in bytes.chunks(SECTOR).enumerate() {
                if !keep_sector() {
                    continue;
                }
                let at = offset as usize + n * SECTOR;
                if image.len() < at + sector.len() {
                    image.resize(at + sector.len(), 0);
                }
                image[at..at + sector.len()].copy_from_slice(sector);
            }
        }
        state.current.clone_from(&image);
        state.durable = image;
        state.writes_left = None;
        state.fail_writes = None;
        state.fail_syncs = None;
    }

    /// (writes, syncs, injected faults) so far: proof that a test's fault fired.
    pub fn counts(&self) -> (u64, u64, u64) {
        let state = self.lock();
        (state.writes, state.syncs, state.faults)
    }

    /// Bytes written but not yet synced.
    pub fn unsynced_writes(&self) -> usize {
        self.lock().unsynced.len()
    }
}

fn io_error(kind: std::io::ErrorKind, what: &str) -> BackendIoError {
    std::io::Error::new(kind, format!("simulated disk: {what}"))
}

impl StorageBackend for SimBackend {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.0.lock();
        let start = offset as usize;
        let Some(bytes) = state.current.get(start..start + out.len()) else {
            return Err(io_error(std::io::ErrorKind::UnexpectedEof, "read past the end"));
        };
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut state = self.0.lock();
        if state.writes_left == Some(0) {
            state.faults += 1;
            return Err(io_error(std::io::ErrorKind::Other, "the power is off"));
        }
        state.current.resize(len as usize, 0);
        state.unsynced.push((len, None));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut state = self.0.lock();
        if let Some(kind) = state.fail_syncs {
            state.faults += 1;
            return Err(io_error(kind, "injected fsync failure"));
        }
        if state.writes_left == Some(0) {
            state.faults += 1;
            return Err(io_error(std::io::ErrorKind::Other, "the power is off"));
        }
        // What was written is now durable: apply it to the durable image (cheaper than copying
        // the whole image at every sync).
        let state = &mut *state;
        for (offset, bytes) in state.unsynced.drain(..) {
            match bytes {
                None => state.durable.resize(offset as usize, 0),
                Some(bytes) => {
                    let (at, end) = (offset as usize, offset as usize + bytes.len());
                    if state.durable.len() < end {
                        state.durable.resize(end, 0);
                    }
                    state.durable[at..end].copy_from_slice(&bytes);
                }
            }
        }
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.0.lock();
        if let Some(kind) = state.fail_writes {
            state.faults += 1;
            return Err(io_error(kind, "injected write failure"));
        }
        match state.writes_left {
            Some(0) => {
                state.faults += 1;
                return Err(io_error(std::io::ErrorKind::Other, "the power is off"));
            }
            Some(n) => state.writes_left = Some(n - 1),
            None => {}
        }
        let end = offset as usize + data.len();
        if state.current.len() < end {
            state.current.resize(end, 0);
        }
        state.current[offset as usize..end].copy_from_slice(data);
        state.unsynced.push((offset, Some(data.to_vec())));
        state.writes += 1;
        Ok(())
    }
}
