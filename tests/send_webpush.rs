//! `gcm-ccs send` with Web Push lines: a mixed file of CCS tokens and browser subscriptions
//! against one emulator serving CCS and Web Push over loopback TLS, each line on its own
//! transport; subscription-only files that need no CCS options; bad subscription lines.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output};

use common::bin::{bin, output, text};
use common::{KEY, SENDER, Scratch, replaced, rule, script};
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Script, WebPushReply, WebPushRule};
use gcm_ccs::webpush::VapidKey;
use serde_json::{Value, json};

const SUBJECT: &str = "mailto:ops@example.com";

/// CCS plus a Web Push service whose `gone-` subscriptions answer 410.
async fn emulator(ccs: Script) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.script = ccs;
    cfg.script.webpush.rules = vec![WebPushRule {
        prefix: "gone-".into(),
        reply: WebPushReply::Status {
            status: 410,
            retry_after: None,
            body: None,
        },
    }];
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.track_ids = true;
    Emulator::start(cfg).await.expect("emulator starts")
}

/// A scratch directory with the CA, a VAPID key, and `gcm-ccs send` commands over it.
struct Run {
    s: Scratch,
    key: VapidKey,
}

impl Run {
    fn new(emu: &Emulator) -> Run {
        let s = Scratch::new(emu);
        let key = VapidKey::generate();
        std::fs::write(s.path("vapid.pem"), key.to_pkcs8_pem()).unwrap();
        Run { s, key }
    }

    /// A subscription line for a new subscription labelled `label`.
    fn push_line(&self, emu: &Emulator, label: &str, payload: &str) -> Value {
        let sub = emu
            .webpush_subscribe(label, Some(self.key.public_key()))
            .unwrap();
        let sub: Value = serde_json::from_str(&sub.to_json()).unwrap();
        json!({"subscription": sub, "payload": payload, "ttl": 60, "urgency": "high", "topic": "t"})
    }

    /// `gcm-ccs send` on `lines`, with Web Push options only.
    fn webpush_only(&self, lines: &[String]) -> Command {
        let mut cmd = self.without_options(lines);
        cmd.arg("--vapid-key")
            .arg(self.s.path("vapid.pem"))
            .args(["--subject", SUBJECT]);
        cmd
    }

    /// `gcm-ccs send` on `lines`, with CCS options only.
    fn ccs_only(&self, emu: &Emulator, lines: &[String]) -> Command {
        let mut cmd = self.without_options(lines);
        ccs_options(&mut cmd, emu);
        cmd
    }

    /// `gcm-ccs send` on `lines` with the CA and no key (the environment's is removed).
    fn without_options(&self, lines: &[String]) -> Command {
        std::fs::write(self.s.path("in.ndjson"), lines.join("\n") + "\n").unwrap();
        let mut cmd = bin();
        cmd.arg("send")
            .arg("--input")
            .arg(self.s.path("in.ndjson"))
            .arg("--output")
            .arg(self.s.path("out.ndjson"))
            .arg("--ca-file")
            .arg(self.s.path("ca.pem"))
            .env_remove("GCM_API_KEY");
        cmd
    }

    /// `gcm-ccs send` on `lines`, with CCS and Web Push options.
    fn mixed(&self, emu: &Emulator, lines: &[String]) -> Command {
        let mut cmd = self.webpush_only(lines);
        ccs_options(&mut cmd, emu);
        cmd
    }

    /// The records by line number; each line has at most one.
    fn records(&self) -> HashMap<u64, Value> {
        let mut by_line = HashMap::new();
        for line in std::fs::read_to_string(self.s.path("out.ndjson"))
            .unwrap()
            .lines()
        {
            let record: Value = serde_json::from_str(line).unwrap();
            let n = record["line"].as_u64().unwrap();
            assert!(by_line.insert(n, record).is_none(), "line {n} twice");
        }
        by_line
    }
}

fn ccs_options(cmd: &mut Command, emu: &Emulator) {
    cmd.args(["--sender-id", SENDER, "--endpoint"])
        .arg(emu.addr().to_string())
        .env("GCM_API_KEY", KEY);
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

#[tokio::test]
async fn a_mixed_file_sends_each_line_on_its_own_transport() {
    let emu = emulator(script(vec![rule(
        "bad-",
        Reply::Nack {
            code: "DEVICE_UNREGISTERED".into(),
            description: None,
        },
    )]))
    .await;
    let run = Run::new(&emu);
    let mut lines = Vec::new();
    let mut endpoints = HashMap::new();
    for i in 1..=40u32 {
        let line = match i % 4 {
            0 => run.push_line(&emu, "", &format!("push {i}")),
            1 => run.push_line(&emu, "gone-", &format!("push {i}")),
            2 => {
                json!({"to": format!("tok-{i}"), "message_id": format!("ccs-{i}"), "data": {"i": i}})
            }
            _ => json!({"to": format!("bad-{i}"), "message_id": format!("ccs-{i}")}),
        };
        if let Some(endpoint) = line["subscription"]["endpoint"].as_str() {
            endpoints.insert(u64::from(i), endpoint.to_owned());
        }
        lines.push(line.to_string());
    }
    let out = output(run.mixed(&emu, &lines)).await;
    assert_eq!(
        code(&out),
        1,
        "gone subscriptions failed: {}",
        text(&out.stderr)
    );
    let records = run.records();
    assert_eq!(records.len(), 40, "one record per line");
    for (n, r) in &records {
        let (outcome, code) = (r["outcome"].as_str().unwrap(), r["code"].as_str());
        match n % 4 {
            0 => {
                assert_eq!((outcome, code), ("acked", None), "{r}");
                assert_eq!(
                    r["to"],
                    endpoints[n].as_str(),
                    "a push is recorded by endpoint"
                );
                assert_eq!(r["attempts"], 1);
            }
            1 => assert_eq!(
                (outcome, code),
                ("failed", Some("SUBSCRIPTION_GONE")),
                "{r}"
            ),
            2 => {
                assert_eq!((outcome, code), ("acked", None), "{r}");
                assert_eq!(r["message_id"], format!("ccs-{n}"));
            }
            _ => assert_eq!(
                (outcome, code),
                ("nacked", Some("DEVICE_UNREGISTERED")),
                "{r}"
            ),
        }
    }
    // What went where: the CCS lines on the stream (none of the pushes), the pushes
    // decrypted by the push service with their headers.
    assert_eq!(emu.stats().unique_messages, 20);
    for i in (1..=40).filter(|i| i % 4 >= 2) {
        assert_eq!(emu.copies(&format!("ccs-{i}")), 1, "ccs-{i}");
    }
    let mut received: Vec<_> = emu
        .webpush_received()
        .into_iter()
        .map(|p| {
            assert_eq!((p.ttl, p.topic.as_deref()), (60, Some("t")));
            assert_eq!(p.subject, SUBJECT);
            String::from_utf8(p.payload.unwrap()).unwrap()
        })
        .collect();
    received.sort();
    let mut want: Vec<_> = (4..=40).step_by(4).map(|i| format!("push {i}")).collect();
    want.sort();
    assert_eq!(
        received, want,
        "only the live subscriptions received their push"
    );
}

#[tokio::test]
async fn subscriptions_alone_need_no_ccs_options_and_open_no_ccs_connection() {
    let emu = emulator(Script::default()).await;
    let run = Run::new(&emu);
    let lines: Vec<String> = (0..5)
        .map(|i| run.push_line(&emu, "", &format!("only {i}")).to_string())
        .collect();
    let out = output(run.webpush_only(&lines)).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let records = run.records();
    assert!(
        records.values().all(|r| r["outcome"] == "acked"),
        "{records:?}"
    );
    assert_eq!(records.len(), 5);
    assert_eq!(emu.webpush_received().len(), 5);
    assert_eq!(emu.stats().connections_accepted, 0, "no CCS connection");

    // With CCS options too, a file without CCS lines still opens no CCS connection.
    std::fs::remove_file(run.s.path("out.ndjson")).unwrap();
    let out = output(run.mixed(&emu, &lines)).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(
        emu.stats().connections_accepted,
        0,
        "CCS is connected at its first line"
    );
}

#[tokio::test]
async fn a_line_without_its_transport_stops_the_run_for_resume() {
    let emu = emulator(Script::default()).await;
    let run = Run::new(&emu);
    let lines = vec![
        run.push_line(&emu, "", "first").to_string(),
        json!({"to": "tok", "message_id": "m-2"}).to_string(),
        run.push_line(&emu, "", "third").to_string(),
    ];
    // A CCS line with Web Push options only: exit 2 naming the line and what is missing.
    let out = output(run.webpush_only(&lines)).await;
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 2 is a CCS message"), "{stderr}");
    assert!(stderr.contains("--sender-id"), "{stderr}");
    let records = run.records();
    assert_eq!(records.keys().copied().collect::<Vec<_>>(), [1]);
    // Fixed and resumed: only what has no outcome is sent.
    let mut resume = run.mixed(&emu, &lines);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(run.records().len(), 3);
    assert_eq!(
        emu.webpush_received().len(),
        2,
        "the first push was not sent twice"
    );
    assert_eq!(emu.copies("m-2"), 1);

    // A subscription line without --vapid-key: the CCS lines before it are sent.
    std::fs::remove_file(run.s.path("out.ndjson")).unwrap();
    let lines = vec![
        json!({"to": "tok", "message_id": "m-b1"}).to_string(),
        run.push_line(&emu, "", "x").to_string(),
    ];
    let out = output(run.ccs_only(&emu, &lines)).await;
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("line 2 is a Web Push")
            && text(&out.stderr).contains("--vapid-key"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(emu.copies("m-b1"), 1);
    assert_eq!(run.records().keys().copied().collect::<Vec<_>>(), [1]);
}

#[tokio::test]
async fn bad_subscription_lines_are_invalid_and_the_rest_is_sent() {
    let emu = emulator(Script::default()).await;
    let run = Run::new(&emu);
    let good = run.push_line(&emu, "", "good");
    let with = |path: &[&str], value: Value| replaced(&good, path, value).to_string();
    // A point off the curve: a valid encoding's length and prefix, wrong coordinates.
    let off_curve = {
        let mut bytes = [7u8; 65];
        bytes[0] = 4;
        base64url(&bytes)
    };
    let lines = vec![
        good.to_string(),
        r#"{"subscription": {"endpoint": "https://x/y", "keys": "#.to_owned(),
        with(&["subscription", "keys", "p256dh"], json!(off_curve)),
        with(
            &["subscription", "keys", "auth"],
            json!(base64url(&[1; 15])),
        ),
        with(
            &["subscription", "endpoint"],
            json!(
                good["subscription"]["endpoint"]
                    .as_str()
                    .unwrap()
                    .replace("https:", "http:")
            ),
        ),
        with(&["payload"], json!("x".repeat(3994))),
        with(&["topic"], json!("not a topic!")),
        good.to_string(),
    ];
    let out = output(run.webpush_only(&lines)).await;
    assert_eq!(
        code(&out),
        0,
        "invalid lines are not failures: {}",
        text(&out.stderr)
    );
    let records = run.records();
    let codes: Vec<_> = (1..=8)
        .map(|n| {
            let r = &records[&n];
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["code"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let invalid = |code: &str| ("invalid".to_owned(), Some(code.to_owned()));
    assert_eq!(codes[0], ("acked".to_owned(), None));
    assert_eq!(codes[1], invalid("INVALID_JSON"));
    for (n, field) in [(3, "p256dh"), (4, "auth"), (5, "endpoint")] {
        assert_eq!(codes[n - 1].0, "invalid", "line {n}");
        let description = records[&(n as u64)]["description"].as_str().unwrap();
        assert!(description.contains(field), "line {n}: {description}");
    }
    assert_eq!(codes[5].0, "invalid", "3994 bytes refused before sending");
    assert_eq!(codes[6].0, "invalid", "a topic outside base64url");
    assert_eq!(codes[7], ("acked".to_owned(), None));
    assert_eq!(
        emu.webpush_received().len(),
        2,
        "only the good lines were sent"
    );
}

#[tokio::test]
async fn an_unreadable_vapid_key_is_exit_2_before_anything_is_sent() {
    let emu = emulator(Script::default()).await;
    let run = Run::new(&emu);
    let lines = vec![run.push_line(&emu, "", "x").to_string()];
    for (name, content) in [("missing.pem", None), ("garbage.pem", Some("not a key"))] {
        if let Some(content) = content {
            std::fs::write(run.s.path(name), content).unwrap();
        }
        let mut cmd = run.without_options(&lines);
        cmd.arg("--vapid-key")
            .arg(run.s.path(name))
            .args(["--subject", SUBJECT]);
        let out = output(cmd).await;
        assert_eq!(code(&out), 2, "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--vapid-key"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            !run.s.path("out.ndjson").exists(),
            "{name}: nothing written"
        );
    }
    assert!(emu.webpush_received().is_empty());
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
