//! `gcm-ccs enqueue`: NDJSON lines onto the relay's outbox stream, pipelined, each checked
//! first; bad lines are reported by number and not enqueued.

use std::path::PathBuf;

use gcm_ccs::Outgoing;
use gcm_ccs::relay::Producer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufRead, BufReader};

use super::common::{Failure, is_dash};
use super::exit;
use super::redis_args::RedisArgs;
use super::send::input::{Lines, count_lines};

/// Entries sent to Redis in one round trip.
const PIPELINE: usize = 1000;

/// Put the messages of an NDJSON file on the relay's outbox stream.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct EnqueueArgs {
    #[command(flatten)]
    redis: RedisArgs,
    /// NDJSON input, one message per line in the `send` input schema (`-`: stdin).
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
}

const AFTER_HELP: &str = "\
Each line becomes one entry with the line in field `message`. Lines that are not valid
messages (bad JSON, no target, an invalid subscription, ...) are reported on stderr with
their line number and reason and are not enqueued; the others are.

Exit codes: 0 every line enqueued, 1 some lines were not valid (the rest are enqueued),
2 usage, file or Redis error.

Example:
  gcm-ccs enqueue --redis redis://127.0.0.1:6379 --input messages.ndjson";

pub async fn run(args: EnqueueArgs) -> Result<u8, Failure> {
    let target = args.redis.target()?;
    let (input, total): (Box<dyn AsyncBufRead + Send + Unpin>, _) = if is_dash(&args.input) {
        (Box::new(BufReader::new(tokio::io::stdin())), None)
    } else {
        let cannot = |e: std::io::Error| {
            Failure::usage(format!("cannot read {}: {e}", args.input.display()))
        };
        let total = count_lines(&args.input).map_err(cannot)?;
        let file = tokio::fs::File::open(&args.input).await.map_err(cannot)?;
        (
            Box::new(BufReader::with_capacity(256 * 1024, file)),
            Some(total),
        )
    };
    let mut producer = Producer::connect(&target, &args.redis.stream).await?;
    let bar = progress(total);
    let mut lines = Lines::new(input);
    let (mut batch, mut enqueued, mut bad) = (Vec::with_capacity(PIPELINE), 0u64, 0u64);
    loop {
        let line = lines
            .next()
            .await
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", args.input.display())))?;
        let Some(line) = line else { break };
        bar.inc(1);
        let checked = line
            .text()
            .and_then(|text| match Outgoing::from_json(text) {
                Ok(_) => Ok(text.to_owned()),
                Err(e) => Err(Box::new(gcm_ccs::Record::rejected(text, &e))),
            });
        match checked {
            Ok(text) => batch.push(text),
            Err(record) => {
                bad += 1;
                bar.suspend(|| {
                    eprintln!(
                        "line {}: {}: {} (not enqueued)",
                        line.number,
                        record.code.as_deref().unwrap_or("INVALID"),
                        record.description.as_deref().unwrap_or("")
                    )
                });
            }
        }
        if batch.len() == PIPELINE {
            enqueued += producer.enqueue(&batch).await?.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        enqueued += producer.enqueue(&batch).await?.len() as u64;
    }
    bar.finish_and_clear();
    eprintln!(
        "enqueued {enqueued} message(s) on {}; {bad} bad line(s) not enqueued",
        args.redis.stream
    );
    Ok(if bad > 0 { exit::FAILED } else { exit::OK })
}

/// A bar on a terminal, nothing otherwise.
fn progress(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} lines {per_sec}") {
        bar.set_style(style);
    }
    bar
}
