//! Outcomes through a completion queue (`Client::submit_to`) against the emulator over real
//! loopback TLS.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use gcm_ccs::emulator::Reply;
use gcm_ccs::{Completion, CompletionQueue, Completions, Message, NackCode, SendError};

/// Every batch until the queue ends (bounded), as tag → outcome; a repeated tag fails.
async fn drain(mut completions: Completions) -> (BTreeMap<u64, Completion>, usize) {
    bounded(60, async move {
        let (mut seen, mut batches) = (BTreeMap::new(), 0);
        while let Some(batch) = completions.recv().await {
            assert!(!batch.is_empty(), "an empty batch");
            batches += 1;
            for (tag, done) in batch {
                assert!(seen.insert(tag, done).is_none(), "tag {tag} twice");
            }
        }
        (seen, batches)
    })
    .await
}

#[tokio::test]
async fn every_message_gets_exactly_one_outcome_under_its_tag() {
    let emu = emulator(script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))])).await;
    let client = client(&emu).await;
    let (queue, completions) = CompletionQueue::channel();
    let landing = tokio::spawn(drain(completions));
    const N: u64 = 2000;
    for tag in 0..N {
        let to = if tag % 7 == 0 { "gone-" } else { "tok-" };
        let msg = Message::to(format!("{to}{tag}"))
            .data("n", tag)
            .build()
            .expect("valid");
        client.submit_to(msg, tag, &queue).await.expect("accepted");
    }
    drop(queue);
    let (seen, batches) = landing.await.expect("landing");
    assert_eq!(seen.len() as u64, N, "one outcome per message");
    for (tag, done) in &seen {
        match (&done.result, tag % 7 == 0) {
            (Ok(ack), false) => assert_eq!(ack.from.as_deref(), Some(&*format!("tok-{tag}"))),
            (Err(SendError::Nacked(nack)), true) => {
                assert_eq!(nack.code, NackCode::DeviceUnregistered)
            }
            other => panic!("tag {tag}: {other:?}"),
        }
        assert_eq!(done.attempts, 1);
    }
    // Outcomes that end together travel together.
    assert!(batches < N as usize, "{batches} batches for {N} outcomes");
    assert_eq!(emu.stats().acks_sent + emu.stats().nacks_sent, N);
    client.close().await;
}

#[tokio::test]
async fn closing_fails_what_is_left_into_the_queue() {
    let emu = emulator(script(vec![rule("slow-", Reply::Silent)])).await;
    let mut cfg = config(&emu);
    cfg.close_timeout = Duration::from_millis(200);
    let client = gcm_ccs::Client::connect(cfg).await.expect("connects").0;
    let (queue, completions) = CompletionQueue::channel();
    let landing = tokio::spawn(drain(completions));
    for tag in 0..10 {
        let to = if tag < 5 { "slow-" } else { "tok-" };
        let msg = Message::to(format!("{to}{tag}")).build().expect("valid");
        client.submit_to(msg, tag, &queue).await.expect("accepted");
    }
    drop(queue);
    eventually("the fast ones are acked", || emu.stats().acks_sent == 5).await;
    client.close().await;
    let (seen, _) = landing.await.expect("landing");
    assert_eq!(seen.len(), 10);
    for (tag, done) in seen {
        match done.result {
            Ok(_) => assert!(tag >= 5, "tag {tag}"),
            Err(SendError::Closed) => assert!(tag < 5, "tag {tag}"),
            Err(e) => panic!("tag {tag}: {e}"),
        }
    }
}

#[tokio::test]
async fn a_dropped_queue_reader_loses_only_its_own_outcomes() {
    let emu = emulator(Default::default()).await;
    let client = client(&emu).await;
    let (queue, completions) = CompletionQueue::channel();
    drop(completions);
    for tag in 0..50 {
        let msg = Message::to(format!("tok-{tag}")).build().expect("valid");
        client.submit_to(msg, tag, &queue).await.expect("accepted");
    }
    let msg = Message::to("tok-last").build().expect("valid");
    let ack = bounded(30, client.send(msg)).await.expect("acked");
    assert_eq!(ack.from.as_deref(), Some("tok-last"));
    eventually("every message acked", || emu.stats().acks_sent == 51).await;
    client.close().await;
}
