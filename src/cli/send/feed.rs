//! From input lines to outcomes: the route (`--via`), and the loop that hands each line to
//! the sender or to the writer with bounded memory.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use gcm_ccs::{Ack, Config, HttpConfig, Incoming, Record, Route, SendError, Sender, Sent};
use tokio::io::AsyncBufRead;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

use super::input::Lines;
use super::progress::Progress;
use super::record::Done;
use crate::cli::common::Failure;

/// Messages waiting for an HTTP request slot, beyond those in flight.
const HTTP_QUEUE: usize = 1024;

/// How messages will go out (boxed: the configurations are large).
pub enum Plan {
    Xmpp(Box<Config>),
    Http(Box<HttpConfig>),
    /// The stream, with HTTP for messages it cannot send.
    Auto(Box<Config>, Box<HttpConfig>),
}

impl Plan {
    /// Messages that may be between reading and writing their outcome at once: what the
    /// sender queues plus what it has in flight.
    pub fn capacity(&self) -> usize {
        match self {
            Plan::Xmpp(x) | Plan::Auto(x, _) => x.queue_capacity + x.window * x.connections,
            Plan::Http(h) => HTTP_QUEUE + h.max_concurrent_requests,
        }
    }

    /// Builds the sender; over XMPP only, connects first so a refused key ends the run here.
    pub async fn connect(self) -> Result<(Sender, Incoming), Failure> {
        let builder = Sender::builder();
        let builder = match self {
            Plan::Xmpp(x) => builder.xmpp(*x),
            Plan::Http(h) => builder.http(*h),
            Plan::Auto(x, h) => builder.xmpp(*x).http(*h),
        };
        Ok(builder.build().await?)
    }
}

/// Turns input lines into sent messages or `invalid` records.
pub struct Feeder<'a> {
    pub sender: Sender,
    pub done: &'a Done,
    pub records: mpsc::Sender<Record>,
    /// Outcomes not yet handed to the writer: bounds memory whatever the input size.
    pub slots: Arc<Semaphore>,
    pub progress: Arc<Progress>,
    /// Notified when a message fails because the server refused the key.
    pub refused: Arc<Notify>,
    /// Lines read so far.
    pub lines: u64,
}

impl Feeder<'_> {
    /// Reads to the end of the input. Cancelling it is safe: a line is either handed on whole
    /// or left without an outcome, for `--resume` to pick up.
    pub async fn feed<R: AsyncBufRead + Unpin>(
        &mut self,
        mut lines: Lines<R>,
    ) -> std::io::Result<()> {
        while let Some(line) = lines.next().await? {
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
            let message = match line.parse() {
                Ok(message) => message,
                Err(rejected) => {
                    let _ = self.records.send(rejected.at_line(number)).await;
                    continue;
                }
            };
            let (id, to) = (
                message.message_id().to_owned(),
                message.target_str().to_owned(),
            );
            let outcome = Outcome {
                number,
                id,
                to,
                started: Instant::now(),
                records: self.records.clone(),
                progress: self.progress.clone(),
                refused: self.refused.clone(),
            };
            match self.sender.stream() {
                // Submitted here, so that the task that waits for the outcome holds only the
                // pending ack: tasks are alive for every message in flight, and one that
                // also held the message and the submission was ~4.5 KiB (5 MiB of heap at
                // the default capacity, churned a million times per million lines).
                Some(client) if self.sender.route() == Route::Xmpp => {
                    // Cancelled here (interrupt, refused key), the message was not queued and
                    // stays without an outcome for --resume.
                    let submitted = client.submit(message).await;
                    self.progress.submitted.fetch_add(1, Relaxed);
                    tokio::spawn(async move {
                        let (result, attempts) = match submitted {
                            Ok(pending) => {
                                let completion = pending.completion().await;
                                (completion.result, completion.attempts)
                            }
                            Err(e) => (Err(e), 0),
                        };
                        outcome.write(result, Some(attempts)).await;
                        drop(slot);
                    });
                }
                // Over HTTP the attempt count is unknown: retries happen inside the sender.
                _ => {
                    self.progress.submitted.fetch_add(1, Relaxed);
                    let sender = self.sender.clone();
                    tokio::spawn(async move {
                        let result = sender.send(message).await;
                        outcome.write(result, None).await;
                        drop(slot);
                    });
                }
            }
        }
        Ok(())
    }
}

/// Where the outcome of one submitted message goes.
struct Outcome {
    number: u64,
    id: String,
    to: String,
    started: Instant,
    records: mpsc::Sender<Record>,
    progress: Arc<Progress>,
    refused: Arc<Notify>,
}

impl Outcome {
    async fn write(self, result: Result<Ack, SendError>, attempts: Option<u32>) {
        if let Err(e) = &result
            && e.is_auth_refused()
        {
            // Not an outcome of the message: it is sent again by --resume.
            self.progress.refused();
            self.refused.notify_one();
            return;
        }
        let latency = self.started.elapsed();
        let result = result.map(Sent::Ack);
        let record = Record::sent(self.id, self.to, result, attempts, latency).at_line(self.number);
        let _ = self.records.send(record).await;
    }
}
