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
