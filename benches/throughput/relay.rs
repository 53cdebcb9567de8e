//! Figure 9: the relay. (a) Throughput of one `gcm-ccs relay` process on one connection
//! against `gcm-ccs send` of the same messages from a file, each against a fresh
//! `gcm-ccs emulate` process acking at once; both timed from process start to the last
//! outcome (the relay's: the last record in `gcm:results`), in paired rounds (send, then
//! relay), the ratio being the median of the rounds' ratios. (b) Protocol-bound scaling: 1, 2
//! and 4 relay processes with C connections each, the emulator acking after R ms, against
//! the ceiling N·C·100/R.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::json;

use crate::client_cpu::{EmulatorProcess, run_send, write_input};
use crate::redis_server::Redis;
use crate::stack;

/// The issue's targets.
const VS_SEND_TARGET: f64 = 0.7;
const SCALING_TARGET: f64 = 0.9;
/// Connections per relay in (b).
const CONNECTIONS: usize = 2;
/// Paired rounds of (a).
const ROUNDS: usize = 3;

pub struct Figure {
    messages: usize,
    /// Medians over the rounds.
    send_msgs_per_s: f64,
    relay_msgs_per_s: f64,
    /// Relay against send, per round.
    ratios: Vec<f64>,
    ack_delay: Duration,
    /// (relays, messages, msgs/s, ceiling)
    scaling: Vec<(usize, usize, f64, f64)>,
}

impl Figure {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "messages": self.messages,
            "send_msgs_per_s": self.send_msgs_per_s,
            "relay_msgs_per_s": self.relay_msgs_per_s,
            "relay_vs_send": crate::median(&mut self.ratios.clone()),
            "relay_vs_send_rounds": self.ratios,
            "scaling": self.scaling.iter().map(|(k, n, got, ceil)| json!({
                "relays": k, "connections_each": CONNECTIONS, "messages": n,
                "ack_delay_ms": self.ack_delay.as_millis(), "msgs_per_s": got,
                "ceiling": ceil, "ratio": got / ceil })).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        eprintln!(
            "relay, 1 conn         {:>10.0} msgs/s   {:.2} of send from a file ({:.0}/s; target ≥ {VS_SEND_TARGET}; median of rounds {:.2?})",
            self.relay_msgs_per_s,
            crate::median(&mut self.ratios.clone()),
            self.send_msgs_per_s,
            self.ratios
        );
        for (k, _, got, ceil) in &self.scaling {
            eprintln!(
                "relays {k} × {CONNECTIONS} conns    {got:>10.0} msgs/s   {:.2} of ceiling {ceil:.0} (target ≥ {SCALING_TARGET})",
                got / ceil
            );
        }
    }
}

pub async fn measure(n: usize, ack_delay: Duration) -> Figure {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("in.ndjson");
    write_input(&input, n).expect("input file");
    let lines = std::fs::read_to_string(&input).expect("input");
    let (mut sends, mut relays, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let send = run_send(dir.path(), &input, n).await.msgs_per_s;
        let redis = Redis::start();
        let emu = EmulatorProcess::start(dir.path());
        produce(&redis, lines.lines());
        let started = Instant::now();
        let relay = spawn_relay(&redis, &emu, "solo", 1);
        wait_for_results(&redis, n).await;
        let relayed = crate::rate(n, started.elapsed());
        stop(vec![relay]);
        emu.stop();
        drop(redis);
        sends.push(send);
        relays.push(relayed);
        ratios.push(relayed / send);
    }

    let script = dir.path().join("delay.json");
    let delay = json!({"rules": [{"prefix": "", "reply": {"delay": {"ms": ack_delay.as_millis() as u64}}}]});
    std::fs::write(&script, delay.to_string()).expect("script file");
    let mut scaling = Vec::new();
    for relays in [1usize, 2, 4] {
        let redis = Redis::start();
        let emu = EmulatorProcess::scripted(dir.path(), Some(&script));
        let ceiling = (relays * CONNECTIONS * 100) as f64 / ack_delay.as_secs_f64();
        let count = ((ceiling * 4.0) as usize).clamp(500, n.max(500));
        let children: Vec<Child> = (0..relays)
            .map(|i| spawn_relay(&redis, &emu, &format!("r{i}"), CONNECTIONS))
            .collect();
        // Connected and reading before the clock starts.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let started = Instant::now();
        let texts = stack::payloads();
        let messages: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"to":"tok-{i}","data":{{"text":"{}"}}}}"#,
                    texts[i % texts.len()]
                )
            })
            .collect();
        produce(&redis, messages.iter().map(String::as_str));
        wait_for_results(&redis, count).await;
        scaling.push((
            relays,
            count,
            crate::rate(count, started.elapsed()),
            ceiling,
        ));
        stop(children);
        emu.stop();
    }
    Figure {
        messages: n,
        send_msgs_per_s: crate::median(&mut sends),
        relay_msgs_per_s: crate::median(&mut relays),
        ratios,
        ack_delay,
        scaling,
    }
}

/// Appends one entry per message, pipelined.
fn produce<'a>(redis: &Redis, messages: impl Iterator<Item = &'a str>) {
    let mut conn = redis.conn();
    let messages: Vec<&str> = messages.collect();
    for chunk in messages.chunks(5000) {
        let mut pipe = redis::pipe();
        for m in chunk {
            pipe.cmd("XADD")
                .arg("gcm:outbox")
                .arg("*")
                .arg("message")
                .arg(*m)
                .ignore();
        }
        pipe.query::<()>(&mut conn).expect("XADD");
    }
}

fn spawn_relay(redis: &Redis, emu: &EmulatorProcess, name: &str, connections: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gcm-ccs"))
        .args(["relay", "--redis", &redis.url(), "--consumer", name])
        .args([
            "--sender-id",
            stack::SENDER,
            "--endpoint",
            &emu.addr.to_string(),
        ])
        .arg("--ca-file")
        .arg(&emu.ca)
        .args(["--connections", &connections.to_string()])
        .env("GCM_API_KEY", stack::KEY)
        .env_remove("GCM_CCS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gcm-ccs relay runs")
}

async fn wait_for_results(redis: &Redis, n: usize) {
    let mut conn = redis.conn();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let recorded: usize = conn.xlen("gcm:results").unwrap_or(0);
        if recorded >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relays recorded {recorded} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGTERM, then waits: each relay stops cleanly.
fn stop(children: Vec<Child>) {
    for child in &children {
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: our own live child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for mut child in children {
        let status = child.wait().expect("relay exit");
        assert_eq!(status.code(), Some(0), "gcm-ccs relay stops cleanly");
    }
}
