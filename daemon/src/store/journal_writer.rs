//! A thread that writes a journal record and makes it durable while the engine goes on, so
//! that the device's time for one round overlaps the engine's work on the round before (its
//! replies and redb's apply; see `Engine::flush`). It is started on first use: a daemon whose
//! rounds never overlap, or an idle one, has no such thread.

use redb::StorageBackend;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The thread's stack: it only calls the file's write and sync.
const STACK_BYTES: usize = 64 * 1024;

/// A record to write at an offset; it comes back with the result, for reuse.
struct Job {
    offset: u64,
    record: Vec<u8>,
}

/// What became of a [`Job`].
pub(super) struct Done {
    pub record: Vec<u8>,
    pub result: io::Result<()>,
}

/// The engine's end of the writing thread. Dropping it ends the thread.
#[derive(Debug)]
pub(super) struct JournalWriter {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

impl JournalWriter {
    /// Starts the thread, writing to `file`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(file: Arc<dyn StorageBackend>) -> io::Result<JournalWriter> {
        let (jobs, job_queue) = sync_channel::<Job>(1);
        let (done_queue, done) = sync_channel::<Done>(1);
        std::thread::Builder::new().name("journal".into()).stack_size(STACK_BYTES).spawn(move || {
            for Job { offset, record } in job_queue {
                let result = file.write(offset, &record).and_then(|()| file.sync_data());
                if done_queue.send(Done { record, result }).is_err() {
                    break;
                }
            }
        })?;
        Ok(JournalWriter { jobs, done })
    }

    /// Hands `record` to the thread, to be written at `offset` and synced. The thread being
    /// gone gives the record back.
    pub fn start(&self, offset: u64, record: Vec<u8>) -> Result<(), Vec<u8>> {
        self.jobs.send(Job { offset, record }).map_err(|failed| failed.0.record)
    }

    /// Waits for the record [`JournalWriter::start`] handed over.
    pub fn finish(&self) -> Done {
        self.done.recv().unwrap_or_else(|_| Done {
            record: Vec::new(),
            result: Err(io::Error::other("the journal's writing thread is gone")),
        })
    }
}
