//! `gcm-ccs send`: bulk sending from NDJSON with one outcome line per input line, bounded
//! memory, `--resume`, progress, and a summary.

mod input;
mod output;
mod progress;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use gcm_ccs::Client;
use tokio::io::{AsyncBufRead, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use self::input::Lines;
use self::output::Tally;
use self::progress::{Progress, Reporter};
use self::record::{Done, Record};
use super::common::{ConnectArgs, Failure, Interrupts, is_dash};
use super::exit;
use super::summary::{Summary, print_summary};

/// Send every message of an NDJSON file and write one outcome line per input line.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct SendArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// NDJSON input, one downstream message object per line (`-`: stdin).
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
    /// NDJSON output, one outcome per input line, in completion order (`-`: stdout).
    #[arg(long, value_name = "FILE|-")]
    output: PathBuf,
    /// Connections in the pool (1..=1000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    connections: u16,
    /// Unacked messages per connection (1..=100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    window: u8,
    /// Continue an interrupted run: skip the lines that already have an outcome in --output
    /// and append the rest.
    #[arg(long)]
    resume: bool,
    /// Print the summary as one JSON object on stdout (needs --output FILE).
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "\
Input: one JSON object per line, the downstream fields of CCS (to or condition, data,
notification, time_to_live, ...); message_id is generated when absent. Blank, malformed or
invalid lines get an `invalid` outcome; the others are still sent.

Output: one JSON object per input line, written as outcomes arrive (not in input order):
  {\"line\":N,\"message_id\":..,\"to\":..,\"outcome\":\"acked\"|\"nacked\"|\"failed\"|\"invalid\",
   \"code\":..,\"description\":..,\"canonical_registration_id\":..,\"attempts\":..,\"latency_ms\":..}

Ctrl-C stops reading, waits for the messages in flight and writes their outcomes (press it
again to quit at once); --resume then sends only what has no outcome yet. Every outcome,
`failed` included, is final for --resume.

Exit codes: 0 every line has an outcome and none failed, 1 some failed, 2 usage or file
error, 3 authentication refused, 130 interrupted before the end of the input.

Examples:
  export GCM_API_KEY=emulator-key
  gcm-ccs send --sender-id 123456789012 --endpoint 127.0.0.1:5235 --ca-file emulator-ca.pem \\
      --input messages.ndjson --output results.ndjson --connections 4
  gcm-ccs send ... --input messages.ndjson --output results.ndjson --resume
  jq -c 'select(.outcome != \"acked\")' results.ndjson";

pub async fn run(args: SendArgs) -> Result<u8, Failure> {
    if is_dash(&args.output) && (args.json || args.resume) {
        return Err(Failure::usage(
            "--json and --resume need --output FILE (stdout carries the outcomes)",
        ));
    }
    let mut cfg = args.connect.config()?;
    cfg.connections = usize::from(args.connections);
    cfg.window = usize::from(args.window);
    let (input, total) = open_input(&args.input)?;
    let done = if args.resume {
        record::read_done(&args.output)?
    } else {
        Done::default()
    };
    let sink = output::open(&args.output, args.resume).await?;
    let capacity = cfg.queue_capacity + cfg.window * cfg.connections;
    let client = Client::connect(cfg).await?;
    tracing::info!(jid = client.jid(), "connected");

    let progress = Arc::new(Progress::default());
    progress.done.store(done.count, Relaxed);
    let reporter = Reporter::start(progress.clone(), total);
    let (records, rx) = mpsc::channel(1024);
    let writer = tokio::spawn(output::write_records(sink, rx, progress.clone()));
    let mut feeder = Feeder {
        client: client.clone(),
        done: &done,
        records,
        slots: Arc::new(Semaphore::new(capacity)),
        progress: progress.clone(),
        lines: 0,
    };
    let started = Instant::now();
    let mut interrupts = Interrupts::new()?;
    let fed = tokio::select! {
        fed = feeder.feed(Lines::new(input)) => Some(fed),
        _ = interrupts.recv() => None,
    };
    let lines = feeder.lines;
    drop(feeder);
    if fed.is_none() {
        eprintln!(
            "interrupted: waiting for the {} messages in flight (interrupt again to quit now)",
            progress.in_flight()
        );
    }
    let written = tokio::select! {
        written = writer => written,
        _ = interrupts.recv() => {
            reporter.finish();
            eprintln!("quitting: lines without an outcome will be sent by --resume");
            return Ok(exit::INTERRUPTED);
        }
    };
    let elapsed = started.elapsed();
    reporter.finish();
    client.close().await;
    let tally = written
        .map_err(|e| Failure::failed(format!("output task: {e}")))?
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", args.output.display())))?;

    let summary = summarize(&progress, tally, &client, lines, &done, elapsed);
    print_summary(&summary, args.json);
    match fed {
        None => Ok(exit::INTERRUPTED),
        Some(Err(e)) => Err(Failure::usage(format!(
            "cannot read {}: {e}",
            args.input.display()
        ))),
        Some(Ok(())) if summary.failed + done.failed > 0 => Ok(exit::FAILED),
        Some(Ok(())) => Ok(exit::OK),
    }
}

/// The input stream, and its line count when it is a file.
fn open_input(path: &Path) -> Result<(Box<dyn AsyncBufRead + Send + Unpin>, Option<u64>), Failure> {
    if is_dash(path) {
        return Ok((Box::new(BufReader::new(tokio::io::stdin())), None));
    }
    let cannot = |e: std::io::Error| {
        Failure::usage(format!("cannot read the input {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let total = input::count_lines(path).map_err(cannot)?;
    let file = tokio::fs::File::from_std(file);
    Ok((
        Box::new(BufReader::with_capacity(256 * 1024, file)),
        Some(total),
    ))
}

/// Turns input lines into submitted messages or `invalid` records.
struct Feeder<'a> {
    client: Client,
    done: &'a Done,
    records: mpsc::Sender<Record>,
    /// Outcomes not yet handed to the writer: bounds memory whatever the input size.
    slots: Arc<Semaphore>,
    progress: Arc<Progress>,
    /// Lines read so far.
    lines: u64,
}

impl Feeder<'_> {
    /// Reads to the end of the input. Cancelling it is safe: a line is either handed on whole
    /// or left without an outcome, for `--resume` to pick up.
    async fn feed<R: AsyncBufRead + Unpin>(&mut self, mut lines: Lines<R>) -> std::io::Result<()> {
        while let Some(line) = lines.next().await? {
            self.lines = line.number;
            if self.done.contains(line.number) {
                continue;
            }
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let number = line.number;
            let message = match line.parse() {
                Ok(message) => message,
                Err(rejected) => {
                    if self
                        .records
                        .send(Record::invalid(number, rejected))
                        .await
                        .is_err()
                    {
                        break; // the writer failed; its error is reported
                    }
                    continue;
                }
            };
            let (id, to) = (
                message.message_id().to_owned(),
                message.target_str().to_owned(),
            );
            let sent = Instant::now();
            let pending = self.client.submit(message).await;
            self.progress.submitted.fetch_add(1, Relaxed);
            let records = self.records.clone();
            tokio::spawn(async move {
                let (result, attempts) = match pending {
                    Ok(pending) => {
                        let c = pending.completion().await;
                        (c.result, c.attempts)
                    }
                    Err(e) => (Err(e), 0),
                };
                let record = Record::sent(number, id, to, result, attempts, sent.elapsed());
                let _ = records.send(record).await;
                drop(slot);
            });
        }
        Ok(())
    }
}

fn summarize(
    progress: &Progress,
    tally: Tally,
    client: &Client,
    lines: u64,
    done: &Done,
    elapsed: std::time::Duration,
) -> Summary {
    let stats = client.stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    Summary {
        lines: Some(lines),
        resumed: Some(done.count),
        invalid: Some(count(&progress.invalid)),
        submitted: count(&progress.submitted),
        acked: count(&progress.acked),
        nacked: count(&progress.nacked),
        nacked_by_code: tally.nacked_by_code,
        failed: count(&progress.failed),
        retried: stats.retried,
        reconnects: stats.reconnects,
        canonical_ids: tally.canonical_ids,
        receipts: None,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_s: count(&progress.submitted) as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms_p50: tally.latencies.quantile_ms(0.5),
        latency_ms_p99: tally.latencies.quantile_ms(0.99),
    }
}
