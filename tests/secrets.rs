//! The server key never shows: not in `Debug`/`Display` of configs, credentials, errors or
//! events, not in tracing output at any level (captured at TRACE for whole sessions, auth
//! failures included), not in panic messages. Neither does its base64 SASL form.

mod common;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use gcm_ccs::emulator::{EmulatorConfig, Script};
use gcm_ccs::unstable::sasl;
use gcm_ccs::{Client, ConnectError, Credentials, Event, Incoming, Message, SendError};

/// A key the tests use for a failed login: it must not leak either.
const WRONG_KEY: &str = "AIzaSyWrongKey_also_secret_987654";

/// Everything the process logs, at every level, from the first test that asks for it.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every form of the secrets that could reach a log: the keys and their SASL PLAIN blobs.
fn secrets() -> Vec<String> {
    let authcid = format!("{SENDER}@gcm.googleapis.com");
    vec![
        KEY.to_owned(),
        WRONG_KEY.to_owned(),
        sasl::encode_plain(&authcid, KEY),
        sasl::encode_plain(&authcid, WRONG_KEY),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(&secret), "{what} leaks {secret:?}:\n{text}");
    }
}

#[tokio::test]
async fn tracing_at_trace_level_never_shows_the_key() {
    let log = captured();
    let emu = emulator(script(vec![rule("bad-", nack("BAD_REGISTRATION"))])).await;

    // A full session: acks, a nack, a receipt, upstream, a drain and reconnect, a close.
    let client = client(&emu).await;
    let mut events = client.events();
    client
        .send(
            Message::to("tok")
                .delivery_receipt_requested(true)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let nacked = client.send(Message::to("bad-1").build().unwrap()).await;
    assert!(nacked.is_err());
    emu.inject_upstream(SENDER, "device", Default::default())
        .unwrap();
    emu.drain_all();
    next_event(&mut events, |e| {
        matches!(
            e,
            Event::Connected {
                reconnect: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    client.close().await;

    // A refused login, at connect time and later inside the pool.
    let mut cfg = config(&emu);
    cfg.credentials = Credentials::new(SENDER, WRONG_KEY);
    let err = Client::connect(cfg).await.err().unwrap();
    assert!(err.is_auth());
    let client = common::client(&emu).await;
    let mut events = client.events();
    emu.set_script(Script {
        faults: gcm_ccs::emulator::Faults {
            reject_auth: 1,
            ..Default::default()
        },
        ..Script::default()
    });
    emu.drop_all();
    next_event(&mut events, |e| {
        matches!(e, Event::AuthFailed { .. }).then_some(())
    })
    .await;
    drop(client);

    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    // The capture did see these sessions, at several levels.
    for expected in [
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "connected",
        "connect failed",
        "not-authorized",
    ] {
        assert!(text.contains(expected), "log lacks {expected:?}:\n{text}");
    }
    assert_no_secret("the tracing output", &text);
}

#[tokio::test]
async fn debug_and_display_never_show_the_key() {
    let emu = emulator(Default::default()).await;
    let cfg = config(&emu);
    let mut emu_cfg = EmulatorConfig::new(SENDER, KEY);
    emu_cfg.credentials.push(Credentials::new("1", WRONG_KEY));
    let decoded = sasl::decode_plain(&sasl::encode_plain("a@b", KEY)).unwrap();
    assert_eq!(
        decoded.password, KEY,
        "the decoder works; only its Debug hides it"
    );

    let mut wrong = config(&emu);
    wrong.credentials.server_key = gcm_ccs::ServerKey::new(WRONG_KEY);
    let auth = Client::connect(wrong).await.err().unwrap();
    let unavailable = SendError::Unavailable(auth.clone());
    let event = Event::AuthFailed {
        error: auth.clone(),
        retry_in: Duration::from_secs(60),
    };

    let shown = [
        format!("{cfg:?}"),
        format!("{cfg:#?}"),
        format!(
            "{:?} {}",
            cfg.credentials.server_key, cfg.credentials.server_key
        ),
        format!("{:?}", cfg.credentials),
        format!("{emu_cfg:?}"),
        format!("{decoded:?}"),
        format!("{auth} {auth:?}"),
        format!("{unavailable} {unavailable:?}"),
        format!("{event:?}"),
    ];
    for text in &shown {
        assert_no_secret("formatting", text);
    }
    assert!(shown[2].contains("***"), "{}", shown[2]);
    assert!(format!("{auth}").contains("not-authorized"), "{auth}");
}

#[tokio::test]
async fn panic_messages_never_show_the_key() {
    let emu = emulator(Default::default()).await;
    let mut cfg = config(&emu);
    cfg.credentials = Credentials::new(SENDER, WRONG_KEY);
    let result: Result<(Client, Incoming), ConnectError> = Client::connect(cfg.clone()).await;
    assert!(result.is_err());

    // What `unwrap`/`expect` on these values would print.
    let catch = |f: &dyn Fn()| std::panic::catch_unwind(AssertUnwindSafe(f));
    let messages: Vec<String> = [
        catch(&|| {
            result.as_ref().map(drop).unwrap();
        }),
        catch(&|| {
            result.as_ref().map(drop).expect("connect");
        }),
        catch(&|| panic!("bad config: {cfg:?}")),
    ]
    .into_iter()
    .map(|r| {
        let payload = r.expect_err("it panicked");
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default()
    })
    .collect();
    for m in &messages {
        assert!(m.contains("Auth") || m.contains("Config"), "{m}");
        assert_no_secret("a panic message", m);
    }
}

/// The VAPID private key never shows either: not in tracing at TRACE over pushes that are
/// retried and refused, not in `Debug` of the key, the config or the sender, not in errors.
#[tokio::test]
async fn the_vapid_private_key_never_shows() {
    use gcm_ccs::emulator::{Emulator, StatusBurst};
    use gcm_ccs::webpush::{Push, VapidKey, WebPushSender};

    let log = captured();
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.script.webpush.status_burst = Some(StatusBurst {
        status: 503,
        times: 1,
        retry_after: None,
        body: None,
    });
    let emu = Emulator::start(cfg).await.unwrap();
    let key = VapidKey::generate();
    // The PEM's base64 lines carry the private scalar.
    let pem = key.to_pkcs8_pem();
    let secret_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!secret_lines.is_empty());
    let sub = emu.webpush_subscribe("", Some(key.public_key())).unwrap();
    let mut wcfg = emu.webpush_config(key.clone(), "mailto:ops@example.com");
    wcfg.retry.initial_backoff = Duration::from_millis(10);
    let sender = WebPushSender::new(wcfg).unwrap();
    let push = Push::builder().payload("hi").build().unwrap();
    let accepted = bounded(10, sender.send(&sub, &push)).await.unwrap();
    assert_eq!(accepted.attempts, 2, "retried after the 503");
    let other = emu
        .webpush_subscribe("", Some(VapidKey::generate().public_key()))
        .unwrap();
    let refused = bounded(10, sender.send(&other, &push)).await.unwrap_err();
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        logged.contains("web push: retrying"),
        "the retry was logged:\n{logged}"
    );
    let texts = [
        ("the tracing output", logged),
        ("Debug of the key", format!("{key:?}")),
        ("Debug of the config", format!("{:?}", sender.config())),
        ("Debug of the sender", format!("{sender:?}")),
        ("the error", format!("{refused} {refused:?}")),
    ];
    for (what, text) in texts {
        for line in &secret_lines {
            assert!(!text.contains(line), "{what} leaks the VAPID key:\n{text}");
        }
    }
}
