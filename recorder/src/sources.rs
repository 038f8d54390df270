//! Tests of the recorder's two sources (`Source`), each with a real writer and database:
//! the gateway's ingest sink, whose PUBACKs wait for the commit, and a router subscription.

use std::path::Path;
use std::time::{Duration, Instant};

use broker::ingest::{self, Acks, Delivery};
use broker::{Publisher, Router};

use crate::{Recorder, RecorderConfig, Retention, Source};

fn database(dir: &Path) -> RecorderConfig {
    let database = dir.join("r.db");
    let mut conn = crate::db::open_and_migrate(&database).unwrap();
    crate::hosts::add_host(&mut conn, "pve1").unwrap();
    RecorderConfig { database, retention: Retention::raw(Duration::from_secs(3600)) }
}

fn fast(seq: u64) -> Vec<u8> {
    let ts_ms = crate::now_ms();
    format!(r#"{{"schema":1,"host_id":"pve1","ts_ms":{ts_ms},"boot_id":"b","seq":{seq},"agent_version":"t","data":{{"load1":1.0}}}}"#)
        .into_bytes()
}

fn stored(config: &RecorderConfig) -> i64 {
    let conn = crate::db::open_read(&config.database).unwrap();
    conn.query_row("SELECT count(*) FROM fast_samples WHERE host_id = 'pve1'", [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_sink_each_publish_is_acked_after_its_commit_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = database(dir.path());
    let (sink, deliveries) = ingest::channel(16);
    let recorder = Recorder::start(Source::Ingest(deliveries), config.clone()).await.unwrap();
    let mut acks = Acks::new();
    // A valid sample, an invalid one (refused at parse, acked at once), a valid one.
    let sent = [(1, fast(1)), (2, b"not json".to_vec()), (3, fast(2))];
    for (pkid, payload) in sent {
        let delivery = Delivery {
            topic: b"pmon/v1/pve1/fast".as_slice().into(),
            payload: payload.into(),
            done: Some(acks.track(pkid)),
        };
        assert!(sink.send(delivery).await);
    }
    let mut ready = Vec::new();
    let mut stored_at_first_ack = None;
    while ready.len() < 3 {
        let outcome = tokio::time::timeout(Duration::from_secs(5), acks.next()).await.expect("acked within 5 s");
        acks.settle(outcome, &mut ready).expect("nothing lost");
        if !ready.is_empty() && stored_at_first_ack.is_none() {
            stored_at_first_ack = Some(stored(&config));
        }
    }
    assert_eq!(ready, [1, 2, 3], "PUBACKs in arrival order");
    assert!(stored_at_first_ack >= Some(1), "the first publish is committed before its ack");
    assert_eq!(stored(&config), 2, "both valid samples committed by their acks");
    let bad_json = recorder.stats.rejected().into_iter().find(|(r, _)| r.as_str() == "bad_json").unwrap().1;
    assert_eq!(bad_json, 1);
    recorder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_subscription_still_feeds_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let config = database(dir.path());
    let router = Router::start(16);
    let recorder = Recorder::start(Source::Router(&router), config.clone()).await.unwrap();
    let publisher = Publisher::new(&router, "test").await.unwrap();
    assert!(publisher.publish("pmon/v1/pve1/fast".into(), fast(1), false).await);
    let started = Instant::now();
    while stored(&config) < 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "stored within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    recorder.shutdown().await;
}
