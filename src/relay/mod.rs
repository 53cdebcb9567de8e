//! The relay (feature `relay`): a long-running sender service on a Redis Streams consumer
//! group. Producers `XADD` messages to the outbox; any number of relays (one consumer each)
//! read them, send them through a [`Sender`], and on each entry's final outcome write its
//! record to the results stream **and** `XACK` it in one `MULTI`/`EXEC`. An entry is never
//! acked without its record; one that a dead relay held is taken over with `XAUTOCLAIM`
//! and sent again under the same message id. Upstream messages and receipts go to the
//! inbox before they are acked to CCS. The contract is `spec/relay.md`.
//!
//! ```no_run
//! # async fn demo(sender: gcm_ccs::Sender, incoming: gcm_ccs::Incoming) -> Result<(), gcm_ccs::relay::RelayError> {
//! use gcm_ccs::relay::{RedisTarget, Relay, RelayConfig};
//!
//! let redis = RedisTarget::new("redis://127.0.0.1:6379", None)?;
//! let relay = Relay::start(RelayConfig::new(redis, "relay-1"), sender, incoming, None).await?;
//! let report = relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! println!("{} entries recorded", report.recorded);
//! # Ok(()) }
//! ```

mod config;
mod entry;
mod error;
mod inbox;
mod producer;
mod read;
mod store;
mod write;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustc_hash::FxHashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

pub use self::config::{RedisTarget, RelayConfig};
pub use self::error::RelayError;
pub use self::producer::Producer;

use self::entry::Entry;
use self::store::{Dead, Store, Written};
use crate::error::SendError;
use crate::metrics::{self, Metrics};
use crate::outgoing::Outgoing;
use crate::record::{Outcome, Record};
use crate::sender::{Finished, InFlight, Sender};
use crate::xmpp::CompletionQueue;
use crate::xmpp::Incoming;

/// A relay connected to Redis, ready to [`run`](Relay::run).
pub struct Relay {
    cfg: Arc<RelayConfig>,
    sender: Sender,
    store: Store,
    reads: store::Reads,
    incoming: Incoming,
    metrics: Arc<Metrics>,
    server: Option<metrics::Server>,
}

/// What a relay did, when it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Entries read (a redelivery counts again).
    pub read: u64,
    /// Entries recorded and acked by this relay.
    pub recorded: u64,
    /// Entries this relay sent that were no longer pending on it when their outcome was
    /// written: another consumer had taken them over (and records them), or an earlier
    /// attempt of ours was applied although its reply was lost (a Redis restart or cut).
    pub not_pending: u64,
    /// Entries still without an outcome at the stop, left pending for another consumer.
    pub left_pending: u64,
}

/// Counts shared by the relay's tasks.
#[derive(Default)]
struct Counts {
    read: AtomicU64,
    recorded: AtomicU64,
    not_pending: AtomicU64,
}

impl Relay {
    /// Connects to Redis (retrying within `cfg.start_budget`), creates the group when it is
    /// missing, and serves metrics on `metrics_listen` when given.
    pub async fn start(
        cfg: RelayConfig,
        sender: Sender,
        incoming: Incoming,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<Relay, RelayError> {
        cfg.validate()?;
        let metrics = Arc::new(Metrics::new());
        let server = match metrics_listen {
            Some(addr) => Some(metrics::serve(addr, metrics.clone()).await.map_err(|e| {
                RelayError::Metrics {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                }
            })?),
            None => None,
        };
        let (store, reads) = store::open(&cfg).await?;
        info!(redis = %cfg.redis, stream = %cfg.stream, group = %cfg.group, consumer = %cfg.consumer, "relay connected to Redis");
        Ok(Relay {
            cfg: Arc::new(cfg),
            sender,
            store,
            reads,
            incoming,
            metrics,
            server,
        })
    }

    /// Where `/metrics` and `/healthz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.addr)
    }

    /// Sends entries until `stop` completes; then stops reading, lets the messages in
    /// flight finish within `shutdown_timeout`, records and acks those, and leaves the rest
    /// pending for another consumer. Ends early with an error when CCS or the HTTP API
    /// refuses the server key (the entries stay pending).
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<RelayReport, RelayError> {
        let Relay {
            cfg,
            sender,
            store,
            reads,
            incoming,
            metrics,
            server: _server,
        } = self;
        let counts = Arc::new(Counts::default());
        let permits = Arc::new(Semaphore::new(cfg.capacity));
        let (entries_tx, mut entries_rx) = mpsc::channel(4);
        let reader = Aborting(tokio::spawn(read::run(
            reads,
            store.clone(),
            cfg.clone(),
            Sends::of(&sender),
            permits.clone(),
            entries_tx,
        )));
        let (write_tx, write_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write::run(
            store.clone(),
            write_rx,
            done_tx,
            metrics.clone(),
            counts.clone(),
            cfg.refresh_every(),
        ));
        let _inbox = Aborting(tokio::spawn(inbox::run(
            incoming,
            store.clone(),
            metrics.clone(),
        )));
        let _observer = Aborting(tokio::spawn(observe(
            store,
            sender.clone(),
            metrics.clone(),
        )));

        let refused = Arc::new(AtomicBool::new(false));
        let mut held: HashSet<String> = HashSet::new();
        // Outcomes of what the stream alone carries come through the queue, under a tag;
        // the rest are awaited in `sending`.
        let mut sending = FuturesUnordered::new();
        let (queue, mut completions) = CompletionQueue::channel();
        let mut queued: FxHashMap<u64, Flight> = FxHashMap::default();
        let mut tags = 0u64..;
        let mut deadline: Option<Instant> = None;
        tokio::pin!(stop);
        loop {
            let stopping = deadline.is_some();
            if stopping && sending.is_empty() && queued.is_empty() {
                break;
            }
            tokio::select! {
                _ = &mut stop, if !stopping => {
                    info!(in_flight = sending.len() + queued.len(), "stopping: no more entries are read");
                    reader.0.abort();
                    deadline = Some(Instant::now() + cfg.shutdown_timeout);
                }
                batch = entries_rx.recv(), if !stopping => {
                    let Some(batch) = batch else {
                        warn!("the outbox reader ended: stopping");
                        deadline = Some(Instant::now() + cfg.shutdown_timeout);
                        continue;
                    };
                    for (entry_id, judged, permit) in batch {
                        counts.read.fetch_add(1, Relaxed);
                        // A pending list read again returns entries already in flight.
                        if !held.insert(entry_id.clone()) {
                            continue;
                        }
                        match judged {
                            Ok(outgoing) => {
                                let flight = Flight::of(&outgoing, entry_id, permit);
                                let tag = tags.next().unwrap_or_default();
                                match sender.start_queued(outgoing, tag, &queue).await {
                                    None => {
                                        queued.insert(tag, flight);
                                    }
                                    Some(inflight) => sending.push(flight.finish(inflight, refused.clone())),
                                }
                            }
                            Err(dead) => {
                                let _ = write_tx.send((*dead, permit));
                            }
                        }
                    }
                    metrics.set_in_flight(held.len());
                }
                Some(batch) = completions.recv() => {
                    for (tag, done) in batch {
                        if let Some(written) = queued
                            .remove(&tag)
                            .and_then(|flight| flight.land(done.into(), &refused))
                        {
                            let _ = write_tx.send(written);
                        }
                    }
                    if refused.load(Relaxed) && deadline.is_none() {
                        warn!("the server refused the key: stopping, entries stay pending");
                        reader.0.abort();
                        deadline = Some(Instant::now());
                    }
                }
                Some(done) = sending.next() => {
                    if let Some(written) = done {
                        let _ = write_tx.send(written);
                    }
                    if refused.load(Relaxed) && deadline.is_none() {
                        warn!("the server refused the key: stopping, entries stay pending");
                        reader.0.abort();
                        deadline = Some(Instant::now());
                    }
                }
                Some(ids) = done_rx.recv() => {
                    for id in ids {
                        held.remove(&id);
                    }
                    metrics.set_in_flight(held.len());
                }
                _ = sleep_until_opt(deadline) => break,
            }
        }
        let left_pending = (sending.len() + queued.len()) as u64;
        drop((sending, queued));
        drop(write_tx);
        // What finished is recorded while Redis answers, within what is left of the time.
        let remaining = deadline.map_or(cfg.shutdown_timeout, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let mut writer = writer;
        if tokio::time::timeout(remaining.max(Duration::from_secs(1)), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
            warn!("Redis did not take the last outcomes in time: their entries stay pending");
        }
        sender.close().await;
        if refused.load(Relaxed) {
            return Err(RelayError::KeyRefused);
        }
        Ok(RelayReport {
            read: counts.read.load(Relaxed),
            recorded: counts.recorded.load(Relaxed),
            not_pending: counts.not_pending.load(Relaxed),
            left_pending,
        })
    }
}

/// A task aborted when this is dropped.
struct Aborting<T>(JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What to do with one entry read: send it, or dead-letter it (poison or invalid). Decided
/// in the reader's task, so the relay's loop only routes.
type Judged = Result<Outgoing, Box<Written>>;

/// Judges an entry: more deliveries than allowed, or nothing valid to send, makes it dead.
fn judge(cfg: &RelayConfig, sends: Sends, entry: Entry) -> Judged {
    let rejected = if entry.deliveries > u64::from(cfg.max_deliveries) {
        let why = format!(
            "delivered {} times: more than --max-deliveries {}",
            entry.deliveries, cfg.max_deliveries
        );
        Record {
            outcome: Outcome::Failed,
            ..Record::invalid("MAX_DELIVERIES", why, None, None)
        }
    } else {
        match entry.parse(&cfg.stream) {
            Ok(outgoing) => match sends.lacks(&outgoing) {
                None => return Ok(outgoing),
                Some(what) => Record {
                    outcome: Outcome::Failed,
                    ..Record::invalid(
                        "NO_TRANSPORT",
                        format!("this relay has no transport for {what}"),
                        Some(outgoing.id().to_owned()),
                        Some(outgoing.target().to_owned()),
                    )
                },
            },
            Err(record) => *record,
        }
    };
    let reason = format!(
        "{}: {}",
        rejected.code.as_deref().unwrap_or("INVALID"),
        rejected.description.as_deref().unwrap_or("")
    );
    Err(Box::new(Written {
        entry_id: entry.id,
        read_at: Instant::now(),
        dead: Some(Dead {
            reason,
            message: entry.message,
            deliveries: entry.deliveries,
        }),
        record: rejected,
    }))
}

/// Which kinds of message the relay's sender has a transport for.
#[derive(Debug, Clone, Copy)]
struct Sends {
    ccs: bool,
    #[cfg(feature = "webpush")]
    webpush: bool,
}

impl Sends {
    fn of(sender: &Sender) -> Sends {
        Sends {
            ccs: sender.sends_ccs(),
            #[cfg(feature = "webpush")]
            webpush: sender.sends_webpush(),
        }
    }

    /// What is missing to send `outgoing`, if anything: such an entry is dead-lettered
    /// (and can be put back once a relay has the transport) rather than failed and lost.
    fn lacks(self, outgoing: &Outgoing) -> Option<&'static str> {
        match outgoing {
            Outgoing::Message(_) if !self.ccs => {
                Some("CCS messages (start it with the XMPP or HTTP options)")
            }
            #[cfg(feature = "webpush")]
            Outgoing::WebPush(_) if !self.webpush => {
                Some("Web Push (start it with --vapid-key and --subject)")
            }
            _ => None,
        }
    }
}

/// One message on its way, submitted from the relay's loop: what waits for its outcome is
/// small (an entry of the queued map, or a boxed send of another transport).
struct Flight {
    started: Instant,
    id: String,
    to: String,
    entry_id: String,
    permit: OwnedSemaphorePermit,
}

impl Flight {
    fn of(outgoing: &Outgoing, entry_id: String, permit: OwnedSemaphorePermit) -> Flight {
        Flight {
            started: Instant::now(),
            id: outgoing.id().to_owned(),
            to: outgoing.target().to_owned(),
            entry_id,
            permit,
        }
    }

    /// Waits for `sending`, then [`land`](Self::land)s.
    async fn finish(
        self,
        sending: InFlight,
        refused: Arc<AtomicBool>,
    ) -> Option<(Written, OwnedSemaphorePermit)> {
        let finished = sending.finish().await;
        self.land(finished, &refused)
    }

    /// Its record; `None` when its end is not an outcome of the message (the key was
    /// refused, the sender closed): the entry then stays pending.
    fn land(
        self,
        finished: Finished,
        refused: &AtomicBool,
    ) -> Option<(Written, OwnedSemaphorePermit)> {
        let Finished { result, attempts } = finished;
        match &result {
            Err(SendError::Closed) => return None,
            Err(e) if e.is_auth_refused() => {
                refused.store(true, Relaxed);
                return None;
            }
            _ => {}
        }
        let record = Record::sent(self.id, self.to, result, attempts, self.started.elapsed());
        let written = Written {
            entry_id: self.entry_id,
            read_at: self.started,
            record,
            dead: None,
        };
        Some((written, self.permit))
    }
}

/// Refreshes the gauges every few seconds: queue lag and pending, connections.
async fn observe(mut store: Store, sender: Sender, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let stats = sender.stream().map(|c| c.stats());
        let up = stats
            .as_ref()
            .filter(|_| sender.sends_ccs())
            .map(|s| s.connections);
        // With HTTP as the fallback, messages go out while the stream is down.
        let healthy = !sender.needs_stream() || up.is_some_and(|n| n > 0);
        let (retried, reconnects) = stats.map_or((0, 0), |s| (s.retried, s.reconnects));
        metrics.sender(retried, reconnects, up, healthy);
        match store.queue_figures().await {
            Ok((lag, pending)) => metrics.queue(lag, pending),
            Err(e) => warn!(error = %e, "cannot read the queue's lag and pending count"),
        }
        tick.tick().await;
    }
}
