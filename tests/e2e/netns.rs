//! Primary and standby on two hosts (network namespaces joined by veth), with a real network
//! partition (iptables): a partitioned primary may take writes it cannot replicate, but once
//! it learns of the standby's promotion it accepts none; when it rejoins, those writes are
//! set aside, not merged. Needs root; skips elsewhere with the reason.

use baton::{Client, CreateOptions, ErrorCode};
use baton_tests::Daemon;
use baton_tests::netns::Hosts;
use baton_tests::pair::{Token, assert_caught_up};
use std::time::{Duration, Instant};

const PORT: u16 = 7101;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_accepts_no_writes_once_it_knows_of_the_promotion() {
    let Some(mut hosts) = Hosts::create() else { return };
    let token = Token::new();
    let (link_a, link_b) = (format!("{}:{PORT}", hosts.ip_a), format!("{}:{PORT}", hosts.ip_b));
    let mut p = Daemon::start_in(
        &hosts.a,
        &["--replication-listen", &link_a, "--peer", &link_b, "--replication-token-file", token.arg()],
    );
    let s = Daemon::start_in(
        &hosts.b,
        &["--standby-of", &link_a, "--replication-listen", &link_b, "--replication-token-file", token.arg()],
    );
    let on_p = Client::connect(&p.addr()).await.unwrap();
    let on_s = Client::connect(&s.addr()).await.unwrap();
    for i in 0..20 {
        on_p.create(&format!("/across-{i}"), b"v", CreateOptions::persistent()).await.unwrap();
    }
    assert_caught_up(&on_p, &on_s).await;

    hosts.partition();
    // Cut off, the primary cannot know yet: what it takes now is divergent.
    on_p.create("/during-partition", b"", CreateOptions::persistent()).await.unwrap();
    on_s.promote().await.unwrap();
    let new = Client::connect(&s.addr()).await.unwrap();
    new.create("/on-the-new-primary", b"", CreateOptions::persistent()).await.unwrap();

    hosts.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !on_p.status().await.unwrap().fenced {
        assert!(Instant::now() < deadline, "the old primary never learned of the promotion");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut accepted = 0;
    for i in 0..50 {
        match on_p.create(&format!("/late-{i}"), b"", CreateOptions::persistent()).await {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::Fenced)),
        }
    }
    eprintln!("partitioned primary: writes accepted after it learned of the promotion: {accepted} of 50");
    assert_eq!(accepted, 0);
    drop(on_p);

    // It rejoins as the standby: the write it took while partitioned is set aside.
    p.kill9();
    p.restart_with(&["--standby-of", &link_b, "--replication-token-file", token.arg()]);
    let on_old = Client::connect(&p.addr()).await.unwrap();
    assert_caught_up(&new, &on_old).await;
    assert!(on_old.exists("/during-partition").await.unwrap().is_none());
    assert!(p.log().contains("set aside"));
}
