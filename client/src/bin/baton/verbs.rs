//! The shell verbs over the recipes: `wait`, `barrier`, `queue`, `counter`, `discover`. Each
//! gets a connected [`Client`] from [`crate::commands::run`] (which closes the session
//! afterwards) and uses the recipe's public API; nothing of a recipe is re-implemented here.
//!
//! The verbs that wait install the SIGINT/SIGTERM/SIGHUP handlers first and stop on them
//! with 128 + the signal's number, so the session is closed rather than left to time out.

use crate::args::{BarrierAction, CounterCommand, QueueCommand};
use crate::commands::{at, print_line, read_data};
use crate::exit::Outcome;
use crate::output;
use crate::signals::{Interrupts, stopped_by};
use anyhow::{Context as _, Result};
use baton::Client;
use baton::recipes::barrier::Barrier;
use baton::recipes::counter::Counter;
use baton::recipes::queue::Queue;
use baton::recipes::registry::ServiceRegistry;
use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// What `baton wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Exists,
    Gone,
    Value(Vec<u8>),
}

impl Condition {
    fn describe(&self, path: &str) -> String {
        match self {
            Condition::Exists => format!("{path} to exist"),
            Condition::Gone => format!("{path} to be gone"),
            Condition::Value(value) => format!("{path} to hold {:?}", String::from_utf8_lossy(value)),
        }
    }
}

/// How a bounded wait ended.
enum Waited<T> {
    Done(T),
    TimedOut,
    Interrupted(ExitCode),
}

/// Runs `work` until it completes, `timeout` passes, or a signal arrives.
async fn bounded<T>(
    interrupts: &mut Interrupts,
    timeout: Option<Duration>,
    work: impl Future<Output = Result<T>>,
) -> Result<Waited<T>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    tokio::select! {
        done = work => done.map(Waited::Done),
        () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Ok(Waited::TimedOut),
        sig = interrupts.recv() => Ok(Waited::Interrupted(stopped_by(sig))),
    }
}

/// `baton wait`: exit 0 once `condition` holds, 5 after `timeout`.
pub async fn wait(client: &Client, path: &str, condition: &Condition, timeout: Option<Duration>) -> Result<ExitCode> {
    let mut interrupts = Interrupts::install()?;
    match bounded(&mut interrupts, timeout, wait_for(client, path, condition)).await? {
        Waited::Done(()) => Ok(ExitCode::SUCCESS),
        Waited::Interrupted(code) => Ok(code),
        Waited::TimedOut => Err(Outcome::NotAcquired(format!(
            "timed out after {} waiting for {}",
            humantime::format_duration(timeout.unwrap_or_default()),
            condition.describe(path)
        ))
        .into()),
    }
}

/// Looks at the node, leaving a watch with the same request; returns if the condition
/// holds, else sleeps until the watch fires and looks again. A watch reset after a
/// reconnect simply makes it look again.
async fn wait_for(client: &Client, path: &str, condition: &Condition) -> Result<()> {
    loop {
        let watcher = match condition {
            Condition::Exists | Condition::Gone => {
                let (stat, watcher) = client.exists_and_watch(path).await.map_err(|e| at(path, e))?;
                if stat.is_some() == (*condition == Condition::Exists) {
                    return Ok(());
                }
                watcher
            }
            Condition::Value(expected) => match client.get_and_watch(path).await {
                Ok((data, _, _)) if data == *expected => return Ok(()),
                Ok((_, _, watcher)) => watcher,
                Err(e) if e.is_no_node() => {
                    let (stat, watcher) = client.exists_and_watch(path).await.map_err(|e| at(path, e))?;
                    if stat.is_some() {
                        continue; // created meanwhile: read it
                    }
                    watcher
                }
                Err(e) => return Err(at(path, e)),
            },
        };
        watcher.changed().await.map_err(|e| at(path, e))?;
    }
}

/// `baton barrier PATH set|remove|wait`.
pub async fn barrier(
    client: &Client,
    path: &str,
    action: BarrierAction,
    timeout: Option<Duration>,
) -> Result<ExitCode> {
    let barrier = Barrier::new(client.clone(), path);
    match action {
        BarrierAction::Set => {
            barrier.set().await.map_err(|e| at(path, e))?;
        }
        BarrierAction::Remove => {
            barrier.remove().await.map_err(|e| at(path, e))?;
        }
        BarrierAction::Wait => {
            let mut interrupts = Interrupts::install()?;
            let passed = async { barrier.wait().await.map_err(|e| at(path, e)) };
            match bounded(&mut interrupts, timeout, passed).await? {
                Waited::Done(()) => {}
                Waited::Interrupted(code) => return Ok(code),
                Waited::TimedOut => {
                    let after = humantime::format_duration(timeout.unwrap_or_default());
                    return Err(
                        Outcome::NotAcquired(format!("{path}: the barrier is still raised after {after}")).into()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `baton queue put|take`.
pub async fn queue(client: &Client, action: QueueCommand) -> Result<ExitCode> {
    match action {
        QueueCommand::Put { path, data } => {
            let data = read_data(data)?;
            let created = Queue::new(client.clone(), &path).put(&data).await.map_err(|e| at(&path, e))?;
            print_line(&created)?;
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Take { path, timeout, nonblock } => take(client, &path, timeout, nonblock).await,
    }
}

async fn take(client: &Client, path: &str, timeout: Option<Duration>, nonblock: bool) -> Result<ExitCode> {
    let queue = Queue::new(client.clone(), path);
    let mut interrupts = Interrupts::install()?;
    // The timeout is the recipe's, which never gives up between taking an item and
    // returning it; a signal, like a kill, may.
    let taking = async {
        let taken = if nonblock {
            queue.try_take().await
        } else if let Some(timeout) = timeout {
            queue.take_timeout(timeout).await
        } else {
            queue.take().await.map(Some)
        };
        taken.map_err(|e| at(path, e))
    };
    let item = match bounded(&mut interrupts, None, taking).await? {
        Waited::Done(Some(item)) => item,
        Waited::Done(None) if nonblock => {
            return Err(Outcome::NotAcquired(format!("{path}: the queue is empty")).into());
        }
        Waited::Done(None) | Waited::TimedOut => {
            let after = humantime::format_duration(timeout.unwrap_or_default());
            return Err(Outcome::NotAcquired(format!("{path}: no item came within {after}")).into());
        }
        Waited::Interrupted(code) => return Ok(code),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&item).context("writing the item to stdout")?;
    out.flush().context("writing the item to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `baton counter add|get`: prints the value.
pub async fn counter(client: &Client, action: CounterCommand) -> Result<()> {
    let value = match action {
        CounterCommand::Add { path, n } => {
            Counter::new(client.clone(), &path).add(n).await.map_err(|e| at(&path, e))?
        }
        CounterCommand::Get { path } => Counter::new(client.clone(), &path).get().await.map_err(|e| at(&path, e))?,
    };
    print_line(&value.to_string())
}

/// How `baton discover` prints.
#[derive(Clone, Copy, Debug)]
pub enum Discovery {
    /// The instances now.
    Once,
    /// Then the set again after every change, up to this many sets (`None`: no limit).
    Watch(Option<u64>),
}

/// `baton discover`.
pub async fn discover(client: &Client, root: &str, service: &str, json: bool, how: Discovery) -> Result<ExitCode> {
    let registry = ServiceRegistry::new(client.clone(), root);
    let Discovery::Watch(count) = how else {
        let instances = registry.discover(service).await.context(format!("discovering {service}"))?;
        print_set(&instances, json, false)?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut interrupts = Interrupts::install()?;
    let mut set = registry.watch(service).await.context(format!("watching {service}"))?;
    print_set(&set.current(), json, true)?;
    let mut printed = 1_u64;
    while count.is_none_or(|n| printed < n) {
        let instances = tokio::select! {
            changed = set.changed() => changed.context(format!("watching {service}"))?,
            sig = interrupts.recv() => return Ok(stopped_by(sig)),
        };
        print_set(&instances, json, true)?;
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a set of instances: a JSON array on one line, or a line per instance (and an
/// empty line after the set when `separate`).
fn print_set(instances: &[baton::recipes::registry::Instance], json: bool, separate: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", output::instances_json(instances))?;
    } else {
        for instance in instances {
            writeln!(out, "{}", output::instance_line(instance))?;
        }
        if separate {
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}
