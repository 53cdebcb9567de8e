//! Upstream messages and receipts are at-least-once: each reaches the application exactly
//! once per delivery by the server, none is acked before the application has it, and a slow
//! application holds the server back (backpressure) instead of growing our memory.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use gcm_ccs::IncomingMessage;
use gcm_ccs::emulator::Script;

const BURST: usize = 5000;

/// The emulator sends a burst of upstream messages and receipts right after bind (before
/// answering the session request, with `before_session`); the application starts reading
/// only after longer than the liveness bound, then reads slowly.
async fn burst_to_a_late_slow_reader(before_session: bool) {
    let mut s = Script::default();
    s.faults.upstream_on_bind = BURST as u32;
    s.faults.upstream_before_session = before_session;
    let emu = emulator(s).await;
    let cfg = config(&emu);
    let capacity = cfg.incoming_capacity as u64;
    let liveness = cfg.ping_interval * 2;
    let (client, mut incoming) = emu.connect_in_memory(cfg).await.unwrap();

    tokio::time::sleep(liveness + Duration::from_secs(5)).await;
    assert!(
        emu.acked_by_client().is_empty(),
        "acked before the application had them"
    );
    let buffered = client.stats().delivered;
    assert!(
        buffered <= capacity,
        "{buffered} handed over to an application that reads nothing (capacity {capacity})"
    );

    let mut seen = HashSet::new();
    let (mut upstream, mut receipts) = (0, 0);
    for n in 0..BURST {
        let delivery = bounded(60, incoming.recv())
            .await
            .expect("the client is alive");
        let id = delivery.message().message_id().to_owned();
        match delivery.message() {
            IncomingMessage::Upstream(u) => {
                assert_eq!(u.from, "burst-device");
                upstream += 1;
            }
            IncomingMessage::Receipt(r) => {
                assert_eq!(r.message_status.as_deref(), Some("MESSAGE_SENT_TO_DEVICE"));
                receipts += 1;
            }
        }
        assert!(seen.insert(id.clone()), "{id} delivered twice");
        let acked = emu.stats().client_acks as usize;
        assert!(acked <= n, "{acked} acks for {n} messages handed over");
        assert!(delivery.ack(), "the delivering connection is still up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((upstream, receipts), (BURST / 2, BURST / 2));
    eventually("every ack recorded", || {
        emu.stats().client_acks as usize == BURST
    })
    .await;
    let stats = emu.stats();
    assert_eq!(stats.bad_acks, 0);
    // 50 s of slow reading and 45 s of none: the paused connection was not judged silent.
    assert_eq!(client.stats().reconnects, 0);
    assert_eq!(stats.connections_authenticated, 1);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_after_the_session_reaches_a_late_slow_reader_exactly_once() {
    burst_to_a_late_slow_reader(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_before_the_session_result_reaches_a_late_slow_reader_exactly_once() {
    burst_to_a_late_slow_reader(true).await;
}
