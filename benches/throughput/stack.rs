//! Our stack end to end: `Client` → TLS → emulator, with realistic payloads.

use std::time::{Duration, Instant};

use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Rule, Script};
use gcm_ccs::{Client, CompletionQueue, Message, PendingAck};
use tokio::sync::mpsc;

pub const SENDER: &str = "123456789012";
pub const KEY: &str = "bench-key";

/// Deterministic payload texts of 200–400 bytes.
pub fn payloads() -> Vec<String> {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..64)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 200 + (seed >> 33) as usize % 201;
            (0..len)
                .map(|i| char::from(b'a' + ((seed >> (i % 50)) as u8 % 26)))
                .collect()
        })
        .collect()
}

/// One pre-serialized stanza per payload of [`payloads`], for the raw-TLS clients.
pub fn raw_stanzas() -> Vec<Vec<u8>> {
    payloads()
        .iter()
        .enumerate()
        .map(|(i, t)| raw_stanza(i, t))
        .collect()
}

/// The stanza our client writes for message `i`, for the raw baseline (the payloads hold
/// no XML specials, so the JSON needs no escaping).
fn raw_stanza(i: usize, text: &str) -> Vec<u8> {
    let msg = message(i, text);
    let json = msg.to_json();
    assert!(
        !json.contains(['<', '>', '&']),
        "the baseline writes the JSON unescaped"
    );
    let id = msg.message_id();
    format!(r#"<message id="{id}"><gcm xmlns="google:mobile:data">{json}</gcm></message>"#)
        .into_bytes()
}

pub fn message(i: usize, text: &str) -> Message {
    Message::to(format!("tok-{i:010}"))
        .data("text", text)
        .time_to_live(3600)
        .build()
        .expect("valid message")
}

/// An emulator without per-id records, acking after `ack_delay` (zero: at once).
pub async fn emulator(ack_delay: Duration) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.track_ids = false;
    if !ack_delay.is_zero() {
        cfg.script = Script {
            rules: vec![Rule {
                prefix: String::new(),
                reply: Reply::Delay {
                    ms: ack_delay.as_millis() as u64,
                },
            }],
            ..Script::default()
        };
    }
    Emulator::start(cfg).await.expect("emulator")
}

pub async fn client(emu: &Emulator, connections: usize) -> Client {
    let mut cfg = emu.client_config(SENDER, KEY);
    cfg.connections = connections;
    let (client, _incoming) = Client::connect(cfg).await.expect("connect");
    while client.stats().connections < connections as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client
}

/// Awaits outcomes in a separate task; returns its handle and the sender to feed it.
fn collector(
    n: usize,
) -> (
    mpsc::Sender<(Instant, PendingAck)>,
    tokio::task::JoinHandle<Vec<Duration>>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, PendingAck)>(16 * 1024);
    let handle = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while let Some((t, p)) = rx.recv().await {
            p.await.expect("acked");
            latencies.push(t.elapsed());
        }
        latencies
    });
    (tx, handle)
}

/// Sends `n` messages as fast as the client takes them; returns elapsed time.
pub async fn throughput(client: &Client, texts: &[String], n: usize) -> Duration {
    let started = Instant::now();
    submit_all(client, (0..n).map(|i| message(i, &texts[i % texts.len()]))).await;
    started.elapsed()
}

/// Submits every message as fast as the client takes them and awaits every outcome (each
/// must be an ack), through a completion queue.
pub async fn submit_all(client: &Client, messages: impl IntoIterator<Item = Message>) {
    let (queue, mut completions) = CompletionQueue::channel();
    let landing = tokio::spawn(async move {
        while let Some(batch) = completions.recv().await {
            for (_, done) in batch {
                done.result.expect("acked");
            }
        }
    });
    for (tag, msg) in (0u64..).zip(messages) {
        client.submit_to(msg, tag, &queue).await.expect("submit");
    }
    drop(queue);
    landing.await.expect("landing");
}

/// Sends `n` messages paced at `rate` per second; returns submit→ack latencies.
pub async fn paced(client: &Client, texts: &[String], n: usize, rate: f64) -> Vec<Duration> {
    let (tx, done) = collector(n);
    let started = Instant::now();
    for i in 0..n {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let t = Instant::now();
        let p = client
            .submit(message(i, &texts[i % texts.len()]))
            .await
            .expect("submit");
        tx.send((t, p)).await.expect("collector");
    }
    drop(tx);
    done.await.expect("collector")
}

/// Drains every connection of `emu` every `period` until aborted.
pub fn drain_every(emu: std::sync::Arc<Emulator>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            emu.drain_all();
        }
    })
}
