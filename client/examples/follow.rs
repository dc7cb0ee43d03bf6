//! Follows a subtree and the session's state, printing every change: a small tour of the
//! client API, and a handy way to watch reconnects happen.
//!
//! ```text
//! cargo run -p baton --example follow -- /run/baton/baton.sock /app
//! ```

use baton::{Client, CreateOptions};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| baton::proto::defaults::client_socket_path().display().to_string());
    let path = args.next().unwrap_or_else(|| "/".to_owned());

    let client =
        Client::builder().session_timeout(Duration::from_secs(10)).client_name("follow-example").connect(&addr).await?;
    println!("session {} (timeout {:?})", client.session_id(), client.session_timeout());
    // An ephemeral marker: it lives exactly as long as this session.
    let marker = format!("/follow-{}", client.session_id().0);
    client.create(&marker, b"", CreateOptions::ephemeral()).await?;

    let mut watcher = client.watch(&path, true).await?;
    let mut states = client.session_state();
    loop {
        tokio::select! {
            event = watcher.next() => {
                let event = event?;
                println!("{:?} {} {}", event.kind, event.path, event.zxid);
            }
            changed = states.changed() => {
                if changed.is_err() {
                    break;
                }
                let state = *states.borrow_and_update();
                println!("session {state}");
                if state.is_terminal() {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await?;
    Ok(())
}
