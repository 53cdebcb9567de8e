//! A first connection that fails in a way that may pass does not end the run: `gcm-ccs send`
//! (the real binary) retries with the reconnect backoff within its start-up budget, logs each
//! attempt, and then sends every line. What retrying cannot fix ends it at once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::bin::{bin, output, text};
use common::raw_server::*;
use common::*;
use serde_json::Value;

const LINES: usize = 20;

/// Writes the input file, runs `gcm-ccs send` against `addr` trusting `ca_pem`, and returns
/// (exit code, stderr, output records).
async fn send_to(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    extra: &[&str],
) -> (i32, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let lines: String = (0..LINES)
        .map(|i| format!("{{\"to\":\"tok-{i}\",\"message_id\":\"m-{i}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let out_path = dir.path().join("out.ndjson");
    let mut cmd = bin();
    cmd.args([
        "send",
        "--sender-id",
        SENDER,
        "--endpoint",
        &addr.to_string(),
    ])
    .args(["--server-name", "localhost", "--connect-timeout", "1"])
    .arg("--ca-file")
    .arg(dir.path().join("ca.pem"))
    .arg("--input")
    .arg(&input)
    .arg("--output")
    .arg(&out_path)
    .args(extra)
    .env("GCM_API_KEY", KEY);
    let out = output(cmd).await;
    (
        out.status.code().unwrap_or(-1),
        text(&out.stderr),
        read_records(&out_path),
    )
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Connection 0 plays `first`; later ones negotiate and ack everything.
async fn survives(first: Vec<Step>, options: Options, what: &str) {
    let server = RawServer::start_opts(options, move |n| match n {
        0 => first.clone(),
        _ => after_handshake(vec![Step::AckForever]),
    })
    .await;
    let (code, stderr, records) = send_to(server.addr, &server.ca_pem, &[]).await;
    assert_eq!(code, 0, "{what}: {stderr}");
    assert_eq!(records.len(), LINES, "{what}: {stderr}");
    assert!(
        records.iter().all(|r| r["outcome"] == "acked"),
        "{what}: {records:?}"
    );
    assert!(
        stderr.contains("connect failed"),
        "{what}: each attempt is logged: {stderr}"
    );
    assert!(server.connections() >= 2, "{what}");
}

#[tokio::test]
async fn no_stream_header_on_the_first_connection() {
    let silent = vec![
        Step::Expect(CLIENT_HEADER_END),
        Step::Wait(Duration::from_secs(5)),
    ];
    survives(silent, Options::default(), "no stream header").await;
}

#[tokio::test]
async fn tcp_accepted_but_no_tls_on_the_first_connection() {
    let options = Options {
        plain_first: 1,
        ..Options::default()
    };
    survives(vec![Step::Wait(Duration::from_secs(5))], options, "no TLS").await;
}

#[tokio::test]
async fn an_early_success_on_the_first_connection() {
    let early = vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{HEADER}{SUCCESS}")),
    ];
    survives(early, Options::default(), "early <success/>").await;
}

#[tokio::test]
async fn the_first_connection_refused() {
    // A port nobody listens on for a while: the first attempts are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ca = common::pki::TestCa::new("late server CA");
    let ca_pem = ca.pem();
    let client = tokio::spawn(async move { send_to(addr, &ca_pem, &[]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let options = Options {
        addr: Some(addr),
        ..Options::default()
    };
    let _server =
        RawServer::start_signed(&ca, options, |_| after_handshake(vec![Step::AckForever])).await;
    let (code, stderr, records) = client.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(records.len(), LINES);
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

/// Refused credentials end the run at once with exit 3, without waiting out the budget.
#[tokio::test]
async fn refused_credentials_end_the_run_at_once() {
    let server = RawServer::start(|_| sasl_then(FAILURE)).await;
    let started = Instant::now();
    let (code, stderr, records) =
        send_to(server.addr, &server.ca_pem, &["--start-budget", "30"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(records.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.connections(), 1, "not retried");
}

/// What may pass but does not, within the budget, ends the run with the last error.
#[tokio::test]
async fn a_budget_spent_on_failures_ends_the_run_with_the_last_error() {
    let server = RawServer::start(|_| vec![Step::Close]).await;
    let started = Instant::now();
    let (code, stderr, _) = send_to(server.addr, &server.ca_pem, &["--start-budget", "2"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("closed the connection"), "{stderr}");
    assert!(server.connections() >= 2, "retried within the budget");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The server header, the SASL features, then `reply` once the client has authenticated.
fn sasl_then(reply: &'static str) -> Vec<Step> {
    vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{HEADER}{SASL_FEATURES}")),
        Step::Expect("</auth>"),
        send(reply),
    ]
}
