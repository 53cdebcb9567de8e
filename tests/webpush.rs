//! Web Push end to end over loopback TLS: `WebPushSender` against the emulator's Web Push
//! service (which verifies VAPID and decrypts with the crate's own code), each response
//! class, and the `gcm-ccs webpush` / `vapid` binaries.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::bin::{bin, output, text};
use common::{KEY, SENDER, bounded, replaced};
use gcm_ccs::RetryPolicy;
use gcm_ccs::emulator::{
    Emulator, EmulatorConfig, Script, StatusBurst, WebPushReply, WebPushRule, WebPushScript,
};
use gcm_ccs::webpush::{
    MAX_PLAINTEXT, Push, PushError, Subscription, SubscriptionError, Urgency, VapidKey,
    WebPushConfig, WebPushError, WebPushSender,
};
use serde_json::Value;

const SUBJECT: &str = "mailto:ops@example.com";

/// An emulator with a Web Push service scripted by `webpush`.
async fn service(webpush: WebPushScript) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.script = Script {
        webpush,
        ..Script::default()
    };
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    Emulator::start(cfg).await.expect("emulator starts")
}

fn rule(prefix: &str, reply: WebPushReply) -> WebPushRule {
    WebPushRule {
        prefix: prefix.into(),
        reply,
    }
}

fn status(status: u16, retry_after: Option<&str>) -> WebPushReply {
    WebPushReply::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
        body: None,
    }
}

/// Fast retries; `Retry-After` up to the default 300 s is honoured.
fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

fn config(emu: &Emulator, key: &VapidKey) -> WebPushConfig {
    let mut cfg = emu.webpush_config(key.clone(), SUBJECT);
    cfg.retry = fast_retries(4);
    cfg
}

/// A sender and a subscription made with its key (labelled `label`).
fn client(emu: &Emulator, label: &str) -> (WebPushSender, Subscription) {
    let key = VapidKey::generate();
    let sub = emu
        .webpush_subscribe(label, Some(key.public_key()))
        .expect("a subscription");
    (WebPushSender::new(config(emu, &key)).unwrap(), sub)
}

fn push(payload: &[u8]) -> Push {
    Push::builder().payload(payload).ttl(60).build().unwrap()
}

#[tokio::test]
async fn a_push_is_accepted_verified_and_decrypted() {
    let emu = service(WebPushScript::default()).await;
    let (sender, sub) = client(&emu, "");
    let p = Push::builder()
        .payload("When I grow up, I want to be a watermelon")
        .ttl(600)
        .urgency(Urgency::High)
        .topic("fruit")
        .build()
        .unwrap();
    let accepted = bounded(10, sender.send(&sub, &p)).await.unwrap();
    assert_eq!(accepted.status, 201);
    assert_eq!(accepted.ttl, Some(600));
    assert_eq!(accepted.attempts, 1);
    let location = accepted.location.expect("Location");
    assert!(
        location.starts_with(emu.webpush_url().unwrap()),
        "{location}"
    );

    let [got] = <[_; 1]>::try_from(emu.webpush_received()).unwrap();
    assert_eq!(got.endpoint, sub.endpoint());
    assert_eq!(
        got.payload.as_deref(),
        Some(&b"When I grow up, I want to be a watermelon"[..])
    );
    assert_eq!((got.ttl, got.urgency), (600, Some(Urgency::High)));
    assert_eq!(got.topic.as_deref(), Some("fruit"));
    assert_eq!(got.subject, SUBJECT);
    assert_eq!(got.version, "HTTP/2.0", "h2 by ALPN");
}

#[tokio::test]
async fn sizes_0_1_and_3993_and_no_payload_round_trip() {
    let emu = service(WebPushScript::default()).await;
    let (sender, sub) = client(&emu, "");
    let payloads: Vec<Option<Vec<u8>>> = vec![
        Some(vec![]),
        Some(vec![0]),
        Some((0..MAX_PLAINTEXT).map(|i| i as u8).collect()),
        None,
    ];
    for payload in &payloads {
        let p = match payload {
            Some(bytes) => push(bytes),
            None => Push::builder().ttl(0).build().unwrap(),
        };
        bounded(10, sender.send(&sub, &p)).await.unwrap();
    }
    let got: Vec<Option<Vec<u8>>> = emu
        .webpush_received()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(got, payloads);
}

#[test]
fn random_payloads_round_trip_through_the_emulators_decryption() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(service(WebPushScript::default()));
    let (sender, sub) = rt.block_on(async { client(&emu, "") });
    let mut runner = TestRunner::new(Config::with_cases(16));
    runner
        .run(
            &proptest::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT),
            |payload| {
                rt.block_on(bounded(10, sender.send(&sub, &push(&payload))))
                    .unwrap();
                let last = emu.webpush_received().pop().unwrap();
                prop_assert_eq!(last.payload, Some(payload));
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn a_payload_over_3993_bytes_is_refused_before_sending() {
    let emu = service(WebPushScript::default()).await;
    let (_, sub) = client(&emu, "");
    let too_big = vec![b'x'; MAX_PLAINTEXT + 1];
    assert_eq!(
        Push::builder().payload(too_big.clone()).build(),
        Err(PushError::PayloadTooLarge {
            size: 3994,
            limit: 3993
        })
    );
    assert!(gcm_ccs::webpush::encrypt(&sub, &too_big).is_err());
    assert_eq!(emu.webpush_stats().requests, 0);
}

/// The error of one send.
async fn refusal(sender: &WebPushSender, sub: &Subscription) -> WebPushError {
    bounded(10, sender.send(sub, &push(b"hi")))
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn gone_and_unknown_subscriptions() {
    let emu = service(WebPushScript {
        rules: vec![rule("gone-", status(410, None))],
        ..WebPushScript::default()
    })
    .await;
    let (sender, gone) = client(&emu, "gone-");
    let e = refusal(&sender, &gone).await;
    assert_eq!((e.code(), e.status()), ("SUBSCRIPTION_GONE", Some(410)));
    assert!(e.is_subscription_gone() && !e.is_retryable());

    // An endpoint the service never minted: 404, also permanent.
    let (_, real) = client(&emu, "");
    let unknown = Subscription::from_json(&real.to_json().replace(
        real.endpoint(),
        &format!("{}/push/never-minted", emu.webpush_url().unwrap()),
    ))
    .unwrap();
    let e = refusal(&sender, &unknown).await;
    assert_eq!((e.code(), e.status()), ("SUBSCRIPTION_GONE", Some(404)));
    assert_eq!(emu.webpush_stats().requests, 2, "neither is retried");
    assert!(emu.webpush_received().is_empty());
}

#[tokio::test]
async fn too_large_for_the_service_is_413() {
    let emu = service(WebPushScript {
        max_body: 1000,
        ..WebPushScript::default()
    })
    .await;
    let (sender, sub) = client(&emu, "");
    let e = bounded(10, sender.send(&sub, &push(&[7; 2000])))
        .await
        .unwrap_err();
    assert!(matches!(e, WebPushError::PayloadTooLarge { .. }), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("at most 1000"), "{e}");
}

#[tokio::test]
async fn an_undecryptable_body_is_400_with_the_reason() {
    let emu = service(WebPushScript::default()).await;
    let (sender, sub) = client(&emu, "");
    // The same endpoint with another browser's keys: the service cannot decrypt it.
    let stranger = emu.webpush_subscribe("", None).unwrap();
    let wrong_keys: Value = serde_json::from_str(&stranger.to_json()).unwrap();
    let mut json: Value = serde_json::from_str(&sub.to_json()).unwrap();
    json["keys"] = wrong_keys["keys"].clone();
    let forged = Subscription::from_json(&json.to_string()).unwrap();
    let e = refusal(&sender, &forged).await;
    match &e {
        WebPushError::BadRequest { reason } => assert!(reason.contains("decrypt"), "{reason}"),
        other => panic!("{other}"),
    }
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn vapid_refusals_are_401_and_403() {
    let emu = service(WebPushScript::default()).await;
    // 403: the subscription was made for another application server's key.
    let other_app = VapidKey::generate();
    let sub = emu
        .webpush_subscribe("", Some(other_app.public_key()))
        .unwrap();
    let (sender, _) = client(&emu, "");
    let e = refusal(&sender, &sub).await;
    assert!(
        matches!(&e, WebPushError::VapidRefused { status: 403, reason } if reason.contains("applicationServerKey")),
        "{e}"
    );
    // 401: a JWT for another audience (the same service named `localhost`, so `aud`
    // differs from the origin the service knows itself by).
    let (sender, sub) = client(&emu, "");
    let port = emu
        .webpush_url()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let renamed = Subscription::from_json(
        &sub.to_json()
            .replace("https://127.0.0.1:", "https://localhost:"),
    )
    .unwrap();
    assert_eq!(renamed.origin(), format!("https://localhost:{port}"));
    let e = refusal(&sender, &renamed).await;
    assert!(
        matches!(&e, WebPushError::VapidRefused { status: 401, reason } if reason.contains("aud")),
        "{e}"
    );
    assert_eq!(e.code(), "VAPID_REFUSED");
    assert!(!e.is_retryable());
    assert!(emu.webpush_received().is_empty());
}

#[tokio::test]
async fn a_scripted_400_carries_the_service_text() {
    let emu = service(WebPushScript {
        rules: vec![rule(
            "bad-",
            WebPushReply::Status {
                status: 400,
                retry_after: None,
                body: Some("Invalid TTL header".into()),
            },
        )],
        ..WebPushScript::default()
    })
    .await;
    let (sender, sub) = client(&emu, "bad-");
    assert_eq!(
        refusal(&sender, &sub).await,
        WebPushError::BadRequest {
            reason: "Invalid TTL header".into()
        }
    );
}

fn burst(status: u16, times: u32, retry_after: Option<&str>) -> WebPushScript {
    WebPushScript {
        status_burst: Some(StatusBurst {
            status,
            times,
            retry_after: retry_after.map(str::to_owned),
            body: None,
        }),
        ..WebPushScript::default()
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let emu = service(burst(429, 1, Some("1"))).await;
    let (sender, sub) = client(&emu, "");
    let started = Instant::now();
    let accepted = bounded(10, sender.send(&sub, &push(b"later")))
        .await
        .unwrap();
    assert_eq!((accepted.status, accepted.attempts), (201, 2));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}: less than the Retry-After",
        started.elapsed()
    );
    assert_eq!(emu.webpush_received().len(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_policy_fails_at_once_with_it() {
    let emu = service(burst(429, 1, Some("3600"))).await;
    let (sender, sub) = client(&emu, "");
    let e = refusal(&sender, &sub).await;
    assert_eq!(
        e,
        WebPushError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
            reason: "Too Many Requests".into()
        }
    );
    assert!(e.is_retryable(), "the caller may try again later");
    assert_eq!(emu.webpush_stats().requests, 1);
}

#[tokio::test]
async fn a_503_burst_then_201() {
    let emu = service(burst(503, 2, None)).await;
    let (sender, sub) = client(&emu, "");
    let accepted = bounded(10, sender.send(&sub, &push(b"eventually")))
        .await
        .unwrap();
    assert_eq!((accepted.status, accepted.attempts), (201, 3));
    let stats = emu.webpush_stats();
    assert_eq!((stats.requests, stats.delivered, stats.refused), (3, 1, 2));
}

#[tokio::test]
async fn a_5xx_until_the_attempts_run_out() {
    let emu = service(burst(500, 100, None)).await;
    let (sender, sub) = client(&emu, "");
    let e = refusal(&sender, &sub).await;
    assert!(
        matches!(e, WebPushError::Unavailable { status: 500, .. }),
        "{e}"
    );
    assert_eq!(emu.webpush_stats().requests, 4, "max_attempts");
}

#[tokio::test]
async fn a_slow_service_times_out_and_is_retried() {
    let emu = service(WebPushScript {
        rules: vec![rule("slow-", WebPushReply::Delay { ms: 2_000 })],
        ..WebPushScript::default()
    })
    .await;
    let key = VapidKey::generate();
    let sub = emu
        .webpush_subscribe("slow-", Some(key.public_key()))
        .unwrap();
    let mut cfg = config(&emu, &key);
    cfg.request_timeout = Duration::from_millis(200);
    cfg.retry = fast_retries(2);
    let sender = WebPushSender::new(cfg).unwrap();
    let e = refusal(&sender, &sub).await;
    assert_eq!(e, WebPushError::Timeout(Duration::from_millis(200)));
    assert!(e.is_retryable());
    assert_eq!(emu.webpush_stats().requests, 2);
}

#[tokio::test]
async fn one_connection_per_origin_and_a_bound_on_concurrency() {
    let emu = service(WebPushScript {
        rules: vec![rule("", WebPushReply::Delay { ms: 50 })],
        ..WebPushScript::default()
    })
    .await;
    let key = VapidKey::generate();
    let sub = emu.webpush_subscribe("", Some(key.public_key())).unwrap();
    let mut cfg = config(&emu, &key);
    cfg.max_concurrent_per_origin = 3;
    let sender = WebPushSender::new(cfg).unwrap();
    bounded(10, sender.send(&sub, &push(b"warm-up")))
        .await
        .unwrap();
    let sends: Vec<_> = (0..12)
        .map(|i| {
            let (sender, sub) = (sender.clone(), sub.clone());
            tokio::spawn(async move { sender.send(&sub, &push(format!("{i}").as_bytes())).await })
        })
        .collect();
    for send in sends {
        bounded(10, send).await.unwrap().unwrap();
    }
    let stats = emu.webpush_stats();
    assert_eq!(stats.delivered, 13);
    assert_eq!(
        stats.connections, 1,
        "HTTP/2: one connection carries them all"
    );
    assert!(
        (2..=3).contains(&stats.max_in_flight),
        "at most 3 at once, and more than one: {}",
        stats.max_in_flight
    );
}

#[tokio::test]
async fn tls_is_verified() {
    let emu = service(WebPushScript::default()).await;
    let key = VapidKey::generate();
    let sub = emu.webpush_subscribe("", None).unwrap();
    // Default trust (the Mozilla roots) does not know the emulator's CA.
    let mut cfg = WebPushConfig::new(key, SUBJECT);
    cfg.retry = fast_retries(3);
    let sender = WebPushSender::new(cfg).unwrap();
    let e = refusal(&sender, &sub).await;
    assert!(matches!(e, WebPushError::Tls(_)), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(emu.webpush_stats().requests, 0);
}

#[tokio::test]
async fn bad_subscriptions_are_refused_naming_the_field() {
    let emu = service(WebPushScript::default()).await;
    let good: Value =
        serde_json::from_str(&emu.webpush_subscribe("", None).unwrap().to_json()).unwrap();
    let with = |path: &[&str], value: Value| {
        Subscription::from_json(&replaced(&good, path, value).to_string()).unwrap_err()
    };
    let field = |e: SubscriptionError| match e {
        SubscriptionError::InvalidField { field, .. } => field,
        other => panic!("{other}"),
    };
    assert!(matches!(
        Subscription::from_json("{\"endpoint\": "),
        Err(SubscriptionError::Json(_))
    ));
    let endpoint = good["endpoint"]
        .as_str()
        .unwrap()
        .replace("https:", "http:");
    assert_eq!(field(with(&["endpoint"], endpoint.into())), "endpoint");
    let mut point = gcm_ccs_b64(good["keys"]["p256dh"].as_str().unwrap());
    point[64] ^= 0x55;
    assert_eq!(
        field(with(&["keys", "p256dh"], b64(&point).into())),
        "keys.p256dh"
    );
    assert_eq!(
        field(with(&["keys", "auth"], b64(&[1; 15]).into())),
        "keys.auth"
    );
    assert_eq!(emu.webpush_stats().requests, 0);
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn gcm_ccs_b64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

// ---- the binaries -------------------------------------------------------------------------

/// A scratch directory with the emulator's CA, a VAPID key made by `gcm-ccs vapid generate`,
/// and a subscription made with its public key.
struct Scratch {
    dir: tempfile::TempDir,
    public_key: String,
}

impl Scratch {
    async fn new(emu: &Emulator, label: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), emu.ca_pem()).unwrap();
        let mut cmd = bin();
        cmd.args(["vapid", "generate", "--out"])
            .arg(dir.path().join("vapid.pem"));
        let out = output(cmd).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let public_key = text(&out.stdout).trim().to_owned();
        let sub = emu.webpush_subscribe(label, Some(&public_key)).unwrap();
        std::fs::write(dir.path().join("subscription.json"), sub.to_json()).unwrap();
        Scratch { dir, public_key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `gcm-ccs webpush` with the scratch files.
    fn webpush(&self) -> Command {
        self.webpush_with(&[])
    }

    /// `gcm-ccs webpush` with the scratch files, some options replaced or added.
    fn webpush_with(&self, overrides: &[(&str, &str)]) -> Command {
        let files = |name| self.path(name).to_str().unwrap().to_owned();
        let defaults = [
            ("--subscription", files("subscription.json")),
            ("--vapid-key", files("vapid.pem")),
            ("--subject", SUBJECT.to_owned()),
            ("--ca-file", files("ca.pem")),
        ];
        let mut cmd = bin();
        cmd.arg("webpush");
        for (flag, value) in &defaults {
            let given = overrides.iter().find(|(f, _)| f == flag);
            cmd.arg(flag).arg(given.map_or(value.as_str(), |(_, v)| v));
        }
        for (flag, value) in overrides {
            if !defaults.iter().any(|(f, _)| f == flag) {
                cmd.arg(flag).arg(value);
            }
        }
        cmd
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

#[tokio::test]
async fn cli_vapid_generate_writes_a_private_pkcs8_key() {
    let emu = service(WebPushScript::default()).await;
    let s = Scratch::new(&emu, "").await;
    let pem = std::fs::read_to_string(s.path("vapid.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    assert_eq!(VapidKey::parse(&pem).unwrap().public_key(), s.public_key);
    assert_eq!(s.public_key.len(), 87, "65 bytes in base64url");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path("vapid.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }
    // No silent overwrite; `public-key` shows the same key.
    let mut again = bin();
    again
        .args(["vapid", "generate", "--out"])
        .arg(s.path("vapid.pem"));
    let out = output(again).await;
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(s.path("vapid.pem")).unwrap(), pem);
    let mut show = bin();
    show.args(["vapid", "public-key", "--key"])
        .arg(s.path("vapid.pem"));
    let out = output(show).await;
    assert_eq!(text(&out.stdout).trim(), s.public_key);
}

#[tokio::test]
async fn cli_webpush_delivers_and_reports() {
    let emu = service(WebPushScript::default()).await;
    let s = Scratch::new(&emu, "").await;
    let mut cmd = s.webpush();
    cmd.args([
        "--payload",
        "Hello from the CLI",
        "--ttl",
        "60",
        "--urgency",
        "high",
        "--topic",
        "greeting",
    ]);
    let out = output(cmd).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("accepted 201  location https://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("ttl 60"), "{stdout}");
    let [got] = <[_; 1]>::try_from(emu.webpush_received()).unwrap();
    assert_eq!(got.payload.as_deref(), Some(&b"Hello from the CLI"[..]));
    assert_eq!(
        (got.ttl, got.urgency, got.topic.as_deref()),
        (60, Some(Urgency::High), Some("greeting"))
    );

    // --json, a payload file, and a push without a payload.
    std::fs::write(s.path("payload.bin"), [0u8, 159, 146, 150]).unwrap();
    let mut cmd = s.webpush();
    cmd.arg("--payload-file")
        .arg(s.path("payload.bin"))
        .arg("--json");
    let out = output(cmd).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "accepted");
    assert_eq!(report["status"], 201);
    assert_eq!(report["ttl"], 2_419_200, "the documented default TTL");
    assert!(report["location"].as_str().is_some());
    let out = output(s.webpush()).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let payloads: Vec<_> = emu
        .webpush_received()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(payloads[1..], [Some(vec![0, 159, 146, 150]), None]);
}

#[tokio::test]
async fn cli_webpush_exit_codes_of_refusals() {
    let emu = service(WebPushScript {
        rules: vec![rule("gone-", status(410, None))],
        ..WebPushScript::default()
    })
    .await;
    let s = Scratch::new(&emu, "gone-").await;
    let mut cmd = s.webpush();
    cmd.args(["--payload", "x", "--json"]);
    let out = output(cmd).await;
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["outcome"].as_str(),
            report["status"].as_u64(),
            report["code"].as_str()
        ),
        (Some("refused"), Some(410), Some("SUBSCRIPTION_GONE"))
    );
    // A subscription made for another key: VAPID refused, exit 3.
    let other = emu
        .webpush_subscribe("", Some(VapidKey::generate().public_key()))
        .unwrap();
    std::fs::write(s.path("subscription.json"), other.to_json()).unwrap();
    let out = output(s.webpush()).await;
    assert_eq!(code(&out), 3, "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("403  VAPID_REFUSED"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn cli_webpush_bad_input_sends_nothing() {
    let emu = service(WebPushScript::default()).await;
    let s = Scratch::new(&emu, "").await;
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("subscription.json")).unwrap())
            .unwrap();
    let mut off_curve = gcm_ccs_b64(good["keys"]["p256dh"].as_str().unwrap());
    off_curve[64] ^= 0x55;
    let variant = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string()
    };
    let subscriptions = [
        ("{\"endpoint\":", "not a PushSubscription JSON object"),
        (
            &*variant(&|v| v["keys"]["p256dh"] = b64(&off_curve).into()),
            "keys.p256dh",
        ),
        (
            &*variant(&|v| v["keys"]["auth"] = b64(&[9; 15]).into()),
            "keys.auth",
        ),
        (
            &*variant(&|v| {
                v["endpoint"] = v["endpoint"]
                    .as_str()
                    .unwrap()
                    .replace("https:", "http:")
                    .into()
            }),
            "`endpoint`",
        ),
    ];
    for (json, want) in subscriptions {
        std::fs::write(s.path("bad.json"), json).unwrap();
        let bad = s.path("bad.json");
        let out = output(s.webpush_with(&[("--subscription", bad.to_str().unwrap())])).await;
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), 2, "{json}: {stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("--subscription"),
            "{json}: {stderr}"
        );
    }
    std::fs::write(
        s.path("garbage.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let garbage = s.path("garbage.pem");
    let too_big = "x".repeat(MAX_PLAINTEXT + 1);
    let cases = [
        (
            ("--vapid-key", "/nonexistent/vapid.pem"),
            "cannot read --vapid-key",
        ),
        (
            ("--vapid-key", garbage.to_str().unwrap()),
            "VAPID private key",
        ),
        (("--subject", "ops@example.com"), "mailto:"),
        (("--topic", "not a topic"), "topic"),
        (("--payload", too_big.as_str()), "3994 bytes"),
    ];
    for (arg, want) in cases {
        let out = output(s.webpush_with(&[arg])).await;
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), 2, "{arg:?}: {stderr}");
        assert!(stderr.contains(want), "{arg:?}: {stderr}");
    }
    assert_eq!(emu.webpush_stats().requests, 0, "nothing was sent");
}

#[tokio::test]
async fn cli_emulate_serves_subscriptions_and_shows_pushes() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut cmd = bin();
    cmd.args([
        "emulate",
        "--listen",
        "127.0.0.1:0",
        "--webpush-listen",
        "127.0.0.1:0",
        "--stats-every",
        "0",
        "--ca-out",
    ])
    .arg(&ca)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("a line").unwrap();
        if let Some(rest) = line.strip_prefix("Web Push service at ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // POST /subscribe over TLS, trusting only the written CA, as a test of a web app would.
    let key = VapidKey::generate();
    let sub = subscribe_over_https(&url, &ca, key.public_key()).await;
    let mut cfg = WebPushConfig::new(key, SUBJECT);
    cfg.trust = gcm_ccs::Trust::only_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let sender = WebPushSender::new(cfg).unwrap();
    bounded(10, sender.send(&sub, &push(b"shown to the user")))
        .await
        .unwrap();
    let shown = tokio::task::spawn_blocking(move || {
        let line = lines
            .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("push ")))
            .expect("a push line")
            .unwrap();
        (line, lines)
    });
    let (line, _lines) = bounded(10, shown).await.unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        line.contains(sub.endpoint()) && line.ends_with(": shown to the user"),
        "{line}"
    );
    assert!(line.contains(SUBJECT), "{line}");
}

/// `POST {url}/subscribe` with hyper over TLS trusting `ca` only.
async fn subscribe_over_https(url: &str, ca: &Path, application_server_key: &str) -> Subscription {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = url.strip_prefix("https://").unwrap().parse().unwrap();
    let mut tls = common::tls_to(addr, &std::fs::read_to_string(ca).unwrap()).await;
    let body = format!(r#"{{"applicationServerKey":"{application_server_key}"}}"#);
    let request = format!(
        "POST /subscribe HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let json = response.split("\r\n\r\n").nth(1).unwrap();
    Subscription::from_json(json).unwrap()
}
