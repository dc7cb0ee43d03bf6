//! A durable commit that fails (the disk is full, or the storage fails): nothing of the round
//! is acknowledged, the in-memory state goes back to what is durable, and writes are refused
//! with `DiskFull` until a probe write succeeds — by itself, once space is freed. Reads and
//! watches go on meanwhile. Every client is disconnected once at the failure: the replies and
//! events of the failed round described changes that never happened, and reconnecting clients
//! resume their sessions and watches from what is durable (their in-flight requests end as
//! connection loss: not applied). If redb fails to take a round that the journal already made
//! durable (and whose replies went out), the recovery is the same, and the round is kept: the
//! store reads it back from the journal.

use super::{ConnId, Engine, EngineError};
use crate::state::StateMachine;
use crate::store::StoreError;
use baton_proto::{ErrorCode, ErrorReply};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How often a failed storage is probed with a tiny write.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Failure {
    reason: String,
    probed: Instant,
}

impl Engine {
    pub(super) fn storage_refusal(&self) -> ErrorReply {
        let reason = self.storage.as_ref().map_or("", |f| f.reason.as_str());
        ErrorReply::new(ErrorCode::DiskFull, format!("writes are refused until the storage takes them again: {reason}"))
    }

    /// Handles a failed commit; only a store that cannot even be reopened is fatal.
    pub(super) fn storage_failed(&mut self, failure: &StoreError) -> Result<(), EngineError> {
        let reason = failure.to_string();
        error!(error = %reason, "a durable commit failed: nothing of it is acknowledged; writes are refused until the storage recovers");
        // What this round would have said described changes that are not durable.
        self.outputs.clear();
        self.replica.applied.clear();
        let goodbye =
            ErrorReply::new(ErrorCode::DiskFull, format!("the server's storage failed ({reason}); reconnect"));
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(mut gone) = self.conns.remove(&conn) {
                gone.kill(goodbye.clone());
            }
        }
        self.attached.clear();
        self.store.reopen()?;
        let limits = self.sm.limits().clone();
        let history = limits.history_bound();
        *self.sm = StateMachine::restore(limits, self.store.restored(history)?)?;
        self.storage = Some(Failure { reason, probed: Instant::now() });
        Ok(())
    }

    /// On a tick while failed: a tiny durable write; once it goes through, writes resume.
    pub(super) fn probe_storage(&mut self) {
        let Some(failure) = &mut self.storage else { return };
        if failure.probed.elapsed() < PROBE_INTERVAL {
            return;
        }
        failure.probed = Instant::now();
        match self.store.probe() {
            Ok(()) => {
                info!("the storage takes writes again: writes resume");
                self.storage = None;
            }
            Err(e) => {
                warn!(error = %e, "the storage still refuses writes");
                // redb refuses every call after an I/O error until reopened.
                if let Err(e) = self.store.reopen() {
                    warn!(error = %e, "cannot reopen the store yet");
                }
            }
        }
    }
}
