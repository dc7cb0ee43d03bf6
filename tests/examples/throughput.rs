//! A quick throughput probe for orientation (the real benchmark suite is separate): durable
//! writes (`set` of 100 bytes) and reads (`get`) per second with N concurrent clients, each
//! on its own session, against a running daemon.
//!
//! ```sh
//! cargo run --release -p baton-tests --example throughput -- ADDR [CLIENTS...]
//! ```

use baton::{Client, CreateOptions};
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or_else(|| anyhow::anyhow!("usage: throughput ADDR [CLIENTS...]"))?;
    let mut counts: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if counts.is_empty() {
        counts = vec![1, 16];
    }
    let setup = Client::connect(&addr).await?;
    if setup.exists("/bench").await?.is_none() {
        setup.create("/bench", b"", CreateOptions::persistent()).await?;
    }
    for &clients in &counts {
        let writes = run(&addr, clients, true).await?;
        let reads = run(&addr, clients, false).await?;
        println!("{clients:>3} clients: {writes:>8.0} durable writes/s  {reads:>8.0} reads/s");
    }
    Ok(())
}

async fn run(addr: &str, clients: usize, write: bool) -> anyhow::Result<f64> {
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = Client::connect(addr).await?;
        let path = format!("/bench/n{i}");
        if client.exists(&path).await?.is_none() {
            client.create(&path, &[0; 100], CreateOptions::persistent()).await?;
        }
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut done = 0u64;
            while started.elapsed() < RUN {
                if write {
                    client.set(&path, &[1; 100], None).await?;
                } else {
                    client.get(&path).await?;
                }
                done += 1;
            }
            client.close().await?;
            anyhow::Ok((done, started.elapsed()))
        }));
    }
    let mut total = 0.0;
    for task in tasks {
        let (done, took) = task.await??;
        total += done as f64 / took.as_secs_f64();
    }
    Ok(total)
}
