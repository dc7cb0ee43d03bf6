//! Coordination job (a): process A asks process B for work and is woken by a watch the moment
//! B writes the result — no polling anywhere.
//!
//! ```text
//! cargo run -p baton --example request_reply -- worker ADDR            # B: serves requests
//! cargo run -p baton --example request_reply -- request ADDR "hello"   # A: prints HELLO
//! ```
//!
//! A creates `/work/requests/job-NNNNNNNNNN` holding its input and watches for
//! `/work/results/job-NNNNNNNNNN`. B keeps a persistent watch on `/work/requests`; for every
//! request it writes the result under `/work/results` (here: the input in upper case) and
//! deletes the request. A reads the result when its watch fires and cleans up.

use baton::{Client, CreateOptions, EventKind};

const REQUESTS: &str = "/work/requests";
const RESULTS: &str = "/work/results";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["worker", addr] => worker(addr).await,
        ["request", addr, input] => request(addr, input).await,
        _ => anyhow::bail!("usage: request_reply worker ADDR | request_reply request ADDR INPUT"),
    }
}

async fn request(addr: &str, input: &str) -> anyhow::Result<()> {
    let client = Client::connect(addr).await?;
    client.create_path(REQUESTS, b"").await?;
    client.create_path(RESULTS, b"").await?;
    let (job_path, _) =
        client.create(&format!("{REQUESTS}/job-"), input.as_bytes(), CreateOptions::persistent().sequential()).await?;
    let job = baton::proto::path::name(&job_path).to_owned();
    let result_path = format!("{RESULTS}/{job}");
    // Watch first, then check: a result written in between is not missed.
    let (existing, watcher) = client.exists_and_watch(&result_path).await?;
    if existing.is_none() {
        let event = watcher.changed().await?;
        anyhow::ensure!(event.kind == EventKind::Created, "unexpected event {event:?}");
    }
    let (result, _) = client.get(&result_path).await?;
    client.delete(&result_path, None).await?;
    println!("{}", String::from_utf8_lossy(&result));
    client.close().await?;
    Ok(())
}

async fn worker(addr: &str) -> anyhow::Result<()> {
    let client = Client::connect(addr).await?;
    client.create_path(REQUESTS, b"").await?;
    client.create_path(RESULTS, b"").await?;
    let mut requests = client.watch(REQUESTS, false).await?;
    eprintln!("worker ready");
    loop {
        // Serve whatever is waiting, then sleep until the list of requests changes.
        for job in client.children(REQUESTS).await? {
            let request_path = format!("{REQUESTS}/{job}");
            let Ok((input, stat)) = client.get(&request_path).await else { continue };
            let output = String::from_utf8_lossy(&input).to_uppercase();
            match client.create(&format!("{RESULTS}/{job}"), output.as_bytes(), CreateOptions::persistent()).await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(e.into()),
            }
            client
                .delete(&request_path, Some(stat.version))
                .await
                .or_else(|e| if e.is_no_node() { Ok(()) } else { Err(e) })?;
        }
        requests.next().await?;
    }
}
