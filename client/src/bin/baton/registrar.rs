//! `baton register`: holds a service registration (the registry recipe's ephemeral node)
//! while CMD runs, or until a signal without CMD.
//!
//! A registration advertises; it grants nothing exclusive. So, unlike a lock, losing it
//! does not touch CMD: the registration is made again, with a new session, as soon as the
//! server can be reached, and CMD runs on. CMD still runs in its own process group under a
//! guard (see [`crate::group`]), so that it dies with the wrapper and leaves nothing behind.

use crate::args::SessionArgs;
use crate::commands::close;
use crate::exit::child_status;
use crate::group::{ChildExits, ProcessGroup};
use crate::signals::Interrupts;
use crate::wrappers::{Session, connect};
use anyhow::{Context as _, Result};
use baton::recipes::registry::{Registration, ServiceRegistry};
use baton::{Client, EventKind};
use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// The pause between attempts to register again after losing the registration.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long deregistering may take before it is left to the session's close.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// What to register.
#[derive(Clone, Debug)]
pub struct Registrant {
    pub root: String,
    pub service: String,
    pub id: String,
    pub data: Vec<u8>,
}

/// A registration in force, and the future that completes when it is lost.
struct Held {
    session: Session,
    registration: Registration,
    lost: Pin<Box<dyn Future<Output = String>>>,
}

impl Held {
    /// Connects and registers.
    async fn make(addr: &str, who: &Registrant, args: &SessionArgs) -> Result<Held> {
        let session = connect(addr, args).await?;
        let registry = ServiceRegistry::new(session.client.clone(), who.root.clone());
        let registered = registry.register(&who.service, &who.id, &who.data).await;
        let registration = match registered {
            Ok(registration) => registration,
            Err(e) => {
                close(&session.client).await;
                return Err(anyhow::Error::new(e).context(format!("registering {} of {}", who.id, who.service)));
            }
        };
        let lost = Box::pin(lost(session.client.clone(), registration.path().to_owned()));
        Ok(Held { session, registration, lost })
    }

    /// Deregisters and closes the session.
    async fn end(self) {
        match tokio::time::timeout(DEREGISTER_TIMEOUT, self.registration.deregister()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "deregistering failed; the node goes with the session"),
            Err(_) => tracing::warn!("deregistering timed out; the node goes with the session"),
        }
        close(&self.session.client).await;
    }
}

/// Completes when the registration node is gone or the session has ended.
async fn lost(client: Client, node: String) -> String {
    let mut state = client.session_state();
    let node_gone = async {
        loop {
            match client.exists_and_watch(&node).await {
                Ok((None, _)) => return "its node was deleted".to_owned(),
                Ok((Some(_), watcher)) => match watcher.changed().await {
                    Ok(event) if event.kind == EventKind::Deleted => return "its node was deleted".to_owned(),
                    Ok(_) => {}
                    Err(e) => return e.to_string(),
                },
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return e.to_string(),
            }
        }
    };
    let ended = async {
        loop {
            if state.borrow_and_update().is_terminal() || state.changed().await.is_err() {
                return "the session ended".to_owned();
            }
        }
    };
    tokio::select! {
        reason = node_gone => reason,
        reason = ended => reason,
    }
}

/// `baton register`: see its `--help`.
pub async fn register(addr: &str, who: Registrant, args: &SessionArgs, command: &[OsString]) -> Result<ExitCode> {
    let mut interrupts = Interrupts::install()?;
    let mut exits = ChildExits::install()?;
    let mut held = Some(Held::make(addr, &who, args).await?);
    let mut group = if command.is_empty() { None } else { Some(ProcessGroup::spawn(command, &[])?) };
    let mut retry_at = Instant::now();
    let code = loop {
        // Without a registration: try again at `retry_at`.
        let regain = async {
            if let Some(held) = held.as_mut() {
                Err((&mut held.lost).await)
            } else {
                sleep_until(retry_at).await;
                Ok(Held::make(addr, &who, args).await)
            }
        };
        tokio::select! {
            status = wait_for(group.as_mut(), &mut exits) => break ExitCode::from(child_status(status?)),
            sig = interrupts.recv() => match group.as_mut() {
                Some(group) => group.signal(sig),
                None => break ExitCode::SUCCESS,
            },
            outcome = regain => match outcome {
                Err(reason) => {
                    eprintln!("baton: the registration of {} was lost ({reason}); registering again", who.id);
                    if let Some(old) = held.take() {
                        close(&old.session.client).await;
                    }
                    retry_at = Instant::now();
                }
                Ok(Ok(again)) => {
                    eprintln!("baton: registered {} of {} again", who.id, who.service);
                    held = Some(again);
                }
                Ok(Err(e)) => {
                    eprintln!("baton: {e:#}; retrying in {}", humantime::format_duration(RETRY_PAUSE));
                    retry_at = Instant::now() + RETRY_PAUSE;
                }
            },
        }
    };
    if let Some(group) = group {
        group.finish(&mut exits).await.context("waiting for the command")?;
    }
    if let Some(held) = held {
        held.end().await;
    }
    Ok(code)
}

/// Waits for the command to exit; for ever without one.
async fn wait_for(group: Option<&mut ProcessGroup>, exits: &mut ChildExits) -> Result<std::process::ExitStatus> {
    match group {
        Some(group) => group.wait(exits).await,
        None => std::future::pending().await,
    }
}
