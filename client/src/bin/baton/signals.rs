//! The signals a long-running subcommand handles itself: SIGINT, SIGTERM and SIGHUP. The
//! process wrappers forward them to their command; the other waiting subcommands stop and
//! exit with 128 + the signal's number, as if killed by it, after closing their session.
//!
//! Once installed, a handler replaces the default action for the rest of the process's
//! life, so a subcommand installs them before its first wait and selects on
//! [`Interrupts::recv`] at every wait after that.

use crate::group::Sig;
use anyhow::{Context as _, Result};
use std::process::ExitCode;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Handlers for SIGINT, SIGTERM and SIGHUP.
pub struct Interrupts {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Interrupts {
    /// Installs the three handlers.
    pub fn install() -> Result<Interrupts> {
        Ok(Interrupts {
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing a SIGHUP handler")?,
        })
    }

    /// The next of them to arrive.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a signal that arrives meanwhile is kept for the next call.
    pub async fn recv(&mut self) -> Sig {
        tokio::select! {
            _ = self.int.recv() => Sig::Int,
            _ = self.term.recv() => Sig::Term,
            _ = self.hup.recv() => Sig::Hup,
        }
    }
}

/// The exit code of a process that stops because of `sig`: 128 + its number.
pub fn stopped_by(sig: Sig) -> ExitCode {
    ExitCode::from(128 + sig.number())
}
