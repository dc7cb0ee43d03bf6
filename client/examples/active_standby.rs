//! Coordination job (d): active/standby. Every instance campaigns; the leader is active and
//! does the work, the others wait as standbys. When the active process dies, its session
//! expires (or, on a connection-bound session, ends at once) and the next standby takes over
//! within the session timeout. Every write the active instance makes is guarded by its
//! leadership's fencing token, so even an active instance that lost its leadership without
//! noticing cannot write: there is never more than one active writer.
//!
//! ```text
//! cargo run -p baton --example active_standby -- ADDR NAME
//! ```
//!
//! Prints `standby NAME` while waiting and `active NAME TOKEN` on taking over, then does its
//! "work": a guarded heartbeat write of its name to `/examples/active/heartbeat` every 100 ms.

use baton::recipes::election::LeaderElection;
use baton::recipes::lock::HoldState;
use baton::{Client, Error, ErrorCode, MultiOp};
use std::time::Duration;

const ELECTION: &str = "/examples/active/election";
const HEARTBEAT: &str = "/examples/active/heartbeat";
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name] = &args[..] else {
        anyhow::bail!("usage: active_standby ADDR NAME");
    };
    loop {
        let client = Client::builder().session_timeout(SESSION_TIMEOUT).connect(addr).await?;
        serve(&client, name).await?;
        // The session is gone (expired while paused, say): start over with a new one.
    }
}

/// Campaigns and works while leading, until the session ends.
async fn serve(client: &Client, name: &str) -> anyhow::Result<()> {
    let election = LeaderElection::new(client.clone(), ELECTION);
    loop {
        println!("standby {name}");
        let leadership = match election.campaign(name.as_bytes()).await {
            Ok(leadership) => leadership,
            Err(Error::SessionExpired | Error::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        println!("active {name} {}", leadership.token());
        let mut state = leadership.watch();
        let mut beats = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = beats.tick() => {}
                _ = state.wait_for(|s| *s == HoldState::Lost) => break,
            }
            let beat = vec![
                leadership.guard_op(),
                MultiOp::Set { path: HEARTBEAT.into(), data: Some(name.as_bytes().to_vec()), version: None },
            ];
            match client.multi(beat).await {
                Ok(_) => {}
                Err(Error::MultiFailed { code: ErrorCode::NoNode, .. }) => {
                    let _ = client.create(HEARTBEAT, b"", baton::CreateOptions::persistent()).await;
                }
                Err(Error::MultiFailed { code: ErrorCode::LockLost, .. }) => break,
                Err(Error::SessionExpired | Error::Closed) => return Ok(()),
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e.into()),
            }
        }
        println!("lost {name}");
    }
}
