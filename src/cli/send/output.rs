//! Writing records as their outcomes arrive, and what the summary needs of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::io::Write;

use tokio::sync::mpsc;

use super::progress::Progress;
use crate::cli::common::{Failure, is_dash};
use crate::cli::summary::Latencies;
use gcm_ccs::{Outcome, Record};

/// Where records go: a file or stdout, written from a thread of its own (see
/// [`write_records`]).
pub type Sink = Box<dyn Write + Send>;

/// Opens the output: stdout for `-`; a file is appended to with `resume`, otherwise created,
/// and never silently overwritten when it holds earlier results.
pub fn open(path: &Path, resume: bool) -> Result<Sink, Failure> {
    if is_dash(path) {
        return Ok(Box::new(std::io::stdout()));
    }
    let shown = path.display();
    if !resume && std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return Err(Failure::usage(format!(
            "{shown} already holds results: pass --resume to continue that run, or remove it"
        )));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(path)
        .map_err(|e| Failure::usage(format!("cannot write the output {shown}: {e}")))?;
    Ok(Box::new(file))
}

/// What the summary needs beyond the live counters.
#[derive(Debug, Default)]
pub struct Tally {
    pub nacked_by_code: BTreeMap<String, u64>,
    pub canonical_ids: u64,
    pub latencies: Latencies,
}

/// Largest batch of records written at once.
const BATCH: usize = 64 * 1024;

/// Writes each record on its own line as it arrives, flushing whenever no more are waiting, so
/// the output is current even if the process is killed. Ends when every sender is gone.
/// Blocking: run it on a thread of its own (`spawn_blocking`), where a write is one system
/// call rather than a hop to the blocking pool and back for each batch.
pub fn write_records(
    mut sink: Sink,
    mut records: mpsc::Receiver<Vec<Record>>,
    progress: Arc<Progress>,
) -> std::io::Result<Tally> {
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = records.blocking_recv() {
        let mut next = Some(first);
        while let Some(landed) = next {
            for record in landed {
                serde_json::to_writer(&mut batch, &record)?;
                batch.push(b'\n');
                count(&mut tally, &progress, record);
            }
            next = if batch.len() < BATCH {
                records.try_recv().ok()
            } else {
                None
            };
        }
        sink.write_all(&batch)?;
        sink.flush()?;
        batch.clear();
    }
    sink.flush()?;
    Ok(tally)
}

fn count(tally: &mut Tally, progress: &Progress, record: Record) {
    // Only records of messages handed to the sender carry a latency.
    progress.record(record.outcome, record.latency_ms.is_some());
    if let Some(ms) = record.latency_ms {
        tally
            .latencies
            .record(Duration::from_secs_f64(ms.max(0.0) / 1e3));
    }
    tally.canonical_ids += u64::from(record.canonical_registration_id.is_some());
    if let (Outcome::Nacked, Some(code)) = (record.outcome, record.code) {
        *tally.nacked_by_code.entry(code).or_default() += 1;
    }
}
