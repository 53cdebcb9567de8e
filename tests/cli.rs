//! The `gcm-ccs` binary end to end, against an emulator in this process (or a spawned
//! `gcm-ccs emulate`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bin::{bin, output, text};
use common::*;
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Script};
use serde_json::{Map, Value, json};

/// An emulator serving the HTTP API too.
async fn http_emulator(script: Script) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.script = script;
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    Emulator::start(cfg).await.expect("emulator starts")
}

impl Scratch {
    /// `gcm-ccs <sub>` pointed at `emu` with the right key in the environment.
    fn client(&self, sub: &str, emu: &Emulator) -> Command {
        let mut cmd = bin();
        cmd.arg(sub)
            .args(["--sender-id", SENDER, "--endpoint"])
            .arg(emu.addr().to_string())
            .arg("--ca-file")
            .arg(self.path("ca.pem"))
            .env("GCM_API_KEY", KEY);
        cmd
    }

    /// `gcm-ccs http` pointed at `emu`'s HTTP endpoint.
    fn http(&self, emu: &Emulator) -> Command {
        let mut cmd = bin();
        cmd.args(["http", "--url", &emu.http_url().unwrap(), "--ca-file"])
            .arg(self.path("ca.pem"))
            .env("GCM_API_KEY", KEY);
        cmd
    }

    fn send(&self, emu: &Emulator, input: &Path, output: &Path) -> Command {
        let mut cmd = self.client("send", emu);
        cmd.arg("--input").arg(input).arg("--output").arg(output);
        cmd
    }
}

/// The records of an output file by line number; panics on a repeated line.
fn records(path: &Path) -> HashMap<u64, Value> {
    let mut by_line = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let record: Value = serde_json::from_str(line).expect("each output line is JSON");
        let n = record["line"].as_u64().unwrap();
        assert!(
            by_line.insert(n, record).is_none(),
            "line {n} has two outcomes"
        );
    }
    by_line
}

/// `n` messages (a BOM first, a CR on line 2), with junk on each line number divisible by
/// `junk_every`.
fn input_file(path: &Path, n: u64, junk_every: u64) {
    let junk: [&[u8]; 7] = [
        b"",
        b"{not json",
        b"[1,2,3]",
        br#"{"data":{"no":"target"}}"#,
        br#"{"to":"t","data":{"google.key":"reserved"}}"#,
        b"\x01\x02binary\xff\xfe",
        b"   \r",
    ];
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    for i in 1..=n {
        if i % junk_every == 0 {
            bytes.extend_from_slice(junk[(i / junk_every) as usize % junk.len()]);
        } else {
            let mut line = json!({"to": format!("tok-{i}"), "data": {"i": i.to_string()}});
            if i % 10 == 1 {
                line["message_id"] = json!(format!("id-{i}"));
            }
            bytes.extend_from_slice(line.to_string().as_bytes());
            if i == 2 {
                bytes.push(b'\r');
            }
        }
        bytes.push(b'\n');
    }
    std::fs::write(path, bytes).unwrap();
}

/// Runs `gcm-ccs send` on an input file holding exactly `bytes`; the process output and the
/// output file's records by line.
async fn send_file(emu: &Emulator, bytes: &[u8]) -> (Output, HashMap<u64, Value>) {
    let s = Scratch::new(emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    std::fs::write(&input, bytes).unwrap();
    let out = output(s.send(emu, &input, &output_path)).await;
    let by_line = records(&output_path);
    (out, by_line)
}

/// The record of an input line refused before sending, with no JSON to read its id or target
/// from.
fn invalid_record(line: u64, code: &str, description: &str) -> Value {
    json!({
        "line": line, "message_id": null, "to": null, "outcome": "invalid", "code": code,
        "description": description, "canonical_registration_id": null, "attempts": 0,
        "latency_ms": null,
    })
}

#[tokio::test]
async fn demo_json_counts_add_up() {
    let mut cmd = bin();
    cmd.args(["demo", "--messages", "2000", "--json"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    assert_eq!(n("submitted"), 2000);
    assert_eq!(n("acked") + n("nacked") + n("failed"), n("submitted"));
    assert_eq!(n("failed"), 0);
    assert!(n("nacked") > 0 && n("acked") > 0);
}

#[tokio::test]
async fn send_gives_every_line_one_outcome() {
    let emu = emulator(script(vec![
        rule("tok-7", nack("DEVICE_UNREGISTERED")),
        rule("tok-9", canonical("new-token")),
    ]))
    .await;
    let s = Scratch::new(&emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    input_file(&input, 5000, 50);
    let mut cmd = s.send(&emu, &input, &output_path);
    cmd.args(["--connections", "2", "--json"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let by_line = records(&output_path);
    assert_eq!(by_line.len(), 5000);
    assert!((1..=5000).all(|n| by_line.contains_key(&n)));
    for (n, r) in &by_line {
        let outcome = r["outcome"].as_str().unwrap();
        assert_eq!(r.as_object().unwrap().len(), 9, "{r}");
        if n % 50 == 0 {
            assert_eq!(outcome, "invalid", "line {n}: {r}");
            assert!(r["code"].is_string() && r["description"].is_string(), "{r}");
            assert_eq!(r["attempts"], 0);
        } else {
            assert_eq!(r["to"], format!("tok-{n}"), "{r}");
            assert_eq!(r["attempts"], 1, "{r}");
            assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
            let want = match n.to_string() {
                s if s.starts_with('7') => "nacked",
                _ => "acked",
            };
            assert_eq!(outcome, want, "{r}");
        }
        if n % 10 == 1 && n % 50 != 0 {
            assert_eq!(r["message_id"], format!("id-{n}"));
        }
    }
    assert_eq!(by_line[&1]["outcome"], "acked", "BOM stripped");
    assert_eq!(by_line[&2]["outcome"], "acked", "CR stripped");
    assert_eq!(by_line[&9]["canonical_registration_id"], "new-token");
    assert_eq!(by_line[&7]["code"], "DEVICE_UNREGISTERED");
    assert_eq!(by_line[&100]["code"], "INVALID_JSON");

    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["lines"], 5000);
    assert_eq!(summary["invalid"], 100);
    assert_eq!(summary["submitted"], 4900);
    assert_eq!(emu.stats().unique_messages, 4900);
}

#[tokio::test]
async fn resume_after_a_kill_finishes_each_line_exactly_once() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 40 })])).await;
    let s = Scratch::new(&emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    input_file(&input, 3000, 100);

    let mut cmd = s.send(&emu, &input, &output_path);
    cmd.args(["--window", "10"]).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(&output_path).map_or(0, |t| t.lines().count()) < 300 {
        assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to finish in-flight messages
    child.wait().unwrap();
    let first = records(&output_path).len();
    assert!((300..3000).contains(&first), "{first}");

    emu.set_script(Default::default());
    let mut resume = s.send(&emu, &input, &output_path);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let by_line = records(&output_path);
    assert_eq!(by_line.len(), 3000);
    assert!(by_line.values().all(|r| r["outcome"] != "failed"));

    // A finished output is not overwritten by mistake.
    let again = output(s.send(&emu, &input, &output_path)).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--resume"),
        "{}",
        text(&again.stderr)
    );
}

#[tokio::test]
async fn wrong_key_exits_3_without_showing_the_key() {
    let emu = emulator(Default::default()).await;
    let s = Scratch::new(&emu);
    let input = s.path("in.ndjson");
    input_file(&input, 3, 100);
    let wrong = "AIzaWrongKey_must_never_be_printed_42";
    for from_file in [false, true] {
        let mut cmd = s.send(&emu, &input, &s.path("out.ndjson"));
        if from_file {
            std::fs::write(s.path("key"), format!("{wrong}\n")).unwrap();
            cmd.env_remove("GCM_API_KEY")
                .arg("--api-key-file")
                .arg(s.path("key"));
        } else {
            cmd.env("GCM_API_KEY", wrong);
        }
        cmd.arg("-vv");
        let out = output(cmd).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("authentication failed"), "{stderr}");
        assert!(
            !stdout.contains(wrong) && !stderr.contains(wrong),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn usage_and_file_errors_exit_2() {
    let emu = emulator(Default::default()).await;
    let s = Scratch::new(&emu);
    let missing = output(s.send(&emu, &s.path("missing.ndjson"), &s.path("out.ndjson"))).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("missing.ndjson"));

    input_file(&s.path("in.ndjson"), 3, 100);
    let unwritable = output(s.send(&emu, &s.path("in.ndjson"), &s.path("no/such/dir/out"))).await;
    assert_eq!(unwritable.status.code(), Some(2));

    let mut no_key = s.send(&emu, &s.path("in.ndjson"), &s.path("out.ndjson"));
    no_key.env_remove("GCM_API_KEY");
    let no_key = output(no_key).await;
    assert_eq!(no_key.status.code(), Some(2));
    assert!(text(&no_key.stderr).contains("GCM_API_KEY"));
    assert_eq!(emu.stats().connections_accepted, 0);
}

#[tokio::test]
async fn send_reads_stdin_and_writes_stdout() {
    let emu = emulator(Default::default()).await;
    let s = Scratch::new(&emu);
    let mut cmd = s.client("send", &emu);
    cmd.args(["--input", "-", "--output", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"{\"to\":\"a\"}\n\n{\"to\":\"b\"}").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "only records on stdout");
    let outcome = |n: u64| lines.iter().find(|r| r["line"] == n).unwrap()["outcome"].clone();
    assert_eq!(
        (outcome(1), outcome(2), outcome(3)),
        (json!("acked"), json!("invalid"), json!("acked"))
    );
}

#[tokio::test]
async fn stream_prints_handshake_acks_upstream_and_receipts() {
    let emu = emulator(script(vec![rule("canon-", canonical("fresh"))])).await;
    let s = Scratch::new(&emu);
    let mut cmd = s.client("stream", &emu);
    cmd.args(["--to", "canon-1", "--data", r#"{"k":"v"}"#, "--receipt"])
        .args(["--count", "2", "--wait", "2", "--transcript"]);
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    eventually("the stream client acks its receipts", || {
        emu.stats().client_acks >= 2
    })
    .await;
    let mut data = Map::new();
    data.insert("hello".into(), "world".into());
    assert!(emu.inject_upstream(SENDER, "device-9", data).is_some());
    let out = run.await.unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let tagged = |tag: &str| stdout.lines().filter(|l| l.starts_with(tag)).count();
    assert_eq!(tagged("tls "), 1, "{stdout}");
    assert!(stdout.contains(&format!("authenticated as {SENDER}@gcm.googleapis.com")));
    assert_eq!(tagged("bound "), 1);
    assert_eq!(tagged("ack "), 2, "{stdout}");
    assert!(stdout.contains("canonical id fresh"), "{stdout}");
    assert_eq!(tagged("receipt "), 2, "{stdout}");
    assert_eq!(tagged("upstream "), 1, "{stdout}");
    assert!(stdout.contains("from device-9: {\"hello\":\"world\"} (acked)"));
    assert!(tagged("C: ") > 3 && tagged("S: ") > 3, "{stdout}");
    assert!(
        stdout.contains("mechanism=\"PLAIN\">***</auth>"),
        "{stdout}"
    );
    assert!(!stdout.contains(KEY) && !text(&out.stderr).contains(KEY));
}

/// What the server sends in the first millisecond after bind, before the session result even,
/// is shown too: the stream of upstream messages exists from the client's creation on.
#[tokio::test]
async fn stream_shows_upstream_that_arrives_right_after_bind() {
    let mut s = Script::default();
    s.faults.upstream_on_bind = 6;
    s.faults.upstream_before_session = true;
    let emu = emulator(s).await;
    let scratch = Scratch::new(&emu);
    let mut cmd = scratch.client("stream", &emu);
    cmd.args(["--to", "tok-1", "--wait", "1"]);
    let out = output(cmd).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let tagged = |tag: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with(tag) && l.contains("burst-") && l.ends_with("(acked)"))
            .count()
    };
    assert_eq!(
        (tagged("upstream "), tagged("receipt ")),
        (3, 3),
        "{stdout}"
    );
    assert_eq!(emu.stats().client_acks, 6);
}

#[tokio::test]
async fn emulate_serves_a_client_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut emulate = bin()
        .args(["emulate", "--listen", "127.0.0.1:0", "--stats-every", "1"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--credentials", &format!("{SENDER}:{KEY}"), "--ca-out"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(emulate.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("address on stdout: {first:?}"))
        .to_owned();

    let mut cmd = bin();
    cmd.args([
        "stream",
        "--sender-id",
        SENDER,
        "--endpoint",
        &addr,
        "--to",
        "tok",
    ])
    .args(["--wait", "0", "--ca-file"])
    .arg(&ca)
    .env("GCM_API_KEY", KEY);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\nack "));

    let mut second = String::new();
    stdout.read_line(&mut second).unwrap();
    let url = second
        .strip_prefix("HTTP send API at ")
        .unwrap_or_else(|| panic!("HTTP URL on stdout: {second:?}"))
        .trim();
    let mut http = bin();
    http.args(["http", "--url", url, "--to", "tok", "--ca-file"])
        .arg(&ca)
        .env("GCM_API_KEY", KEY);
    let out = output(http).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok     tok  "));

    let kill = Command::new("kill")
        .args(["-TERM", &emulate.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if let Some(status) = emulate.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut emulate.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
                return (status, stderr);
            }
            assert!(started.elapsed() < Duration::from_secs(10), "still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.1);
    assert!(status.1.contains("stopped: "), "{}", status.1);
    assert!(status.1.contains("downstream 1 (acks 1"), "{}", status.1);
}

#[tokio::test]
async fn http_multicast_reports_each_token() {
    let emu = http_emulator(script(vec![
        rule("gone-", nack("DEVICE_UNREGISTERED")),
        rule("old-", canonical("new-token")),
    ]))
    .await;
    let s = Scratch::new(&emu);
    let mut cmd = s.http(&emu);
    cmd.args([
        "--registration-ids",
        "tok-1,gone-2,old-3",
        "--data",
        r#"{"k":"v"}"#,
        "--json",
    ]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let results = report["results"].as_array().unwrap();
    let to: Vec<&str> = results.iter().map(|r| r["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["tok-1", "gone-2", "old-3"]);
    assert_eq!(results[0]["outcome"], "ok");
    assert_eq!(results[1]["error"], "NotRegistered");
    assert_eq!(results[2]["canonical_registration_id"], "new-token");
    assert_eq!(
        (report["success"].clone(), report["failure"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(report["multicast_ids"].as_array().unwrap().len(), 1);
    let body: Value = serde_json::from_str(&emu.http_requests()[0].body).unwrap();
    assert_eq!(
        body["registration_ids"],
        json!(["tok-1", "gone-2", "old-3"])
    );
    assert_eq!(body["data"], json!({"k": "v"}));

    std::fs::write(s.path("tokens"), "# test devices\ntok-a\n\n  tok-b  \n").unwrap();
    let mut cmd = s.http(&emu);
    cmd.arg("--tokens-file")
        .arg(s.path("tokens"))
        .arg("--dry-run");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "ok     tok-a  fake_message_id",
            "ok     tok-b  fake_message_id"
        ]
    );

    let mut refused = s.http(&emu);
    refused
        .args(["--to", "tok"])
        .env("GCM_API_KEY", "AIzaNotTheKey_secret");
    let out = output(refused).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        !text(&out.stdout).contains("AIzaNotTheKey")
            && !text(&out.stderr).contains("AIzaNotTheKey")
    );
}

#[tokio::test]
async fn send_via_http_and_resume_after_a_refused_key() {
    let emu = http_emulator(Script::default()).await;
    let s = Scratch::new(&emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    input_file(&input, 200, 20);
    let via_http = |key: &str| {
        let mut cmd = bin();
        cmd.args([
            "send",
            "--via",
            "http",
            "--http-url",
            &emu.http_url().unwrap(),
        ])
        .arg("--ca-file")
        .arg(s.path("ca.pem"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output_path)
        .env("GCM_API_KEY", key);
        cmd
    };
    let out = output(via_http("AIzaWrong_refused_key")).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--resume"));
    assert!(
        records(&output_path)
            .values()
            .all(|r| r["outcome"] == "invalid")
    );

    let mut resume = via_http(KEY);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let by_line = records(&output_path);
    assert_eq!(by_line.len(), 200);
    let acked: Vec<&Value> = by_line
        .values()
        .filter(|r| r["outcome"] == "acked")
        .collect();
    assert_eq!(acked.len(), 190);
    assert!(
        acked.iter().all(|r| r["attempts"].is_null()),
        "attempts unknown over HTTP"
    );
}

#[tokio::test]
async fn key_refused_mid_run_stops_with_exit_3_and_resume_finishes() {
    let slow = || script(vec![rule("", Reply::Delay { ms: 30 })]);
    let emu = emulator(slow()).await;
    let s = Scratch::new(&emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    input_file(&input, 2000, 100);
    let mut cmd = s.send(&emu, &input, &output_path);
    cmd.args(["--window", "10"]).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(&output_path).map_or(0, |t| t.lines().count()) < 100 {
        assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut refusing = slow();
    refusing.faults.reject_auth = u32::MAX;
    emu.set_script(refusing);
    emu.drop_all();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused the server key") && !stderr.contains(KEY),
        "{stderr}"
    );
    let first = records(&output_path);
    assert!(first.len() < 2000);
    assert!(
        first.values().all(|r| r["outcome"] != "failed"),
        "refusals are not outcomes"
    );

    emu.set_script(Default::default());
    let mut resume = s.send(&emu, &input, &output_path);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(records(&output_path).len(), 2000);
}

#[tokio::test]
async fn sigint_finishes_in_flight_messages_then_exits_130() {
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 200 })])).await;
    let s = Scratch::new(&emu);
    let (input, output_path) = (s.path("in.ndjson"), s.path("out.ndjson"));
    input_file(&input, 5000, 10_000);
    let mut cmd = s.send(&emu, &input, &output_path);
    cmd.args(["--window", "50"]).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    eventually("messages in flight", || emu.stats().downstream >= 50).await;
    let int = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: waiting for"), "{stderr}");
    let by_line = records(&output_path);
    let sent = emu.stats().unique_messages;
    assert_eq!(
        by_line.len() as u64,
        sent,
        "every message sent got its outcome"
    );
    assert!(by_line.values().all(|r| r["outcome"] == "acked"));
    assert!(sent < 5000);
}

#[tokio::test]
async fn send_of_an_empty_file_sends_nothing_and_succeeds() {
    let emu = emulator(Default::default()).await;
    let (out, by_line) = send_file(&emu, b"").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(by_line.is_empty(), "the output is created, empty");
    assert!(
        stderr.contains("lines 0  invalid 0  submitted 0  acked 0  nacked 0  failed 0"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("note: the input is empty (0 lines): nothing was sent\n"),
        "{stderr}"
    );
    assert_eq!(emu.stats().downstream, 0);
}

#[tokio::test]
async fn send_reports_each_garbage_line_and_still_sends_the_good_ones() {
    let emu = emulator(Default::default()).await;
    // Bytes of a fixed pseudo-random sequence without `\n`: one line of binary noise.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = std::iter::from_fn(|| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Some(seed.to_le_bytes()[3])
    })
    .filter(|&b| b != b'\n')
    .take(300)
    .collect();
    let noise_offset = std::str::from_utf8(&noise).unwrap_err().valid_up_to();
    let lines: [&[u8]; 11] = [
        br#"{"to":"tok-1","data":{"k":"v"}}"#,
        b"\x00\x00\x00",                                // NULs: UTF-8, but not JSON
        b"{\"to\":\"tok-3\",\"data\":{\"k\":\"caf\xC3", // cut inside a 2-byte sequence
        b"{\"to\":\"tok-4\"}\r",                        // CRLF
        b"\x89PNG\r\n",                                 // a PNG signature: \x89 first
        b"\x1a\n",                                      // (the rest of it, on its own line)
        b"{\"to\":\"tok-7\",\"data\":{\"k\":\"nul\x00inside\"}}",
        "{\"to\":\"tok-8\",\"data\":{\"k\":\"é✓€\"}}".as_bytes(),
        b"ok \xE2\x82",            // a 3-byte sequence cut short
        b"\xED\xA0\x80 surrogate", // an encoded UTF-16 surrogate
        &noise,
    ];
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            bytes.push(b'\n');
        }
    }
    bytes.extend_from_slice(br#"{"to":"tok-last"}"#); // no final newline
    let (out, by_line) = send_file(&emu, &bytes).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "invalid lines do not fail the run: {stderr}"
    );

    let not_utf8 = |n, offset| {
        let why = format!("not UTF-8 text (bad byte at offset {offset})");
        invalid_record(n, "NOT_UTF8", &why)
    };
    let expected_invalid = [
        invalid_record(
            2,
            "INVALID_JSON",
            "invalid JSON: expected value at line 1 column 1",
        ),
        not_utf8(3, 30), // the \xC3 after `{"to":"tok-3","data":{"k":"caf`
        not_utf8(5, 0),
        invalid_record(
            6,
            "INVALID_JSON",
            "invalid JSON: expected value at line 1 column 1",
        ),
        invalid_record(
            7,
            "INVALID_JSON",
            "invalid JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 31",
        ),
        not_utf8(9, 3),
        not_utf8(10, 0),
        not_utf8(11, noise_offset),
    ];
    for want in &expected_invalid {
        let n = want["line"].as_u64().unwrap();
        assert_eq!(by_line.get(&n), Some(want), "line {n}");
    }
    let good = [(1, "tok-1"), (4, "tok-4"), (8, "tok-8"), (12, "tok-last")];
    for (n, to) in good {
        let r = &by_line[&n];
        assert_eq!(
            (r["outcome"].as_str(), r["to"].as_str()),
            (Some("acked"), Some(to)),
            "{r}"
        );
        assert_eq!(r["attempts"], 1, "{r}");
        let id = r["message_id"].as_str().unwrap();
        let received = emu
            .received(id)
            .unwrap_or_else(|| panic!("{id} not received"));
        assert_eq!(received["to"], to);
    }
    assert_eq!(
        emu.received(by_line[&8]["message_id"].as_str().unwrap())
            .unwrap()["data"]["k"],
        "é✓€"
    );
    assert_eq!(
        by_line.len(),
        good.len() + expected_invalid.len(),
        "one record per line"
    );
    assert_eq!((emu.stats().downstream, emu.stats().acks_sent), (4, 4));
    assert!(
        stderr.contains("lines 12  invalid 8  submitted 4  acked 4  nacked 0  failed 0"),
        "{stderr}"
    );
}
