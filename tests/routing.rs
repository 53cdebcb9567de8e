//! `Sender` routing: XMPP only, HTTP only, and `auto` falling back to HTTP while no stream
//! can be established, then returning to the stream.

mod common;

use std::time::Duration;

use common::*;
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Script};
use gcm_ccs::{Message, Route, Sender};

async fn emulator_with_http(script: Script) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.script = script;
    Emulator::start(cfg).await.unwrap()
}

fn rejecting_auth() -> Script {
    let mut s = Script::default();
    s.faults.reject_auth = u32::MAX;
    s
}

#[tokio::test]
async fn auto_falls_back_on_auth_failure_and_returns_when_the_stream_recovers() {
    let emu = emulator_with_http(rejecting_auth()).await;
    let mut cfg = config(&emu);
    cfg.reconnect.auth_failure_delay = Duration::from_millis(200);
    let (sender, _incoming) = Sender::builder()
        .xmpp(cfg)
        .http(emu.http_config(KEY).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(sender.route(), Route::Auto);

    let ack = sender
        .send(Message::to("tok-a").build().unwrap())
        .await
        .unwrap();
    assert!(!ack.message_id.is_empty());
    assert_eq!(emu.http_requests().len(), 1, "went over HTTP");
    assert_eq!(emu.stats().downstream, 0);

    emu.set_script(Script::default());
    let stream = sender.stream().unwrap().clone();
    eventually("the stream reconnects", || stream.stats().connections == 1).await;
    let msg = Message::to("tok-b").build().unwrap();
    let id = msg.message_id().to_owned();
    let ack = sender.send(msg).await.unwrap();
    assert_eq!(ack.message_id, id, "acked by CCS with our own id");
    assert_eq!(emu.copies(&id), 1);
    assert_eq!(
        emu.http_requests().len(),
        1,
        "no more HTTP once the stream is back"
    );
    sender.close().await;
}

#[tokio::test]
async fn auto_falls_back_when_the_endpoint_refuses_connections() {
    let emu = emulator_with_http(Script::default()).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&emu);
    cfg.endpoint = gcm_ccs::Endpoint::Custom {
        host: "127.0.0.1".into(),
        port,
    };
    cfg.reconnect.initial_backoff = Duration::from_millis(20);
    cfg.reconnect.unavailable_after = Duration::from_millis(100);
    let (sender, _incoming) = Sender::builder()
        .xmpp(cfg)
        .http(emu.http_config(KEY).unwrap())
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    sender
        .send(
            Message::to("tok")
                .delivery_receipt_requested(true)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let requests = emu.http_requests();
    assert_eq!(requests.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert!(
        body.get("delivery_receipt_requested").is_none(),
        "XMPP-only fields are dropped for HTTP: {body}"
    );
    sender.close().await;
}

#[tokio::test]
async fn xmpp_only_route_does_not_fall_back() {
    let emu = emulator_with_http(Script::default()).await;
    let (sender, _incoming) = Sender::builder().xmpp(config(&emu)).build().await.unwrap();
    assert_eq!(sender.route(), Route::Xmpp);
    sender
        .send(Message::to("t").build().unwrap())
        .await
        .unwrap();
    assert_eq!(emu.stats().downstream, 1);
    assert!(emu.http_requests().is_empty());
    sender.close().await;
}

#[tokio::test]
async fn http_only_route() {
    let emu = emulator_with_http(Script::default()).await;
    let (sender, _incoming) = Sender::builder()
        .http(emu.http_config(KEY).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(sender.route(), Route::Http);
    sender
        .send(Message::to("t").build().unwrap())
        .await
        .unwrap();
    assert_eq!(emu.http_requests().len(), 1);
    assert_eq!(emu.stats().downstream, 0);
}

/// One sender for both: CCS messages go over the stream, browser subscriptions over Web Push
/// (the emulator's service decrypts what arrived); a GCM-era subscription line goes to CCS.
#[tokio::test]
async fn one_sender_routes_messages_to_ccs_and_subscriptions_to_web_push() {
    use gcm_ccs::webpush::{Push, VapidKey, WebPushError};
    use gcm_ccs::{Outgoing, SendError, Sent};

    let mut cfg = gcm_ccs::emulator::EmulatorConfig::new(SENDER, KEY);
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.script.webpush.rules = vec![gcm_ccs::emulator::WebPushRule {
        prefix: "gone".into(),
        reply: gcm_ccs::emulator::WebPushReply::Status {
            status: 410,
            retry_after: None,
            body: None,
        },
    }];
    let emu = gcm_ccs::emulator::Emulator::start(cfg).await.unwrap();
    let key = VapidKey::generate();
    let (sender, _incoming) = Sender::builder()
        .xmpp(config(&emu))
        .webpush(emu.webpush_config(key.clone(), "mailto:ops@example.com"))
        .build()
        .await
        .unwrap();

    let browser = emu
        .webpush_subscribe("browser", Some(key.public_key()))
        .unwrap();
    let line = format!(
        r#"{{"subscription":{},"payload":"hello","ttl":60,"message_id":"w-1"}}"#,
        browser.to_json()
    );
    let web = Outgoing::from_json(&line).unwrap();
    assert_eq!(web.id(), "w-1");
    let Sent::Accepted(accepted) = sender.deliver(web).await.unwrap() else {
        panic!("a push is accepted by the push service");
    };
    assert_eq!(accepted.status, 201);
    let received = emu.webpush_received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].payload.as_deref(), Some(&b"hello"[..]));

    let ccs = Outgoing::from_json(r#"{"to":"tok-1","message_id":"c-1"}"#).unwrap();
    assert!(matches!(sender.deliver(ccs).await.unwrap(), Sent::Ack(a) if a.message_id == "c-1"));
    let legacy = r#"{"subscription":{"endpoint":"https://android.googleapis.com/gcm/send/legacy-token"},"message_id":"c-2"}"#;
    let legacy = Outgoing::from_json(legacy).unwrap();
    assert_eq!(legacy.target(), "legacy-token");
    assert!(matches!(
        sender.deliver(legacy).await.unwrap(),
        Sent::Ack(_)
    ));
    assert_eq!(emu.stats().downstream, 2);

    let gone = emu
        .webpush_subscribe("gone", Some(key.public_key()))
        .unwrap();
    let push = Push::builder().payload("x").build().unwrap();
    let err = sender.push(&gone, &push).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SendError::WebPush(WebPushError::SubscriptionGone { status: 410, .. })
        ),
        "{err:?}"
    );

    // A sender built without Web Push says so.
    let (ccs_only, _incoming) = Sender::builder().xmpp(config(&emu)).build().await.unwrap();
    let err = ccs_only.push(&browser, &push).await.unwrap_err();
    assert!(err.to_string().contains("no transport for pushes"), "{err}");
    sender.close().await;
    ccs_only.close().await;
}
