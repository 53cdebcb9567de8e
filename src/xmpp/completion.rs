//! The final outcome of one accepted message, and the queue that carries many of them.

use tokio::sync::{mpsc, oneshot};

use crate::error::SendError;
use crate::inbound::Ack;

/// What a [`PendingAck`](crate::PendingAck) resolves to, with the number of sends.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The ack, or why the message failed.
    pub result: Result<Ack, SendError>,
    /// How many times the message was written to the wire (0 if it never was).
    pub attempts: u32,
}

/// Outcomes that ended together, each with the tag it was submitted with.
pub type Batch = Vec<(u64, Completion)>;

/// Where messages submitted with [`Client::submit_to`](crate::Client::submit_to) report
/// their outcome. Clone it freely; every clone feeds the same [`Completions`].
#[derive(Debug, Clone)]
pub struct CompletionQueue {
    tx: mpsc::UnboundedSender<Batch>,
}

impl CompletionQueue {
    /// A new queue: submit with [`Client::submit_to`](crate::Client::submit_to) and the
    /// queue, read the outcomes from the [`Completions`].
    pub fn channel() -> (CompletionQueue, Completions) {
        let (tx, rx) = mpsc::unbounded_channel();
        (CompletionQueue { tx }, Completions { rx })
    }
}

/// The outcomes of messages submitted to a [`CompletionQueue`], in the order they ended,
/// in batches: one wake-up for all that ended together, and no channel per message. Each
/// accepted message gets exactly one entry. Outcomes wait here until read, so what is
/// unread is at most what was submitted and not read yet: the application bounds it by how
/// far it lets submitting run ahead of reading.
#[derive(Debug)]
pub struct Completions {
    rx: mpsc::UnboundedReceiver<Batch>,
}

impl Completions {
    /// The next outcomes; `None` once every [`CompletionQueue`] is dropped and every message
    /// submitted to one has its outcome here.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await
    }
}

/// How a job's outcome gets back to whoever submitted it.
#[derive(Debug)]
pub(crate) enum Reply {
    /// To its [`PendingAck`](crate::PendingAck).
    Once(oneshot::Sender<Completion>),
    /// To a queue, under a tag.
    Queued(u64, CompletionQueue),
}

/// Outcomes bound for queues, held until [`Outbox::flush`] so that all that end in one
/// turn of the shell go out as one batch per queue.
#[derive(Default)]
pub(crate) struct Outbox {
    batches: Vec<(CompletionQueue, Batch)>,
}

impl Outbox {
    /// Delivers `completion` to `reply` (at once, or at the next flush).
    pub fn complete(&mut self, reply: Reply, completion: Completion) {
        match reply {
            // The caller may have dropped its PendingAck; the send still counted.
            Reply::Once(tx) => {
                let _ = tx.send(completion);
            }
            Reply::Queued(tag, queue) => {
                match self
                    .batches
                    .iter_mut()
                    .find(|(q, _)| q.tx.same_channel(&queue.tx))
                {
                    Some((_, batch)) => batch.push((tag, completion)),
                    None => self.batches.push((queue, vec![(tag, completion)])),
                }
            }
        }
    }

    /// Sends what is held (a dropped [`Completions`] loses only its own outcomes).
    pub fn flush(&mut self) {
        for (queue, batch) in self.batches.drain(..) {
            let _ = queue.tx.send(batch);
        }
    }
}
