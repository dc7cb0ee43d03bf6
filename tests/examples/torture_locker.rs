//! A lock contender for the T8 torture test (tests/e2e/torture_lock.rs): takes the lock
//! `ROUNDS` times; each time appends `WRITES` entries to a shared log, each guarded by the
//! fencing token (a `multi` whose first op is the guard), through a separate client as a
//! separate service would be. A process paused (SIGSTOP) while holding the lock comes back
//! believing it still holds it: its next guarded write must be refused.
//!
//! ```text
//! torture_locker ADDR NAME ROUNDS WRITES
//! ```
//!
//! Prints `acquired NAME TOKEN`, `wrote NAME TOKEN N`, `fenced NAME TOKEN` (a write refused
//! with LockLost), `released NAME TOKEN`, and finally `wakeups NAME N`.

use baton::recipes::lock::Lock;
use baton::{Client, Error, ErrorCode, MultiOp};
use std::time::Duration;

const LOCK: &str = "/t8/lock";
const LOG: &str = "/t8/log/e-";
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

async fn connect(addr: &str) -> anyhow::Result<Client> {
    Ok(Client::builder().session_timeout(SESSION_TIMEOUT).connect(addr).await?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, rounds, writes] = &args[..] else {
        anyhow::bail!("usage: torture_locker ADDR NAME ROUNDS WRITES");
    };
    let (rounds, writes): (u32, u32) = (rounds.parse()?, writes.parse()?);
    let mut wakeups = 0;
    let mut store = connect(addr).await?;
    let mut round = 0;
    while round < rounds {
        let lock = Lock::new(connect(addr).await?, LOCK);
        let guard = match lock.acquire().await {
            Ok(guard) => guard,
            Err(Error::SessionExpired) => continue,
            Err(e) => return Err(e.into()),
        };
        let token = guard.token();
        println!("acquired {name} {token}");
        let mut n = 0;
        while n < writes {
            let entry = format!("{token} {name} {round} {n}");
            let ops = vec![
                guard.guard_op(),
                MultiOp::Create(baton::CreateRequest {
                    path: LOG.into(),
                    data: Some(entry.into_bytes()),
                    kind: baton::CreateKind::Persistent,
                    sequential: true,
                    acl: Vec::new(),
                }),
            ];
            match store.multi(ops).await {
                Ok(_) => {
                    println!("wrote {name} {token} {n}");
                    n += 1;
                }
                Err(Error::MultiFailed { code: ErrorCode::LockLost, .. }) => {
                    println!("fenced {name} {token}");
                    break;
                }
                // The write service's own session ended while this process was paused.
                Err(Error::SessionExpired) => store = connect(addr).await?,
                // Lost in flight: it may have been written; the log check counts entries,
                // so do not write it twice.
                Err(Error::ConnectionLoss) => {
                    println!("unsure {name} {token} {n}");
                    n += 1;
                }
                Err(e) => return Err(e.into()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = guard.release().await;
        println!("released {name} {token}");
        wakeups += lock.wakeups();
        round += 1;
    }
    println!("wakeups {name} {wakeups}");
    Ok(())
}
