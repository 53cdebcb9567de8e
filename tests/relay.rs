//! The relay in-process against a real `redis-server` and the emulator: one record per
//! entry, acked with it; invalid and poison entries dead-lettered; a dead consumer's entries
//! taken over, or left to a live consumer that took it; a Redis restart survived; upstream
//! into the inbox before its ack.
#![cfg(feature = "relay")]

mod common;

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use common::redis_server::{OUTBOX as STREAM, Redis, pending, results, xlen as len};
use common::*;
use gcm_ccs::emulator::{Emulator, Reply, Script};
use gcm_ccs::relay::{RedisTarget, Relay, RelayConfig, RelayReport};
use gcm_ccs::{Incoming, Sender};
use redis::Commands;
use tokio::sync::oneshot;

fn relay_config(redis: &Redis, consumer: &str) -> RelayConfig {
    let mut cfg = RelayConfig::new(RedisTarget::new(&redis.url(), None).unwrap(), consumer);
    cfg.claim_after = Duration::from_secs(2);
    cfg.block = Duration::from_millis(200);
    cfg.shutdown_timeout = Duration::from_secs(10);
    cfg
}

async fn sender(emu: &Emulator) -> (Sender, Incoming) {
    Sender::builder().xmpp(config(emu)).build().await.unwrap()
}

/// A relay running until the returned sender fires.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<RelayReport>,
}

async fn start(cfg: RelayConfig, emu: &Emulator) -> Running {
    let (sender, incoming) = sender(emu).await;
    let relay = Relay::start(cfg, sender, incoming, None).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    Running { stop, task }
}

impl Running {
    async fn stop(self) -> RelayReport {
        let _ = self.stop.send(());
        bounded(30, self.task).await.unwrap()
    }
}

fn xadd(conn: &mut redis::Connection, fields: &[(&str, &str)]) -> String {
    conn.xadd(STREAM, "*", fields).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_gets_exactly_one_record_and_is_acked_with_it() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let emu = emulator(script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))])).await;
    // Entries produced before the first relay started are sent too (group at ID 0).
    let mut want = HashMap::new();
    for n in 0..1500 {
        let (message, outcome) = match n % 10 {
            0 => (format!(r#"{{"to":"gone-{n}"}}"#), "nacked"),
            1 => ("{not json".to_owned(), "invalid"),
            2 => (r#"{"data":{"k":"v"}}"#.to_owned(), "invalid"),
            _ => (
                format!(r#"{{"to":"tok-{n}","data":{{"n":"{n}"}}}}"#),
                "acked",
            ),
        };
        want.insert(xadd(&mut conn, &[("message", &message)]), outcome);
    }
    want.insert(xadd(&mut conn, &[("other", "x")]), "invalid");
    let running = start(relay_config(&redis, "r1"), &emu).await;
    // And entries produced while it runs.
    for n in 0..500 {
        let message = format!(r#"{{"to":"late-{n}"}}"#);
        want.insert(xadd(&mut conn, &[("message", &message)]), "acked");
    }
    let total = want.len();
    within(60, "all recorded", || {
        len(&mut conn, "gcm:results") >= total
    })
    .await;
    let report = running.stop().await;

    let got = results(&mut conn);
    assert_eq!(got.len(), total, "one record per entry");
    for (entry, outcome) in &want {
        let record = &got[entry];
        assert_eq!(record["outcome"], *outcome, "{record}");
        assert_eq!(record["consumer"], "r1");
        if *outcome == "nacked" {
            assert_eq!(record["code"], "DEVICE_UNREGISTERED");
        }
        if *outcome == "acked" {
            // No message id in the entry: derived from the entry id.
            assert_eq!(record["message_id"], format!("{STREAM}/{entry}"));
        }
    }
    assert_eq!(pending(&mut conn), 0, "every entry acked");
    let invalid = want.values().filter(|o| **o == "invalid").count();
    assert_eq!(
        len(&mut conn, "gcm:dead"),
        invalid,
        "invalid entries dead-lettered"
    );
    assert_eq!(emu.stats().unique_messages as usize, total - invalid);
    assert_eq!(report.recorded as usize, total);
    assert_eq!((report.not_pending, report.left_pending), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_taken_over_and_poison_is_dead_lettered() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let emu = emulator(Script::default()).await;
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", STREAM, "gcm-ccs", "0", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let orphan = xadd(
        &mut conn,
        &[
            ("message", r#"{"to":"orphan"}"#),
            ("message_id", "m-orphan"),
        ],
    );
    let poison = xadd(&mut conn, &[("message", r#"{"to":"poison"}"#)]);
    // A consumer reads both and dies; the poison entry was delivered many times before.
    let read = |conn: &mut redis::Connection, id: &str| {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP", "gcm-ccs", "ghost", "COUNT", "1", "STREAMS", STREAM, id,
            ])
            .query(conn)
            .unwrap();
    };
    read(&mut conn, ">");
    read(&mut conn, ">");
    for _ in 0..5 {
        // Re-reading from the orphan's id returns only the poison entry, again.
        redis::cmd("XREADGROUP")
            .arg(&["GROUP", "gcm-ccs", "ghost", "STREAMS", STREAM, &orphan])
            .query::<redis::Value>(&mut conn)
            .unwrap();
    }
    let running = start(relay_config(&redis, "r2"), &emu).await;
    within(30, "both recorded", || len(&mut conn, "gcm:results") >= 2).await;
    let report = running.stop().await;

    let got = results(&mut conn);
    assert_eq!(got[&orphan]["outcome"], "acked");
    assert_eq!(got[&orphan]["message_id"], "m-orphan");
    assert_eq!(got[&orphan]["consumer"], "r2");
    assert_eq!(got[&poison]["outcome"], "failed");
    assert_eq!(got[&poison]["code"], "MAX_DELIVERIES");
    assert_eq!(emu.copies("m-orphan"), 1);
    assert!(
        emu.received(&format!("{STREAM}/{poison}")).is_none(),
        "poison not sent"
    );
    let dead: redis::streams::StreamRangeReply = conn.xrange_all("gcm:dead").unwrap();
    assert_eq!(dead.ids.len(), 1);
    assert_eq!(dead.ids[0].get::<String>("entry_id").unwrap(), poison);
    assert!(
        dead.ids[0]
            .get::<String>("reason")
            .unwrap()
            .contains("MAX_DELIVERIES")
    );
    assert_eq!(
        dead.ids[0].get::<String>("message").unwrap(),
        r#"{"to":"poison"}"#
    );
    assert_eq!(pending(&mut conn), 0);
    assert_eq!(report.recorded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_and_doubles_nothing() {
    let mut redis = Redis::start_persistent();
    let mut conn = redis.conn();
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 100 })])).await;
    const N: usize = 3000;
    let mut ids = HashSet::new();
    for n in 0..N {
        ids.insert(xadd(
            &mut conn,
            &[("message", &format!(r#"{{"to":"t{n}"}}"#))],
        ));
    }
    let mut cfg = relay_config(&redis, "r3");
    cfg.capacity = 200;
    let running = start(cfg, &emu).await;
    within(60, "a third recorded", || {
        len(&mut conn, "gcm:results") >= N / 3
    })
    .await;
    redis.restart();
    let before = len(&mut redis.conn(), "gcm:results");
    assert!(before < N, "the restart came mid-run ({before} recorded)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = redis.conn();
    within(90, "all recorded after the restart", || {
        len(&mut conn, "gcm:results") >= N
    })
    .await;
    let report = running.stop().await;
    let got = results(&mut conn);
    assert_eq!(got.keys().cloned().collect::<HashSet<_>>(), ids);
    assert_eq!(pending(&mut conn), 0);
    // A transaction applied whose reply the restart cut is found done, not written again.
    assert_eq!((report.recorded + report.not_pending) as usize, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_goes_to_the_inbox_before_it_is_acked_even_with_redis_slow() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let mut s = Script::default();
    s.faults.upstream_on_bind = 400;
    let emu = emulator(s).await;
    let (sender, incoming) = sender(&emu).await;
    let relay = Relay::start(relay_config(&redis, "r4"), sender, incoming, None)
        .await
        .unwrap();
    // Redis stalls for a second just as the relay takes the burst.
    let mut slow = redis.conn();
    let stall = std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg(&["SLEEP", "1"])
            .query(&mut slow)
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    let running = Running {
        stop,
        task: tokio::spawn(async move { task.await.unwrap().unwrap() }),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        emu.acked_by_client().is_empty(),
        "acked to CCS while Redis had not taken them"
    );
    within(60, "the burst in the inbox", || {
        len(&mut conn, "gcm:inbox") >= 400
    })
    .await;
    stall.join().unwrap();
    within(30, "acked to CCS", || emu.acked_by_client().len() >= 400).await;
    running.stop().await;

    let inbox: redis::streams::StreamRangeReply = conn.xrange_all("gcm:inbox").unwrap();
    let keys: HashSet<(String, String)> = inbox
        .ids
        .iter()
        .map(|e| (e.get("from").unwrap(), e.get("message_id").unwrap()))
        .collect();
    assert_eq!(
        keys.len(),
        400,
        "every upstream message and receipt, once per key"
    );
    let kinds: HashSet<String> = inbox.ids.iter().map(|e| e.get("kind").unwrap()).collect();
    assert_eq!(kinds, HashSet::from(["upstream".into(), "receipt".into()]));
    let acked: HashSet<String> = emu.acked_by_client().into_iter().collect();
    for (_, id) in &keys {
        assert!(acked.contains(id), "{id} in the inbox and acked");
    }
    let message: serde_json::Value =
        serde_json::from_str(&inbox.ids[0].get::<String>("message").unwrap()).unwrap();
    assert!(message["data"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_taken_over_while_in_flight_is_left_to_its_new_owner() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let emu = emulator(script(vec![rule("slow-", Reply::Delay { ms: 2500 })])).await;
    let stolen = xadd(&mut conn, &[("message", r#"{"to":"slow-1"}"#)]);
    let kept = xadd(&mut conn, &[("message", r#"{"to":"fast-1"}"#)]);
    let running = start(relay_config(&redis, "r5"), &emu).await;
    within(30, "sent", || emu.stats().downstream >= 2).await;
    // Another (live) consumer takes the slow one over while r5 waits for its ack, and
    // keeps it fresh as a live relay does.
    let thief = {
        let (mut conn, stolen) = (redis.conn(), stolen.clone());
        tokio::task::spawn_blocking(move || {
            for _ in 0..20 {
                let _: redis::Value = redis::cmd("XCLAIM")
                    .arg(&[STREAM, "gcm-ccs", "thief", "0", &stolen, "JUSTID"])
                    .query(&mut conn)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    within(30, "the fast one recorded", || {
        len(&mut conn, "gcm:results") >= 1
    })
    .await;
    thief.await.unwrap();
    let report = running.stop().await;
    let got = results(&mut conn);
    assert!(got.contains_key(&kept));
    assert!(
        !got.contains_key(&stolen),
        "recorded by the consumer that lost it: {:?}",
        got.get(&stolen)
    );
    let thiefs: redis::streams::StreamPendingCountReply = conn
        .xpending_consumer_count(STREAM, "gcm-ccs", "-", "+", 10, "thief")
        .unwrap();
    assert_eq!(thiefs.ids.len(), 1, "still pending on its new owner");
    assert_eq!((report.recorded, report.not_pending), (1, 1));
}
