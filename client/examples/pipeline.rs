//! Pipelining from one session: issues many requests concurrently on a single `Client` and
//! reports how long they took. Requests from one handle are sent back to back without
//! waiting for each reply, and take effect in the order they were issued.
//!
//! ```text
//! cargo run --release -p baton --example pipeline -- /run/baton/baton.sock 10000
//! ```

use baton::{Client, CreateOptions};
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| baton::proto::defaults::client_socket_path().display().to_string());
    let count: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;

    let client = Client::connect(&addr).await?;
    if client.exists("/pipeline").await?.is_none() {
        client.create("/pipeline", b"", CreateOptions::persistent()).await?;
    }
    for (name, write) in [("set", true), ("get", false)] {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let client = client.clone();
            tasks.spawn(async move {
                if write {
                    client.set("/pipeline", i.to_string().as_bytes(), None).await.map(drop)
                } else {
                    client.get("/pipeline").await.map(drop)
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let secs = started.elapsed().as_secs_f64();
        println!("{count} {name}s in {secs:.3} s: {:.0}/s", count as f64 / secs);
    }
    let (_, stat) = client.get("/pipeline").await?;
    println!("final version {}", stat.version);
    client.close().await?;
    Ok(())
}
