//! The stream client against the emulator over real loopback TLS.

mod common;

use std::time::Duration;

use common::*;
use gcm_ccs::emulator::Reply;
use gcm_ccs::{Client, ConnectError, IncomingMessage, Message, NackCode, SendError};
use serde_json::json;

#[tokio::test]
async fn handshake_binds_a_decorated_jid() {
    let emu = emulator(Default::default()).await;
    let client = client(&emu).await;
    assert!(
        client
            .jid()
            .starts_with(&format!("{SENDER}@gcm.googleapis.com/")),
        "{}",
        client.jid()
    );
    assert_eq!(emu.stats().connections_authenticated, 1);
    client.close().await;
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_without_the_key() {
    let emu = emulator(Default::default()).await;
    let mut cfg = config(&emu);
    cfg.credentials.server_key = gcm_ccs::ServerKey::new("AIzaWrongKey_secret_value");
    let err = Client::connect(cfg).await.err().expect("auth must fail");
    assert!(matches!(err, ConnectError::Auth { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("AIzaWrongKey_secret_value"), "{shown}");
    assert!(shown.contains("not-authorized"), "{shown}");
    assert_eq!(emu.stats().auth_failures, 1);
}

#[tokio::test]
async fn unknown_ca_is_a_certificate_error_at_once() {
    let emu = emulator(Default::default()).await;
    let other = emulator(Default::default()).await;
    let mut cfg = config(&emu);
    cfg.trust = gcm_ccs::Trust::only_pem(other.ca_pem().as_bytes()).unwrap();
    let err = bounded(10, Client::connect(cfg))
        .await
        .err()
        .expect("must not trust");
    assert!(matches!(err, ConnectError::Certificate { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn ack_completes_the_send() {
    let emu = emulator(Default::default()).await;
    let client = client(&emu).await;
    let msg = Message::to("tok-1").data("k", "v").build().unwrap();
    let id = msg.message_id().to_owned();
    let ack = client.send(msg).await.unwrap();
    assert_eq!(ack.message_id, id);
    assert_eq!(ack.from.as_deref(), Some("tok-1"));
    assert_eq!(ack.registration_id, None);
    assert_eq!(emu.copies(&id), 1);
    client.close().await;
}

#[tokio::test]
async fn every_nack_code_surfaces_typed() {
    let codes = [
        ("INVALID_JSON", NackCode::InvalidJson),
        ("BAD_REGISTRATION", NackCode::BadRegistration),
        ("DEVICE_UNREGISTERED", NackCode::DeviceUnregistered),
        ("BAD_ACK", NackCode::BadAck),
        ("SERVICE_UNAVAILABLE", NackCode::ServiceUnavailable),
        ("INTERNAL_SERVER_ERROR", NackCode::InternalServerError),
        (
            "DEVICE_MESSAGE_RATE_EXCEEDED",
            NackCode::DeviceMessageRateExceeded,
        ),
        (
            "TOPICS_MESSAGE_RATE_EXCEEDED",
            NackCode::TopicsMessageRateExceeded,
        ),
        ("CONNECTION_DRAINING", NackCode::ConnectionDraining),
        ("INVALID_APNS_CREDENTIAL", NackCode::InvalidApnsCredential),
        ("QUOTA_EXCEEDED", NackCode::DeviceMessageRateExceeded),
        ("SOMETHING_NEW", NackCode::Other("SOMETHING_NEW".into())),
    ];
    let rules = codes
        .iter()
        .map(|(code, _)| rule(&format!("{code}-"), nack(code)))
        .collect();
    let emu = emulator(script(rules)).await;
    let mut cfg = config(&emu);
    cfg.retry.max_attempts = 1; // surface retryable codes instead of retrying them
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    for (wire, code) in codes {
        let msg = Message::to(format!("{wire}-tok")).build().unwrap();
        match client.send(msg).await {
            Err(SendError::Nacked(n)) => {
                assert_eq!(n.code, code, "{wire}");
                assert_eq!(n.from.as_deref(), Some(format!("{wire}-tok").as_str()));
            }
            other => panic!("{wire}: expected a nack, got {other:?}"),
        }
    }
    let stats = client.stats();
    assert_eq!(stats.nacked_total(), 12);
    assert_eq!(stats.acked, 0);
    client.close().await;
}

#[tokio::test]
async fn canonical_registration_id_is_surfaced() {
    let emu = emulator(script(vec![rule("old-", canonical("new-token"))])).await;
    let client = client(&emu).await;
    let ack = client
        .send(Message::to("old-token").build().unwrap())
        .await
        .unwrap();
    assert_eq!(ack.registration_id.as_deref(), Some("new-token"));
    client.close().await;
}

#[tokio::test]
async fn out_of_order_acks_complete_the_right_messages() {
    let emu = emulator(script(vec![
        rule("slow-", Reply::Delay { ms: 400 }),
        rule("mid-", Reply::Delay { ms: 150 }),
    ]))
    .await;
    let client = client(&emu).await;
    let slow = client
        .submit(Message::to("slow-1").build().unwrap())
        .await
        .unwrap();
    let mid = client
        .submit(Message::to("mid-1").build().unwrap())
        .await
        .unwrap();
    let fast = client
        .submit(Message::to("fast-1").build().unwrap())
        .await
        .unwrap();
    let ids = [
        slow.message_id().to_owned(),
        mid.message_id().to_owned(),
        fast.message_id().to_owned(),
    ];
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    for (name, p) in [("slow", slow), ("mid", mid), ("fast", fast)] {
        let tx = order_tx.clone();
        tokio::spawn(async move {
            let ack = p.await.unwrap();
            tx.send((name, ack.message_id)).unwrap();
        });
    }
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(order_rx.recv().await.unwrap());
    }
    assert_eq!(
        order,
        vec![
            ("fast", ids[2].clone()),
            ("mid", ids[1].clone()),
            ("slow", ids[0].clone())
        ]
    );
    client.close().await;
}

#[tokio::test]
async fn window_caps_in_flight_messages_on_the_wire() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 30 })])).await;
    let mut cfg = config(&emu);
    cfg.window = 100;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .send(Message::to(format!("tok-{i}")).build().unwrap())
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let stats = emu.stats();
    assert_eq!(stats.downstream, 1000);
    assert_eq!(
        stats.max_pending, 100,
        "the window must fill but never overflow"
    );
    assert_eq!(client.stats().acked, 1000);
    client.close().await;
}

#[tokio::test]
async fn smaller_window_is_respected() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 20 })])).await;
    let mut cfg = config(&emu);
    cfg.window = 7;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..70 {
        pending.push(
            client
                .submit(Message::to(format!("t{i}")).build().unwrap())
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }
    assert_eq!(emu.stats().max_pending, 7);
    client.close().await;
}

#[tokio::test]
async fn upstream_and_receipts_are_delivered_and_acked_with_full_ids_once_the_application_has_them()
{
    let emu = emulator(Default::default()).await;
    let (client, mut incoming) = Client::connect(config(&emu)).await.unwrap();

    let msg = Message::to("tok-r")
        .delivery_receipt_requested(true)
        .build()
        .unwrap();
    let id = msg.message_id().to_owned();
    client.send(msg).await.unwrap();
    let delivery = bounded(10, incoming.recv()).await.unwrap();
    let IncomingMessage::Receipt(receipt) = delivery.message() else {
        panic!("{delivery:?}");
    };
    assert_eq!(receipt.message_id, format!("dr2:{id}"));
    assert_eq!(receipt.original_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(receipt.device_registration_id.as_deref(), Some("tok-r"));
    // Not acked until the application says so.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(emu.acked_by_client().is_empty());
    assert!(delivery.ack());

    let mut data = serde_json::Map::new();
    data.insert("text".into(), json!("hi & <bye>"));
    let up_id = emu.inject_upstream(SENDER, "device-7", data).unwrap();
    let delivery = bounded(10, incoming.recv()).await.unwrap();
    let IncomingMessage::Upstream(up) = delivery.message() else {
        panic!("{delivery:?}");
    };
    assert_eq!(up.message_id, up_id);
    assert_eq!(up.from, "device-7");
    assert_eq!(up.data.get("text"), Some(&json!("hi & <bye>")));
    assert!(delivery.ack());

    let dr = format!("dr2:{id}");
    eventually("both acks recorded", || emu.acked_by_client().len() == 2).await;
    let acked = emu.acked_by_client();
    assert_eq!(acked, vec![dr, up_id]);
    assert_eq!(emu.stats().bad_acks, 0);
    client.close().await;
}

/// What arrives before the application reads `Incoming` waits for it, unacked; what arrives
/// after `Incoming` was dropped stays with the server, unacked.
#[tokio::test]
async fn upstream_waits_for_the_application_and_is_never_acked_without_it() {
    let emu = emulator(Default::default()).await;
    let (client, mut incoming) = Client::connect(config(&emu)).await.unwrap();
    let early = emu
        .inject_upstream(SENDER, "device-1", serde_json::Map::new())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(emu.acked_by_client().is_empty());
    let delivery = bounded(10, incoming.recv()).await.unwrap();
    assert_eq!(delivery.message().message_id(), early);
    assert_eq!(delivery.message().from(), "device-1");
    assert!(delivery.ack());
    eventually("ack recorded", || {
        emu.acked_by_client() == vec![early.clone()]
    })
    .await;

    drop(incoming);
    emu.inject_upstream(SENDER, "device-1", serde_json::Map::new())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(emu.acked_by_client(), vec![early]);
    assert_eq!(client.stats().delivered, 1);
    client.close().await;
}

#[tokio::test]
async fn payload_with_xml_specials_arrives_intact() {
    let emu = emulator(Default::default()).await;
    let client = client(&emu).await;
    let text = "Tom & Jerry <3 ]]> \"quoted\" 'single' ünïcödé 日本語 🎉 \u{FFFE} tab\there";
    let msg = Message::to("tok-x").data("text", text).build().unwrap();
    let id = msg.message_id().to_owned();
    client.send(msg).await.unwrap();
    let got = emu.received(&id).unwrap();
    assert_eq!(got["data"]["text"], json!(text));
    assert_eq!(emu.stats().stream_errors, 0);
    client.close().await;
}

#[tokio::test]
async fn graceful_close_waits_for_outstanding_acks() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 300 })])).await;
    let client = client(&emu).await;
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(
            client
                .submit(Message::to(format!("t{i}")).build().unwrap())
                .await
                .unwrap(),
        );
    }
    client.close().await;
    for p in pending {
        p.await.expect("close waited for the ack");
    }
    assert_eq!(client.stats().acked, 10);
    // Intake is closed afterwards.
    let late = client.submit(Message::to("late").build().unwrap()).await;
    assert!(matches!(late, Err(SendError::Closed)), "{late:?}");
    eventually("emulator saw the close", || {
        emu.stats().connections_open == 0
    })
    .await;
}

#[tokio::test]
async fn close_deadline_fails_what_never_gets_an_answer() {
    let emu = emulator(script(vec![rule("", Reply::Silent)])).await;
    let mut cfg = config(&emu);
    cfg.close_timeout = Duration::from_millis(300);
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    let p = client
        .submit(Message::to("t").build().unwrap())
        .await
        .unwrap();
    client.close().await;
    assert!(matches!(p.await, Err(SendError::Closed)));
    assert_eq!(client.stats().failed, 1);
}

#[tokio::test]
async fn dropped_pending_ack_neither_cancels_nor_leaks() {
    let emu = emulator(Default::default()).await;
    let mut cfg = config(&emu);
    cfg.window = 1;
    let (client, _incoming) = Client::connect(cfg).await.unwrap();
    for i in 0..5 {
        drop(
            client
                .submit(Message::to(format!("t{i}")).build().unwrap())
                .await
                .unwrap(),
        );
    }
    // With a window of one, this only completes if every dropped send released its slot.
    client
        .send(Message::to("last").build().unwrap())
        .await
        .unwrap();
    eventually("all acked", || client.stats().acked == 6).await;
    client.close().await;
}
