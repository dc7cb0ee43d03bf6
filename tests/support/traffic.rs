//! Traffic patterns that tests run over more than one transport.

use baton::{Client, CreateOptions};
use std::time::Duration;

/// Near the largest value a node takes by default (1 MiB).
const LARGE: usize = 1_000_000;
/// Far longer than the traffic takes (a few seconds on a small machine): past it, it stalled.
const STALLED_AFTER: Duration = Duration::from_secs(60);

/// Large requests and large replies on one session at once: half of `tasks` set a node to a
/// large value, the others get a large node back, `rounds` times each. The daemon stops reading
/// a connection's requests while its replies wait for the client to take them, so this stalls
/// unless the client keeps reading while its own requests wait to be sent. Panics if it stalls
/// or anything comes back wrong.
pub async fn large_requests_and_replies_at_once(client: &Client, tasks: usize, rounds: usize) {
    let value: Vec<u8> = (0..LARGE).map(|i| (i % 251) as u8).collect();
    client.create("/large-out", &value, CreateOptions::persistent()).await.unwrap();
    client.create("/large-in", b"", CreateOptions::persistent()).await.unwrap();
    let mut running = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (client, value) = (client.clone(), value.clone());
        running.push(tokio::spawn(async move {
            for _ in 0..rounds {
                if task % 2 == 0 {
                    let (data, _) = client.get("/large-out").await.unwrap();
                    assert!(data == value, "a large reply arrived changed");
                } else {
                    client.set("/large-in", &value, None).await.unwrap();
                }
            }
        }));
    }
    let all = async {
        for task in running {
            task.await.unwrap();
        }
    };
    let finished = tokio::time::timeout(STALLED_AFTER, all).await;
    assert!(finished.is_ok(), "large requests and replies on one session stalled for {STALLED_AFTER:?}");
    let (data, _) = client.get("/large-in").await.unwrap();
    assert!(data == value, "the last large set is what the node holds");
}
