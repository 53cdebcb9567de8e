//! The HTTP sender against the emulator's HTTP endpoint over loopback TLS.
//!
//! Backoff timing is checked under tokio's paused clock with the default 1 s backoffs. That is
//! sound here only because the test runtime is single-threaded, the emulator runs on it too,
//! and the URL is an IP literal (no DNS thread): every loopback write is readable by the time
//! the runtime polls with a zero timeout, so the clock only jumps when all sides wait on
//! timers. The other tests run in real time with backoffs of milliseconds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{KEY, SENDER, canonical, nack, rule, script};
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Script, StatusBurst};
use gcm_ccs::http::{Delivery, GroupOutcome, HttpConfig};
use gcm_ccs::{HttpError, HttpSender, Message, NackCode, RetryPolicy, SendError};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{Value, json};

const TWO_POW_53: i64 = 1 << 53;

async fn emulator(script: Script) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.script = script;
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    Emulator::start(cfg).await.expect("emulator starts")
}

/// Test-friendly timings: backoffs in milliseconds.
fn config(emu: &Emulator, key: &str) -> HttpConfig {
    let mut cfg = emu.http_config(key).expect("HTTP endpoint enabled");
    cfg.retry.initial_backoff = Duration::from_millis(20);
    cfg.retry.max_backoff = Duration::from_millis(100);
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

fn sender(emu: &Emulator) -> HttpSender {
    HttpSender::new(config(emu, KEY)).expect("valid config")
}

fn msg(to: &str) -> Message {
    Message::to(to)
        .data("score", "3x1")
        .time_to_live(600)
        .build()
        .unwrap()
}

fn tokens(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

/// The `registration_ids` of each recorded request, in arrival order.
fn sent_ids(emu: &Emulator) -> Vec<Vec<String>> {
    emu.http_requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            serde_json::from_value(body["registration_ids"].clone()).unwrap_or_default()
        })
        .collect()
}

fn http_error(err: &SendError) -> &HttpError {
    match err {
        SendError::Http(e) => e,
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

fn nack_of(result: &Result<gcm_ccs::Ack, SendError>) -> (NackCode, String) {
    match result {
        Err(SendError::Nacked(n)) => (n.code.clone(), n.description.clone().unwrap_or_default()),
        other => panic!("expected a nack, got {other:?}"),
    }
}

#[tokio::test]
async fn single_send_is_acked_with_the_server_id() {
    let emu = emulator(Script::default()).await;
    let ack = sender(&emu)
        .send(
            &Message::to("tokA")
                .data("score", "3x1")
                .time_to_live(0)
                .delivery_receipt_requested(true)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(ack.message_id.starts_with("0:"), "{ack:?}");
    assert_eq!(ack.from.as_deref(), Some("tokA"));
    assert_eq!(ack.registration_id, None);

    let requests = emu.http_requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.status),
        ("POST", "/fcm/send", 200)
    );
    assert_eq!(r.version, "HTTP/2.0", "h2 is negotiated by ALPN");
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    // XMPP-only fields are dropped; `time_to_live: 0` is kept.
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"to": "tokA", "time_to_live": 0, "data": {"score": "3x1"}})
    );
    assert_eq!(r.delivered, 1);
}

#[tokio::test]
async fn multicast_of_2500_tokens_is_three_requests_merged_in_order() {
    let emu = emulator(script(vec![
        rule("gone-", nack("DEVICE_UNREGISTERED")),
        rule("canon-", canonical("fresh-token")),
    ]))
    .await;
    let tokens: Vec<String> = (0..2500)
        .map(|i| match i % 10 {
            3 => format!("gone-{i}"),
            7 => format!("canon-{i}"),
            _ => format!("tok-{i}"),
        })
        .collect();
    let sender = sender(&emu);
    let results = sender.send_multicast(&msg("ignored"), &tokens).await;

    assert_eq!(results.len(), tokens.len());
    for (token, result) in tokens.iter().zip(&results) {
        if token.starts_with("gone-") {
            assert_eq!(
                nack_of(result),
                (NackCode::DeviceUnregistered, "NotRegistered".into())
            );
            continue;
        }
        let ack = result.as_ref().unwrap();
        assert_eq!(ack.from.as_ref(), Some(token), "result out of order");
        let canonical = token
            .starts_with("canon-")
            .then(|| "fresh-token".to_owned());
        assert_eq!(ack.registration_id, canonical, "{token}");
    }
    let mut sizes: Vec<usize> = sent_ids(&emu).iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        vec![500, 1000, 1000],
        "exactly three requests, NotRegistered not retried"
    );
    let mut sent: Vec<String> = sent_ids(&emu).concat();
    sent.sort();
    let mut want = tokens.clone();
    want.sort();
    assert_eq!(sent, want, "every token sent exactly once");
    assert!(sender.send_multicast(&msg("x"), &[]).await.is_empty());
    assert_eq!(emu.http_requests().len(), 3);
}

#[tokio::test]
async fn canonical_id_reaches_the_ack() {
    let emu = emulator(script(vec![rule("old-", canonical("new-token"))])).await;
    let ack = sender(&emu).send(&msg("old-1")).await.unwrap();
    assert_eq!(ack.registration_id.as_deref(), Some("new-token"));
}

#[tokio::test]
async fn final_errors_are_not_retried() {
    let emu = emulator(script(vec![
        rule("gone-", nack("DEVICE_UNREGISTERED")),
        rule("other-", nack("MismatchSenderId")),
        rule("odd-", nack("BrandNewCode")),
    ]))
    .await;
    let sender = sender(&emu);
    let err = sender.send(&msg("gone-1")).await;
    assert_eq!(
        nack_of(&err),
        (NackCode::DeviceUnregistered, "NotRegistered".into())
    );
    assert_eq!(emu.http_requests().len(), 1, "NotRegistered is final");
    // Unknown HTTP codes are final too, unlike unknown XMPP nack codes.
    let results = sender
        .send_multicast(&msg("x"), &["other-1".into(), "odd-1".into()])
        .await;
    assert_eq!(
        nack_of(&results[0]),
        (NackCode::BadRegistration, "MismatchSenderId".into())
    );
    assert_eq!(
        nack_of(&results[1]),
        (
            NackCode::Other("BrandNewCode".into()),
            "BrandNewCode".into()
        )
    );
    assert_eq!(emu.http_requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn unavailable_token_is_retried_alone_after_backoff() {
    let emu = emulator(script(vec![rule(
        "busy-",
        Reply::NackFirst {
            code: "SERVICE_UNAVAILABLE".into(),
            times: 2,
        },
    )]))
    .await;
    let tokens = vec!["ok-1".to_owned(), "busy-1".to_owned(), "ok-2".to_owned()];
    let started = tokio::time::Instant::now();
    let mut cfg = emu.http_config(KEY).unwrap();
    cfg.retry = RetryPolicy::default();
    let report = HttpSender::new(cfg)
        .unwrap()
        .send_multicast_report(&msg("x"), &tokens)
        .await;
    let elapsed = started.elapsed();
    for (token, result) in tokens.iter().zip(&report.results) {
        assert_eq!(result.as_ref().unwrap().from.as_ref(), Some(token));
    }
    assert_eq!(
        sent_ids(&emu),
        vec![
            tokens.clone(),
            vec!["busy-1".to_owned()],
            vec!["busy-1".to_owned()]
        ],
        "only the retryable subset is resent"
    );
    assert_eq!(report.multicast_ids.len(), 3, "each retry is a new request");
    // Backoffs of 1 s then 2 s, each jittered by 0.5..1.5.
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_millis(4500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn persistent_unavailable_fails_after_max_attempts() {
    let emu = emulator(script(vec![rule(
        "",
        Reply::NackFirst {
            code: "INTERNAL_SERVER_ERROR".into(),
            times: 100,
        },
    )]))
    .await;
    let mut cfg = config(&emu, KEY);
    cfg.retry.max_attempts = 3;
    let err = HttpSender::new(cfg).unwrap().send(&msg("tok")).await;
    assert_eq!(
        nack_of(&err),
        (NackCode::InternalServerError, "InternalServerError".into())
    );
    assert_eq!(emu.http_requests().len(), 3);
}

fn burst(status: u16, times: u32, retry_after: Option<&str>, body: Option<&str>) -> Script {
    let mut s = Script::default();
    s.http.status_burst = Some(StatusBurst {
        status,
        times,
        retry_after: retry_after.map(str::to_owned),
        body: body.map(str::to_owned),
    });
    s
}

#[tokio::test(start_paused = true)]
async fn status_503_with_retry_after_is_honoured() {
    let emu = emulator(burst(503, 1, Some("30"), None)).await;
    let started = tokio::time::Instant::now();
    let mut cfg = emu.http_config(KEY).unwrap();
    cfg.retry = RetryPolicy::default();
    let ack = HttpSender::new(cfg)
        .unwrap()
        .send(&msg("tok"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(ack.message_id.starts_with("0:"));
    let statuses: Vec<u16> = emu.http_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 200]);
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(31),
        "Retry-After: 30 is a floor over the 1 s backoff: {elapsed:?}"
    );
}

#[tokio::test]
async fn multicast_retries_whole_request_on_5xx_and_reports_exhaustion() {
    let emu = emulator(burst(500, 1, None, None)).await;
    let results = sender(&emu)
        .send_multicast(&msg("x"), &tokens("t", 3))
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(sent_ids(&emu), vec![tokens("t", 3), tokens("t", 3)]);

    emu.set_script(burst(503, 10, None, None));
    let mut cfg = config(&emu, KEY);
    cfg.retry.max_attempts = 2;
    let err = HttpSender::new(cfg)
        .unwrap()
        .send(&msg("t"))
        .await
        .unwrap_err();
    let HttpError::Status { status, body } = http_error(&err) else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 503);
    assert_eq!(body, "Service Unavailable Error 503");
    assert_eq!(emu.http_requests().len(), 4);
}

#[tokio::test]
async fn unauthorized_is_reported_readably_and_never_retried_nor_leaks_the_key() {
    let emu = emulator(Script::default()).await;
    let wrong = "AIzaSyWrongKey_must_not_leak_987654";
    let cfg = config(&emu, wrong);
    let sender = HttpSender::new(cfg.clone()).unwrap();
    let err = sender.send(&msg("tok")).await.unwrap_err();
    assert_eq!(
        http_error(&err),
        &HttpError::Unauthorized("Unauthorized Error 401".into()),
        "the HTML page is reduced to text, not parsed as JSON"
    );
    let multicast = sender.send_multicast(&msg("x"), &tokens("t", 2)).await;
    assert!(
        multicast
            .iter()
            .all(|r| matches!(r, Err(SendError::Http(HttpError::Unauthorized(_)))))
    );
    let statuses: Vec<u16> = emu.http_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401]);

    let shown = format!(
        "{err} {err:?} {cfg:?} {sender:?} {:?} {}",
        multicast[0],
        multicast[0].as_ref().unwrap_err()
    );
    assert!(shown.contains("check the server key"), "{shown}");
    for key in [wrong, KEY] {
        assert!(!shown.contains(key), "key leaked: {shown}");
    }
    assert!(!format!("{:?}", emu.http_requests()).contains(wrong));
}

#[tokio::test]
async fn bad_request_text_is_reported_verbatim_and_not_retried() {
    let text = "Missing \"registration_ids\" field\n";
    let emu = emulator(burst(400, 1, None, Some(text))).await;
    let err = sender(&emu).send(&msg("tok")).await.unwrap_err();
    assert_eq!(
        http_error(&err),
        &HttpError::BadRequest("Missing \"registration_ids\" field".into())
    );
    assert_eq!(emu.http_requests().len(), 1);
}

#[tokio::test]
async fn int64_ids_above_2_pow_53_round_trip_exactly() {
    let emu = emulator(Script::default()).await;
    let sender = sender(&emu);
    let Delivery::Token { multicast_id, .. } = sender.send_detailed(&msg("tok")).await.unwrap()
    else {
        panic!("token shape expected")
    };
    let recorded = emu.http_requests()[0].multicast_id.unwrap();
    assert!(recorded > TWO_POW_53);
    assert_eq!(multicast_id, recorded);
    // Would not survive a trip through f64 in most cases; this one must be exact anyway.
    assert_eq!(multicast_id.to_string(), recorded.to_string());

    let report = sender
        .send_multicast_report(&msg("x"), &tokens("t", 2))
        .await;
    assert_eq!(
        report.multicast_ids,
        vec![emu.http_requests()[1].multicast_id.unwrap()]
    );
}

#[tokio::test]
async fn topic_and_condition_sends_return_the_numeric_id() {
    let emu = emulator(script(vec![rule(
        "/topics/busy",
        nack("TOPICS_MESSAGE_RATE_EXCEEDED"),
    )]))
    .await;
    let sender = sender(&emu);
    let topic = msg("/topics/news");
    let Delivery::Topic { message_id } = sender.send_detailed(&topic).await.unwrap() else {
        panic!("topic shape expected")
    };
    assert!(message_id > TWO_POW_53);
    let ack = sender.send(&topic).await.unwrap();
    assert!(ack.message_id.parse::<i64>().unwrap() > TWO_POW_53);
    let condition = Message::builder()
        .condition("'a' in topics && 'b' in topics")
        .build()
        .unwrap();
    assert!(matches!(
        sender.send_detailed(&condition).await,
        Ok(Delivery::Topic { .. })
    ));
    let err = sender.send(&msg("/topics/busy")).await;
    assert_eq!(
        nack_of(&err),
        (
            NackCode::TopicsMessageRateExceeded,
            "TopicsMessageRateExceeded".into()
        )
    );
    assert_eq!(emu.http_requests().len(), 4, "rate limits are not retried");
}

#[tokio::test]
async fn device_group_outcomes() {
    let mut s = script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))]);
    s.http
        .groups
        .insert("grp-ok".into(), vec!["a".into(), "b".into()]);
    s.http
        .groups
        .insert("grp-mixed".into(), vec!["a".into(), "gone-b".into()]);
    let emu = emulator(s).await;
    let sender = sender(&emu);
    assert_eq!(
        sender.send_detailed(&msg("grp-ok")).await.unwrap(),
        Delivery::Group(GroupOutcome {
            success: 2,
            failure: 0,
            failed_registration_ids: vec![]
        })
    );
    assert_eq!(sender.send(&msg("grp-ok")).await.unwrap().message_id, "");
    let partial = GroupOutcome {
        success: 1,
        failure: 1,
        failed_registration_ids: vec!["gone-b".into()],
    };
    assert_eq!(
        http_error(&sender.send(&msg("grp-mixed")).await.unwrap_err()),
        &HttpError::GroupPartialFailure(partial)
    );
}

#[tokio::test]
async fn dry_run_gets_fake_ids_and_delivers_nothing() {
    let emu = emulator(Script::default()).await;
    let dry = Message::to("tok").dry_run(true).build().unwrap();
    let Delivery::Token { ack, multicast_id } = sender(&emu).send_detailed(&dry).await.unwrap()
    else {
        panic!("token shape expected")
    };
    assert_eq!(
        (ack.message_id.as_str(), multicast_id),
        ("fake_message_id", -1)
    );
    assert_eq!(emu.http_requests()[0].delivered, 0);
}

#[tokio::test]
async fn silent_server_times_out_per_request() {
    let emu = emulator(script(vec![rule("", Reply::Silent)])).await;
    let mut cfg = config(&emu, KEY);
    cfg.request_timeout = Duration::from_millis(200);
    cfg.retry.max_attempts = 2;
    let err = HttpSender::new(cfg).unwrap().send(&msg("tok")).await;
    assert!(
        matches!(err, Err(SendError::Timeout(d)) if d == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(emu.http_requests().len(), 2, "a timeout is retried");
}

#[tokio::test]
async fn untrusted_certificate_fails_at_once() {
    let emu = emulator(Script::default()).await;
    let other = emulator(Script::default()).await;
    let mut cfg = config(&emu, KEY);
    cfg.trust = gcm_ccs::Trust::only_pem(other.ca_pem().as_bytes()).unwrap();
    cfg.retry.initial_backoff = Duration::from_secs(5);
    let started = Instant::now();
    let err = HttpSender::new(cfg)
        .unwrap()
        .send(&msg("tok"))
        .await
        .unwrap_err();
    assert!(
        matches!(http_error(&err), HttpError::Transport(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "TLS failures are not retried"
    );
    assert!(emu.http_requests().is_empty());
}

/// A raw request to the emulator, for the paths the sender never takes.
async fn raw(
    emu: &Emulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        let pem = emu.ca_pem().as_bytes();
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(https);
    let base = emu.http_url().unwrap();
    let url = base.replace("/fcm/send", path);
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn emulator_serves_the_documented_edges() {
    let emu = emulator(script(vec![rule("canon-", canonical("new"))])).await;
    let auth = ("authorization", &*format!("key={KEY}"));
    let json_ct = ("content-type", "application/json");

    let (status, ct, body) = raw(&emu, Method::GET, "/gcm/send", &[auth], "").await;
    assert_eq!((status, ct.starts_with("text/html")), (405, true), "{body}");
    let (status, ..) = raw(&emu, Method::POST, "/other", &[auth], "").await;
    assert_eq!(status, 404);
    let (status, _, body) = raw(&emu, Method::POST, "/gcm/send", &[json_ct], "{}").await;
    assert_eq!(status, 401);
    assert!(body.contains("<H1>Unauthorized</H1>"), "{body}");

    let (status, ct, body) = raw(
        &emu,
        Method::POST,
        "/gcm/send",
        &[auth, json_ct],
        r#"{"to":"a","registration_ids":["b"]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(ct.starts_with("text/plain"));
    assert_eq!(
        body,
        "Must use either \"registration_ids\" field or \"to\", not both\n"
    );

    // No Content-Type: a form body with a plain-text answer.
    let (status, ct, body) = raw(
        &emu,
        Method::POST,
        "/gcm/send",
        &[auth],
        "registration_id=canon-1&data.score=3x1",
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"));
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines[0].starts_with("id=0:"), "{body}");
    assert_eq!(lines[1], "registration_id=new");
    let (_, _, body) = raw(
        &emu,
        Method::POST,
        "/gcm/send",
        &[
            auth,
            (
                "content-type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            ),
        ],
        "data.score=3x1",
    )
    .await;
    assert_eq!(body, "Error=MissingRegistration\n");

    // Oversized payload: a per-result MessageTooBig, not a 400.
    let big = json!({"registration_ids": ["a"], "data": {"k": "x".repeat(4096)}}).to_string();
    let (status, _, body) = raw(&emu, Method::POST, "/fcm/send", &[auth, json_ct], &big).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["results"], json!([{"error": "MessageTooBig"}]));
    assert!(body["multicast_id"].as_i64().unwrap() > TWO_POW_53);
}
