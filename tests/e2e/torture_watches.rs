//! T6 (RELIABILITY.md): watch guarantees across a reconnect. A watcher behind a proxy is cut
//! off while writes go on; when it comes back its session resumes and the changes it missed
//! are replayed from the daemon's watch history — gap-free, in order, once each — or, when
//! that history was compacted (`watch_history_txns`), it gets an explicit `WatchReset`:
//! never silence. Judged by the watch validator against the acknowledged writes.

use baton::{Client, CreateOptions, EventKind, SessionState};
use baton_tests::access::TcpAccess;
use baton_tests::proxy::Proxy;
use baton_tests::torture::history::{Op, Record, Ret, SeenEvent, WatchLog};
use baton_tests::torture::workload::drain;
use baton_tests::torture::{self, watches};
use baton_tests::{Daemon, eventually};
use std::time::Duration;

const HISTORY: usize = 50;

/// Acknowledged sets of `path`, `count` of them, recorded as the validator wants them.
async fn sets(client: &Client, path: &str, count: usize, records: &mut Vec<Record>) -> u64 {
    let mut last = 0;
    for n in 0..count {
        let stat = client.set(path, format!("{n}").as_bytes(), None).await.unwrap();
        records.push(Record {
            client: 99,
            path: path.to_owned(),
            op: Op::Set { value: n as u64 + 1, version: None },
            invoke_ns: 0,
            complete_ns: Some(0),
            ret: Some(Ret::Set(stat.version)),
            zxid: Some(stat.mzxid),
        });
        last = stat.mzxid.0;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t6_a_cut_off_watcher_gets_every_missed_change_or_an_explicit_reset() {
    let access = TcpAccess::new("t6");
    let daemon = Daemon::start_with_config(&format!("{}watch_history_txns = {HISTORY}\n", access.config()));
    let proxy = Proxy::start(access.tcp()).await;
    let writer = Client::connect(&daemon.addr()).await.unwrap();
    writer.create("/t6", b"", CreateOptions::persistent()).await.unwrap();
    let (path, mut records) = ("/t6/node", Vec::new());
    let (_, created) = writer.create(path, b"", CreateOptions::persistent()).await.unwrap();
    records.push(Record {
        client: 99,
        path: path.to_owned(),
        op: Op::Create(0),
        invoke_ns: 0,
        complete_ns: Some(0),
        ret: Some(Ret::Created),
        zxid: Some(created.czxid),
    });
    let watcher_client =
        access.builder().session_timeout(Duration::from_secs(30)).connect(&proxy.addr()).await.unwrap();
    let mut watcher = watcher_client.watch("/t6", true).await.unwrap();
    let mut log = WatchLog { client: 0, from: watcher_client.last_zxid(), ..WatchLog::default() };
    let mut resets_per_phase = Vec::new();
    // Within the history, then well past it.
    for missed in [HISTORY / 2, HISTORY * 4] {
        proxy.cut(true);
        let mut state = watcher_client.session_state();
        assert!(
            eventually(Duration::from_secs(10), || matches!(
                *state.borrow_and_update(),
                SessionState::Suspended { .. }
            ))
            .await,
            "the watcher never noticed the cut"
        );
        sets(&writer, path, missed, &mut records).await;
        proxy.unblock();
        // A marker written after the reconnection: once it arrives, the replay is over.
        assert!(
            eventually(Duration::from_secs(20), || *state.borrow_and_update() == SessionState::Connected).await,
            "the watcher never resumed its session"
        );
        let marker = sets(&writer, path, 1, &mut records).await;
        let resets_before = log.events.iter().filter(|e| e.kind == EventKind::WatchReset).count();
        let arrived = eventually(Duration::from_secs(20), || {
            drain(&mut watcher, &mut log).expect("the watcher ended");
            log.events.iter().any(|e| e.zxid.0 == marker)
        })
        .await;
        assert!(arrived, "the marker's event never arrived");
        resets_per_phase.push(log.events.iter().filter(|e| e.kind == EventKind::WatchReset).count() - resets_before);
    }
    let report = watches::check(std::slice::from_ref(&log), &records, "/t6");
    let events = log.events.iter().filter(|e: &&SeenEvent| e.kind != EventKind::WatchReset).count();
    torture::figure(&format!(
        "T6 watch resume: {} missed within the history -> {} resets; {} missed past it (history {HISTORY}) -> {} resets; {events} events, reorders {} duplicates {} gaps {} phantoms {} of {} deliveries checked",
        HISTORY / 2,
        resets_per_phase[0],
        HISTORY * 4,
        resets_per_phase[1],
        report.reorders.len(),
        report.duplicates.len(),
        report.gaps.len(),
        report.phantoms.len(),
        report.deliveries_checked
    ));
    assert_eq!(resets_per_phase[0], 0, "a reset although the history covered the gap");
    assert!(resets_per_phase[1] >= 1, "past the history, changes were missed without a WatchReset");
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(report.deliveries_checked > HISTORY / 2, "{report:?}");
}
