//! `gcm-ccs demo`: the whole path on the embedded emulator — TLS, SASL, a pool of
//! connections, scripted nacks, a canonical id, a retryable burst, receipts and drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Rule, Script};
use gcm_ccs::{Client, IncomingMessage, Message};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::common::Failure;
use super::exit;
use super::summary::{Latencies, Summary, print_summary};

const SENDER: &str = "123456789012";
const KEY: &str = "demo-server-key";

/// Run the full client against the embedded emulator and print a summary.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gcm-ccs demo\n  gcm-ccs demo --messages 50000 --connections 4\n  gcm-ccs demo --json | jq .acked"
)]
pub struct DemoArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Connections in the pool (1..=1000).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    connections: u16,
    /// Print the summary as one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    json: bool,
}

fn script(messages: u64) -> Script {
    let rule = |prefix: &str, reply| Rule {
        prefix: prefix.into(),
        reply,
    };
    let mut script = Script {
        rules: vec![
            rule(
                "gone-",
                Reply::Nack {
                    code: "DEVICE_UNREGISTERED".into(),
                    description: None,
                },
            ),
            rule(
                "bad-",
                Reply::Nack {
                    code: "BAD_REGISTRATION".into(),
                    description: None,
                },
            ),
            rule(
                "busy-",
                Reply::NackFirst {
                    code: "SERVICE_UNAVAILABLE".into(),
                    times: 1,
                },
            ),
            rule(
                "canon-",
                Reply::Canonical {
                    registration_id: "canonical-token".into(),
                },
            ),
        ],
        ..Script::default()
    };
    // Each connection drains after carrying about a third of the run.
    script.faults.drain_after = Some((messages / 3).max(50));
    script.faults.drain_close_ms = 300;
    script
}

/// The demo's message mix: mostly plain tokens, with a few of each scripted kind.
fn message(i: u64) -> Result<Message, gcm_ccs::ValidationError> {
    let to = match i % 100 {
        7 => format!("gone-{i}"),
        13 if i % 200 == 13 => format!("bad-{i}"),
        21 => format!("canon-{i}"),
        33 => format!("busy-{i}"),
        _ => format!("tok-{i}"),
    };
    Message::to(to)
        .data("seq", i.to_string())
        .data("text", "Tom & Jerry <3 — demo payload")
        .time_to_live(3600)
        .delivery_receipt_requested(i % 100 == 42)
        .build()
}

pub async fn run(args: DemoArgs) -> Result<u8, Failure> {
    let summary = demo(&args)
        .await
        .map_err(|e| Failure::failed(e.to_string()))?;
    print_summary(&summary, args.json);
    Ok(if summary.failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

async fn demo(args: &DemoArgs) -> Result<Summary, Box<dyn std::error::Error>> {
    let mut emu_cfg = EmulatorConfig::new(SENDER, KEY);
    emu_cfg.script = script(args.messages);
    let emulator = Emulator::start(emu_cfg).await?;
    eprintln!("emulator listening on {} (TLS)", emulator.addr());

    let mut cfg = emulator.client_config(SENDER, KEY);
    cfg.connections = usize::from(args.connections);
    let (client, mut incoming) = Client::connect(cfg).await?;
    eprintln!("connected as {}", client.jid());

    let receipts = Arc::new(AtomicU64::new(0));
    let seen = receipts.clone();
    tokio::spawn(async move {
        while let Some(delivery) = incoming.recv().await {
            if let IncomingMessage::Receipt(_) = delivery.message() {
                seen.fetch_add(1, Relaxed);
            }
            delivery.ack();
        }
    });

    let bar = ProgressBar::new(args.messages);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut outcomes = JoinSet::new();
    for i in 0..args.messages {
        let pending = client.submit(message(i)?).await?;
        let sent = Instant::now();
        let bar = bar.clone();
        outcomes.spawn(async move {
            let outcome = pending.await;
            bar.inc(1);
            (sent.elapsed(), outcome)
        });
    }
    let mut latencies = Latencies::default();
    let mut canonical_ids = 0;
    while let Some(joined) = outcomes.join_next().await {
        let (latency, outcome) = joined?;
        latencies.record(latency);
        match outcome {
            Ok(ack) if ack.registration_id.is_some() => canonical_ids += 1,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "message did not succeed"),
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    // Give the last receipts a moment to arrive before closing.
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.close().await;

    let stats = client.stats();
    Ok(Summary {
        submitted: stats.submitted,
        acked: stats.acked,
        nacked: stats.nacked_total(),
        nacked_by_code: stats.nacked.clone(),
        failed: stats.failed,
        retried: stats.retried,
        reconnects: stats.reconnects,
        canonical_ids,
        receipts: Some(receipts.load(Relaxed)),
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_s: stats.submitted as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms_p50: latencies.quantile_ms(0.5),
        latency_ms_p99: latencies.quantile_ms(0.99),
        ..Summary::default()
    })
}
