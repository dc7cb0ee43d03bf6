//! A round's work after its commit, held back while the next round's journal write is on the
//! device. Under a steady load the next round's requests are already queued when a round is
//! durable; the round's replies and events, and redb's apply of it, then wait until that next
//! round's record is handed to the journal's thread, and run while it is written. The engine's
//! CPU time and the device's time overlap instead of adding up. A lone client, or a lock's
//! hand-off, finds nothing queued: its round is released at once, and its next commit is
//! written on the engine's thread as before (no hand-off to another thread and back).
//!
//! What keeps the order: a held round is announced (`ConnLink::announce`) and its state
//! published before the hold, exactly as a released one; the round after it is made durable
//! only after it, and its outputs are released only after the held round's. A connection with
//! a reply still held answers no read by itself (`published`), so no read overtakes it.

use super::{Engine, EngineError, Output};
use crate::metrics::Gauges;
use crate::store::{Batch, StoreError, Unapplied};
use std::sync::Arc;
use std::time::Instant;

/// What a round still has to do once it is durable and published.
pub(super) struct AfterCommit {
    pub ready: Vec<Output>,
    /// The round's batch, and what redb has yet to take of it (none if nothing was written).
    pub durable: Option<(Batch, Unapplied)>,
    pub gauges: Gauges,
}

impl Engine {
    /// Whether a round may be held back: only on a primary with no standby to stream to
    /// (a synchronous standby holds outputs itself, and the stream follows redb's apply).
    pub(super) fn may_hold_rounds(&self) -> bool {
        self.config.mode.is_none() && self.is_primary() && self.storage.is_none()
    }

    /// Makes `batch` durable. A round held back meanwhile is released and given to redb
    /// while the journal's thread writes this one.
    pub(super) fn commit_overlapping(&mut self, batch: &Batch) -> Result<Unapplied, StoreError> {
        let Some(held) = self.held.take() else {
            return self.store.commit_durably(batch);
        };
        let started = self.store.start_durable(batch, true);
        let applied = self.release(held);
        // This round is waited for even when the apply failed, so the store is idle when the
        // failure reopens it. A round durable but unanswered is what a crash leaves too.
        let written = started.and_then(|durable| self.store.finish_durable(durable));
        applied.and(written)
    }

    /// Releases a round's outputs, gives it to redb and then to the standby's stream; or,
    /// when the next round is already queued, holds all that back for the next commit to
    /// overlap. Runs with the state given back to the readers.
    pub(super) fn release_or_hold(&mut self, after: AfterCommit, next_queued: bool) -> Result<(), EngineError> {
        if next_queued && self.may_hold_rounds() {
            self.held = Some(after);
            return Ok(());
        }
        if let Err(failure) = self.release(after) {
            self.lock_state();
            let recovered = self.storage_failed(&failure);
            self.sm.unlock(self.reads_open());
            return recovered;
        }
        Ok(())
    }

    /// Releases a held round now, before any output of a round after it.
    ///
    /// # Errors
    /// redb could not take it: the store must be reopened (`storage_failed`).
    pub(super) fn release_held(&mut self) -> Result<(), StoreError> {
        match self.held.take() {
            Some(held) => self.release(held),
            None => Ok(()),
        }
    }

    fn release(&mut self, after: AfterCommit) -> Result<(), StoreError> {
        self.deliver_all(after.ready);
        // The round is durable and answered; now redb takes it (its readers: the standby's
        // catch-up, backups), and then the standby's stream.
        if let Some((batch, unapplied)) = after.durable {
            self.store.apply_journaled(unapplied)?;
            // No standby listening is fine: it catches up from the stored log.
            let _ = self.replica.feed.send(Arc::new(batch.txns));
        }
        self.metrics.publish(&after.gauges);
        Ok(())
    }

    fn deliver_all(&mut self, ready: Vec<Output>) {
        let released = Instant::now();
        for output in ready {
            match output {
                Output::Hello(reply, answer) => {
                    // A client that hung up before its answer is noticed by its connection.
                    let _ = reply.send(answer);
                }
                Output::Message(conn, message) => self.deliver(conn, message),
                Output::Reply { conn, message, op, round } => {
                    self.metrics.request(usize::from(op), released.saturating_duration_since(round));
                    self.deliver(conn, message);
                }
                Output::Close(conn, reason) => {
                    if let Some(mut gone) = self.conns.remove(&conn) {
                        gone.kill(reason);
                    }
                }
            }
        }
    }
}
