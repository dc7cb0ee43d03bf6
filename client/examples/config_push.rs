//! Coordination job (c): configuration kept in one node, every change pushed at once to every
//! subscriber.
//!
//! ```text
//! cargo run -p baton --example config_push -- subscribe ADDR /config/app   # prints each value
//! cargo run -p baton --example config_push -- publish ADDR /config/app 'level=debug'
//! ```
//!
//! A subscriber holds a persistent watch on the node and reads it again after every event, so
//! it prints the value it starts with and then every change, in order; with a persistent
//! watch there is no gap between a one-shot watch firing and being set again.

use baton::{Client, CreateOptions, EventKind};
use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["subscribe", addr, path] => subscribe(addr, path).await,
        ["publish", addr, path, value] => publish(addr, path, value).await,
        _ => anyhow::bail!("usage: config_push subscribe ADDR PATH | config_push publish ADDR PATH VALUE"),
    }
}

async fn publish(addr: &str, path: &str, value: &str) -> anyhow::Result<()> {
    let client = Client::connect(addr).await?;
    match client.set(path, value.as_bytes(), None).await {
        Ok(_) => {}
        Err(e) if e.is_no_node() => {
            client.create(path, value.as_bytes(), CreateOptions::persistent()).await?;
        }
        Err(e) => return Err(e.into()),
    }
    client.close().await?;
    Ok(())
}

async fn subscribe(addr: &str, path: &str) -> anyhow::Result<()> {
    let client = Client::connect(addr).await?;
    // Watch first, then read: no change can slip in between.
    let mut changes = client.watch(path, false).await?;
    let mut last_version = None;
    print_current(&client, path, &mut last_version).await?;
    loop {
        let event = changes.next().await?;
        if matches!(event.kind, EventKind::Created | EventKind::DataChanged | EventKind::WatchReset) {
            print_current(&client, path, &mut last_version).await?;
        } else if event.kind == EventKind::Deleted {
            println!("(deleted)");
            std::io::stdout().flush()?;
        }
    }
}

/// Prints the node's value unless this version was printed already.
async fn print_current(client: &Client, path: &str, last_version: &mut Option<i32>) -> anyhow::Result<()> {
    match client.get(path).await {
        Ok((data, stat)) if *last_version != Some(stat.version) => {
            *last_version = Some(stat.version);
            println!("{}", String::from_utf8_lossy(&data));
        }
        Ok(_) => {}
        Err(e) if e.is_no_node() => println!("(unset)"),
        Err(e) => return Err(e.into()),
    }
    std::io::stdout().flush()?;
    Ok(())
}
