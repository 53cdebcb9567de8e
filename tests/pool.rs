//! The long-running sender: pool, drain handover, reconnect, retries and exactly-one outcome
//! under faults. Backoff schedules run on in-memory emulator pipes under paused time;
//! connection handover runs over real loopback TLS.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use gcm_ccs::emulator::{Reply, Script};
use gcm_ccs::{Client, ConnectError, Event, Message, NackCode, SendError};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Submits `n` messages to `token(i)` and returns every outcome keyed by message id.
async fn send_all(
    client: &Client,
    n: usize,
    token: impl Fn(usize) -> String,
) -> HashMap<String, Result<gcm_ccs::Ack, SendError>> {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let p = client
            .submit(Message::to(token(i)).build().unwrap())
            .await
            .unwrap();
        tasks.spawn(async move {
            let id = p.message_id().to_owned();
            (id, p.await)
        });
    }
    let mut out = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (id, outcome) = r.unwrap();
        assert!(out.insert(id, outcome).is_none(), "an id resolved twice");
    }
    assert_eq!(out.len(), n, "every message has exactly one outcome");
    out
}

#[tokio::test]
async fn pool_opens_every_connection_and_spreads_the_load() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 20 })])).await;
    let mut cfg = config(&emu);
    cfg.connections = 4;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    eventually("four connections", || client.stats().connections == 4).await;
    let outcomes = send_all(&client, 2000, |i| format!("t{i}")).await;
    assert!(outcomes.values().all(Result::is_ok));
    let stats = emu.stats();
    assert_eq!(stats.connections_authenticated, 4);
    assert!(stats.max_pending <= 100, "{stats:?}");
    assert_eq!(
        client.stats().reconnects,
        0,
        "opening the pool is not reconnecting"
    );
    client.close().await;
}

#[tokio::test]
async fn drain_hands_over_to_a_new_connection_without_failures() {
    let mut s = script(vec![rule("", Reply::Delay { ms: 10 })]);
    s.faults.drain_after = Some(300);
    // Keep the drained connection open a while, so the N+1 handover is observable.
    s.faults.drain_close_ms = 300;
    s.faults.drain_close_when_flushed = false;
    let emu = emulator(s).await;
    let client = client(&emu).await;
    let mut events = client.events();
    let log = tokio::spawn(async move {
        let mut log = Vec::new();
        while let Some(ev) = events.recv().await {
            log.push(ev);
        }
        log
    });
    let outcomes = send_all(&client, 1000, |i| format!("t{i}")).await;
    let failed: Vec<_> = outcomes.values().filter(|o| o.is_err()).collect();
    assert!(failed.is_empty(), "no message may fail: {failed:?}");
    // Let the server finish closing the drained connection(s) before we close ours.
    eventually("only the replacement is left", || {
        let s = emu.stats();
        s.drains >= 1 && s.connections_open == 1
    })
    .await;
    client.close().await;
    drop(client);
    let log = log.await.unwrap();

    let drained: Vec<u64> = log
        .iter()
        .filter_map(|e| match e {
            Event::Draining { conn } => Some(*conn),
            _ => None,
        })
        .collect();
    assert!(
        !drained.is_empty(),
        "the emulator drained at least once: {log:?}"
    );
    let first = drained[0];
    let pos = |pred: &dyn Fn(&Event) -> bool| log.iter().position(pred);
    let replacement = pos(&|e| matches!(e, Event::Connected { conn, .. } if *conn > first))
        .expect("a replacement connected");
    let lost = pos(&|e| matches!(e, Event::Lost { conn, .. } if *conn == first))
        .expect("the draining connection closed");
    assert!(
        replacement < lost,
        "replacement must open before the drained one closes: {log:?}"
    );
    assert!(emu.stats().drains >= 1);
}

#[tokio::test]
async fn abrupt_drop_mid_flight_resends_with_bounded_duplicates() {
    let mut s = script(vec![rule("", Reply::Delay { ms: 5 })]);
    s.faults.drop_after = Some(400);
    let emu = emulator(s).await;
    let client = client(&emu).await;
    let outcomes = send_all(&client, 1500, |i| format!("t{i}")).await;
    assert!(
        outcomes.values().all(Result::is_ok),
        "all acked after resends"
    );
    let stats = emu.stats();
    assert!(stats.drops >= 1, "{stats:?}");
    assert_eq!(stats.unique_messages, 1500);
    assert!(
        stats.duplicates <= stats.drops * 100,
        "duplicates {} exceed what was in flight at {} drops",
        stats.duplicates,
        stats.drops
    );
    assert!(client.stats().reconnects >= 1);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn silence_times_out_into_retries_without_leaking_slots() {
    let emu = emulator(script(vec![rule("silent-", Reply::Silent)])).await;
    let mut cfg = config(&emu);
    cfg.window = 2;
    cfg.retry.max_attempts = 3;
    cfg.ack_timeout = Duration::from_secs(60);
    let (client, _incoming) = emu.connect_in_memory(cfg).await.unwrap();
    let silent = client
        .submit(Message::to("silent-1").build().unwrap())
        .await
        .unwrap();
    let id = silent.message_id().to_owned();
    // The other slot keeps working meanwhile.
    for i in 0..20 {
        client
            .send(Message::to(format!("ok-{i}")).build().unwrap())
            .await
            .unwrap();
    }
    let started = Instant::now();
    match silent.await {
        Err(SendError::Timeout(t)) => assert_eq!(t, Duration::from_secs(60)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(170),
        "three attempts of 60 s"
    );
    assert_eq!(emu.copies(&id), 3);
    // Both slots are free again.
    let (a, b) = tokio::join!(
        client.send(Message::to("ok-a").build().unwrap()),
        client.send(Message::to("ok-b").build().unwrap())
    );
    assert!(a.is_ok() && b.is_ok());
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn dead_connection_is_detected_by_liveness_and_replaced() {
    let emu = emulator(Script::default()).await;
    let mut cfg = config(&emu);
    cfg.ping_interval = Duration::from_secs(20);
    let (client, _incoming) = emu.connect_in_memory(cfg).await.unwrap();
    let mut events = client.events();
    client
        .send(Message::to("before").build().unwrap())
        .await
        .unwrap();
    assert_eq!(emu.mute_all(), 1);
    let started = Instant::now();
    let pending = client
        .submit(Message::to("during").build().unwrap())
        .await
        .unwrap();
    let reason = next_event(&mut events, |e| match e {
        Event::Lost {
            reason, in_flight, ..
        } => Some((reason, in_flight)),
        _ => None,
    })
    .await;
    assert!(reason.0.contains("no data"), "{reason:?}");
    assert_eq!(reason.1, 1, "the unanswered message was in flight");
    let silent_for = started.elapsed();
    assert!(
        silent_for >= Duration::from_secs(40) && silent_for <= Duration::from_secs(41),
        "declared dead after two ping intervals, got {silent_for:?}"
    );
    pending.await.expect("resent on the replacement connection");
    assert_eq!(client.stats().reconnects, 1);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn service_unavailable_is_retried_with_exponential_backoff() {
    let emu = emulator(script(vec![rule(
        "flaky-",
        Reply::NackFirst {
            code: "SERVICE_UNAVAILABLE".into(),
            times: 3,
        },
    )]))
    .await;
    let (client, _incoming) = emu.connect_in_memory(config(&emu)).await.unwrap();
    let started = Instant::now();
    let msg = Message::to("flaky-1").build().unwrap();
    let id = msg.message_id().to_owned();
    let done = client.submit(msg).await.unwrap().completion().await;
    done.result.expect("acked after three nacks");
    assert_eq!(done.attempts, 4);
    let waited = started.elapsed();
    // 1 s + 2 s + 4 s, each scaled by a jitter in 0.5..1.5.
    assert!(waited >= Duration::from_millis(3500), "{waited:?}");
    assert!(waited <= Duration::from_millis(10_600), "{waited:?}");
    assert_eq!(emu.copies(&id), 4);
    assert_eq!(client.stats().retried, 3);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_retries_do_not_hold_window_slots() {
    let emu = emulator(script(vec![rule(
        "flaky-",
        Reply::NackFirst {
            code: "INTERNAL_SERVER_ERROR".into(),
            times: 1,
        },
    )]))
    .await;
    let mut cfg = config(&emu);
    cfg.window = 1;
    let (client, _incoming) = emu.connect_in_memory(cfg).await.unwrap();
    let flaky = client
        .submit(Message::to("flaky-1").build().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While flaky-1 waits out its backoff, the single slot serves other traffic.
    let started = Instant::now();
    client
        .send(Message::to("ok").build().unwrap())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
    flaky.await.unwrap();
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn non_retryable_nack_fails_at_once() {
    let emu = emulator(script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))])).await;
    let (client, _incoming) = emu.connect_in_memory(config(&emu)).await.unwrap();
    let msg = Message::to("gone-1").build().unwrap();
    let id = msg.message_id().to_owned();
    let started = Instant::now();
    let err = client.send(msg).await.unwrap_err();
    assert_eq!(err.nack_code(), Some(&NackCode::DeviceUnregistered));
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(emu.copies(&id), 1);
    assert_eq!(client.stats().retried, 0);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn rate_limit_backs_off_longer_for_that_target() {
    let emu = emulator(script(vec![rule(
        "hot-",
        Reply::NackFirst {
            code: "DEVICE_MESSAGE_RATE_EXCEEDED".into(),
            times: 1,
        },
    )]))
    .await;
    let (client, _incoming) = emu.connect_in_memory(config(&emu)).await.unwrap();
    let started = Instant::now();
    client
        .send(Message::to("hot-1").build().unwrap())
        .await
        .unwrap();
    // rate_limit_backoff defaults to 10 s, jittered to at least 5 s.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn auth_failure_is_surfaced_and_retried_only_slowly() {
    let emu = emulator(Script::default()).await;
    let (client, _incoming) = emu.connect_in_memory(config(&emu)).await.unwrap();
    let mut events = client.events();
    let mut rejecting = Script::default();
    rejecting.faults.reject_auth = u32::MAX;
    emu.set_script(rejecting);
    let before = emu.stats().connections_accepted;
    emu.drop_all();

    let err = next_event(&mut events, |e| match e {
        Event::AuthFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(err.is_auth());
    // Queued messages fail with the auth error instead of waiting forever.
    match client.send(Message::to("t").build().unwrap()).await {
        Err(SendError::Unavailable(ConnectError::Auth { .. })) => {}
        other => panic!("expected Unavailable(Auth), got {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    let attempts = emu.stats().connections_accepted - before;
    assert!(
        (2..=12).contains(&attempts),
        "10 minutes at one attempt per minute, got {attempts}"
    );
    // Recovery: accept auth again; the pool comes back and sends.
    emu.set_script(Script::default());
    tokio::time::sleep(Duration::from_secs(61)).await;
    client
        .send(Message::to("t2").build().unwrap())
        .await
        .unwrap();
    client.close().await;
}

#[tokio::test]
async fn initial_auth_rejection_is_a_connect_error() {
    let mut s = Script::default();
    s.faults.reject_auth = 1;
    let emu = emulator(s).await;
    let err = Client::connect(config(&emu)).await.err().unwrap();
    assert!(err.is_auth(), "{err:?}");
}

/// Soak: random drains and drops, 1% SERVICE_UNAVAILABLE, 0.5% DEVICE_UNREGISTERED.
/// CI runs 20 000 messages; the full run: `SOAK_MESSAGES=200000 cargo test --release --test pool soak -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_exactly_one_outcome_under_faults() {
    let n: usize = std::env::var("SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut s = script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))]);
    s.faults.nack_rate = 0.01;
    s.faults.nack_code = "SERVICE_UNAVAILABLE".into();
    s.faults.drop_probability = 0.0002;
    s.faults.drain_probability = 0.0002;
    s.faults.drain_close_ms = 200;
    let emu = emulator(s).await;
    let mut cfg = config(&emu);
    cfg.connections = 4;
    cfg.retry.initial_backoff = Duration::from_millis(100);
    cfg.retry.max_attempts = 10;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    let started = std::time::Instant::now();
    let outcomes = send_all(&client, n, |i| {
        if i % 200 == 0 {
            format!("gone-{i}")
        } else {
            format!("t{i}")
        }
    })
    .await;
    let acked = outcomes.values().filter(|o| o.is_ok()).count();
    let failed: Vec<&SendError> = outcomes.values().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(acked + failed.len(), n);
    assert!(
        failed
            .iter()
            .all(|e| e.nack_code() == Some(&NackCode::DeviceUnregistered)),
        "only non-retryable failures: {:?}",
        failed
            .iter()
            .find(|e| e.nack_code() != Some(&NackCode::DeviceUnregistered))
    );
    assert_eq!(failed.len(), n / 200);
    let stats = emu.stats();
    let cs = client.stats();
    let bound = (stats.drops + stats.drains) * 100;
    println!(
        "soak: {n} messages in {:.1?}: acked {acked}, failed {}, retried {}, drops {}, drains {}, \
         wire copies {}, duplicates {} (bound {bound}), reconnects {}",
        started.elapsed(),
        failed.len(),
        cs.retried,
        stats.drops,
        stats.drains,
        stats.downstream,
        stats.duplicates,
        cs.reconnects
    );
    assert_eq!(stats.unique_messages as usize, n);
    assert!(
        stats.duplicates <= bound,
        "duplicates beyond in-flight bound"
    );
    assert_eq!(cs.in_flight, 0);
    client.close().await;
}

#[tokio::test]
async fn per_sender_connection_limit_is_enforced_and_the_pool_keeps_working() {
    let mut s = Script::default();
    s.faults.max_connections_per_sender = Some(2);
    let emu = emulator(s).await;
    let mut cfg = config(&emu);
    cfg.connections = 3;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    let mut events = client.events();
    let refused = next_event(&mut events, |e| match e {
        Event::ConnectFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(
        matches!(&refused, ConnectError::StreamError { condition, .. } if condition == "policy-violation"),
        "{refused:?}"
    );
    eventually("two connections", || client.stats().connections == 2).await;
    assert_eq!(emu.stats().connections_open, 2);
    let outcomes = send_all(&client, 300, |i| format!("t{i}")).await;
    assert!(outcomes.values().all(Result::is_ok));
    client.close().await;
}

/// The user's report: a pool of two, the first connection silent right after its session,
/// a steady 40 msgs/s feed acked on the other. The silent connection's messages are resent
/// after the liveness bound (2 × ping_interval), not when the feed stops; each is acked
/// exactly once, and nothing is resent on the silent connection.
#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_replaced_on_time_under_a_steady_feed() {
    let mut s = Script::default();
    s.faults.mute_first = 1;
    s.faults.keepalive_ms = 5_000;
    let emu = emulator(s).await;
    let mut cfg = config(&emu);
    cfg.connections = 2;
    let interval = cfg.ping_interval;
    let (client, _incoming) = emu.connect_in_memory(cfg).await.unwrap();
    eventually("two connections", || client.stats().connections == 2).await;
    let feed_started = Instant::now();
    let mut outcomes = JoinSet::new();
    // 100 s of feed: far beyond the liveness bound.
    for i in 0..4000 {
        let sent = Instant::now();
        let pending = client
            .submit(Message::to(format!("t{i}")).build().unwrap())
            .await
            .unwrap();
        outcomes.spawn(async move {
            let completion = pending.completion().await;
            (sent.elapsed(), completion)
        });
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut slowest = Duration::ZERO;
    let mut resent = 0;
    while let Some(joined) = outcomes.join_next().await {
        let (latency, completion) = joined.unwrap();
        completion.result.expect("every message is acked");
        slowest = slowest.max(latency);
        resent += usize::from(completion.attempts > 1);
    }
    assert!(feed_started.elapsed() >= Duration::from_secs(100));
    assert!(
        resent > 0,
        "some messages went to the silent connection first"
    );
    assert!(
        slowest <= interval * 2 + Duration::from_secs(1),
        "the silent connection's messages waited {slowest:?}"
    );
    let stats = emu.stats();
    assert_eq!(stats.resent_on_same_connection, 0, "{stats:?}");
    assert!(stats.max_pending <= 100, "{stats:?}");
    client.close().await;
}
