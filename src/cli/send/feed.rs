//! From input lines to outcomes: the senders of a run, and the loop that hands each line to
//! one of them or to the writer with bounded memory.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use gcm_ccs::{
    Completion, CompletionQueue, Completions, Finished, InFlight, Outgoing, Record, Sender,
};
use rustc_hash::FxHashMap;
use tokio::io::AsyncBufRead;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use super::input::Lines;
use super::progress::Progress;
use super::record::Done;
use crate::cli::common::Failure;
use crate::cli::sender_args::Plan;

/// The senders of one run: Web Push from the start, CCS connected when its first line comes
/// (a file of subscriptions alone needs no CCS options and opens no CCS connection).
pub struct Senders {
    pub webpush: Option<Sender>,
    pub ccs: Ccs,
}

/// The CCS sender, or what it will be made of.
pub enum Ccs {
    /// Not needed yet: the plan, or why the options make none.
    Later(Result<Plan, Failure>),
    Ready(Sender),
    /// Its plan was taken and connecting failed; the run stops.
    Gone,
}

impl Senders {
    /// The sender for `outgoing`, connecting CCS at its first message. An error stops the
    /// run: the line is left without an outcome, for `--resume` once the options are fixed.
    async fn sender_for(&mut self, outgoing: &Outgoing, line: u64) -> Result<&Sender, Failure> {
        let context = |f: Failure, what: &str| Failure {
            code: f.code,
            message: format!(
                "line {line} is {what}, and {}; no more lines are sent: fix that and continue \
                 with --resume",
                f.message
            ),
        };
        if !matches!(outgoing, Outgoing::Message(_)) {
            return self.webpush.as_ref().ok_or_else(|| {
                context(
                    Failure::usage("--vapid-key and --subject are not given"),
                    "a Web Push (it has `subscription`)",
                )
            });
        }
        self.ccs = match std::mem::replace(&mut self.ccs, Ccs::Gone) {
            Ccs::Later(plan) => {
                let plan = plan.map_err(|f| context(f, "a CCS message"))?;
                // Upstream messages and receipts are not this command's business: dropping
                // `Incoming` leaves them unacked with CCS, for `stream` or the relay.
                let (sender, _) = plan
                    .connect()
                    .await
                    .map_err(|f| context(f, "a CCS message"))?;
                Ccs::Ready(sender)
            }
            other => other,
        };
        match &self.ccs {
            Ccs::Ready(sender) => Ok(sender),
            _ => Err(Failure::failed("the CCS sender could not be started")),
        }
    }

    /// The CCS sender, if it was connected.
    pub fn ccs(&self) -> Option<&Sender> {
        match &self.ccs {
            Ccs::Ready(sender) => Some(sender),
            _ => None,
        }
    }

    /// Closes the CCS stream gracefully (Web Push has nothing to close).
    pub async fn close(&self) {
        if let Some(sender) = self.ccs() {
            sender.close().await;
        }
    }
}

/// Why feeding stopped before the end of the input.
pub enum Halt {
    Read(std::io::Error),
    /// A line needs a transport that cannot be had (options missing, connection refused).
    Transport(Failure),
}

/// Turns input lines into sent messages (for [`land`]) or `invalid` records.
pub struct Feeder<'a> {
    pub senders: Senders,
    pub done: &'a Done,
    pub records: mpsc::Sender<Vec<Record>>,
    /// Messages handed over, to [`land`].
    pub flights: mpsc::UnboundedSender<Flight>,
    /// Where the stream reports the outcomes of the messages it alone carries, under their
    /// line numbers, to [`land`].
    pub queue: CompletionQueue,
    /// Outcomes not yet handed to the writer: bounds memory whatever the input size (and
    /// so what `flights` holds).
    pub slots: Arc<Semaphore>,
    pub progress: Arc<Progress>,
    /// Lines read so far.
    pub lines: u64,
}

impl Feeder<'_> {
    /// Reads to the end of the input. Cancelling it is safe: a line is either handed on whole
    /// or left without an outcome, for `--resume` to pick up.
    pub async fn feed<R: AsyncBufRead + Unpin>(&mut self, mut lines: Lines<R>) -> Result<(), Halt> {
        while let Some(line) = lines.next().await.map_err(Halt::Read)? {
            self.lines = line.number;
            if self.done.contains(line.number) {
                continue;
            }
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                break;
            };
            if self.records.is_closed() {
                break; // the writer failed; its error is reported
            }
            let number = line.number;
            let outgoing = match line.parse() {
                Ok(outgoing) => outgoing,
                Err(rejected) => {
                    let _ = self.records.send(vec![rejected.at_line(number)]).await;
                    continue;
                }
            };
            let sender = self
                .senders
                .sender_for(&outgoing, number)
                .await
                .map_err(Halt::Transport)?;
            let outcome = Outcome {
                number,
                id: outgoing.id().to_owned(),
                to: outgoing.target().to_owned(),
                started: Instant::now(),
            };
            // Handed over here, so that what waits for the outcome holds only what the
            // sender left to wait on (for the stream, the pending ack). Cancelled here
            // (interrupt, refused key), the message was not queued and stays without an
            // outcome for --resume.
            let sending = sender.start_queued(outgoing, number, &self.queue).await;
            self.progress.submitted.fetch_add(1, Relaxed);
            let _ = self.flights.send(Flight {
                outcome,
                sending,
                slot,
            });
        }
        Ok(())
    }
}

/// Most records handed to the writer at once.
const LANDED_BATCH: usize = 256;

/// One message handed to a sender, with the slot it holds until its record is made.
pub struct Flight {
    outcome: Outcome,
    /// `None`: the outcome comes from the completion queue.
    sending: Option<InFlight>,
    slot: OwnedSemaphorePermit,
}

/// Waits for the outcome of every message handed over, all in this one task (not a task
/// per message): from the completion queue for what the stream alone carries, from each
/// [`InFlight`] for the rest. Writes their records. Ends once the feeder is gone (with its
/// [`CompletionQueue`]) and every message has its outcome. `refused` is notified when the
/// server refused the key.
pub async fn land(
    mut flights: mpsc::UnboundedReceiver<Flight>,
    mut completions: Completions,
    records: mpsc::Sender<Vec<Record>>,
    progress: Arc<Progress>,
    refused: Arc<Notify>,
) {
    let mut flying = FuturesUnordered::new();
    // Queued messages by line number, and outcomes that came before their flight did.
    let mut queued: FxHashMap<u64, (Outcome, OwnedSemaphorePermit)> = FxHashMap::default();
    let mut early: FxHashMap<u64, Completion> = FxHashMap::default();
    let mut landed = Landed::default();
    let mut feeding = true;
    loop {
        tokio::select! {
            flight = flights.recv(), if feeding => match flight {
                Some(Flight { outcome, sending: Some(sending), slot }) => flying.push(async move {
                    (outcome, sending.finish().await, slot)
                }),
                Some(Flight { outcome, sending: None, slot }) => {
                    match early.remove(&outcome.number) {
                        Some(done) => landed.add(outcome, done.into(), slot),
                        None => {
                            queued.insert(outcome.number, (outcome, slot));
                        }
                    }
                }
                None => feeding = false,
            },
            Some(batch) = completions.recv() => {
                for (line, done) in batch {
                    match queued.remove(&line) {
                        Some((outcome, slot)) => landed.add(outcome, done.into(), slot),
                        None => {
                            early.insert(line, done);
                        }
                    }
                }
            }
            Some((outcome, finished, slot)) = flying.next() => {
                // With the others that landed meanwhile: one hand-off to the writer for all.
                landed.add(outcome, finished, slot);
                while landed.slots.len() < LANDED_BATCH
                    && let Some(Some((outcome, finished, slot))) = flying.next().now_or_never()
                {
                    landed.add(outcome, finished, slot);
                }
            }
            else => return,
        }
        landed.hand_over(&records, &progress, &refused).await;
    }
}

/// Outcomes that landed in one wake-up, for one hand-off to the writer.
#[derive(Default)]
struct Landed {
    outcomes: Vec<(Outcome, Finished)>,
    slots: Vec<OwnedSemaphorePermit>,
}

impl Landed {
    fn add(&mut self, outcome: Outcome, finished: Finished, slot: OwnedSemaphorePermit) {
        self.outcomes.push((outcome, finished));
        self.slots.push(slot);
    }

    /// Sends the records to the writer. The slots are given back once the writer has them,
    /// so the slots bound what is between reading and writing.
    async fn hand_over(
        &mut self,
        records: &mpsc::Sender<Vec<Record>>,
        progress: &Progress,
        refused: &Notify,
    ) {
        let batch: Vec<Record> = self
            .outcomes
            .drain(..)
            .filter_map(|(outcome, finished)| outcome.record(finished, progress, refused))
            .collect();
        if !batch.is_empty() {
            let _ = records.send(batch).await;
        }
        self.slots.clear();
    }
}

/// What the record of one submitted message is made of.
struct Outcome {
    number: u64,
    id: String,
    to: String,
    started: Instant,
}

impl Outcome {
    /// Its record; none when the key was refused: that is not an outcome of the message,
    /// which `--resume` sends again.
    fn record(self, finished: Finished, progress: &Progress, refused: &Notify) -> Option<Record> {
        let Finished { result, attempts } = finished;
        if let Err(e) = &result
            && e.is_auth_refused()
        {
            progress.refused();
            refused.notify_one();
            return None;
        }
        let latency = self.started.elapsed();
        Some(Record::sent(self.id, self.to, result, attempts, latency).at_line(self.number))
    }
}
