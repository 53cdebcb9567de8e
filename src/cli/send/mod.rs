//! `gcm-ccs send`: bulk sending from NDJSON with one outcome line per input line, bounded
//! memory, `--resume`, progress, and a summary.

mod feed;
pub(super) mod input;
mod output;
mod progress;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use gcm_ccs::webpush::WebPushConfig;
use gcm_ccs::{CompletionQueue, Sender};
use tokio::io::{AsyncBufRead, BufReader};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

use self::feed::{Ccs, Feeder, Halt, Senders};
use self::input::Lines;
use self::output::Tally;
use self::progress::{Progress, Reporter};
use self::record::Done;
use super::common::{Failure, Interrupts, is_dash};
use super::exit;
use super::sender_args::{self, Plan, SenderArgs};
use super::summary::{Summary, print_summary};

/// Send every message of an NDJSON file and write one outcome line per input line.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct SendArgs {
    #[command(flatten)]
    sending: SenderArgs,
    /// NDJSON input, one downstream message or Web Push object per line (`-`: stdin).
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
    /// NDJSON output, one outcome per input line, in completion order (`-`: stdout).
    #[arg(long, value_name = "FILE|-")]
    output: PathBuf,
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
notification, time_to_live, ...); message_id is generated when absent. A line with a
browser's PushSubscription goes by Web Push (needs --vapid-key and --subject):
  {\"subscription\":{\"endpoint\":..,\"keys\":{\"p256dh\":..,\"auth\":..}},\"payload\":\"text\",
   \"ttl\":60,\"urgency\":\"high\",\"topic\":\"t\"}
CCS and Web Push lines can share a file. The CCS connection is opened at the first CCS line:
a file of subscriptions alone needs no CCS options. A line whose transport is not configured
stops the run (exit 2, or 3 for a refused key) after the messages in flight: add the options
and continue with --resume. Blank, malformed or invalid lines (not UTF-8, not JSON, an
invalid subscription, a payload over 3993 bytes, ...) get an `invalid` outcome with their
line number and the reason; the others are still sent. An empty input sends nothing and is
not an error.

Output: one JSON object per input line, written as outcomes arrive (not in input order):
  {\"line\":N,\"message_id\":..,\"to\":..,\"outcome\":\"acked\"|\"nacked\"|\"failed\"|\"invalid\",
   \"code\":..,\"description\":..,\"canonical_registration_id\":..,\"attempts\":..,\"latency_ms\":..}

Over HTTP (--via http, or auto's fallback), `attempts` is null: retries happen inside the
HTTP sender. A Web Push record has the endpoint as `to`, `acked` for 201, and otherwise
`failed` with a code such as SUBSCRIPTION_GONE (404/410: delete the subscription).

When the server refuses the key, reading stops, the messages refused are left without an
outcome, and the exit code is 3: fix the key and continue with --resume.

Ctrl-C stops reading, waits for the messages in flight and writes their outcomes (press it
again to quit at once); --resume then sends only what has no outcome yet. Every outcome,
`failed` included, is final for --resume.

Exit codes: 0 every line has an outcome and none failed (`invalid` and `nacked` lines and an
empty input included), 1 some failed, 2 usage or file error, 3 authentication refused, 130
interrupted before the end of the input.

Examples:
  export GCM_API_KEY=emulator-key
  gcm-ccs send --sender-id 123456789012 --endpoint 127.0.0.1:5235 --ca-file emulator-ca.pem \\
      --input messages.ndjson --output results.ndjson --connections 4
  gcm-ccs send --via http --http-url https://127.0.0.1:5236/fcm/send --ca-file emulator-ca.pem \\
      --input messages.ndjson --output results.ndjson
  gcm-ccs send --vapid-key vapid.pem --subject mailto:you@example.com ... \\
      --input subscriptions.ndjson --output results.ndjson
  gcm-ccs send ... --input messages.ndjson --output results.ndjson --resume
  jq -c 'select(.outcome != \"acked\")' results.ndjson";

pub async fn run(args: SendArgs) -> Result<u8, Failure> {
    if is_dash(&args.output) && (args.json || args.resume) {
        return Err(Failure::usage(
            "--json and --resume need --output FILE (stdout carries the outcomes)",
        ));
    }
    let (ccs, webpush) = plan(&args.sending)?;
    let capacity = sender_args::capacity(ccs.as_ref().ok(), webpush.as_ref());
    let webpush = match webpush {
        Some(cfg) => Some(Sender::builder().webpush(cfg).build().await?.0),
        None => None,
    };
    let (input, total) = open_input(&args.input)?;
    let done = if args.resume {
        record::read_done(&args.output)?
    } else {
        Done::default()
    };
    let sink = output::open(&args.output, args.resume)?;

    let progress = Arc::new(Progress::default());
    progress.done.store(done.count, Relaxed);
    let reporter = Reporter::start(progress.clone(), total);
    // Batches of landed records (what one wake-up of the landing task brought).
    let (records, rx) = mpsc::channel(64);
    let writer = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || output::write_records(sink, rx, progress))
    };
    let refused = Arc::new(Notify::new());
    let (flights, in_flight) = mpsc::unbounded_channel();
    let (queue, completions) = CompletionQueue::channel();
    // Ends after the feeder; its end closes the records channel, and so the writer.
    tokio::spawn(feed::land(
        in_flight,
        completions,
        records.clone(),
        progress.clone(),
        refused.clone(),
    ));
    let mut feeder = Feeder {
        senders: Senders {
            webpush,
            ccs: Ccs::Later(ccs),
        },
        done: &done,
        records,
        flights,
        queue,
        slots: Arc::new(Semaphore::new(capacity)),
        progress: progress.clone(),
        lines: 0,
    };
    let started = Instant::now();
    let mut interrupts = Interrupts::new()?;
    let stop = tokio::select! {
        fed = feeder.feed(Lines::new(input)) => match fed {
            Ok(()) => Stop::EndOfInput,
            Err(Halt::Read(e)) => Stop::InputError(e),
            Err(Halt::Transport(f)) => Stop::Transport(f),
        },
        _ = interrupts.recv() => Stop::Interrupted,
        _ = refused.notified() => Stop::KeyRefused,
    };
    // The feeder's ends of the channels are closed, so that the landing task ends once
    // what is in flight has landed, and the writer after it.
    let Feeder {
        senders,
        lines,
        records,
        flights,
        queue,
        ..
    } = feeder;
    drop((records, flights, queue));
    match &stop {
        Stop::Interrupted => reporter.note(&format!(
            "interrupted: waiting for the {} messages in flight (interrupt again to quit now)",
            progress.in_flight()
        )),
        Stop::KeyRefused => reporter.note("the server refused the key: no more lines are sent"),
        Stop::Transport(f) => reporter.note(&format!(
            "{}; waiting for the {} messages in flight",
            f.message,
            progress.in_flight()
        )),
        _ => {}
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
    senders.close().await;
    let tally = written
        .map_err(|e| Failure::failed(format!("output task: {e}")))?
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", args.output.display())))?;

    let summary = summarize(&progress, tally, senders.ccs(), lines, &done, elapsed);
    print_summary(&summary, args.json);
    if lines == 0 && matches!(stop, Stop::EndOfInput) {
        eprintln!("note: the input is empty (0 lines): nothing was sent");
    }
    let refused = progress.refused.load(Relaxed);
    if refused > 0 {
        return Err(Failure {
            code: exit::AUTH,
            message: format!(
                "the server refused the server key: {refused} message(s) were not sent; fix the \
                 key (GCM_API_KEY or --api-key-file) and continue with --resume"
            ),
        });
    }
    match stop {
        Stop::Interrupted => Ok(exit::INTERRUPTED),
        Stop::Transport(f) => Err(f),
        Stop::InputError(e) => Err(Failure::usage(format!(
            "cannot read {}: {e}",
            args.input.display()
        ))),
        Stop::KeyRefused | Stop::EndOfInput if summary.failed + done.failed > 0 => Ok(exit::FAILED),
        Stop::KeyRefused | Stop::EndOfInput => Ok(exit::OK),
    }
}

/// Why reading stopped.
enum Stop {
    EndOfInput,
    InputError(std::io::Error),
    Interrupted,
    /// A message failed because the server refused the key.
    KeyRefused,
    /// A line needs a transport that cannot be had.
    Transport(Failure),
}

/// The CCS plan (or why the options make none: an error only once a CCS line comes, unless
/// nothing at all could be sent) and the Web Push configuration, checked before any file is
/// touched.
fn plan(args: &SenderArgs) -> Result<(Result<Plan, Failure>, Option<WebPushConfig>), Failure> {
    let webpush = args.webpush()?;
    let ccs = args.ccs();
    match (ccs, webpush) {
        (Err(f), None) => Err(f),
        (ccs, webpush) => Ok((ccs, webpush)),
    }
}

/// The input stream, and the file whose lines the progress display counts (a regular file
/// only: counting a pipe would take lines from the feeder).
fn open_input(
    path: &Path,
) -> Result<(Box<dyn AsyncBufRead + Send + Unpin>, Option<PathBuf>), Failure> {
    if is_dash(path) {
        return Ok((Box::new(BufReader::new(tokio::io::stdin())), None));
    }
    let cannot = |e: std::io::Error| {
        Failure::usage(format!("cannot read the input {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let countable = file.metadata().map_err(cannot)?.is_file();
    let file = tokio::fs::File::from_std(file);
    Ok((
        Box::new(BufReader::with_capacity(256 * 1024, file)),
        countable.then(|| path.to_owned()),
    ))
}

fn summarize(
    progress: &Progress,
    tally: Tally,
    ccs: Option<&Sender>,
    lines: u64,
    done: &Done,
    elapsed: std::time::Duration,
) -> Summary {
    let stats = ccs
        .and_then(Sender::stream)
        .map(|c| c.stats())
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::open_input;

    #[tokio::test]
    async fn only_a_regular_file_is_counted_for_the_display() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.ndjson");
        std::fs::write(&file, "{}\n").unwrap();
        let (_, counted) = open_input(&file).ok().unwrap();
        assert_eq!(counted.as_deref(), Some(file.as_path()));
        // A device (like a pipe) is read once, by the feeder alone.
        let (_, counted) = open_input(std::path::Path::new("/dev/null")).ok().unwrap();
        assert_eq!(counted, None);
    }
}
