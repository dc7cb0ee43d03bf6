//! Coordination job (b): a lock with fencing. Two processes contend for a lock; each holder
//! writes to a shared resource with every write guarded by its fencing token, so a holder
//! that was paused (SIGSTOP, a long GC, a swapped-out VM) until its session expired, and then
//! resumes as if nothing happened, has its late writes rejected by the server instead of
//! overwriting the new holder's.
//!
//! ```text
//! cargo run -p baton --example fenced_lock -- ADDR NAME WRITES
//! ```
//!
//! Prints `acquired NAME TOKEN`, then `wrote NAME N` for each write, and exits 0 after WRITES
//! writes; or prints `fenced NAME TOKEN` and exits 3 when the server refuses a write because
//! the token no longer holds the lock.
//!
//! The writes go through a separate client, as writes to a separate service would. A paused
//! process cannot know it was paused, so the example deliberately does not consult its own
//! view of the lock before writing: the check that counts is the server's. An external
//! resource can do the same with the token alone: remember the highest token seen and refuse
//! any request carrying a lower one (`baton lock` passes it as `BATON_FENCING_TOKEN`).

use baton::recipes::lock::{Lock, LockGuard};
use baton::{Client, Error, ErrorCode, MultiOp};
use std::time::Duration;

const LOCK: &str = "/examples/fenced/lock";
const DATA: &str = "/examples/fenced/data";
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, writes] = &args[..] else {
        anyhow::bail!("usage: fenced_lock ADDR NAME WRITES");
    };
    let writes: u32 = writes.parse()?;
    let lock_client = Client::builder().session_timeout(SESSION_TIMEOUT).connect(addr).await?;
    let guard = Lock::new(lock_client.clone(), LOCK).acquire().await?;
    println!("acquired {name} {}", guard.token());
    let mut store = Store::connect(addr).await?;
    for n in 0..writes {
        match store.write(&guard, format!("{name} {n}")).await {
            Ok(()) => println!("wrote {name} {n}"),
            Err(e) if e.code() == Some(ErrorCode::LockLost) => {
                println!("fenced {name} {}", guard.token());
                std::process::exit(3);
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    guard.release().await?;
    Ok(())
}

/// The protected resource's client: reconnects with a new session when its old one is gone.
struct Store {
    addr: String,
    client: Client,
}

impl Store {
    async fn connect(addr: &str) -> baton::Result<Store> {
        let client = Client::builder().session_timeout(SESSION_TIMEOUT).connect(addr).await?;
        Ok(Store { addr: addr.to_owned(), client })
    }

    /// One write, guarded by the lock's fencing token.
    async fn write(&mut self, guard: &LockGuard, value: String) -> baton::Result<()> {
        loop {
            let ops = vec![
                guard.guard_op(),
                MultiOp::Set { path: DATA.into(), data: Some(value.clone().into_bytes()), version: None },
            ];
            match self.client.multi(ops).await {
                Ok(_) => return Ok(()),
                Err(Error::MultiFailed { code: ErrorCode::NoNode, .. }) => {
                    // The first write: create the resource, then write again.
                    let _ = self.client.create(DATA, b"", baton::CreateOptions::persistent()).await;
                }
                Err(Error::MultiFailed { code, .. }) => {
                    return Err(Error::Server { code, message: format!("guarded write of {value:?} refused") });
                }
                Err(Error::SessionExpired | Error::Closed) => {
                    self.client = Client::builder().session_timeout(SESSION_TIMEOUT).connect(&self.addr).await?;
                }
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e),
            }
        }
    }
}
