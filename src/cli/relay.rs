//! `gcm-ccs relay`: the Redis Streams relay service (see `gcm_ccs::relay`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gcm_ccs::Sender;
use gcm_ccs::relay::{Relay, RelayConfig};
use tokio::sync::Notify;

use super::common::{Failure, Interrupts};
use super::exit;
use super::redis_args::RedisArgs;
use super::sender_args::{self, SenderArgs};

/// Send the messages producers put on a Redis stream, as one consumer of its group.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct RelayArgs {
    #[command(flatten)]
    redis: RedisArgs,
    /// The consumer group, created at ID 0 (MKSTREAM) when missing.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "gcm-ccs",
        env = "GCM_CCS_GROUP"
    )]
    group: String,
    /// This process's consumer name, unique per process [default: host name + pid].
    #[arg(long, value_name = "NAME", env = "GCM_CCS_CONSUMER")]
    consumer: Option<String>,
    /// One record per entry.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "gcm:results",
        env = "GCM_CCS_RESULTS"
    )]
    results: String,
    /// Approximate MAXLEN of the results stream.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        env = "GCM_CCS_RESULTS_MAXLEN"
    )]
    results_maxlen: usize,
    /// Poison and invalid entries, with the reason.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "gcm:dead",
        env = "GCM_CCS_DEAD"
    )]
    dead: String,
    /// Upstream messages and delivery receipts from CCS.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "gcm:inbox",
        env = "GCM_CCS_INBOX"
    )]
    inbox: String,
    /// Entries idle this long on a consumer that stopped are taken over.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, env = "GCM_CCS_CLAIM_AFTER",
          value_parser = clap::value_parser!(u64).range(1..))]
    claim_after: u64,
    /// Entries delivered more often than this are dead-lettered.
    #[arg(long, value_name = "N", default_value_t = 5, env = "GCM_CCS_MAX_DELIVERIES",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_deliveries: u32,
    /// On SIGTERM/SIGINT, how long messages in flight may take to finish.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        env = "GCM_CCS_SHUTDOWN_TIMEOUT"
    )]
    shutdown_timeout: u64,
    /// How long Redis is retried at start before giving up (exit 2).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        env = "GCM_CCS_REDIS_START_BUDGET"
    )]
    redis_start_budget: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics and health at /healthz.
    #[arg(long, value_name = "ADDR", env = "GCM_CCS_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    sending: SenderArgs,
}

const AFTER_HELP: &str = "\
Reads entries (field `message`: one line of the `send` input schema; optional field
`message_id`, else the id is derived from the entry id) with XREADGROUP, sends each, and on
its final outcome writes the `send` output record plus `entry_id` and `consumer` (field
`result`) to the results stream and XACKs the entry in one MULTI/EXEC. Retries happen in
this process while the entry stays pending. Entries another consumer left idle longer than
--claim-after are taken over (XAUTOCLAIM) and sent under the same message id. Invalid
entries and entries delivered more than --max-deliveries times get an `invalid`/`failed`
record, a copy in the dead-letter stream, and are acked. Upstream messages and receipts
are appended to the inbox before they are acked to CCS (dedupe on from + message_id).

SIGTERM/SIGINT: stop reading, let messages in flight finish within --shutdown-timeout,
record and ack those, leave the rest pending for another consumer, exit 0. A second
signal quits at once (130).

Every option can come from the environment variable shown; REDIS_PASSWORD gives the
password without putting it in a URL. Exit codes: 0 clean stop, 2 configuration or Redis
unavailable at start, 3 the server key (or Redis password) was refused.

Example:
  export GCM_API_KEY=... GCM_CCS_REDIS_URL=redis://127.0.0.1:6379
  gcm-ccs relay --sender-id 123456789012 --connections 4 --metrics-listen 127.0.0.1:9100";

pub async fn run(args: RelayArgs) -> Result<u8, Failure> {
    let consumer = args.consumer.clone().unwrap_or_else(default_consumer);
    let mut cfg = RelayConfig::new(args.redis.target()?, consumer);
    cfg.stream = args.redis.stream.clone();
    cfg.group = args.group;
    cfg.results = args.results;
    cfg.results_maxlen = args.results_maxlen;
    cfg.dead = args.dead;
    cfg.inbox = args.inbox;
    cfg.claim_after = Duration::from_secs(args.claim_after);
    cfg.max_deliveries = args.max_deliveries;
    cfg.shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    cfg.start_budget = Duration::from_secs(args.redis_start_budget);
    let webpush = args.sending.webpush()?;
    // A relay for Web Push alone needs no CCS options.
    let ccs = match args.sending.ccs() {
        Ok(plan) => Some(plan),
        // Options that name a CCS sender and do not work are a mistake, not Web Push only.
        Err(f) if webpush.is_none() || args.sending.xmpp.names_a_sender() => return Err(f),
        Err(f) => {
            eprintln!(
                "note: Web Push only ({}): CCS entries are dead-lettered",
                f.message
            );
            None
        }
    };
    cfg.capacity = sender_args::capacity(ccs.as_ref(), webpush.as_ref());
    cfg.validate()?;
    let mut interrupts = Interrupts::new()?;
    let mut builder = Sender::builder();
    if let Some(plan) = ccs {
        builder = plan.add_to(builder);
    }
    if let Some(webpush) = webpush {
        builder = builder.webpush(webpush);
    }
    let (sender, incoming) = builder.build().await?;
    let relay = Relay::start(cfg, sender, incoming, args.metrics_listen).await?;
    if let Some(addr) = relay.metrics_addr() {
        eprintln!("metrics on http://{addr}/metrics");
    }
    eprintln!("relay running (SIGTERM or Ctrl-C stops it)");
    let stop = Arc::new(Notify::new());
    let first = stop.clone();
    tokio::spawn(async move {
        interrupts.recv().await;
        eprintln!("stopping: waiting for the messages in flight (signal again to quit now)");
        first.notify_one();
        interrupts.recv().await;
        eprintln!("quitting: entries without an outcome stay pending");
        std::process::exit(exit::INTERRUPTED.into());
    });
    // On a worker thread of the runtime, next to the connections' tasks.
    let report = tokio::spawn(relay.run(async move { stop.notified().await }))
        .await
        .map_err(|e| Failure::failed(format!("the relay task failed: {e}")))??;
    eprintln!(
        "stopped: {} entries read, {} recorded, {} found no longer pending (taken over, or recorded by an attempt whose reply was lost), {} left pending",
        report.read, report.recorded, report.not_pending, report.left_pending
    );
    Ok(exit::OK)
}

/// Host name and process id: unique per process on one machine, and across machines.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "relay".into());
    format!("{host}-{}", std::process::id())
}
